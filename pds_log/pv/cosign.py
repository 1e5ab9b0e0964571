"""Witness cosignatures of the PV's STR v2 (pv.yaml `witnesses:`), collected after an epoch.

After `pds pv epoch` signs and commits an STR v2 it submits the checkpoint to every configured
witness (C2SP tlog-witness, pds_log.witness.client): ``old`` = the size that witness last
cosigned (remembered in ``state/witnesses.json``; a 409 answer names the size the witness
holds and the client retries from it), with the consistency proof from that size built from
the log repo's ``tlog/`` tiles. A witness that is down, slow (each request is bounded by
`witness_timeout`), refusing or answering garbage never blocks or fails the epoch: the summary
says so, and `pds pv cosign` retries the missing ones later.

Each cosignature is verified against the witness's configured key over exactly the STR text
before it is kept. ``state/checkpoint`` holds the latest STR v2 with the cosignatures
collected so far (replaced atomically); `pds pv publish --config` publishes it as
``checkpoint``, dropping any line that does not verify.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pygit2

from pds_log.core import checkpoint as cp
from pds_log.core import note as notes
from pds_log.core.errors import FormatError, PdsError, VerificationError
from pds_log.core.strs import SignedStr, open_any
from pds_log.infra.files import atomic_write_bytes
from pds_log.witness.client import WitnessEndpoint, submit_checkpoint

from .config import PvConfig
from .epochlog import prover
from .logrepo import LogRepo

CHECKPOINT_FILE = "checkpoint"
SIZES_FILE = "witnesses.json"
MAX_STATE_BYTES = 1 << 20


@dataclass
class CosignReport:
    epoch: int
    status: dict[str, str] = field(default_factory=dict)  # witness name -> "cosigned" | why not
    cosigned: list[str] = field(default_factory=list)  # witnesses whose valid cosignature the checkpoint carries

    def summary_line(self) -> str:
        return f"{len(self.cosigned)} of {len(self.status)} witnesses cosigned epoch {self.epoch}"


def valid_cosignatures(note: bytes, text: str, witnesses: list[cp.CosignatureVerifier]) -> list[notes.NoteSignature]:
    """The cosignature lines of `note` that verify under a configured witness key over `text`
    (one per witness; a note whose text is not `text` contributes nothing)."""
    try:
        parsed = notes.parse(note)
    except FormatError:
        return []
    if parsed.text != text:
        return []
    by_id = {(w.name, w.key_id): w for w in witnesses}
    out: dict[str, notes.NoteSignature] = {}
    for sig in parsed.signatures:
        witness = by_id.get((sig.name, sig.key_id))
        if witness is None or witness.name in out:
            continue
        try:
            witness.verify(text, sig)
        except VerificationError:
            continue
        out[witness.name] = sig
    return list(out.values())


def cosigned_note(signed: SignedStr, stored: bytes | None, witnesses: list[cp.CosignatureVerifier]) -> bytes:
    """The PV's note with the valid cosignatures of `stored` (another STR's contribute none)."""
    if stored is None:
        return signed.note
    text = notes.parse(signed.note).text
    return cp.add_signatures(signed.note, valid_cosignatures(stored, text, witnesses))


def _read(path: Path) -> bytes | None:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_STATE_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PdsError(f"{path}: unreadable ({exc.strerror})") from None
    if len(data) > MAX_STATE_BYTES:
        raise PdsError(f"{path}: larger than {MAX_STATE_BYTES} bytes")
    return data


def _sizes(path: Path) -> dict[str, int]:
    data = _read(path)
    if data is None:
        return {}
    try:
        doc = json.loads(data)
    except ValueError:
        return {}  # a damaged cache only costs one 409 round trip per witness
    sizes = doc.get("sizes") if isinstance(doc, dict) else None
    if not isinstance(sizes, dict):
        return {}
    return {k: v for k, v in sizes.items() if isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
            and v >= 0}


def stored_checkpoint(config: PvConfig) -> bytes | None:
    return _read(config.state_dir / CHECKPOINT_FILE)


def collect(config: PvConfig, log: LogRepo, commit: pygit2.Commit, signed: SignedStr) -> CosignReport:
    """Submit the STR v2 `signed` (the log head `commit`'s) to every witness whose valid
    cosignature ``state/checkpoint`` lacks; keep what verifies. Never raises for a witness."""
    if signed.version != 2:
        raise PdsError(f"epoch {signed.head.epoch} is signed as STR v1: witnesses cosign STR v2 checkpoints only "
                       f"(str_version: 2 in pv.yaml)")
    verifiers = [w.verifier for w in config.witnesses]
    report = CosignReport(signed.head.epoch)
    note = cosigned_note(signed, stored_checkpoint(config), verifiers)
    text = notes.parse(note).text
    have = {sig.name for sig in valid_cosignatures(note, text, verifiers)}
    missing = [w for w in config.witnesses if w.name not in have]
    for name in have:
        report.status[name] = "cosigned (earlier)"
    sizes_path = config.state_dir / SIZES_FILE
    sizes = _sizes(sizes_path)
    results = submit_checkpoint(signed.note, prover(log, commit, signed.head.epoch),
                                [WitnessEndpoint(w.url, w.verifier) for w in missing],
                                {w.name: min(sizes.get(w.name, 0), signed.head.epoch) for w in missing},
                                timeout=config.witness_timeout)
    new = []
    for result in results:
        if result.witness_size is not None:
            sizes[result.witness] = result.witness_size
        if result.cosignature is not None:
            new.append(result.cosignature)
            report.status[result.witness] = "cosigned"
        else:
            code = f"HTTP {result.status}" if result.status is not None else "no answer"
            report.status[result.witness] = f"not cosigned ({code}: {result.problem or 'no cosignature'})"
    note = cp.add_signatures(note, new)
    report.cosigned = sorted(sig.name for sig in valid_cosignatures(note, text, verifiers))
    config.state_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(config.state_dir / CHECKPOINT_FILE, note)
    atomic_write_bytes(sizes_path, json.dumps({"v": 1, "sizes": sizes}, sort_keys=True).encode() + b"\n")
    return report


def collect_latest(config: PvConfig) -> CosignReport:
    """`pds pv cosign`: retry the witnesses missing from the log head's STR v2."""
    log = LogRepo(config.log_repo)
    head = log.head()
    if head is None:
        raise PdsError(f"{config.log_repo}: the log has no epoch yet")
    if not config.witnesses:
        raise PdsError(f"{config.path}: no 'witnesses:' configured")
    signed = open_any(log.read_required(head, "latest.note"), config.signer().verifier())
    return collect(config, log, head, signed)
