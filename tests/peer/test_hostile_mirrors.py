"""Hostile mirrors: bytes that break parsers, servers that trickle, stall or redirect forever.

Every mirror here is a real HTTP server on 127.0.0.1 serving a `SimPV`'s published files
(really signed), except for the paths it answers with hostile behaviour. The peer is the CLI
(`python -m pds_log peer verify`); `PDS_FETCH_DEADLINE` makes its per-file deadline short.
"""

from __future__ import annotations

import functools
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from pds_log.core import static_layout as site
from pds_log.core.errors import PdsError
from pds_log.infra.http import DEFAULT_DEADLINE, Fetcher, FetchError, deadline_from_env

from .conftest import SIM_PLUGIN, sim_trust

pytestmark = pytest.mark.slow  # real HTTP mirrors that stall and trickle until the peer's deadlines

DEADLINE = 2.0  # seconds per file in these tests (the default is 30)
MARGIN = 6.0  # interpreter start-up, the other PVs and the good mirror, on a loaded machine
DRIP = 0.5  # seconds between two bytes of a trickling server
STATUS = site.status_path(SIM_PLUGIN)
PROOF = site.proof_path(1, SIM_PLUGIN)
DEEP = b"[" * 100_000 + b"]" * 100_000  # 100k-deep JSON (200 KB: within the proof size limit)
DEEP_SMALL = b"[" * 30_000 + b"]" * 30_000  # deep, and within the 64 KiB status limit
HUGE_INT_PROOF = json.dumps({"v": 1, "name": SIM_PLUGIN, "epoch": 0, "binding": None, "other": None,
                             "siblings": []}).replace('"epoch": 0', '"epoch": ' + "9" * 5000).encode()
HUGE_INT_STATUS = json.dumps({"name": SIM_PLUGIN, "epoch": 0, "status": "rejected",
                              "reason": "x"}).replace('"epoch": 0', '"epoch": ' + "9" * 5000).encode()


