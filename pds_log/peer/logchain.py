"""What the peer reads of an STR of either version, and the epoch-log proofs a v2 one needs.

STR v1 (`pds_log.core.signed_root`) and STR v2, the C2SP checkpoint of the PV's epoch log
(`pds_log.core.checkpoint`, site/docs/formats.md "STR v2 and the epoch log"), are told apart by
line 4 of their text (``prev ...`` in v1, ``map ...`` in v2) and parsed by `pds_log.core.strs`.
Both give the peer the same fields (`head.epoch`, `head.root` = the map root, `head.time`, ...), so the rest of the
pipeline (freshness, the map proof) does not care which one it holds.

A v2 STR is trusted only with proofs from the epoch log at its size n (`LogRequest`): the
inclusion of its own record (entry n-1, rebuilt from its extension lines), and, when the peer
holds an older STR of size m, the consistency of m with n (a v2 one) or the inclusion of its
record as entry m-1 (a v1 one: the first v2 log holds the records of every v1 epoch). The
mirror walk computes them from C2SP tlog-tiles (`proofs_from_reader`), a bundle carries them.
Pure: no I/O (the reader does whatever fetching it does).
"""

from __future__ import annotations

from dataclasses import dataclass

from pds_log.core import checkpoint as cp
from pds_log.core import note as notes
from pds_log.core import static_layout as site
from pds_log.core import strs, tlog
from pds_log.core.errors import VerificationError
from pds_log.core.signed_root import SignedTreeRoot, open_str
from pds_log.core.strs import TreeHeadV2

CHECKPOINT = site.CHECKPOINT  # the mutable file of a C2SP tlog-tiles publication: the latest cosigned STR v2


@dataclass(frozen=True)
class SignedCheckpoint:
    """A verified STR v2: `note` carries the PV's signature only (what the state file and
    evidence hold), `served` the note as served, with whatever cosignatures it had."""

    head: TreeHeadV2
    note: bytes
    served: bytes


AnySigned = SignedTreeRoot | SignedCheckpoint


def open_any(data: bytes, verifier: notes.NoteVerifier) -> AnySigned:
    """Verify an STR of either version with the PV's key and parse it (core/strs.py; FormatError
    or VerificationError otherwise). Cosignatures are kept in `served`, not checked here."""
    note, _ = notes.open_note(data, [verifier])
    if strs.str_version(note.text) == 1:
        return open_str(data, verifier)
    signed = strs.open_any(data, verifier)
    assert isinstance(signed.head, TreeHeadV2)
    return SignedCheckpoint(signed.head, signed.note, data)


def record_of(signed: AnySigned) -> cp.EpochRecord:
    """The epoch record an STR states: entry epoch-1 of the PV's epoch log."""
    return strs.record_of(signed.head)


@dataclass(frozen=True)
class LogRequest:
    """The epoch-log proofs a v2 STR of size `size` needs: always the inclusion of entry
    size-1; `consistency_from` m (a v2 STR held) or `record_of` m (a v1 STR held) as well."""

    size: int
    consistency_from: int | None = None
    record_from: int | None = None


@dataclass(frozen=True)
class LogProofs:
    """Answers to a LogRequest. `old_subtree`: the hash of the first m entries according to
    the same material (needed only to turn a failed consistency proof from a power-of-two m
    into evidence: the proof then omits that hash)."""

    inclusion: tuple[bytes, ...]
    consistency: tuple[bytes, ...] | None = None
    record_inclusion: tuple[bytes, ...] | None = None
    old_subtree: bytes | None = None


def proofs_from_reader(request: LogRequest, reader: tlog.HashReader) -> LogProofs:
    """The proofs of `request` from a log's stored hashes (e.g. a TileHashReader over the
    mirror's tiles). Nothing here is trusted: the pipeline checks them against signed roots."""
    n = request.size
    inclusion = tuple(tlog.prove_inclusion(n, n - 1, reader))
    consistency = old_subtree = record = None
    m = request.consistency_from
    if m is not None and 0 < m < n:
        consistency = tuple(tlog.prove_consistency(n, m, reader))
        if m & (m - 1) == 0:
            old_subtree = tlog.tree_hash(m, reader)
    if request.record_from is not None and 0 < request.record_from <= n:
        record = tuple(tlog.prove_inclusion(n, request.record_from - 1, reader))
    return LogProofs(inclusion, consistency, record, old_subtree)


def check_cosigned(served: bytes, verifier: notes.NoteVerifier, policy: cp.WitnessPolicy,
                   labels: dict[str, str]) -> dict[str, int]:
    """The witnesses (by key name) whose valid cosignatures `served` carries, or
    VerificationError naming the missing ones when fewer than the quorum."""
    got = cp.verify_cosigned(served, verifier, cp.WitnessPolicy(policy.witnesses, 0)).cosigned_by
    if len(got) < policy.quorum:
        missing = [w.name for w in policy.witnesses if w.name not in got]
        named = ", ".join(f"{labels.get(n, n)} ({n})" if labels.get(n, n) != n else n for n in missing)
        valid = ", ".join(labels.get(n, n) for n in sorted(got)) or "none"
        raise VerificationError(f"{len(got)} of the {policy.quorum} required witness cosignatures "
                                f"(valid: {valid}; missing: {named})")
    return got


__all__ = ["CHECKPOINT", "AnySigned", "LogProofs", "LogRequest", "SignedCheckpoint",
           "check_cosigned", "open_any", "proofs_from_reader", "record_of"]
