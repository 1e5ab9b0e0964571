"""Benchmark: a peer verifying one plugin against 3 PVs from a local HTTP mirror.

    python benchmarks/peer.py                 # 3 PVs of 100,000 plugins each
    python benchmarks/peer.py --plugins 10000

Each PV's static directory is produced with the core (bindings, tree, tiles, a signed STR and
the one-file proof of the measured plugin) in the exact published layout, then served by
http.server on 127.0.0.1. The same run measures the tile path (walk 8-level tiles from the
root, fetch the binding by its hash) and the one-file proof path: wall time per verification
(fetch + verify, all 3 PVs, formula), HTTP requests and bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from pds_log.core import static_layout as site  # noqa: E402
from pds_log.core.binding import Binding  # noqa: E402
from pds_log.core.names import name_key  # noqa: E402
from pds_log.core.note import NoteSigner  # noqa: E402
from pds_log.core.proof import make_proof  # noqa: E402
from pds_log.core.signed_root import ZERO_HASH, TreeHead, sign_str  # noqa: E402
from pds_log.core.tiles import all_tiles  # noqa: E402
from pds_log.core.tree import PrefixTree  # noqa: E402
from pds_log.infra.http import Fetcher  # noqa: E402
from pds_log.peer.trust import parse_trust  # noqa: E402
from pds_log.peer.verify import verify_plugin  # noqa: E402
from tests.support import StaticServer  # noqa: E402

TARGET = "org.bench.target"
MANIFEST = b"org.bench.target\nupdate_rtt post a.o\n"
OBJECT = b"\x7fELF-target-object"


def build_pv(out: Path, origin: str, n: int) -> str:
    signer = NoteSigner.generate(origin)
    h = lambda b: hashlib.sha256(b).hexdigest()  # noqa: E731
    bindings = {}
    for i in range(n - 1):
        name = f"org.bench.p{i:06d}"
        bindings[name] = Binding.create(name, "p.plugin", h(name.encode()), {"a.o": h(b"o" + name.encode())},
                                        "ab" * 20, ["safety"])
    bindings[TARGET] = Binding.create(TARGET, "t.plugin", h(MANIFEST), {"a.o": h(OBJECT)}, "ab" * 20,
                                      ["safety", "termination"])
    tree = PrefixTree.from_items({name_key(nm): b.value() for nm, b in bindings.items()})
    for tile_hash, tile in all_tiles(tree):
        path = out / site.tile_path(tile.level, tile_hash)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(tile.encode())
    target = bindings[TARGET]
    path = out / site.binding_by_value_path(target.value())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(target.encode())  # the peer only fetches the binding it finds at its leaf
    head = TreeHead(origin, 1, tree.root(), ZERO_HASH, int(time.time()), "ab" * 20, len(tree), "00" * 32)
    note = sign_str(head, signer).note
    (out / site.LATEST).write_bytes(note)
    (out / site.str_path(1)).parent.mkdir(parents=True, exist_ok=True)
    (out / site.str_path(1)).write_bytes(note)
    proof = make_proof(tree, TARGET, 1, bindings.__getitem__)
    (out / site.proof_path(1, TARGET)).parent.mkdir(parents=True, exist_ok=True)
    (out / site.proof_path(1, TARGET)).write_bytes(proof.to_json())
    return str(signer.verifier())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plugins", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pds-bench-peer-"))
    servers = []
    try:
        t = time.perf_counter()
        pvs = {}
        for i in (1, 2, 3):
            out = work / f"pv{i}"
            vkey = build_pv(out, f"pv{i}.bench", args.plugins)
            server = StaticServer(out)
            servers.append(server)
            pvs[f"pv{i}"] = {"vkey": vkey, "mirrors": [server.url]}
        print(f"setup: 3 PVs x {args.plugins:,} plugins published in {time.perf_counter() - t:.1f} s")
        (work / "bytecode").mkdir()
        (work / "bytecode" / "t.plugin").write_bytes(MANIFEST)
        (work / "bytecode" / "a.o").write_bytes(OBJECT)
        import yaml

        trust = parse_trust(yaml.safe_dump({"version": 1, "pvs": pvs, "require": "pv1 & (pv2 | pv3)",
                                            "max_age": 86400}))
        print(f"{'path':8} {'mean ms':>8} {'p50 ms':>8} {'max ms':>8} {'requests':>9} {'KiB':>8}")
        for via in ("tiles", "proof"):
            times, reqs, sizes = [], [], []
            for _ in range(args.runs):
                fetcher = Fetcher()
                start = time.perf_counter()
                verdict = verify_plugin(TARGET, trust, bytecode_dir=work / "bytecode", via=via, fetcher=fetcher,
                                        use_state=False)
                times.append((time.perf_counter() - start) * 1000)
                assert verdict.accepted, verdict.to_obj()
                reqs.append(fetcher.requests_made)
                sizes.append(fetcher.bytes_received / 1024)
            print(f"{via:8} {statistics.mean(times):8.1f} {statistics.median(times):8.1f} {max(times):8.1f} "
                  f"{statistics.mean(reqs):9.0f} {statistics.mean(sizes):8.1f}")
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
