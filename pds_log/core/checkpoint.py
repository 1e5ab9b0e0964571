"""Checkpoints of an append-only log (C2SP tlog-checkpoint), their witness cosignatures
(C2SP tlog-cosignature, Ed25519 "cosignature/v1"), PDS epoch records, STR v2, quorum
policies and equivocation evidence. Pure: no I/O.

Checkpoint text (a signed note's text, note.py)::

    <origin>
    <tree size>           decimal, no leading zeros
    <base64 root hash>    RFC 6962 root of the first <tree size> entries (tlog.py)
    <extension line>*     optional, non-empty

Cosignature: a note signature line ``— <witness name> base64(key ID || timestamp || sig)``,
key ID = SHA-256(name || 0x0A || 0x04 || public key)[:4], timestamp a big-endian u64 of
POSIX seconds, sig = Ed25519 over ``cosignature/v1\\ntime <timestamp>\\n`` || checkpoint text.
A witness verifier key is ``<name>+<hex key ID>+base64(0x04 || public key)`` (a C2SP vkey of
type 0x04); its signer key ``PRIVATE+KEY+<name>+<hex key ID>+base64(0x04 || seed)``.

PDS epoch log (STR v2, site/docs/formats.md): entry E-1 of a PV's log is the record of its
epoch E (epochs start at 1, so the tree size after epoch E is E)::

    pds-epoch/v1
    epoch <E>
    map <base64 map root>
    time <unix seconds>
    pr <PR commit id>
    size <plugins in the map>
    policy <hex SHA-256 of the acceptance config>

and the STR v2 of epoch E is the checkpoint of that log at size E whose extension lines are
the record's last five lines (map .. policy): a verifier rebuilds entry E-1 from the
checkpoint alone and checks its inclusion (`check_str_record`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import struct
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from . import jsondoc, tlog
from . import note as notes
from .errors import FormatError, VerificationError
from .note import Note, NoteSignature, NoteVerifier, validate_key_name

ALG_COSIGNATURE_V1 = 0x04
COSIGNATURE_HEADER = b"cosignature/v1\n"
MAX_TIMESTAMP = (1 << 63) - 1
MAX_EXTENSIONS = 32
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")
_B64_32 = re.compile(r"[A-Za-z0-9+/]{43}=")
_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def parse_decimal(text: str, what: str) -> int:
    if not _DECIMAL.fullmatch(text) or int(text) > MAX_TIMESTAMP:
        raise FormatError(f"{what}: expected a decimal number without leading zeros, got {text[:30]!r}")
    return int(text)


def parse_b64_hash(text: str, what: str) -> bytes:
    if not _B64_32.fullmatch(text):
        raise FormatError(f"{what}: expected base64 of 32 bytes, got {text[:60]!r}")
    raw = base64.b64decode(text, validate=True)
    if base64.b64encode(raw).decode() != text:
        raise FormatError(f"{what}: non-canonical base64")
    return raw


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# ---------------------------------------------------------------------------- checkpoints

@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        lines = [self.origin, str(self.size), b64(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> "Checkpoint":
        if not isinstance(text, str) or not text.endswith("\n"):
            raise FormatError("checkpoint: text must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise FormatError("checkpoint: needs an origin, a tree size and a root hash line")
        origin, size, root, *ext = lines
        if not origin or origin != origin.strip():
            raise FormatError("checkpoint: empty origin line or one with surrounding spaces")
        if len(ext) > MAX_EXTENSIONS:
            raise FormatError(f"checkpoint: more than {MAX_EXTENSIONS} extension lines")
        if any(not line for line in ext):
            raise FormatError("checkpoint: empty extension line")
        return cls(origin, parse_decimal(size, "checkpoint tree size"), parse_b64_hash(root, "checkpoint root hash"),
                   tuple(ext))


def sign_checkpoint(checkpoint: Checkpoint, signer: notes.NoteSigner) -> bytes:
    """The signed note of a checkpoint; the signer's key name must be the origin."""
    if signer.name != checkpoint.origin:
        raise FormatError(f"checkpoint of {checkpoint.origin!r} must be signed by a key of that name, "
                          f"not {signer.name!r}")
    return notes.sign(checkpoint.text(), [signer])


