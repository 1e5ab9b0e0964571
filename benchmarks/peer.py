"""Benchmark: a peer verifying one plugin against 3 PVs from a local HTTP mirror.

    python benchmarks/peer.py                 # 3 PVs of 100,000 plugins each
    python benchmarks/peer.py --plugins 10000
    python benchmarks/peer.py --plugins 10000 --runs 5 --cli-runs 5   # + cold vs warm, library and CLI

Each PV's static directory is produced with the core (bindings, tree, tiles, a signed STR and
the one-file proof of the measured plugin) in the exact published layout, then served by
http.server on 127.0.0.1. The same run measures the tile path (walk 8-level tiles from the
root, fetch the binding by its hash) and the one-file proof path: wall time per verification
(fetch + verify, all 3 PVs, formula), HTTP requests and bytes.

Cold vs warm: the same verification with a peer state and its mirror cache (pds_log.peer.cache):
cold = empty cache and state, warm = the second run with latest.note unchanged (one
conditional GET per PV, answered 304). Measured in-process (requests, KiB, ms) and through
the CLI (`python -m pds_log peer verify`, wall time of the whole process, start-up included).
The servers speak HTTP/1.1 (keep-alive) and send Last-Modified; latest.note is dated a minute
back, as a published one is (a Last-Modified within 2 s of the Date is not used).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402

from pds_log.core import static_layout as site  # noqa: E402
from pds_log.core.binding import Binding  # noqa: E402
from pds_log.core.names import name_key  # noqa: E402
from pds_log.core.note import NoteSigner  # noqa: E402
from pds_log.core.proof import make_proof  # noqa: E402
from pds_log.core.signed_root import ZERO_HASH, TreeHead, sign_str  # noqa: E402
from pds_log.core.tiles import all_tiles  # noqa: E402
from pds_log.core.tree import PrefixTree  # noqa: E402
from pds_log.infra.http import Fetcher  # noqa: E402
from pds_log.peer.trust import PeerState, parse_trust  # noqa: E402
from pds_log.peer.verify import verify_plugin  # noqa: E402

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


class _Handler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as any production server

    def log_message(self, *args) -> None:
        pass


class Server:
    def __init__(self, directory: Path) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(directory)))
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def cold_warm(trust, work: Path, runs: int, cli_runs: int, pvs: dict) -> None:
    """Library: cold and warm requests, KiB, ms; CLI: cold and warm wall time."""
    print(f"\n{'tiles path':14} {'requests':>9} {'KiB':>8} {'mean ms':>8} {'min ms':>8}")
    rows: dict[str, list] = {"cold": [], "warm": []}
    for i in range(runs):
        state_dir = work / f"peer{i}"
        state_dir.mkdir()
        state = PeerState.load(state_dir / "state.json")
        for phase in ("cold", "warm"):
            fetcher = Fetcher()
            start = time.perf_counter()
            verdict = verify_plugin(TARGET, trust, bytecode_dir=work / "bytecode", fetcher=fetcher, state=state)
            rows[phase].append(((time.perf_counter() - start) * 1000, fetcher.requests_made,
                                fetcher.bytes_received / 1024))
            fetcher.close()
            assert verdict.ok, verdict.to_obj()
    for phase, values in rows.items():
        ms = [v[0] for v in values]
        print(f"{phase + ' (library)':14} {statistics.mean(v[1] for v in values):9.1f} "
              f"{statistics.mean(v[2] for v in values):8.1f} {statistics.mean(ms):8.1f} {min(ms):8.1f}")
    if not cli_runs:
        return
    import yaml

    walls: dict[str, list[float]] = {"cold": [], "warm": []}
    for i in range(cli_runs):
        peer = work / f"cli{i}"
        peer.mkdir()
        path = peer / "trust.yaml"
        path.write_text(yaml.safe_dump({"version": 1, "pvs": pvs, "require": "pv1 & (pv2 | pv3)", "max_age": 86400,
                                        "state": str(peer / "state.json")}))
        for phase in ("cold", "warm"):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "pds_log", "peer", "verify", TARGET, "--trust", str(path),
                            "--bytecode", str(work / "bytecode")], check=True, stdout=subprocess.DEVNULL)
            walls[phase].append((time.perf_counter() - start) * 1000)
    start = time.perf_counter()
    for _ in range(cli_runs):
        subprocess.run([sys.executable, "-c", "pass"], check=True)
    bare = (time.perf_counter() - start) * 1000 / cli_runs
    for phase, ms in walls.items():
        print(f"{phase + ' (CLI)':14} {'':9} {'':8} {statistics.mean(ms):8.1f} {min(ms):8.1f}")
    print(f"(python -c pass: {bare:.1f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plugins", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--cli-runs", type=int, default=0, help="CLI processes per phase for cold vs warm")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pds-bench-peer-"))
    servers = []
    try:
        t = time.perf_counter()
        pvs = {}
        for i in (1, 2, 3):
            out = work / f"pv{i}"
            vkey = build_pv(out, f"pv{i}.bench", args.plugins)
            past = time.time() - 60
            os.utime(out / site.LATEST, (past, past))
            server = Server(out)
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
        cold_warm(trust, work, args.runs, args.cli_runs, pvs)
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