# ---------------------------------------------------------------------- hostile servers
def serve_bytes(data: bytes):
    """Answer 200 with these bytes."""
    def behave(handler: SimpleHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
    return behave


def _drip(handler: SimpleHTTPRequestHandler, data: bytes, forever: bytes = b"") -> None:
    """Write `data`, then `forever` over and over, one byte every DRIP seconds, until the
    client hangs up or the server stops."""
    stopping = handler.server.stopping
    i = 0
    while not stopping.is_set():
        byte = data[i:i + 1] if i < len(data) else forever[(i - len(data)) % len(forever):][:1]
        if not byte:
            return
        try:
            handler.wfile.write(byte)
            handler.wfile.flush()
        except OSError:  # the peer gave up and closed the connection
            return
        i += 1
        stopping.wait(DRIP)


def trickle_headers(handler: SimpleHTTPRequestHandler) -> None:
    """A status line and headers that never end, one byte at a time."""
    _drip(handler, b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n", forever=b"X-Pad: 0\r\n")


def trickle_body(handler: SimpleHTTPRequestHandler) -> None:
    """Prompt headers announcing 1 kB (within every per-file limit), then the body one byte at a time."""
    handler.send_response(200)
    handler.send_header("Content-Length", "1000")
    handler.end_headers()
    handler.wfile.flush()
    _drip(handler, b"", forever=b"x")


def stall(handler: SimpleHTTPRequestHandler) -> None:
    """Accept the request and never answer."""
    handler.server.stopping.wait()


def redirect_forever(handler: SimpleHTTPRequestHandler) -> None:
    handler.send_response(302)
    handler.send_header("Location", urlsplit(handler.path).path + "x")
    handler.send_header("Content-Length", "0")
    handler.end_headers()


class _Handler(SimpleHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = urlsplit(self.path).path.lstrip("/")
        self.server.requests.append(path)
        behave = self.server.hostile.get(path) or self.server.hostile.get("*")
        if behave is None and path.endswith("x") and "*redirect" in self.server.hostile:
            behave = self.server.hostile["*redirect"]
        if behave is None:
            super().do_GET()
        else:
            behave(self)

    def log_message(self, *args) -> None:
        pass


class HostileMirror:
    """A real HTTP server on 127.0.0.1 serving `directory`, except the paths in `hostile`
    (path -> behaviour(handler)); "*" answers every path, "*redirect" every path ending in "x"."""

    def __init__(self, directory: Path, hostile: dict, protocol: str = "HTTP/1.0") -> None:
        handler = functools.partial(type("H", (_Handler,), {"protocol_version": protocol}), directory=str(directory))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.hostile = hostile
        self.httpd.stopping = threading.Event()
        self.httpd.requests = []
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def requests(self) -> list[str]:
        return self.httpd.requests

    def stop(self) -> None:
        self.httpd.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def hostile():
    started: list[HostileMirror] = []

    def start(directory: Path, paths: dict, **kw) -> HostileMirror:
        mirror = HostileMirror(directory, paths, **kw)
        started.append(mirror)
        return mirror

    yield start
    for mirror in started:
        mirror.stop()


# ---------------------------------------------------------------------- the peer
def peer_verify(trust: Path, *extra, deadline: float = DEADLINE) -> tuple[subprocess.CompletedProcess, float, dict]:
    """`python -m pds_log peer verify SIM_PLUGIN --json` with a short deadline:
    (result, seconds it took, the JSON verdict)."""
    env = dict(os.environ, PDS_FETCH_DEADLINE=str(deadline))
    if "--bytecode" not in extra:  # these tests are about the mirrors, not the bytes held
        extra = (*extra, "--metadata-only")
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "pds_log", "peer", "verify", SIM_PLUGIN, "--trust", str(trust),
                             "--json", *map(str, extra)], env=env, capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - start
    assert "Traceback" not in result.stderr, result.stderr
    return result, elapsed, json.loads(result.stdout)


def good_mirror(sim, pv: str) -> str:
    return sim["urls"][pv][1]


PARSER_CASES = [
    pytest.param("pv1", PROOF, DEEP, "JSON nested too deeply", id="proof-100k-deep"),
    pytest.param("pv1", PROOF, HUGE_INT_PROOF, "integer of 5000 digits", id="proof-5000-digits"),
    pytest.param("pv2", STATUS, DEEP_SMALL, "JSON nested too deeply", id="status-30k-deep"),
    pytest.param("pv2", STATUS, DEEP, "larger than the limit", id="status-100k-deep"),
    pytest.param("pv2", STATUS, HUGE_INT_STATUS, "integer of 5000 digits", id="status-5000-digits"),
    pytest.param("pv2", STATUS, b'["a list"]', "not a JSON object", id="status-not-an-object"),
]


@pytest.mark.parametrize("pv, path, data, message", PARSER_CASES)
def test_json_that_breaks_parsers_fails_over_to_the_good_mirror(sim_pvs, hostile, pv, path, data, message):
    bad = hostile(sim_pvs["pvs"][pv].out, {path: serve_bytes(data)})
    # pv1 includes the plugin (its one-file proof is read with --via proof); pv2 rejected it
    # (its status file explains the verified absence): either way the formula accepts via pv1 & pv3
    trust = sim_trust(sim_pvs, urls={pv: [bad.url, good_mirror(sim_pvs, pv)]})
    result, _, verdict = peer_verify(trust, "--via", "proof", "--bytecode", sim_pvs["bytecode"])
    report = verdict["pvs"][pv]
    assert result.returncode == 0 and verdict["accepted"], result.stdout
    assert path in bad.requests  # the hostile file was really fetched
    assert report["mirror"] == good_mirror(sim_pvs, pv), report
    assert len(report["attempts"]) == 1 and report["attempts"][0].startswith(bad.url), report
    assert message in report["attempts"][0] and path in report["attempts"][0], report
    if pv == "pv1":
        assert (report["status"], report["proof_source"], report["bytecode"]) == ("included", "one-file proof",
                                                                                 "match")
    else:
        assert report["status"] == "absent" and "termination: unproven loop" in report["explanation"], report

    # the hostile mirror alone: that PV's check fails with the mirror's problem, and a formula
    # that needs it rejects; never a traceback (peer_verify checks stderr)
    alone = sim_trust(sim_pvs, urls={pv: [bad.url]}, require=f"{pv} & pv3")
    result, _, verdict = peer_verify(alone, "--via", "proof", "--bytecode", sim_pvs["bytecode"])
    report = verdict["pvs"][pv]
    assert result.returncode == 1 and not verdict["accepted"], result.stdout
    assert report["status"] == "invalid" and message in report["reason"] and path in report["reason"], report
    table = subprocess.run([sys.executable, "-m", "pds_log", "peer", "verify", SIM_PLUGIN, "--trust", str(alone),
                            "--via", "proof"], capture_output=True, text=True, timeout=120)
    assert table.returncode == 1 and "Traceback" not in table.stderr, table.stderr
    assert f"tried {bad.url}: " in table.stdout and message in table.stdout, table.stdout


SLOW_CASES = [
    pytest.param(site.LATEST, trickle_headers, id="latest-headers-trickle"),
    pytest.param(site.LATEST, trickle_body, id="latest-body-trickle"),
    pytest.param(site.LATEST, stall, id="latest-stall"),
    pytest.param(PROOF, trickle_body, id="proof-body-trickle"),
    pytest.param(PROOF, trickle_headers, id="proof-headers-trickle"),
    pytest.param(PROOF, stall, id="proof-stall"),
]


@pytest.mark.parametrize("path, behave", SLOW_CASES)
def test_slow_mirror_is_abandoned_at_the_deadline(sim_pvs, hostile, path, behave):
    bad = hostile(sim_pvs["pvs"]["pv1"].out, {path: behave})
    trust = sim_trust(sim_pvs, urls={"pv1": [bad.url, good_mirror(sim_pvs, "pv1")]})
    result, elapsed, verdict = peer_verify(trust, "--via", "proof", "--bytecode", sim_pvs["bytecode"])
    pv1 = verdict["pvs"]["pv1"]
    assert result.returncode == 0 and verdict["accepted"], result.stdout
    assert pv1["mirror"] == good_mirror(sim_pvs, "pv1") and pv1["status"] == "included", pv1
    assert f"not complete within the {DEADLINE:g} s deadline" in pv1["attempts"][0], pv1
    assert bad.requests.count(path) == 1  # the deadline covers retries: no second attempt
    # one file's deadline, then the good mirror: the whole command, 3 PVs included
    assert DEADLINE <= elapsed < DEADLINE + MARGIN, elapsed


def test_only_a_stalled_mirror_rejects_within_the_deadline(sim_pvs, hostile):
    bad = hostile(sim_pvs["pvs"]["pv1"].out, {site.LATEST: stall})
    trust = sim_trust(sim_pvs, urls={"pv1": [bad.url]})
    result, elapsed, verdict = peer_verify(trust)
    pv1 = verdict["pvs"]["pv1"]
    assert result.returncode == 1 and pv1["status"] == "unreachable", result.stdout
    assert "no mirror answered" in pv1["reason"] and f"within the {DEADLINE:g} s deadline" in pv1["reason"]
    assert elapsed < DEADLINE + MARGIN, elapsed


def test_endless_redirects_fail_over(sim_pvs, hostile):
    bad = hostile(sim_pvs["pvs"]["pv1"].out, {site.LATEST: redirect_forever, "*redirect": redirect_forever})
    trust = sim_trust(sim_pvs, urls={"pv1": [bad.url, good_mirror(sim_pvs, "pv1")]})
    result, _, verdict = peer_verify(trust)
    pv1 = verdict["pvs"]["pv1"]
    assert result.returncode == 0 and pv1["mirror"] == good_mirror(sim_pvs, "pv1"), result.stdout
    assert "more than 5 redirects" in pv1["attempts"][0]


def test_gossip_skips_a_stalled_mirror_and_still_finds_equivocation(sim_pvs, hostile, tmp_path):
    pv1 = sim_pvs["pvs"]["pv1"]
    forked = pv1.copy(tmp_path / "forked")
    other = pv1.resign(1)  # a second, validly signed STR for epoch 1
    (forked / site.LATEST).write_bytes(other.note)
    (forked / site.str_path(1)).write_bytes(other.note)
    stalled = hostile(pv1.out, {"*": stall})
    lying = hostile(forked, {})
    trust = sim_trust(sim_pvs, urls={"pv1": [stalled.url, good_mirror(sim_pvs, "pv1"), lying.url]})
    env = dict(os.environ, PDS_FETCH_DEADLINE=str(DEADLINE))
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "pds_log", "gossip", "--trust", str(trust), "--out",
                             str(tmp_path / "evidence"), "--state", str(tmp_path / "state.json")],
                            env=env, capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - start
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1 and "pv1.sim epoch 1: EQUIVOCATION" in result.stdout, result.stdout
    assert f"note: pv1: {stalled.url}latest.note: not complete within the {DEADLINE:g} s deadline" in result.stdout
    assert stalled.requests == ["latest.note"]  # not asked again for each epoch
    assert elapsed < DEADLINE + MARGIN, elapsed


# ---------------------------------------------------------------------- the fetcher itself
@pytest.mark.parametrize("behave", [trickle_headers, trickle_body, stall], ids=["headers", "body", "stall"])
def test_fetch_deadline_covers_connect_headers_body_and_retries(tmp_path, hostile, behave):
    bad = hostile(tmp_path, {"f": behave})
    fetcher = Fetcher(deadline=1.5, timeout=(3.0, 1.0))  # a read timeout shorter than the deadline: retried
    start = time.monotonic()
    with pytest.raises(FetchError) as caught:
        fetcher.get(bad.url, "f")
    elapsed = time.monotonic() - start
    assert 1.5 <= elapsed < 1.5 + 0.5, elapsed
    if behave is stall:  # nothing for 1 s, retried once, then the deadline cut the second attempt
        assert bad.requests == ["f", "f"] and "within the 1.5 s deadline, after 2 attempts" in str(caught.value)
    else:  # a byte every 0.5 s never trips the read timeout; only the deadline stops it
        assert bad.requests == ["f"] and str(caught.value).endswith("not complete within the 1.5 s deadline")


class RawServer:
    """A TCP server on 127.0.0.1 that speaks no protocol: `behave(connection, stopping)`."""

    def __init__(self, behave) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stopping = threading.Event()
        self.accepted = 0

        def serve() -> None:
            while not self.stopping.is_set():
                try:
                    conn, _ = self.listener.accept()
                except OSError:
                    return
                self.accepted += 1
                threading.Thread(target=self._run, args=(behave, conn), daemon=True).start()

        threading.Thread(target=serve, daemon=True).start()

    def _run(self, behave, conn: socket.socket) -> None:
        with conn:
            behave(conn, self.stopping)

    def stop(self) -> None:
        self.stopping.set()
        self.listener.close()


def tls_silence(conn: socket.socket, stopping: threading.Event) -> None:
    stopping.wait()


def tls_drip(conn: socket.socket, stopping: threading.Event) -> None:
    """The header of a 16 KiB TLS handshake record, then its body one byte at a time."""
    record = b"\x16\x03\x03\x40\x00" + b"\x00" * 16384
    for i in range(len(record)):
        try:
            conn.sendall(record[i:i + 1])
        except OSError:
            return
        if stopping.wait(DRIP):
            return


@pytest.mark.parametrize("behave", [tls_silence, tls_drip], ids=["silent", "trickle"])
def test_fetch_deadline_covers_the_tls_handshake(behave):
    server = RawServer(behave)
    try:
        fetcher = Fetcher(deadline=1.5)
        start = time.monotonic()
        with pytest.raises(FetchError, match="not complete within the 1.5 s deadline$"):
            fetcher.get(f"https://127.0.0.1:{server.port}/", "latest.note")
        elapsed = time.monotonic() - start
        assert 1.5 <= elapsed < 2.0 and server.accepted == 1, elapsed
    finally:
        server.stop()


@pytest.mark.parametrize("location, message", [
    ("file:///etc/passwd", "refused redirect to a non-http(s) URL 'file:///etc/passwd'"),
    ("http://[::1/x", "redirect to an invalid URL 'http://[::1/x'"),
    ("", "HTTP 302 redirect without a Location"),
])
def test_bad_redirects_are_refused(tmp_path, hostile, location, message):
    def redirect(handler):
        handler.send_response(302)
        if location:
            handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    mirror = hostile(tmp_path, {"f": redirect})
    with pytest.raises(FetchError, match=re.escape(message)):
        Fetcher().get(mirror.url, "f")
    assert mirror.requests == ["f"]  # an answer, not retried


def test_size_limit_and_keep_alive(tmp_path, hostile):
    (tmp_path / "a").write_bytes(b"a" * 1000)
    (tmp_path / "b").write_bytes(b"b" * 10)
    mirror = hostile(tmp_path, {}, protocol="HTTP/1.1")
    fetcher = Fetcher()
    with pytest.raises(FetchError, match="response of 1000 bytes is larger than the limit of 999 bytes"):
        fetcher.get(mirror.url, "a", max_bytes=999)
    assert [fetcher.get(mirror.url, p) for p in ("a", "b", "b")] == [b"a" * 1000, b"b" * 10, b"b" * 10]
    assert fetcher.requests_made == 4 and fetcher.bytes_received == 1020
    fetcher.close()


def test_a_closed_keep_alive_connection_is_replaced(tmp_path, hostile):
    (tmp_path / "f").write_bytes(b"data")

    def answer_then_hang_up(handler):  # HTTP/1.1 without "Connection: close", then close anyway
        handler.send_response(200)
        handler.send_header("Content-Length", "4")
        handler.end_headers()
        handler.wfile.write(b"data")
        handler.close_connection = True

    mirror = hostile(tmp_path, {"f": answer_then_hang_up}, protocol="HTTP/1.1")
    fetcher = Fetcher(retries=0)  # no retry: the replacement must not need one
    assert [fetcher.get(mirror.url, "f") for _ in range(3)] == [b"data"] * 3


def test_fetch_deadline_setting():
    assert DEFAULT_DEADLINE == 30.0 and Fetcher(deadline=DEFAULT_DEADLINE).deadline == 30.0
    old = os.environ.pop("PDS_FETCH_DEADLINE", None)
    try:
        assert deadline_from_env() == 30.0
        os.environ["PDS_FETCH_DEADLINE"] = "2.5"
        assert Fetcher().deadline == 2.5
        for bad in ("0", "-1", "nan", "inf", "soon", "9" * 5000):
            os.environ["PDS_FETCH_DEADLINE"] = bad
            with pytest.raises(PdsError, match="PDS_FETCH_DEADLINE="):
                deadline_from_env()
    finally:
        os.environ.pop("PDS_FETCH_DEADLINE", None)
        if old is not None:
            os.environ["PDS_FETCH_DEADLINE"] = old


def test_connection_refused_is_unreachable_fast():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(FetchError, match="connection failed"):
        Fetcher(backoff=0.01).get(f"http://127.0.0.1:{port}/", "latest.note")