def open_checkpoint(data: bytes, log: NoteVerifier) -> tuple[Checkpoint, Note]:
    """Verify the log's signature and parse; raises FormatError / VerificationError."""
    note, _ = notes.open_note(data, [log])
    checkpoint = Checkpoint.parse(note.text)
    if checkpoint.origin != log.name:
        raise VerificationError(f"checkpoint origin {checkpoint.origin!r} is not the log key's name {log.name!r}")
    return checkpoint, note


# ---------------------------------------------------------------------------- cosignatures

def cosigner_key_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ALG_COSIGNATURE_V1]) + public_key).digest()[:4]


def cosigned_message(text: str, timestamp: int) -> bytes:
    return COSIGNATURE_HEADER + b"time %d\n" % timestamp + text.encode("utf-8")


@dataclass(frozen=True)
class CosignatureVerifier:
    """A witness's public key for cosignature/v1."""

    name: str
    key_id: bytes
    public_key: bytes

    @classmethod
    def from_string(cls, vkey: str) -> "CosignatureVerifier":
        if not isinstance(vkey, str):
            raise FormatError("witness key must be a string")
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3:
            raise FormatError(f"malformed witness key {vkey[:60]!r}: expected <name>+<hex id>+<base64 key>")
        name, hex_id, encoded = parts
        validate_key_name(name)
        if not re.fullmatch(r"[0-9a-f]{8}", hex_id):
            raise FormatError(f"witness key for {name}: key ID must be 8 lowercase hex digits")
        raw = notes._b64decode(encoded, f"witness key for {name}")
        if len(raw) != 33 or raw[0] != ALG_COSIGNATURE_V1:
            raise FormatError(f"witness key for {name}: not a cosignature/v1 key (0x04 || 32-byte Ed25519 key)")
        if cosigner_key_id(name, raw[1:]).hex() != hex_id:
            raise FormatError(f"witness key for {name}: key ID {hex_id} does not match the key")
        return cls(name, bytes.fromhex(hex_id), raw[1:])

    def __str__(self) -> str:
        return f"{self.name}+{self.key_id.hex()}+{b64(bytes([ALG_COSIGNATURE_V1]) + self.public_key)}"

    def verify(self, text: str, signature: NoteSignature) -> int:
        """The cosignature's timestamp; VerificationError unless it is this key's valid cosignature."""
        if (signature.name, signature.key_id) != (self.name, self.key_id):
            raise VerificationError(f"cosignature is not by {self.name}+{self.key_id.hex()}")
        if len(signature.signature) != 8 + 64:
            raise VerificationError(f"cosignature by {self.name}: expected 72 bytes (timestamp || Ed25519)")
        timestamp: int = struct.unpack(">Q", signature.signature[:8])[0]
        if timestamp > MAX_TIMESTAMP:
            raise VerificationError(f"cosignature by {self.name}: timestamp above 2**63 - 1")
        plain = NoteVerifier(self.name, self.key_id, self.public_key)  # Ed25519 check only
        if not plain.verify(cosigned_message(text, timestamp), signature.signature[8:]):
            raise VerificationError(f"invalid cosignature by {self.name}+{self.key_id.hex()}")
        return timestamp


@dataclass(frozen=True)
class CosignatureSigner:
    name: str
    seed: bytes

    def __post_init__(self) -> None:
        validate_key_name(self.name)
        if len(self.seed) != 32:
            raise FormatError("Ed25519 seed must be 32 bytes")

    @classmethod
    def generate(cls, name: str) -> "CosignatureSigner":
        return cls(name, notes.NoteSigner.generate(name).seed)

    @property
    def public_key(self) -> bytes:
        return notes.NoteSigner(self.name, self.seed).public_key

    def verifier(self) -> CosignatureVerifier:
        return CosignatureVerifier(self.name, cosigner_key_id(self.name, self.public_key), self.public_key)

    def cosign(self, text: str, timestamp: int) -> NoteSignature:
        if not 0 <= timestamp <= MAX_TIMESTAMP:
            raise FormatError(f"cosignature timestamp {timestamp} out of range")
        sig = notes.NoteSigner(self.name, self.seed).sign(cosigned_message(text, timestamp))
        return NoteSignature(self.name, self.verifier().key_id, struct.pack(">Q", timestamp) + sig)

    def to_string(self) -> str:
        return f"PRIVATE+KEY+{self.name}+{self.verifier().key_id.hex()}+{b64(bytes([ALG_COSIGNATURE_V1]) + self.seed)}"

    @classmethod
    def from_string(cls, skey: str) -> "CosignatureSigner":
        if not isinstance(skey, str):
            raise FormatError("witness signer key must be a string")
        parts = skey.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise FormatError("malformed witness signer key: expected PRIVATE+KEY+<name>+<hex id>+<base64>")
        name, hex_id, encoded = parts[2:]
        validate_key_name(name)
        raw = notes._b64decode(encoded, f"witness signer key for {name}")
        if len(raw) != 33 or raw[0] != ALG_COSIGNATURE_V1:
            raise FormatError(f"witness signer key for {name}: not a cosignature/v1 key")
        signer = cls(name, raw[1:])
        if signer.verifier().key_id.hex() != hex_id:
            raise FormatError(f"witness signer key for {name}: key ID {hex_id} does not match the key")
        return signer


