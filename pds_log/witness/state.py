"""The witness's add-checkpoint decision (C2SP tlog-witness), checked and persisted atomically.

For each log the witness remembers the latest checkpoint it cosigned (size, root and the
log-signed note). A request is decided inside one ``BEGIN IMMEDIATE`` SQLite transaction
(read the state, check, write the new state, commit) and answered only after the commit, so
two concurrent requests (threads or processes) cannot both pass against the same old state,
and a restart resumes from what was committed: the witness never cosigns a smaller tree
after a larger one, nor two inconsistent checkpoints.

Refused requests whose checkpoint carries a valid log signature are kept (table `refused`):
when they prove the log equivocated (same size and another root; or a consistency proof that
yields the new root but another old root) the evidence document is kept beside them.
"""

from __future__ import annotations

import base64
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pds_log.core import checkpoint as cp
from pds_log.core import note as notes
from pds_log.core import tlog
from pds_log.core.errors import FormatError, VerificationError
from pds_log.core.note import NoteVerifier

MAX_REQUEST_BYTES = 256 << 10  # 63 proof lines and a checkpoint note with a few hundred signatures
SIZE_CONTENT_TYPE = "text/x.tlog.size"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS logs (
    origin TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    note BLOB NOT NULL,
    updated INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS refused (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    origin TEXT NOT NULL,
    received INTEGER NOT NULL,
    status INTEGER NOT NULL,
    reason TEXT NOT NULL,
    request BLOB NOT NULL,
    evidence BLOB
);
"""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class Request:
    old_size: int
    proof: list[bytes]
    note: bytes


def parse_request(body: bytes) -> Request:
    """``old <size>\\n`` then proof lines (base64 hashes) then an empty line then the checkpoint."""
    if len(body) > MAX_REQUEST_BYTES:
        raise FormatError(f"request larger than {MAX_REQUEST_BYTES} bytes")
    split = body.find(b"\n\n")
    if split < 0:
        raise FormatError("request has no empty line before the checkpoint")
    head, note = body[:split].split(b"\n"), body[split + 2:]
    old = head[0]
    if not old.startswith(b"old "):
        raise FormatError("request must start with 'old <size>'")
    try:
        old_size = cp.parse_decimal(old[4:].decode("ascii"), "old size")
    except UnicodeDecodeError:
        raise FormatError("old size is not ASCII") from None
    if len(head) - 1 > tlog.MAX_PROOF_HASHES:
        raise FormatError(f"more than {tlog.MAX_PROOF_HASHES} consistency proof lines")
    proof = []
    for i, line in enumerate(head[1:], start=1):
        try:
            proof.append(cp.parse_b64_hash(line.decode("ascii"), f"proof line {i}"))
        except UnicodeDecodeError:
            raise FormatError(f"proof line {i} is not ASCII") from None
    return Request(old_size, proof, note)


def format_request(old_size: int, proof: list[bytes], note: bytes) -> bytes:
    return (f"old {old_size}\n" + "".join(cp.b64(h) + "\n" for h in proof) + "\n").encode() + note


class Witness:
    """The add-checkpoint logic over one state database (safe to share between threads)."""

    def __init__(self, state_path: Path, signer: cp.CosignatureSigner, logs: dict[str, NoteVerifier],
                 clock: Callable[[], float] = time.time) -> None:
        self.signer = signer
        self.logs = logs
        self.clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(state_path), isolation_level=None, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a cosignature is never returned for a state a crash can lose
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def state(self, origin: str) -> tuple[int, bytes, bytes | None]:
        row = self._db.execute("SELECT size, root, note FROM logs WHERE origin = ?", (origin,)).fetchone()
        return (row[0], row[1], row[2]) if row else (0, tlog.EMPTY_ROOT, None)

    def all_states(self) -> list[tuple[str, int, bytes]]:
        return list(self._db.execute("SELECT origin, size, root FROM logs ORDER BY origin"))

    def refused(self) -> list[tuple[int, str, int, str, bytes, bytes | None]]:
        return list(self._db.execute("SELECT id, origin, status, reason, request, evidence FROM refused ORDER BY id"))

    def add_checkpoint(self, body: bytes) -> Response:
        try:
            request = parse_request(body)
        except FormatError as exc:
            return Response(400, f"bad request: {exc}\n".encode())
        try:
            note = notes.parse(request.note)
            checkpoint = cp.Checkpoint.parse(note.text)
        except FormatError as exc:
            return Response(400, f"bad checkpoint: {exc}\n".encode())
        log = self.logs.get(checkpoint.origin)
        if log is None:
            return Response(404, f"unknown log origin {checkpoint.origin!r}\n".encode())
        try:
            cp.open_checkpoint(request.note, log)
        except (FormatError, VerificationError) as exc:
            return Response(403, f"checkpoint not signed by the log's key: {exc}\n".encode())
        if request.old_size > checkpoint.size:
            return Response(400, f"old size {request.old_size} is above the checkpoint size "
                                 f"{checkpoint.size}\n".encode())
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                response = self._decide(request, checkpoint, body)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return response

    def _refuse(self, origin: str, status: int, reason: str, body: bytes, evidence: bytes | None) -> None:
        self._db.execute("INSERT INTO refused (origin, received, status, reason, request, evidence) "
                         "VALUES (?, ?, ?, ?, ?, ?)", (origin, int(self.clock()), status, reason, body, evidence))

    def _evidence(self, stored_note: bytes | None, request: Request, log: NoteVerifier,
                  stored_size: int) -> bytes | None:
        if stored_note is None:
            return None
        path = request.proof if stored_size & (stored_size - 1) else []  # a power of two: the proof lacks the old hash
        try:
            return cp.detect_equivocation(stored_note, request.note, log, path).to_json()
        except (FormatError, VerificationError):
            return None

    def _decide(self, request: Request, checkpoint: cp.Checkpoint, body: bytes) -> Response:
        origin = checkpoint.origin
        log = self.logs[origin]
        size, root, stored_note = self.state(origin)
        if request.old_size != size:
            return Response(409, f"{size}\n".encode(), SIZE_CONTENT_TYPE)
        if request.old_size == 0 and request.proof:
            return Response(422, b"consistency proof from size 0 must be empty\n")
        if checkpoint.size == size and checkpoint.root != root:
            reason = f"size {size} already cosigned with another root"
            self._refuse(origin, 409, reason, body, self._evidence(stored_note, request, log, size))
            return Response(409, f"{size}\n".encode(), SIZE_CONTENT_TYPE)
        try:
            tlog.check_consistency(request.proof, checkpoint.size, checkpoint.root, size, root)
        except (FormatError, VerificationError) as exc:
            self._refuse(origin, 422, str(exc), body, self._evidence(stored_note, request, log, size))
            return Response(422, f"consistency proof does not verify: {exc}\n".encode())
        self._db.execute("INSERT INTO logs (origin, size, root, note, updated) VALUES (?, ?, ?, ?, ?) "
                         "ON CONFLICT(origin) DO UPDATE SET size = excluded.size, root = excluded.root, "
                         "note = excluded.note, updated = excluded.updated",
                         (origin, checkpoint.size, checkpoint.root, request.note, int(self.clock())))
        signature = self.signer.cosign(checkpoint.text(), int(self.clock()))
        return Response(200, signature.line().encode())


def describe_state(origin: str, size: int, root: bytes) -> str:
    return f"{origin} size {size} root {base64.b64encode(root).decode()}"
