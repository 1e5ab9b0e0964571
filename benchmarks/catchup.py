"""Benchmark: peer catch-up, STR v1 (follow the prev chain) against STR v2 (C2SP checkpoint +
consistency proof from tlog-tiles), counted at a real HTTP server.

    python benchmarks/catchup.py                       # 1, 150 and 10,000 epochs behind
    python benchmarks/catchup.py --behind 1 150        # a subset
    python benchmarks/catchup.py --real --behind 1 150 # a real PV: pds pv init/epoch/publish

For each version and each k: a PV publication is built with the core (pds_log.core:
prefix tree and map tiles, a binding, signed STRs; for v2 the epoch log, its tiles
tile/<L>/<N>[.p/<W>] and the `checkpoint`, as site/docs/formats.md says), served by
http.server (HTTP/1.1, keep-alive) on 127.0.0.1. A peer runs `pds peer verify` (the CLI,
`python -m pds_log`) once at epoch 1, the PV then signs k more epochs (nothing changes in its
map, as in the measurement of issue 16), and the peer runs `pds peer verify` again: the GETs
and body bytes of that second run are counted at the server, with the peer's mirror cache
(default) and without it (--no-cache). The publications are core-built, not made by
`pds pv epoch` (10,000 real epochs would take hours): the peer only ever sees these files.

--real: the same measurement on a real PV (`pds pv init`, a plugin built with clang and pushed
to a PR with a signed commit, `pds pv epoch` for every epoch, `str_version: 2` in pv.yaml for
v2, `pds pv publish` before each peer check), from the repository root (it uses tests/support).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import subprocess
import sys
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

from pds_log.core import static_layout as site
from pds_log.core import tlog
from pds_log.core.binding import Binding
from pds_log.core.checkpoint import EpochRecord, sign_checkpoint, str_v2
from pds_log.core.names import name_key
from pds_log.core.note import NoteSigner
from pds_log.core.signed_root import ZERO_HASH, TreeHead, sign_str
from pds_log.core.tiles import all_tiles
from pds_log.core.tree import PrefixTree

TARGET = "org.pds.bench.target"
PR = "ab" * 20
POLICY = "00" * 32


class Counting(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def send_head(self):
        result = super().send_head()
        self.server.gets.append(self.path)
        return result

    def copyfile(self, source, outputfile) -> None:
        data = source.read()
        self.server.bytes += len(data)
        outputfile.write(data)


class Server:
    def __init__(self, directory: Path) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Counting, directory=str(directory)))
        self.httpd.gets, self.httpd.bytes = [], 0
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def take(self) -> tuple[int, int, list[str]]:
        out = len(self.httpd.gets), self.httpd.bytes, list(self.httpd.gets)
        self.httpd.gets, self.httpd.bytes = [], 0
        return out

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Publication:
    """A PV's static publication built with the core, one plugin in its map."""

    def __init__(self, out: Path, version: int) -> None:
        self.out, self.version = out, version
        self.signer = NoteSigner.generate("pv.bench")
        binding = Binding.create(TARGET, "t.plugin", hashlib.sha256(b"manifest").hexdigest(),
                                 {"a.o": hashlib.sha256(b"object").hexdigest()}, PR, ["safety"])
        self.tree = PrefixTree.from_items({name_key(TARGET): binding.value()})
        for tile_hash, tile in all_tiles(self.tree):
            self.write(site.tile_path(tile.level, tile_hash), tile.encode())
        self.write(site.binding_by_value_path(binding.value()), binding.encode())
        self.epoch, self.prev, self.log = 0, ZERO_HASH, tlog.MemoryHashes.empty()

    def write(self, path: str, data: bytes) -> None:
        target = self.out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def advance(self, k: int) -> None:
        """Sign k more epochs and publish them (v2: the log tiles of the final size, partial ones included)."""
        old = self.log.size
        now = int(time.time())
        for _ in range(k):
            self.epoch += 1
            if self.version == 1:
                signed = sign_str(TreeHead("pv.bench", self.epoch, self.tree.root(), self.prev, now, PR, 1, POLICY),
                                  self.signer)
                self.prev = signed.hash
                self.write(site.str_path(self.epoch), signed.note)
                note = signed.note
            else:
                record = EpochRecord(self.epoch, self.tree.root(), now, PR, 1, POLICY)
                self.log.append(record.entry())
        if self.version == 2:
            for tile in tlog.new_tiles(old, self.log.size):
                self.write(tile.path(), tlog.read_tile_data(tile, self.log))
            note = sign_checkpoint(str_v2("pv.bench", record, self.log.root()), self.signer)
            self.write("checkpoint", note)
        self.write(site.LATEST, note)


