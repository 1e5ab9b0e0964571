"""SSH key pairs (Ed25519, OpenSSH format) for developers, admins and PVs."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from pds_log.core.errors import PdsError

from .files import atomic_write_bytes, atomic_write_text


def write_ssh_keypair(path: str | os.PathLike, comment: str) -> str:
    """An Ed25519 OpenSSH key pair at `path` (mode 0600) and `path`.pub; returns the public line.
    Refuses to overwrite an existing key."""
    path = Path(path)
    if path.exists() or Path(str(path) + ".pub").exists():
        raise PdsError(f"{path} already exists; refusing to overwrite a key")
    key = Ed25519PrivateKey.generate()
    atomic_write_bytes(path, key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()), mode=0o600)
    public = key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode() + f" {comment}"
    atomic_write_text(Path(str(path) + ".pub"), public + "\n")
    return public


def read_public_key(path_or_line: str) -> str:
    """An OpenSSH public key line, given inline or as a .pub file (or the private key's path)."""
    text = path_or_line.strip()
    if text.startswith(("ssh-", "ecdsa-", "sk-")):
        return text
    for candidate in (Path(text), Path(text + ".pub")):
        if candidate.is_file():
            content = candidate.read_text().strip()
            if content.startswith(("ssh-", "ecdsa-", "sk-")):
                return content
    raise PdsError(f"{path_or_line!r} is neither an OpenSSH public key nor a .pub file")
