"""C2SP signed notes with Ed25519 (https://c2sp.org/signed-note), as Go's `note` package.

    <text, ending in a newline>
    <blank line>
    — <key name> base64(4-byte key ID || 64-byte Ed25519 signature of the text)
    ...

* key ID = SHA-256(key name || 0x0A || 0x01 || 32-byte public key)[:4]  (0x01 = Ed25519)
* verifier key string: ``<name>+<8 hex key ID>+<base64(0x01 || public key)>``
* signer key string:   ``PRIVATE+KEY+<name>+<8 hex key ID>+<base64(0x01 || 32-byte seed)>``

Opening a note: signatures from unknown keys (name or ID not both matching a trusted key) are
ignored; a signature from a known key that fails to verify rejects the whole note; a note
with no verified signature from a trusted key is rejected.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from typing import Iterable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .errors import FormatError, VerificationError

ALG_ED25519 = 0x01
SIGNATURE_PREFIX = "\u2014 "  # em dash, space
MAX_SIGNATURES = 100  # the spec requires accepting at least 16
MAX_NOTE_BYTES = 1 << 20
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_NAME_BAD = re.compile(r"[\s+]")


def validate_key_name(name: str) -> str:
    if not isinstance(name, str) or not name or _NAME_BAD.search(name):
        raise FormatError(f"invalid key name {name!r}: must be non-empty, without spaces or '+'")
    if not name.isascii():
        try:
            name.encode("utf-8")  # the key ID hashes the UTF-8 name: a lone surrogate has none
        except UnicodeEncodeError:
            raise FormatError(f"invalid key name {name!r}: not Unicode text") from None
    return name


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte key ID of an Ed25519 key under `name`."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public_key).digest()[:4]


def _b64decode(text: str, where: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise FormatError(f"{where}: invalid base64") from None


@dataclass(frozen=True)
class NoteVerifier:
    """A trusted Ed25519 verifier key for notes signed under `name`."""

    name: str
    key_id: bytes
    public_key: bytes

    @classmethod
    def from_string(cls, vkey: str) -> "NoteVerifier":
        """Parse ``<name>+<hex id>+<base64(0x01||pubkey)>``; the ID must match the key."""
        if not isinstance(vkey, str):
            raise FormatError("verifier key must be a string")
        parts = vkey.strip().split("+", 2)  # the base64 key may itself contain '+'
        if len(parts) != 3:
            raise FormatError(f"malformed verifier key {vkey[:60]!r}: expected <name>+<hex id>+<base64 key>")
        name, hex_id, b64 = parts
        validate_key_name(name)
        if not re.fullmatch(r"[0-9a-f]{8}", hex_id):
            raise FormatError(f"verifier key for {name}: key ID must be 8 lowercase hex digits")
        raw = _b64decode(b64, f"verifier key for {name}")
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise FormatError(f"verifier key for {name}: not an Ed25519 key (0x01 || 32 bytes)")
        public_key = raw[1:]
        if key_id(name, public_key).hex() != hex_id:
            raise FormatError(f"verifier key for {name}: key ID {hex_id} does not match the key")
        return cls(name, bytes.fromhex(hex_id), public_key)

    def __str__(self) -> str:
        b64 = base64.b64encode(bytes([ALG_ED25519]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{b64}"

    def verify(self, text: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, text)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class NoteSigner:
    """An Ed25519 signing key for notes under `name`."""

    name: str
    seed: bytes

    def __post_init__(self) -> None:
        validate_key_name(self.name)
        if len(self.seed) != 32:
            raise FormatError("Ed25519 seed must be 32 bytes")

    @classmethod
    def generate(cls, name: str) -> "NoteSigner":
        from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

        seed = Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return cls(name, seed)

    @property
    def public_key(self) -> bytes:
        return Ed25519PrivateKey.from_private_bytes(self.seed).public_key().public_bytes(
            Encoding.Raw, PublicFormat.Raw)

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public_key)

    def verifier(self) -> NoteVerifier:
        return NoteVerifier(self.name, self.key_id, self.public_key)

    def sign(self, text: bytes) -> bytes:
        return Ed25519PrivateKey.from_private_bytes(self.seed).sign(text)

    @classmethod
    def from_string(cls, skey: str) -> "NoteSigner":
        if not isinstance(skey, str):
            raise FormatError("signer key must be a string")
        parts = skey.strip().split("+", 4)  # the base64 seed may itself contain '+'
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise FormatError("malformed signer key: expected PRIVATE+KEY+<name>+<hex id>+<base64>")
        name, hex_id, b64 = parts[2:]
        validate_key_name(name)
        raw = _b64decode(b64, f"signer key for {name}")
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise FormatError(f"signer key for {name}: not an Ed25519 key")
        signer = cls(name, raw[1:])
        if signer.key_id.hex() != hex_id:
            raise FormatError(f"signer key for {name}: key ID {hex_id} does not match the key")
        return signer

    def to_string(self) -> str:
        b64 = base64.b64encode(bytes([ALG_ED25519]) + self.seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.key_id.hex()}+{b64}"


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: bytes
    signature: bytes  # without the key ID

    def line(self) -> str:
        b64 = base64.b64encode(self.key_id + self.signature).decode()
        return f"{SIGNATURE_PREFIX}{self.name} {b64}\n"


@dataclass(frozen=True)
class Note:
    """A note's text and its signature lines (all of them, verified or not)."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def serialize(self) -> bytes:
        return (self.text + "\n" + "".join(s.line() for s in self.signatures)).encode("utf-8")

    def only(self, name: str, kid: bytes) -> "Note":
        """This note with only the signatures of key (name, kid)."""
        return Note(self.text, tuple(s for s in self.signatures if s.name == name and s.key_id == kid))