def add_signatures(note_bytes: bytes, lines: Iterable[NoteSignature]) -> bytes:
    """The note with extra signature lines appended (duplicates of existing lines dropped)."""
    note = notes.parse(note_bytes)
    have = list(note.signatures)
    for sig in lines:
        if sig not in have:
            have.append(sig)
    return Note(note.text, tuple(have)).serialize()


def parse_signature_lines(body: bytes, where: str = "cosignature response") -> list[NoteSignature]:
    """Signature lines as a witness returns them (each ``— name base64\\n``)."""
    if not body.endswith(b"\n"):
        raise FormatError(f"{where}: must end with a newline")
    try:
        return list(notes.parse(b"x\n\n" + body).signatures)
    except FormatError as exc:
        raise FormatError(f"{where}: {exc}") from None


# ---------------------------------------------------------------------------- quorum policy

@dataclass(frozen=True)
class WitnessPolicy:
    """"quorum of these witnesses": a checkpoint counts only with that many valid cosignatures."""

    witnesses: tuple[CosignatureVerifier, ...]
    quorum: int

    def __post_init__(self) -> None:
        names = [w.name for w in self.witnesses]
        if len(set(names)) != len(names):
            raise FormatError("witness policy names a witness twice")
        if not 0 <= self.quorum <= len(self.witnesses):
            raise FormatError(f"witness quorum {self.quorum} is not between 0 and {len(self.witnesses)}")


@dataclass(frozen=True)
class CosignedCheckpoint:
    checkpoint: Checkpoint
    note: Note
    cosigned_by: dict[str, int] = field(default_factory=dict)  # witness name -> timestamp


def verify_cosigned(data: bytes, log: NoteVerifier, policy: WitnessPolicy) -> CosignedCheckpoint:
    """Verify the log's signature and at least `policy.quorum` distinct witnesses' valid
    cosignatures. Lines from unknown keys are ignored; a known witness's invalid cosignature
    rejects the checkpoint, as an invalid known signature rejects a note."""
    checkpoint, note = open_checkpoint(data, log)
    by_id = {(w.name, w.key_id): w for w in policy.witnesses}
    got: dict[str, int] = {}
    for sig in note.signatures:
        witness = by_id.get((sig.name, sig.key_id))
        if witness is not None:
            got[witness.name] = witness.verify(note.text, sig)
    if len(got) < policy.quorum:
        have = ", ".join(sorted(got)) or "none"
        raise VerificationError(f"checkpoint {checkpoint.origin} size {checkpoint.size}: {len(got)} of the "
                                f"{policy.quorum} required witness cosignatures (valid: {have})")
    return CosignedCheckpoint(checkpoint, note, got)


# ---------------------------------------------------------------------------- PDS epoch records, STR v2

EPOCH_RECORD_HEADER = "pds-epoch/v1"
STR_V2_FIELDS = ("map", "time", "pr", "size", "policy")


