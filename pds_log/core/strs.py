"""STRs of both versions, as a PV's log repo holds them (site/docs/formats.md).

* v1 (signed_root.py): ``<origin>``, ``<epoch>``, ``<base64 map root>``, ``prev ...``, ``time``,
  ``pr``, ``size``, ``policy``;
* v2 (checkpoint.py): a C2SP checkpoint of the PV's epoch log at size = epoch, ``<origin>``,
  ``<epoch>``, ``<base64 log root>``, then ``map``, ``time``, ``pr``, ``size``, ``policy``.

Line 4 tells them apart (``prev `` in v1, ``map `` in v2). Both carry one epoch record
(`EpochRecord`): the map root and the time, PR commit, size and policy lines, so the epoch log
of any history, v1, v2 or a v1 history continued in v2, is rebuilt from its STRs alone: entry
E-1 is ``record_of(STR of epoch E).entry()``. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from . import note as notes
from .checkpoint import Checkpoint, EpochRecord, str_v2, str_v2_record
from .errors import FormatError, VerificationError
from .signed_root import TreeHead, sign_str

STR_VERSIONS = (1, 2)


@dataclass(frozen=True)
class TreeHeadV2:
    """The signed content of an STR v2. `root` is the map root (as TreeHead.root), `log_root`
    the epoch log's root at size `epoch`."""

    origin: str
    record: EpochRecord
    log_root: bytes

    def __post_init__(self) -> None:
        notes.validate_key_name(self.origin)
        if not isinstance(self.log_root, bytes) or len(self.log_root) != 32:
            raise FormatError("STR v2: log root must be 32 bytes")

    @property
    def epoch(self) -> int:
        return self.record.epoch

    @property
    def root(self) -> bytes:
        return self.record.map_root

    @property
    def time(self) -> int:
        return self.record.time

    @property
    def pr(self) -> str:
        return self.record.pr

    @property
    def size(self) -> int:
        return self.record.size

    @property
    def policy(self) -> str:
        return self.record.policy

    def checkpoint(self) -> Checkpoint:
        return str_v2(self.origin, self.record, self.log_root)

    def text(self) -> str:
        return self.checkpoint().text()

    @classmethod
    def parse_text(cls, text: str) -> "TreeHeadV2":
        checkpoint = Checkpoint.parse(text)
        head = cls(checkpoint.origin, str_v2_record(checkpoint), checkpoint.root)
        if head.text() != text:
            raise FormatError("STR v2 text is not in canonical form")
        return head


AnyHead = TreeHead | TreeHeadV2


def str_version(text: str) -> int:
    """1 or 2, from line 4 of an STR's text; FormatError if it is neither."""
    lines = text.split("\n")
    fourth = lines[3] if len(lines) > 3 else ""
    if fourth.startswith("prev "):
        return 1
    if fourth.startswith("map "):
        return 2
    raise FormatError(f"STR line 4: expected 'prev ...' (v1) or 'map ...' (v2), got {fourth[:60]!r}")


def parse_head(text: str) -> AnyHead:
    """The head of an STR text of either version."""
    return TreeHead.parse_text(text) if str_version(text) == 1 else TreeHeadV2.parse_text(text)


def head_version(head: AnyHead) -> int:
    return 2 if isinstance(head, TreeHeadV2) else 1


def record_of(head: AnyHead) -> EpochRecord:
    """The epoch record an STR states: entry epoch-1 of the PV's epoch log."""
    if isinstance(head, TreeHeadV2):
        return head.record
    return EpochRecord(head.epoch, head.root, head.time, head.pr, head.size, head.policy)


@dataclass(frozen=True)
class SignedStr:
    """A verified STR of either version: its head and the note with only the PV's signature."""

    head: AnyHead
    note: bytes

    @property
    def version(self) -> int:
        return head_version(self.head)

    @property
    def hash(self) -> bytes:
        """SHA-256 of the note (what a v1 successor's ``prev`` line carries)."""
        return hashlib.sha256(self.note).digest()


def open_any(data: bytes, verifier: notes.NoteVerifier) -> SignedStr:
    """Verify an STR note of either version against the PV's key and parse its head.

    Other signatures (witness cosignatures) are ignored and dropped from `.note`."""
    note, _ = notes.open_note(data, [verifier])
    head = parse_head(note.text)
    if head.origin != verifier.name:
        raise VerificationError(f"STR origin {head.origin!r} is not the key name {verifier.name!r}")
    return SignedStr(head, note.only(verifier.name, verifier.key_id).serialize())


def sign_any(head: AnyHead, signer: notes.NoteSigner) -> SignedStr:
    """Sign an STR body of either version with the PV's key, whose name must be the origin.

    One function for both versions, so that the epoch has a single signing step whatever it signs."""
    if isinstance(head, TreeHead):
        return SignedStr(head, sign_str(head, signer).note)
    if signer.name != head.origin:
        raise FormatError(f"STR origin {head.origin!r} differs from the signing key's name {signer.name!r}")
    return SignedStr(head, notes.sign(head.text(), [signer]))


def note_epoch(data: bytes) -> int:
    """The epoch an STR note of either version names (its signatures are not checked)."""
    return parse_head(notes.parse(data).text).epoch


def v2_head(origin: str, head: TreeHead, log_root: bytes) -> TreeHeadV2:
    """The STR v2 that restates the v1 body `head` (whose `prev` is dropped) over `log_root`."""
    return TreeHeadV2(origin, record_of(head), log_root)
