"""Benchmarks of the pure core: the prefix tree and its proofs.

    python benchmarks/core.py                 # 10k, 100k, 1M leaves (about a minute)
    python benchmarks/core.py --sizes 10000   # quicker

Each size runs in its own subprocess so that peak memory (ru_maxrss) belongs to that size.
Prints one table; also compares, on the same keys, the PyPI package `sparse-merkle-tree`
(module `smt`, a port of celestiaorg/smt) where it is installed.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import hashlib
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from pds_log.core.binding import Binding  # noqa: E402
from pds_log.core.names import name_key  # noqa: E402
from pds_log.core.proof import Proof, make_proof, verify_proof  # noqa: E402
from pds_log.core.tree import PrefixTree  # noqa: E402

COMMIT = "ab" * 20


def items_for(n: int, seed: int = 1) -> dict[bytes, bytes]:
    rnd = random.Random(seed)
    return {hashlib.sha256(b"plugin-%d" % i).digest(): rnd.randbytes(32) for i in range(n)}


def measure_size(n: int) -> dict:
    """Everything measured on one tree of n leaves (runs in a fresh process)."""
    out: dict = {"leaves": n}
    items = items_for(n)
    t = time.perf_counter()
    tree = PrefixTree.from_items(items)
    root = tree.root()
    out["bulk_build_s"] = time.perf_counter() - t
    # The build pauses CPython's cyclic GC; its first collections afterwards walk the ~2N new
    # containers once (a one-time cost, not a per-update one): measured apart so that the
    # update timings below are steady state.
    t = time.perf_counter()
    gc.collect()
    out["gc_settle_s"] = time.perf_counter() - t
    keys = list(items)
    rnd = random.Random(2)

    # 1,000 value updates of existing leaves, then the new root
    upd = [(k, rnd.randbytes(32)) for k in rnd.sample(keys, min(1000, n))]
    t = time.perf_counter()
    tree.update(upd)
    tree.root()
    out["update_1000_s"] = time.perf_counter() - t
    # 1,000 inserts of new leaves, then the new root
    ins = [(rnd.randbytes(32), rnd.randbytes(32)) for _ in range(1000)]
    t = time.perf_counter()
    tree.update(ins)
    tree.root()
    out["insert_1000_s"] = time.perf_counter() - t
    out["incremental_inserts_per_s"] = 1000 / out["insert_1000_s"]

    # proofs over real bindings: inclusion for present names, absence for others
    names = [f"org.bench.p{i}" for i in range(2000)]
    bindings = {nm: Binding.create(nm, "m.plugin", "cd" * 32, {"a.o": "ef" * 32}, COMMIT, ["reproducible"])
                for nm in names}
    for nm, b in bindings.items():
        tree.set(name_key(nm), b.value())
    root = tree.root()
    proofs, gen_times = [], []
    for nm in names[:500] + [f"org.bench.absent{i}" for i in range(500)]:
        t = time.perf_counter()
        proofs.append(make_proof(tree, nm, 1, bindings.__getitem__))
        gen_times.append(time.perf_counter() - t)
    encoded = [p.to_json() for p in proofs]
    ver_times, parse_ver_times = [], []
    for p, data in zip(proofs, encoded, strict=True):
        t = time.perf_counter()
        verify_proof(p, root, 1)
        ver_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        verify_proof(Proof.from_json(data), root, 1)
        parse_ver_times.append(time.perf_counter() - t)
    incl = [len(d) for p, d in zip(proofs, encoded, strict=True) if p.binding is not None]
    out["proof_gen_us"] = statistics.mean(gen_times) * 1e6
    out["proof_verify_us"] = statistics.mean(ver_times) * 1e6
    out["proof_parse_verify_us"] = statistics.mean(parse_ver_times) * 1e6
    out["proof_json_bytes_mean"] = statistics.mean(len(d) for d in encoded)
    out["inclusion_json_bytes_mean"] = statistics.mean(incl)
    out["proof_gzip_bytes_mean"] = statistics.mean(len(gzip.compress(d)) for d in encoded)
    # the same information in binary: 32 bytes per non-empty sibling + a 32-byte bitmap + the
    # leaf (binding bytes, or 64 bytes for an "other" leaf)
    out["proof_binary_bytes_mean"] = statistics.mean(
        32 * sum(1 for s in p.siblings if s) + 32 + (len(p.binding.encode()) if p.binding else 64 if p.other else 0)
        for p in proofs)
    out["siblings_mean"] = statistics.mean(len(p.siblings) for p in proofs)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def measure_smt(n: int) -> dict | None:
    try:
        from smt.store import TreeMemoryStore
        from smt.tree import SparseMerkleTree
    except ImportError:
        return None
    items = items_for(n)
    tree = SparseMerkleTree(store=TreeMemoryStore())
    t = time.perf_counter()
    for k, v in items.items():
        tree.update(k, v)
    elapsed = time.perf_counter() - t
    # pds on the same keys under smt's contract: one insert at a time, the new root after each
    pds = PrefixTree()
    t = time.perf_counter()
    for k, v in items.items():
        pds.set(k, v)
        pds.root()
    pds_elapsed = time.perf_counter() - t
    return {"leaves": n, "smt_build_s": elapsed, "smt_inserts_per_s": n / elapsed,
            "pds_one_by_one_per_s": n / pds_elapsed}


def run_child(kind: str, n: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", kind, str(n)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--smt-sizes", default="10000,100000")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, n = args.child[0], int(args.child[1])
        print(json.dumps(measure_size(n) if kind == "pds" else measure_smt(n)))
        return
    rows = [run_child("pds", int(n)) for n in args.sizes.split(",")]
    smt_rows = {int(n): run_child("smt", int(n)) for n in args.smt_sizes.split(",") if n}
    cols = [("leaves", "{:,}"), ("bulk_build_s", "{:.3f}"), ("update_1000_s", "{:.4f}"), ("insert_1000_s", "{:.4f}"),
            ("gc_settle_s", "{:.2f}"),
            ("proof_gen_us", "{:.1f}"), ("proof_verify_us", "{:.1f}"), ("proof_parse_verify_us", "{:.1f}"),
            ("siblings_mean", "{:.1f}"), ("proof_json_bytes_mean", "{:.0f}"), ("proof_gzip_bytes_mean", "{:.0f}"),
            ("proof_binary_bytes_mean", "{:.0f}"), ("peak_rss_mb", "{:.0f}")]
    print("pds_log prefix tree (one process per size; times are wall clock)")
    print(" | ".join(c for c, _ in cols))
    for row in rows:
        print(" | ".join(fmt.format(row[c]) for c, fmt in cols))
    print()
    print("inserts/s, same keys: pds bulk build, pds incremental (1,000 into N), pds and sparse-merkle-tree (smt)\n"
          "one by one from empty with the root after each insert")
    for row in rows:
        smt = smt_rows.get(row["leaves"])
        bulk = row["leaves"] / row["bulk_build_s"]
        line = f"{row['leaves']:>9,}: pds bulk {bulk:,.0f}/s, pds incremental {row['incremental_inserts_per_s']:,.0f}/s"
        if smt:
            rate = smt["smt_inserts_per_s"]
            line += (f", pds one by one {smt['pds_one_by_one_per_s']:,.0f}/s, smt {rate:,.0f}/s "
                     f"({smt['smt_build_s']:.1f} s) -> bulk x{bulk / rate:.0f}, incremental "
                     f"x{row['incremental_inserts_per_s'] / rate:.0f}, "
                     f"one by one x{smt['pds_one_by_one_per_s'] / rate:.1f}")
        print(line)


if __name__ == "__main__":
    main()