@dataclass(frozen=True)
class EpochRecord:
    """The record of one epoch: entry epoch-1 of the PV's epoch log."""

    epoch: int
    map_root: bytes
    time: int
    pr: str
    size: int
    policy: str

    def __post_init__(self) -> None:
        if not isinstance(self.epoch, int) or self.epoch < 1:
            raise FormatError(f"epoch record: epoch {self.epoch!r} must be >= 1")
        if not isinstance(self.map_root, bytes) or len(self.map_root) != 32:
            raise FormatError("epoch record: map root must be 32 bytes")
        if not _COMMIT.fullmatch(self.pr or ""):
            raise FormatError(f"epoch record: PR commit {str(self.pr)[:70]!r} is not a lowercase hex commit id")
        if not _HEX64.fullmatch(self.policy or ""):
            raise FormatError("epoch record: policy must be 64 lowercase hex digits")
        for what, value in (("time", self.time), ("size", self.size)):
            if not isinstance(value, int) or not 0 <= value <= MAX_TIMESTAMP:
                raise FormatError(f"epoch record: {what} {value!r} out of range")

    def extension_lines(self) -> tuple[str, ...]:
        return (f"map {b64(self.map_root)}", f"time {self.time}", f"pr {self.pr}", f"size {self.size}",
                f"policy {self.policy}")

    def entry(self) -> bytes:
        """The exact bytes of log entry epoch-1."""
        lines = (EPOCH_RECORD_HEADER, f"epoch {self.epoch}", *self.extension_lines())
        return "".join(line + "\n" for line in lines).encode("ascii")

    @classmethod
    def from_fields(cls, epoch: int, lines: Sequence[str], where: str) -> "EpochRecord":
        if len(lines) != len(STR_V2_FIELDS):
            raise FormatError(f"{where}: expected the lines {', '.join(STR_V2_FIELDS)}")
        values = {}
        for want, line in zip(STR_V2_FIELDS, lines, strict=True):
            key, sep, value = line.partition(" ")
            if key != want or not sep:
                raise FormatError(f"{where}: expected a '{want} ...' line, got {line[:60]!r}")
            values[want] = value
        return cls(epoch, parse_b64_hash(values["map"], f"{where} map root"),
                   parse_decimal(values["time"], f"{where} time"), values["pr"],
                   parse_decimal(values["size"], f"{where} size"), values["policy"])

    @classmethod
    def parse_entry(cls, entry: bytes) -> "EpochRecord":
        try:
            text = entry.decode("ascii")
        except UnicodeDecodeError:
            raise FormatError("epoch record: not ASCII") from None
        if not text.endswith("\n"):
            raise FormatError("epoch record: must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) != 2 + len(STR_V2_FIELDS) or lines[0] != EPOCH_RECORD_HEADER:
            raise FormatError(f"epoch record: expected {EPOCH_RECORD_HEADER} and {2 + len(STR_V2_FIELDS)} lines")
        key, _, value = lines[1].partition(" ")
        if key != "epoch":
            raise FormatError("epoch record: second line must be 'epoch <E>'")
        record = cls.from_fields(parse_decimal(value, "epoch record epoch"), lines[2:], "epoch record")
        if record.entry() != entry:
            raise FormatError("epoch record: not in canonical form")
        return record


def str_v2(origin: str, record: EpochRecord, log_root: bytes) -> Checkpoint:
    """The STR v2 of record.epoch: the checkpoint at size = epoch with the record's fields."""
    return Checkpoint(origin, record.epoch, log_root, record.extension_lines())


def str_v2_record(checkpoint: Checkpoint) -> EpochRecord:
    """The epoch record an STR v2 restates; FormatError if it is not an STR v2."""
    if checkpoint.size < 1:
        raise FormatError("STR v2: tree size must be the epoch, >= 1")
    return EpochRecord.from_fields(checkpoint.size, checkpoint.extensions, "STR v2")


def check_str_record(checkpoint: Checkpoint, proof: Sequence[bytes]) -> EpochRecord:
    """The STR's record, after checking that it is the log's last entry (inclusion proof of
    entry size-1): the map root is then bound to the signed log root."""
    record = str_v2_record(checkpoint)
    tlog.check_inclusion(proof, checkpoint.size, checkpoint.root, checkpoint.size - 1, tlog.leaf_hash(record.entry()))
    return record


# ---------------------------------------------------------------------------- equivocation

EVIDENCE_TYPE = "pds-checkpoint-equivocation"
MAX_EVIDENCE_BYTES = 4 << 20


def consistency_implied_roots(path: Sequence[bytes], old_size: int, new_size: int) -> tuple[bytes, bytes]:
    """(old root, new root) that a consistency path implies, where `path` is the proof with,
    when old_size is a power of two, the old tree's hash prepended (RFC 9162 2.1.4.2 step 1).
    The new root pins every hash on the path, so a path that yields the real new root also
    yields the real old root: a different signed old root is then not a prefix."""
    if not 0 < old_size < new_size or not path:
        raise VerificationError("consistency path: needs 0 < old size < new size and a non-empty path")
    tlog.check_proof_hashes(path, "consistency path")
    return tlog.consistency_path_roots(path, old_size, new_size, "consistency path")


def evidence_path(proof: Sequence[bytes], old_size: int, old_subtree_hash: bytes | None = None) -> list[bytes]:
    """A consistency proof as an evidence path: the old tree's hash first when old_size is a power of two."""
    if old_size & (old_size - 1) == 0:
        if old_subtree_hash is None:
            raise FormatError("evidence path: old size is a power of two, the old subtree hash is needed")
        return [old_subtree_hash, *proof]
    return list(proof)


@dataclass(frozen=True)
class CheckpointEquivocation:
    """Two checkpoints signed by one log that cannot both be heads of one append-only log."""

    log: NoteVerifier
    a: Checkpoint  # the smaller (or equal) size
    b: Checkpoint
    notes: tuple[bytes, bytes]
    path: tuple[bytes, ...] = ()  # a's size < b's: a consistency path that yields b's root but not a's

    def describe(self) -> str:
        if self.a.size == self.b.size:
            return (f"{self.log.name} signed two checkpoints of size {self.a.size} with different roots "
                    f"{self.a.root.hex()[:16]}... and {self.b.root.hex()[:16]}...")
        return (f"{self.log.name}'s checkpoint of size {self.a.size} (root {self.a.root.hex()[:16]}...) is not a "
                f"prefix of its checkpoint of size {self.b.size} (root {self.b.root.hex()[:16]}...)")

    def to_json(self) -> bytes:
        doc = {"v": 1, "type": EVIDENCE_TYPE, "vkey": str(self.log), "origin": self.log.name,
               "notes": [n.decode("utf-8") for n in self.notes], "path": [b64(h) for h in self.path]}
        return json.dumps(doc, indent=1).encode() + b"\n"


def detect_equivocation(note_a: bytes, note_b: bytes, log: NoteVerifier,
                        path: Sequence[bytes] = ()) -> CheckpointEquivocation:
    """Evidence that two log-signed checkpoints are inconsistent, or VerificationError.

    Same size: the roots differ. Different sizes: `path` (see consistency_implied_roots)
    yields the larger checkpoint's root and an old root different from the smaller's."""
    (ca, _), (cb, _) = open_checkpoint(note_a, log), open_checkpoint(note_b, log)
    if ca.size > cb.size:
        ca, cb, note_a, note_b = cb, ca, note_b, note_a
    if ca.size == cb.size:
        if ca.root == cb.root:
            raise VerificationError("the two checkpoints have the same size and root: no equivocation")
        return CheckpointEquivocation(log, ca, cb, (note_a, note_b))
    if ca.size == 0:
        raise VerificationError("a checkpoint of size 0 is a prefix of every tree")
    old_root, new_root = consistency_implied_roots(path, ca.size, cb.size)
    if new_root != cb.root:
        raise VerificationError("the consistency path does not yield the larger checkpoint's root: it proves nothing")
    if old_root == ca.root:
        raise VerificationError("the consistency path shows the checkpoints are consistent")
    return CheckpointEquivocation(log, ca, cb, (note_a, note_b), tuple(path))


def is_evidence(data: bytes) -> bool:
    return data.lstrip().startswith(b"{") and EVIDENCE_TYPE.encode() in data[:4096]


def check_evidence(data: bytes, log: NoteVerifier) -> CheckpointEquivocation:
    """Verify an evidence file (to_json) against the log's key; raises unless it proves equivocation."""
    doc = jsondoc.loads(data, "checkpoint evidence", max_bytes=MAX_EVIDENCE_BYTES)
    if not isinstance(doc, dict) or doc.get("type") != EVIDENCE_TYPE or doc.get("v") != 1:
        raise FormatError(f"checkpoint evidence: not a v1 {EVIDENCE_TYPE} document")
    pair, path = doc.get("notes"), doc.get("path", [])
    if not isinstance(pair, list) or len(pair) != 2 or not all(isinstance(n, str) for n in pair):
        raise FormatError("checkpoint evidence: 'notes' must hold exactly two signed notes")
    if not isinstance(path, list) or len(path) > tlog.MAX_PROOF_HASHES + 1 or not all(isinstance(h, str) for h in path):
        raise FormatError("checkpoint evidence: 'path' must be a list of base64 hashes")
    hashes = [parse_b64_hash(h, "checkpoint evidence path") for h in path]
    return detect_equivocation(pair[0].encode("utf-8"), pair[1].encode("utf-8"), log, hashes)
