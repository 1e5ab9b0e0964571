"""Signed tree roots (STRs): one C2SP signed note per PV epoch (DESIGN.md "Formats (v1)").

Note text, exactly these eight lines in this order, each ending in a newline:

    <origin>
    <epoch>                       decimal, >= 1, no leading zeros
    <base64 root>                 standard base64 of the 32-byte tree root
    prev <base64 SHA-256 of the previous STR note>     32 zero bytes at epoch 1
    time <unix seconds>
    pr <PR commit id>             lowercase hex
    size <plugins in tree>
    policy <hex SHA-256 of the PV's acceptance config>

signed by the PV's Ed25519 note key whose name is the origin.

"SHA-256 of the previous STR note" is taken over the note exactly as the PV publishes it:
its text, the blank line and the PV's own signature line (Ed25519 signatures are
deterministic, so this is a function of the text). Signature lines that others add later
(cosigners) are dropped before hashing, so they never break the chain.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

from . import note as notes
from .errors import FormatError, VerificationError

ZERO_HASH = bytes(32)
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")
_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_B64_32 = re.compile(r"[A-Za-z0-9+/]{43}=")


def _b64_32(text: str, what: str) -> bytes:
    if not _B64_32.fullmatch(text):
        raise FormatError(f"STR {what}: expected base64 of 32 bytes, got {text[:60]!r}")
    raw = base64.b64decode(text, validate=True)
    if base64.b64encode(raw).decode() != text:
        raise FormatError(f"STR {what}: non-canonical base64")
    return raw


def _decimal(text: str, what: str) -> int:
    if not _DECIMAL.fullmatch(text):
        raise FormatError(f"STR {what}: expected a decimal number without leading zeros, got {text[:30]!r}")
    return int(text)


@dataclass(frozen=True)
class TreeHead:
    """The signed content of an STR."""

    origin: str
    epoch: int
    root: bytes
    prev: bytes
    time: int
    pr: str
    size: int
    policy: str

    def __post_init__(self) -> None:
        notes.validate_key_name(self.origin)
        if not isinstance(self.epoch, int) or self.epoch < 1:
            raise FormatError("STR epoch must be an integer >= 1")
        if len(self.root) != 32 or len(self.prev) != 32:
            raise FormatError("STR root and prev must be 32 bytes")
        if self.epoch == 1 and self.prev != ZERO_HASH:
            raise FormatError("STR of epoch 1 must have prev = 32 zero bytes")
        if self.time < 0 or self.size < 0:
            raise FormatError("STR time and size must be >= 0")
        if not _COMMIT.fullmatch(self.pr):
            raise FormatError("STR pr must be a lowercase hex commit id")
        if not _HEX64.fullmatch(self.policy):
            raise FormatError("STR policy must be 64 lowercase hex characters")

    def text(self) -> str:
        def b64(raw: bytes) -> str:
            return base64.b64encode(raw).decode()

        return (
            f"{self.origin}\n{self.epoch}\n{b64(self.root)}\n"
            f"prev {b64(self.prev)}\ntime {self.time}\npr {self.pr}\n"
            f"size {self.size}\npolicy {self.policy}\n"
        )

    @classmethod
    def parse_text(cls, text: str) -> "TreeHead":
        if not text.endswith("\n"):
            raise FormatError("STR text must end with a newline")
        lines = text[:-1].split("\n")
        labels = ["prev", "time", "pr", "size", "policy"]
        if len(lines) != 3 + len(labels):
            raise FormatError(f"STR text has {len(lines)} lines, expected {3 + len(labels)}")
        values = {}
        for i, label in enumerate(labels):
            line = lines[3 + i]
            head, sep, rest = line.partition(" ")
            if head != label or not sep:
                raise FormatError(f"STR line {4 + i}: expected '{label} <value>', got {line[:60]!r}")
            values[label] = rest
        origin = lines[0]
        notes.validate_key_name(origin)
        epoch = _decimal(lines[1], "epoch (line 2)")
        root = _b64_32(lines[2], "root (line 3)")
        prev = _b64_32(values["prev"], "prev (line 4)")
        time = _decimal(values["time"], "time (line 5)")
        if not _COMMIT.fullmatch(values["pr"]):
            raise FormatError("STR pr (line 6): expected a lowercase hex commit id")
        size = _decimal(values["size"], "size (line 7)")
        if not _HEX64.fullmatch(values["policy"]):
            raise FormatError("STR policy (line 8): expected 64 lowercase hex characters")
        tree_head = cls(origin, epoch, root, prev, time, values["pr"], size, values["policy"])
        if tree_head.text() != text:  # pragma: no cover - guarded by the strict checks above
            raise FormatError("STR text is not in canonical form")
        return tree_head


@dataclass(frozen=True)
class SignedTreeRoot:
    """A verified STR: its head and the note as the PV published it."""

    head: TreeHead
    note: bytes

    @property
    def hash(self) -> bytes:
        """SHA-256 of the note: what the next epoch's ``prev`` line must carry."""
        return hashlib.sha256(self.note).digest()


def sign_str(head: TreeHead, signer: notes.NoteSigner) -> SignedTreeRoot:
    if signer.name != head.origin:
        raise FormatError(f"STR origin {head.origin!r} differs from the signing key's name {signer.name!r}")
    return SignedTreeRoot(head, notes.sign(head.text(), [signer]))


def open_str(data: bytes, verifier: notes.NoteVerifier) -> SignedTreeRoot:
    """Verify an STR note against the PV's key and parse its head.

    Other signatures on the note are ignored (and dropped from `.note`, so `.hash` is the
    chain hash); the origin line must be the key's name."""
    note, _ = notes.open_note(data, [verifier])
    head = TreeHead.parse_text(note.text)
    if head.origin != verifier.name:
        raise VerificationError(f"STR origin {head.origin!r} is not the key name {verifier.name!r}")
    own = note.only(verifier.name, verifier.key_id)
    return SignedTreeRoot(head, own.serialize())


def check_chain(prev: SignedTreeRoot | None, nxt: SignedTreeRoot) -> None:
    """Raise VerificationError unless `nxt` directly follows `prev` (None: `nxt` is epoch 1)."""
    h = nxt.head
    if prev is None:
        if h.epoch != 1 or h.prev != ZERO_HASH:
            raise VerificationError(f"epoch {h.epoch}: no previous STR, so it must be epoch 1 with a zero prev")
        return
    p = prev.head
    if h.origin != p.origin:
        raise VerificationError(f"epoch {h.epoch}: origin {h.origin!r} differs from previous {p.origin!r}")
    if h.epoch != p.epoch + 1:
        raise VerificationError(f"epoch {h.epoch} does not follow epoch {p.epoch} (expected {p.epoch + 1})")
    if h.prev != prev.hash:
        raise VerificationError(
            f"epoch {h.epoch}: prev {h.prev.hex()[:16]}... is not the hash of epoch {p.epoch}'s STR "
            f"({prev.hash.hex()[:16]}...)")
    if h.time < p.time:
        raise VerificationError(f"epoch {h.epoch}: time {h.time} goes back before epoch {p.epoch} ({p.time})")
