"""The warm path: keep-alive, a conditional GET of latest.note and the local cache of immutable
files, counted on real HTTP/1.1 servers on 127.0.0.1 (`pds peer verify` through the CLI)."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pds_log.core import static_layout as site
from pds_log.infra.http import Fetcher
from tests.support import PDS, run, write_trust

from .simpv import SimPV, binding_for, plugin_files, write_dir

pytestmark = pytest.mark.slow  # real HTTP servers counting the peer's requests

NAME = "org.sim.rtt"


class CountingHandler(SimpleHTTPRequestHandler):
    """Serves a directory over HTTP/1.1 (keep-alive), with an ETag when the server has
    `etags`, and Last-Modified / If-Modified-Since as http.server does; counts everything."""

    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def log_message(self, *args) -> None:
        pass

    def send_head(self):
        self._etag = None
        path = self.translate_path(self.path)
        if self.server.etags and os.path.isfile(path):
            self._etag = '"' + hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16] + '"'
            if self.headers.get("If-None-Match") == self._etag:
                self.server.requests.append((self.path.lstrip("/"), 304))
                self.send_response(304)
                self.end_headers()
                return None
        result = super().send_head()
        self.server.requests.append((self.path.lstrip("/"), 200 if result is not None else 304))
        return result

    def send_error(self, code, *args, **kwargs):
        self.server.requests.append((self.path.lstrip("/"), code))
        super().send_error(code, *args, **kwargs)

    def end_headers(self) -> None:
        if getattr(self, "_etag", None):
            self.send_header("ETag", self._etag)
        super().end_headers()


class CountingServer:
    def __init__(self, directory: Path, etags: bool = True) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(CountingHandler, directory=str(directory)))
        self.httpd.requests, self.httpd.connections, self.httpd.etags = [], 0, etags
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def requests(self) -> list[tuple[str, int]]:
        return self.httpd.requests

    def reset(self) -> None:
        self.httpd.requests.clear()
        self.httpd.connections = 0

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def world(tmp_path):
    """Three PVs at epoch 1 (pv2 rejects NAME), each on one counting server; pv3's server sends
    no ETag, so its conditional GET rests on Last-Modified (its files are dated an hour ago)."""
    files = plugin_files(NAME)
    servers, pvs = {}, {}
    for i in (1, 2, 3):
        pv = SimPV(tmp_path / f"pv{i}", f"pv{i}.sim")
        if i == 2:
            pv.next_epoch({}, reject={NAME: "termination: unproven loop"})
        else:
            pv.next_epoch({NAME: binding_for(NAME, files)})
        pvs[f"pv{i}"] = pv
        servers[f"pv{i}"] = CountingServer(pv.out, etags=i != 3)
    past = time.time() - 3600
    for p in pvs["pv3"].out.rglob("*"):
        os.utime(p, (past, past))
    trust = write_trust(tmp_path / "trust.yaml", {n: (pv.vkey, [servers[n].url]) for n, pv in pvs.items()},
                        "pv1 & (pv2 | pv3)", state=tmp_path / "state.json")
    yield {"pvs": pvs, "servers": servers, "trust": trust, "bytecode": write_dir(tmp_path / "bytecode", files),
           "cache": tmp_path / "mirror-cache"}
    for server in servers.values():
        server.stop()


def verify(world, *extra):
    result = run(*PDS, "peer", "verify", NAME, "--trust", world["trust"], "--bytecode", world["bytecode"], "--json",
                 *extra, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def counts(world) -> dict[str, list[tuple[str, int]]]:
    out = {n: list(s.requests) for n, s in world["servers"].items()}
    for server in world["servers"].values():
        server.reset()
    return out


def test_warm_verify_is_one_conditional_request_per_pv(world):
    cold = verify(world)
    seen = counts(world)
    assert all(len(reqs) >= 2 for reqs in seen.values()), seen  # latest.note, tiles, a binding or status
    warm = verify(world)
    seen = counts(world)
    assert seen == {n: [(site.LATEST, 304)] for n in ("pv1", "pv2", "pv3")}, seen
    assert warm["pvs"]["pv2"]["explanation"] == cold["pvs"]["pv2"]["explanation"]  # kept under the same STR
    for n in ("pv1", "pv3"):
        assert warm["pvs"][n]["status"] == "included" and warm["pvs"][n]["chain"] == "same STR as last seen (epoch 1)"
    # keep-alive: one connection per server for all of a cold run's requests
    no_cache = verify(world, "--no-cache")
    assert no_cache["accepted"] and all(s.httpd.connections == 1 for s in world["servers"].values())
    assert all(len(reqs) >= 2 for reqs in counts(world).values())


def test_a_new_epoch_fetches_only_what_changed(world):
    verify(world)
    counts(world)
    pv1 = world["pvs"]["pv1"]
    other = "org.sim.other"
    pv1.next_epoch({other: binding_for(other, plugin_files(other))})
    report = verify(world)["pvs"]["pv1"]
    assert report["epoch"] == 2 and report["chain"] == "chained link by link from epoch 1 (1 new)"
    seen = counts(world)
    assert seen["pv1"][0] == (site.LATEST, 200) and (site.LATEST, 304) in seen["pv2"], seen
    assert all(status == 200 for _, status in seen["pv1"]) and len(seen["pv1"]) <= 4, seen  # no binding refetched


def test_a_poisoned_cache_is_never_trusted(world):
    """Cached bytes are checked like the mirror's; refused, they are dropped and the mirror is
    asked again: the peer neither accepts on a poisoned cache nor rejects because of it."""
    pv1 = world["pvs"]["pv1"]
    pv1.next_epoch({"org.sim.other": binding_for("org.sim.other", plugin_files("org.sim.other"))})
    verify(world)
    counts(world)
    cached = world["cache"] / hashlib.sha256(world["servers"]["pv1"].url.encode()).hexdigest()[:24]
    binding = cached / site.binding_by_value_path(binding_for(NAME, plugin_files(NAME)).value())
    tiles = [p for p in (cached / "tiles").rglob("*") if p.is_file()]
    assert binding.is_file() and tiles
    for path in tiles:
        path.write_bytes(b"poison")
    binding.write_bytes(b"{}")
    report = verify(world)["pvs"]["pv1"]
    assert (report["status"], report["epoch"], report["attempts"]) == ("included", 2, []), report
    seen = counts(world)["pv1"]
    assert seen[:2] == [(site.LATEST, 304), (site.LATEST, 200)] and len(seen) > 2, seen  # refused, asked again
    # an older, validly signed STR in place of the cached latest.note: the server still says
    # 304 (its ETag is epoch 2's), the peer sees a rollback, drops it and asks again
    (cached / site.LATEST).write_bytes(pv1.strs[1].note)
    report = verify(world)["pvs"]["pv1"]
    assert (report["status"], report["epoch"], report["attempts"]) == ("included", 2, []), report
    assert counts(world)["pv1"][:2] == [(site.LATEST, 304), (site.LATEST, 200)]
    assert (cached / site.LATEST).read_bytes() == pv1.strs[2].note  # the cache is repaired
    verify(world)
    assert counts(world)["pv1"] == [(site.LATEST, 304)]


def test_conditional_get_on_one_keep_alive_connection(tmp_path):
    (tmp_path / "old").write_bytes(b"old")
    (tmp_path / "new").write_bytes(b"new")
    past = time.time() - 3600
    os.utime(tmp_path / "old", (past, past))
    tagged, dated = CountingServer(tmp_path), CountingServer(tmp_path, etags=False)
    fetcher = Fetcher()
    try:
        first = fetcher.fetch(tagged.url, "old")
        assert first.data == b"old" and first.etag and first.last_modified
        again = fetcher.fetch(tagged.url, "old", etag=first.etag)
        assert again.not_modified and tagged.requests == [("old", 200), ("old", 304)]
        assert tagged.httpd.connections == 1  # the 304 left the connection usable
        by_date = fetcher.fetch(dated.url, "old")
        assert by_date.etag is None and fetcher.fetch(dated.url, "old", last_modified=by_date.last_modified).not_modified
        # a file modified within the last seconds: its Last-Modified cannot tell a second change apart
        assert fetcher.fetch(dated.url, "new").last_modified is None
        (tmp_path / "old").write_bytes(b"changed")
        assert fetcher.fetch(tagged.url, "old", etag=first.etag).data == b"changed"
        assert fetcher.get(tagged.url, "old") == b"changed"
    finally:
        fetcher.close()
        tagged.stop()
        dated.stop()
