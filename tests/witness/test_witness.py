"""Two real witnesses, a PV epoch log submitting 50 checkpoints, a kill and restart, a fork.

Shows issue 16's witness test: state survives a SIGKILL; a forked checkpoint is refused by
both witnesses (409 for the same size, 422 for a longer fork) with the evidence kept and
checkable; a 2-of-2 quorum rejects the fork and accepts the honest head.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from pds_log.core import checkpoint as cp
from pds_log.core import tlog
from pds_log.core.errors import VerificationError
from pds_log.witness.client import cosignatures, submit_checkpoint
from pds_log.witness.state import format_request
from tests.support import PDS

from .conftest import EpochLog, WitnessProcess

pytestmark = pytest.mark.slow  # a real witness server process


def status(w: WitnessProcess) -> dict:
    out = subprocess.run([*PDS, "witness", "status", str(w.directory), "--json"], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def sizes(w: WitnessProcess) -> dict[str, int]:
    return {entry["origin"]: entry["size"] for entry in status(w)["logs"]}


def post(url: str, body: bytes) -> tuple[int, bytes, str]:
    req = urllib.request.Request(url + "/add-checkpoint", data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read(), resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("Content-Type", "")


def test_two_witnesses_fifty_epochs_kill_restart_fork_quorum(tmp_path):
    log = EpochLog()
    vkey = str(log.signer.verifier())
    w1 = WitnessProcess(tmp_path / "w1", "witness.example/w1", [vkey]).start()
    w2 = WitnessProcess(tmp_path / "w2", "witness.example/w2", [vkey]).start()
    witnesses = [w1, w2]
    policy = cp.WitnessPolicy((w1.verifier, w2.verifier), 2)
    try:
        known: dict[str, int] = {}  # the PV's memory of each witness's size (empty: learnt via 409)
        heads: dict[int, bytes] = {}
        missing_w2 = []
        for epoch in range(1, 51):
            if epoch == 21:
                w2.kill()
            if epoch == 31:
                assert sizes(w2) == {log.signer.name: 20}  # state survived the SIGKILL
                w2.start()  # same port
            log.grow(epoch)
            note = log.head()
            started = time.monotonic()
            results = submit_checkpoint(note, log.prove(epoch), [w.endpoint() for w in witnesses], known, timeout=5)
            elapsed = time.monotonic() - started
            for r in results:
                if r.cosignature is not None:
                    known[r.witness] = epoch
            got = {r.witness for r in results if r.cosignature is not None}
            if 21 <= epoch <= 30:
                assert got == {"witness.example/w1"}, results  # the down witness never raised
                assert results[1].status is None and results[1].problem
                assert elapsed < 5, elapsed  # a refused connection fails fast
                missing_w2.append(epoch)
            else:
                assert got == {"witness.example/w1", "witness.example/w2"}, results
            heads[epoch] = cp.add_signatures(note, cosignatures(results))
        # after the restart w2 was asked with old size 20 (its last) and a proof 20 -> 31: one request
        assert sizes(w1) == sizes(w2) == {log.signer.name: 50}

        honest = heads[50]
        ok = cp.verify_cosigned(honest, log.signer.verifier(), policy)
        assert ok.checkpoint.size == 50 and set(ok.cosigned_by) == {"witness.example/w1", "witness.example/w2"}
        with pytest.raises(VerificationError, match="1 of the 2"):
            cp.verify_cosigned(heads[25], log.signer.verifier(), policy)  # w2 was down: no quorum

        # never a smaller tree after a larger one, even after a restart: epoch 40 again
        code, body, ctype = post(w2.url, format_request(40, [], log.head(40)))
        assert (code, body, ctype) == (409, b"50\n", "text/x.tlog.size")
        code, body, _ = post(w2.url, format_request(50, [], log.head(40)))
        assert code == 400  # old size above the checkpoint's

        # fork A: another epoch-50 head (same size, another root) -> 409 from both, evidence kept
        fork_same = EpochLog(fork_from=50).grow(50)
        # fork B: a history that differs from epoch 45 on, one epoch longer, with its own honest proof
        fork_long = EpochLog(fork_from=45).grow(51)
        for fork, old, expect in ((fork_same, 50, 409), (fork_long, 50, 422)):
            note = fork.head()
            results = submit_checkpoint(note, fork.prove(fork.hashes.size), [w.endpoint() for w in witnesses],
                                        {w.name: old for w in witnesses}, timeout=5)
            assert [r.status for r in results] == [expect, expect], results
            assert cosignatures(results) == []
            with pytest.raises(VerificationError, match="0 of the 2"):
                cp.verify_cosigned(note, log.signer.verifier(), policy)
        # a fork carrying the honest head's cosignatures is still rejected
        stolen = cp.add_signatures(fork_same.head(), [s for s in cp.parse_signature_lines(
            honest.split(b"\n\n", 1)[1]) if s.name.startswith("witness")])
        with pytest.raises(VerificationError, match="invalid cosignature"):
            cp.verify_cosigned(stolen, log.signer.verifier(), policy)

        for w in witnesses:
            refused = status(w)["refused"]
            assert [(r["status"], r["evidence"]) for r in refused] == [(409, True), (422, True)]
            out = subprocess.run([*PDS, "witness", "evidence", str(w.directory), str(tmp_path / f"ev-{w.name[-2:]}")],
                                 capture_output=True, text=True, check=True)
            files = out.stdout.split()
            assert len(files) == 2
            for path in files:
                check = subprocess.run([*PDS, "witness", "check-evidence", path, vkey], capture_output=True, text=True)
                assert check.returncode == 0 and check.stdout.startswith("valid: proof of equivocation"), check
            wrong = subprocess.run([*PDS, "witness", "check-evidence", files[0], str(EpochLog(seed=bytes(32)).signer.verifier())],
                                   capture_output=True, text=True)
            assert wrong.returncode == 1 and wrong.stdout.startswith("invalid:")
        # and the honest log goes on: epoch 51 is cosigned by both
        log.grow(51)
        results = submit_checkpoint(log.head(), log.prove(51), [w.endpoint() for w in witnesses], known, timeout=5)
        assert len(cosignatures(results)) == 2
        cp.verify_cosigned(cp.add_signatures(log.head(), cosignatures(results)), log.signer.verifier(), policy)
    finally:
        for w in witnesses:
            if w.proc is not None:
                w.kill()


def test_status_codes_per_spec(tmp_path):
    log = EpochLog().grow(5)
    other = EpochLog(origin="pv2.example/log").grow(5)
    w = WitnessProcess(tmp_path / "w", "witness.example/w", [str(log.signer.verifier())]).start()
    try:
        assert post(w.url, format_request(0, [], other.head()))[0] == 404  # unknown origin
        impostor = EpochLog(seed=bytes(32)).grow(5)  # right origin, wrong key
        assert post(w.url, format_request(0, [], impostor.head()))[0] == 403
        assert post(w.url, b"old 0\n")[0] == 400
        assert post(w.url, b"old 01\n\n" + log.head())[0] == 400
        assert post(w.url, format_request(0, [bytes(32)], log.head()))[0] == 422  # old 0: proof must be empty
        code, body, ctype = post(w.url, format_request(3, [], log.head()))
        assert (code, body, ctype) == (409, b"0\n", "text/x.tlog.size")
        code, body, ctype = post(w.url, format_request(0, [], log.head(3)))
        assert code == 200 and ctype.startswith("text/plain")
        sig = cp.parse_signature_lines(body)[0]
        assert w.verifier.verify(cp.Checkpoint.parse(log.head(3).split(b"\n\n")[0].decode() + "\n").text(), sig)
        assert post(w.url, format_request(3, [bytes(32)] * 3, log.head(5)))[0] == 422  # wrong proof
        assert post(w.url, format_request(3, tlog.prove_consistency(5, 3, log.hashes), log.head(5)))[0] == 200
        assert post(w.url, format_request(5, [], log.head(5)))[0] == 200  # same checkpoint again: cosigned again
        req = urllib.request.Request(w.url + "/add-checkpoint")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=10)
        assert info.value.code == 405
        assert sizes(w) == {log.signer.name: 5}
        # the 422 with a garbage proof was kept, but proves nothing: no evidence
        assert [(r["status"], r["evidence"]) for r in status(w)["refused"]] == [(422, False)]
    finally:
        w.kill()


def test_concurrent_submissions_never_roll_back(tmp_path):
    """Many clients racing with different sizes: the witness's size only grows, and every
    cosigned size was consistent with the one before it (the atomic check-and-persist)."""
    import threading

    log = EpochLog().grow(40)
    w = WitnessProcess(tmp_path / "w", "witness.example/w", [str(log.signer.verifier())]).start()
    try:
        cosigned: list[int] = []

        def client(epochs):
            for e in epochs:
                results = submit_checkpoint(log.head(e), log.prove(e), [w.endpoint()], timeout=10)
                if results[0].cosignature is not None:
                    cosigned.append(e)

        threads = [threading.Thread(target=client, args=(range(k, 41, 4),)) for k in range(1, 5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # a racing client may give up (its retry found the size moved again): no promise that 40
        # was cosigned, but the stored size is the largest ever cosigned -- nothing rolled back
        assert cosigned and sizes(w) == {log.signer.name: max(cosigned)}
        # a smaller size is never cosigned after a larger one was stored: replay every earlier epoch
        top = max(cosigned)
        late = [e for e in range(1, top) if submit_checkpoint(log.head(e), log.prove(e), [w.endpoint()],
                                                              timeout=10)[0].cosignature is not None]
        assert late == []
        assert submit_checkpoint(log.head(40), log.prove(40), [w.endpoint()], timeout=10)[0].cosignature
        assert sizes(w) == {log.signer.name: 40}
    finally:
        w.kill()


def test_hung_witness_never_blocks_the_submitter(tmp_path):
    """A witness that accepts the connection and never answers costs the PV its timeout, no more."""
    import socket
    import threading

    from pds_log.core.checkpoint import CosignatureSigner
    from pds_log.witness.client import WitnessEndpoint

    log = EpochLog().grow(3)
    w = WitnessProcess(tmp_path / "w", "witness.example/w", [str(log.signer.verifier())]).start()
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(8)
    held = []
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                conn, _ = hung.accept()
            except OSError:
                return
            held.append(conn)  # never read, never answered

    junk = socket.socket()
    junk.bind(("127.0.0.1", 0))
    junk.listen(8)

    def answer_junk():
        while not stop.is_set():
            try:
                conn, _ = junk.accept()
            except OSError:
                return
            conn.sendall(b"NOT HTTP AT ALL\r\n\r\n")  # http.client: BadStatusLine, not an OSError
            conn.close()

    threading.Thread(target=accept, daemon=True).start()
    threading.Thread(target=answer_junk, daemon=True).start()
    try:
        silent = WitnessEndpoint(f"http://127.0.0.1:{hung.getsockname()[1]}",
                                 CosignatureSigner("witness.example/hung", bytes(32)).verifier())
        garbled = WitnessEndpoint(f"http://127.0.0.1:{junk.getsockname()[1]}",
                                  CosignatureSigner("witness.example/junk", bytes(32)).verifier())
        started = time.monotonic()
        results = submit_checkpoint(log.head(), log.prove(3), [silent, garbled, w.endpoint()], timeout=1)
        elapsed = time.monotonic() - started
        assert results[0].cosignature is None and results[0].problem
        assert results[1].cosignature is None and results[1].problem  # BadStatusLine, or a reset mid-send
        assert results[2].cosignature is not None and results[2].witness_size == 3
        assert elapsed < 3.5, elapsed  # the per-witness timeout bounds the call
    finally:
        stop.set()
        hung.close()
        junk.close()
        for conn in held:
            conn.close()
        w.kill()


def test_oversized_and_misdirected_requests(tmp_path):
    import http.client

    log = EpochLog().grow(1)
    w = WitnessProcess(tmp_path / "w", "witness.example/w", [str(log.signer.verifier())]).start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", w.port, timeout=10)
        conn.putrequest("POST", "/add-checkpoint")
        conn.putheader("Content-Length", str(1 << 30))
        conn.endheaders()
        assert conn.getresponse().status == 413  # refused before reading a byte of the body
        conn.close()
        assert post(w.url + "/other", b"x")[0] == 404
        assert post(w.url, b"old 0\n\n" + b"\xff\xfe" * 10)[0] == 400
        assert post(w.url, format_request(0, [], log.head()))[0] == 200  # still serving
    finally:
        w.kill()
