"""SSH key pairs (Ed25519, OpenSSH format) for developers, admins and PVs."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
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


@dataclass(frozen=True)
class SshEndpoint:
    """Where an ssh git URL connects: the host and port its host key is pinned under."""

    user: str | None
    host: str
    port: int

    @property
    def known_hosts_name(self) -> str:
        """The host as ssh looks it up in known_hosts: `host`, or `[host]:port` off port 22."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


_SSH_URL = re.compile(r"^(?:ssh|git\+ssh|ssh\+git)://(?:([^@/]*)@)?(\[[^\]/]+\]|[^:/]+)(?::(\d+))?(?:/|$)")
_SCP_LIKE = re.compile(r"^(?:([^@/:]+)@)?(\[[^\]/]+\]|[^:/]+):(?!//)")


def ssh_endpoint(url: str) -> SshEndpoint | None:
    """The ssh endpoint of a git URL (ssh://, git+ssh://, or scp-like `user@host:path`); None for
    local paths and other transports."""
    if m := _SSH_URL.match(url):
        user, host, port = m.group(1), m.group(2).strip("[]"), int(m.group(3) or 22)
    elif "://" not in url and not url.startswith(("/", ".")) and (m := _SCP_LIKE.match(url)):
        user, host, port = m.group(1), m.group(2).strip("[]"), 22
    else:
        return None
    if not 0 < port < 65536 or not host:
        raise PdsError(f"{url}: not a usable ssh URL (host {host!r}, port {port})")
    return SshEndpoint(user or None, host, port)


def host_key_fingerprint(known_hosts_line: str) -> str:
    """`<type> SHA256:<base64>` of a known_hosts line's key, as `ssh-keygen -l` prints it."""
    fields = known_hosts_line.split()
    if len(fields) < 3:
        raise PdsError(f"not a known_hosts line: {known_hosts_line[:80]!r}")
    try:
        blob = base64.b64decode(fields[2], validate=True)
    except ValueError:
        raise PdsError(f"not a known_hosts line (bad key): {known_hosts_line[:80]!r}") from None
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"{fields[1]} SHA256:{digest}"


SCAN_TIMEOUT = 10  # seconds ssh-keyscan waits for a server


def scan_host_keys(endpoint: SshEndpoint) -> list[str]:
    """The host keys the server at `endpoint` shows now, as known_hosts lines named as ssh will
    look them up. This is trust on first use: only for an operator's explicit request, who then
    checks the printed fingerprints out of band."""
    try:
        result = subprocess.run(["ssh-keyscan", "-T", str(SCAN_TIMEOUT), "-p", str(endpoint.port), "--",
                                 endpoint.host], capture_output=True, text=True, timeout=SCAN_TIMEOUT * 3)
    except FileNotFoundError:
        raise PdsError("ssh-keyscan is not installed (Debian: openssh-client)") from None
    except subprocess.TimeoutExpired:
        raise PdsError(f"ssh-keyscan {endpoint.known_hosts_name}: no answer in {SCAN_TIMEOUT * 3} s") from None
    lines = []
    for line in result.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 3 and not line.startswith("#"):
            host_key_fingerprint(line)  # refuse anything that is not a key line
            lines.append(f"{endpoint.known_hosts_name} {fields[1]} {fields[2]}")
    if not lines:
        detail = result.stderr.strip().splitlines()[-1:] or ["no answer"]
        raise PdsError(f"cannot read the host key of {endpoint.known_hosts_name} (ssh-keyscan: {detail[0]}): "
                       f"check the host and port and that sshd runs there")
    return lines


def read_ssh_private_key(path: str | os.PathLike) -> tuple[bytes, str]:
    """An existing OpenSSH private key with no passphrase (the epoch job runs unattended): its
    bytes as they are and its public line (with the comment of its .pub, if there is one)."""
    from cryptography.hazmat.primitives.serialization import load_ssh_private_key

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PdsError(f"SSH key {path}: cannot read it ({exc.strerror})") from None
    try:
        key = load_ssh_private_key(data, password=None)
    except TypeError:
        raise PdsError(f"SSH key {path} has a passphrase: the PV runs unattended, give it a key without one") from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise PdsError(f"SSH key {path} is not an OpenSSH private key ({exc})") from None
    public = key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
    pub_file = Path(str(path) + ".pub")
    if pub_file.is_file():
        fields = pub_file.read_text(errors="replace").split()
        if fields[:2] != public.split()[:2]:
            raise PdsError(f"{pub_file} is not the public key of {path}")
        public = " ".join(fields)
    return data, public