def check_text(text: str) -> str:
    """A note text: non-empty, ends in newline, no ASCII control characters but newline."""
    if not text or not text.endswith("\n"):
        raise FormatError("note text must be non-empty and end with a newline")
    bad = _CONTROL.search(text)
    if bad:
        raise FormatError(f"note text contains control character {bad.group()!r}")
    return text


def sign(text: str, signers: Iterable[NoteSigner]) -> bytes:
    """Sign `text` with each signer; returns the serialized signed note."""
    check_text(text)
    data = text.encode("utf-8")
    sigs = tuple(NoteSignature(s.name, s.key_id, s.sign(data)) for s in signers)
    if not sigs:
        raise FormatError("a signed note needs at least one signer")
    return Note(text, sigs).serialize()


def parse(data: bytes) -> Note:
    """Split a signed note into text and signature lines, checking the format only."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise FormatError(f"note must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_NOTE_BYTES:
        raise FormatError(f"note larger than {MAX_NOTE_BYTES} bytes")
    try:
        whole = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"note is not valid UTF-8 (byte {exc.start})") from None
    bad = _CONTROL.search(whole)
    if bad:
        raise FormatError(f"note contains control character {bad.group()!r}")
    split = whole.rfind("\n\n")
    if split < 0:
        raise FormatError("note has no blank line separating text and signatures")
    text, block = whole[: split + 1], whole[split + 2:]
    if not block.endswith("\n"):
        raise FormatError("note signature block must end with a newline")
    sigs = [_signature_line(line, lineno) for lineno, line in enumerate(block[:-1].split("\n"), start=1)]
    if not sigs:
        raise FormatError("note has no signature lines")
    if len(sigs) > MAX_SIGNATURES:
        raise FormatError(f"note has more than {MAX_SIGNATURES} signatures")
    return Note(check_text(text), tuple(sigs))


def _signature_line(line: str, lineno: int) -> NoteSignature:
    if not line.startswith(SIGNATURE_PREFIX):
        raise FormatError(f"signature line {lineno}: must start with an em dash and a space")
    fields = line[len(SIGNATURE_PREFIX):].split(" ")
    if len(fields) != 2:
        raise FormatError(f"signature line {lineno}: expected '— <key name> <base64>'")
    name, b64 = fields
    validate_key_name(name)
    raw = _b64decode(b64, f"signature line {lineno}")
    if len(raw) < 5:
        raise FormatError(f"signature line {lineno}: signature too short")
    return NoteSignature(name, raw[:4], raw[4:])


def open_note(data: bytes, verifiers: Iterable[NoteVerifier]) -> tuple[Note, list[NoteVerifier]]:
    """Parse and verify a note against trusted keys; returns it and the keys that signed it.

    Unknown signatures are ignored; a known key whose signature does not verify rejects the
    note; no verified known signature rejects the note."""
    note = parse(data)
    known = {(v.name, v.key_id): v for v in verifiers}
    text = note.text.encode("utf-8")
    signed_by: list[NoteVerifier] = []
    for sig in note.signatures:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            continue
        if len(sig.signature) != 64 or not verifier.verify(text, sig.signature):
            raise VerificationError(f"invalid signature by {sig.name}+{sig.key_id.hex()}")
        if verifier not in signed_by:
            signed_by.append(verifier)
    if not signed_by:
        names = ", ".join(sorted(f"{n}+{k.hex()}" for n, k in known)) or "none"
        raise VerificationError(f"note has no valid signature from a trusted key (trusted: {names})")
    return note, signed_by
