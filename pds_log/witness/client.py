"""Submitting a checkpoint to witnesses (C2SP tlog-witness client), as a PV epoch does.

`submit_checkpoint` asks every witness in parallel, each within `timeout` seconds, and never
raises for a witness that is down, slow, refusing or answering garbage: the result says what
happened per witness, and `cosignatures` keeps only cosignatures that verify under the
witness's key over exactly the submitted checkpoint. On "409 Conflict" the witness names the
size it last cosigned; the client retries once with a proof from that size (`prove(old)`).
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Callable, Sequence

from pds_log.core import checkpoint as cp
from pds_log.core import note as notes
from pds_log.core.errors import PdsError
from pds_log.core.note import NoteSignature

from .state import format_request

MAX_RESPONSE_BYTES = 64 << 10


@dataclass(frozen=True)
class WitnessEndpoint:
    url: str  # submission prefix, e.g. http://127.0.0.1:8080
    verifier: cp.CosignatureVerifier


@dataclass(frozen=True)
class SubmitResult:
    witness: str
    status: int | None  # the last HTTP status, None if no answer
    cosignature: NoteSignature | None
    timestamp: int | None = None
    problem: str = ""
    witness_size: int | None = None  # the size the witness now holds for this log, when known


def _post(url: str, body: bytes, timeout: float) -> tuple[int, bytes, str]:
    req = urllib.request.Request(url.rstrip("/") + "/add-checkpoint", data=body, method="POST",
                                 headers={"Content-Type": "text/plain; charset=utf-8"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (configured witness URL)
            return resp.status, resp.read(MAX_RESPONSE_BYTES + 1), resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(MAX_RESPONSE_BYTES + 1), exc.headers.get("Content-Type", "")


def _submit_one(endpoint: WitnessEndpoint, note: bytes, text: str, old_size: int,
                prove: Callable[[int], list[bytes]], timeout: float) -> SubmitResult:
    name = endpoint.verifier.name
    status: int | None = None
    held: int | None = None
    try:
        for _attempt in range(2):
            status, body, ctype = _post(endpoint.url, format_request(old_size, list(prove(old_size)), note), timeout)
            if len(body) > MAX_RESPONSE_BYTES:
                return SubmitResult(name, status, None, problem="response too large")
            if status == 409 and ctype.split(";")[0].strip() == "text/x.tlog.size":
                held = cp.parse_decimal(body.decode("ascii", "replace").strip(), "409 size")
                if held == old_size:  # same size, another root: the witness holds a fork of ours
                    return SubmitResult(name, 409, None, problem=f"witness holds another root at size {held}",
                                        witness_size=held)
                # held above our size: the witness saw a longer history of this log (prove() refuses)
                old_size = held
                continue
            if status != 200:
                return SubmitResult(name, status, None, problem=body[:200].decode("utf-8", "replace").strip(),
                                    witness_size=held)
            for sig in cp.parse_signature_lines(body):
                if (sig.name, sig.key_id) == (name, endpoint.verifier.key_id):
                    timestamp = endpoint.verifier.verify(text, sig)
                    return SubmitResult(name, 200, sig, timestamp, witness_size=cp.Checkpoint.parse(text).size)
            return SubmitResult(name, 200, None, problem="no cosignature by the witness's key in the response")
        return SubmitResult(name, status, None, problem="witness size kept changing", witness_size=held)
    except (OSError, http.client.HTTPException, PdsError, ValueError) as exc:  # down, slow, garbage: never fatal
        return SubmitResult(name, status, None, problem=f"{type(exc).__name__}: {exc}"[:300], witness_size=held)


def submit_checkpoint(note: bytes, prove: Callable[[int], list[bytes]], witnesses: Sequence[WitnessEndpoint],
                      old_sizes: dict[str, int] | None = None, timeout: float = 5.0) -> list[SubmitResult]:
    """Submit the log-signed checkpoint `note` to each witness; `prove(old)` returns the
    consistency proof from size `old` to the checkpoint's size. One result per witness, in order."""
    text = notes.parse(note).text
    cp.Checkpoint.parse(text)
    sizes = old_sizes or {}
    results: list[SubmitResult | None] = [None] * len(witnesses)

    def run(i: int, endpoint: WitnessEndpoint) -> None:
        try:
            results[i] = _submit_one(endpoint, note, text, sizes.get(endpoint.verifier.name, 0), prove, timeout)
        except Exception as exc:  # noqa: BLE001 -- the epoch must go on whatever one witness does
            results[i] = SubmitResult(endpoint.verifier.name, None, None,
                                      problem=f"unexpected {type(exc).__name__}: {exc}"[:300])

    # daemon threads with one overall deadline: a witness that trickles bytes forever (each read
    # within the socket timeout) is abandoned, and cannot keep the PV's process from exiting
    threads = [threading.Thread(target=run, args=(i, w), daemon=True) for i, w in enumerate(witnesses)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 2 * timeout + 1  # two attempts each
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    return [r if r is not None else SubmitResult(w.verifier.name, None, None, problem="timed out")
            for r, w in zip(results, witnesses, strict=True)]


def cosignatures(results: Sequence[SubmitResult]) -> list[NoteSignature]:
    return [r.cosignature for r in results if r.cosignature is not None]