def verify(trust: Path, *extra: str) -> dict:
    result = subprocess.run([sys.executable, "-m", "pds_log", "peer", "verify", TARGET, "--trust", str(trust),
                             "--metadata-only", "--json", *extra], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"pds peer verify failed:\n{result.stdout}\n{result.stderr}")
    return json.loads(result.stdout)["pvs"]["pv"]


class RealPublication:
    """A real PV (tests/support.World): `pds pv epoch` per epoch, `pds pv publish` to `out`."""

    def __init__(self, out: Path, version: int) -> None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from pds_log.pv.config import load_config
        from tests.support import World

        self.out, self.world = out, World(out.parent / "world")
        self.config = self.world.add_pv("pv.bench", verifiers={"safety": {"runner": "bytecode_safety"}},
                                        acceptance="safety")
        if version == 2:
            doc = yaml.safe_load(self.config.read_text())
            doc["str_version"] = 2
            self.config.write_text(yaml.safe_dump(doc, sort_keys=False))
        self.signer = load_config(self.config).signer()
        self.world.push_plugins({TARGET: "org.pds.examples.rtt_monitor"})

    def advance(self, k: int) -> None:
        for _ in range(k):
            subprocess.run([sys.executable, "-m", "pds_log", "pv", "epoch", "--config", str(self.config)],
                           check=True, capture_output=True)
        subprocess.run([sys.executable, "-m", "pds_log", "pv", "publish", "--config", str(self.config), "--out",
                        str(self.out)], check=True, capture_output=True)


def measure(version: int, behind: int, cache: bool, root: Path, real: bool = False) -> tuple[int, int, float, str]:
    work = Path(tempfile.mkdtemp(dir=root))
    pub = RealPublication(work / "site", version) if real else Publication(work / "site", version)
    pub.advance(1)
    server = Server(pub.out)
    try:
        trust = work / "trust.yaml"
        trust.write_text(yaml.safe_dump({"version": 1, "pvs": {"pv": {"vkey": str(pub.signer.verifier()),
                                                                       "mirrors": [server.url]}},
                                         "require": "pv", "max_age": 3600, "state": str(work / "state.json")}))
        extra = () if cache else ("--no-cache",)
        verify(trust, *extra)
        pub.advance(behind)
        server.take()
        start = time.perf_counter()
        report = verify(trust, *extra)
        seconds = time.perf_counter() - start
        gets, body, _ = server.take()
    finally:
        server.stop()
    assert report["epoch"] == behind + 1 and report["status"] == "included", report
    return gets, body, seconds, report["chain"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--behind", type=int, nargs="+", default=[1, 150, 10_000])
    parser.add_argument("--versions", type=int, nargs="+", choices=(1, 2), default=[1, 2])
    parser.add_argument("--real", action="store_true", help="a real PV (pds pv epoch), not a core-built one")
    parser.add_argument("--no-uncached", action="store_true", help="only the runs with the mirror cache")
    args = parser.parse_args()
    caches = (True,) if args.no_uncached else (True, False)
    got: dict[tuple[int, int, bool], tuple[int, int, float, str]] = {}
    with tempfile.TemporaryDirectory(prefix="pds-catchup-") as tmp:
        for behind in args.behind:
            for version in args.versions:
                for cache in caches:
                    got[behind, version, cache] = result = measure(version, behind, cache, Path(tmp), args.real)
                    print(f"  {behind} behind, v{version}, {'cache' if cache else 'no cache'}: {result[0]} GETs, "
                          f"{result[1]} bytes, {result[2]:.2f} s ({result[3]})", file=sys.stderr, flush=True)
    kind = "a real PV (pds pv epoch, pds pv publish)" if args.real else "a core-built publication"
    print(f"GETs to the PV (and response bytes) for one `pds peer verify` after k epochs since the last check, {kind}")
    cols = [(v, c) for v in args.versions for c in caches]
    label = {True: "", False: ", no cache"}
    print("| epochs behind | " + " | ".join(f"v{v} GETs{label[c]} | v{v} bytes{label[c]}" for v, c in cols) + " |")
    print("|---:|" + "---:|---:|" * len(cols))
    for behind in args.behind:
        cells = [f"{got[behind, v, c][0]:,} | {got[behind, v, c][1]:,}" for v, c in cols]
        print(f"| {behind:,} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
