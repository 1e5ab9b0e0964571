"""A real OpenSSH server on 127.0.0.1 for tests (root runs it, as in CI): its own host key,
config and port; key authentication only."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sshd:
    """sshd on a free port of 127.0.0.1 admitting `users` by the keys in `authorized_keys`
    (a path, or a pattern relative to each user's home as sshd_config takes it)."""

    def __init__(self, base: Path, users: list[str], authorized_keys: str) -> None:
        self.base = base
        self.port = free_port()
        self.host_key = base / "ssh_host_ed25519_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test-host", "-f", str(self.host_key)],
                       check=True)
        config = base / "sshd_config"
        config.write_text(f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.host_key}\n"
                          f"PidFile {base}/sshd.pid\nAuthorizedKeysFile {authorized_keys}\n"
                          f"PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
                          f"AllowUsers {' '.join(users)}\nLogLevel ERROR\n")
        Path("/run/sshd").mkdir(exist_ok=True)
        self.log = base / "sshd.log"
        self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-f", str(config), "-E", str(self.log)])
        deadline = time.monotonic() + 20
        while True:  # a readiness check, not a sleep as a barrier
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError as exc:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    log = self.log.read_text() if self.log.exists() else ""
                    raise RuntimeError(f"sshd did not start: {log}") from exc
                time.sleep(0.05)

    @property
    def known_hosts_name(self) -> str:
        return f"[127.0.0.1]:{self.port}"

    def host_line(self) -> str:
        """The server's real key as a known_hosts line."""
        return f"{self.known_hosts_name} " + " ".join(Path(f"{self.host_key}.pub").read_text().split()[:2])

    def fingerprint(self) -> str:
        out = subprocess.run(["ssh-keygen", "-l", "-f", f"{self.host_key}.pub"], capture_output=True, text=True,
                             check=True).stdout.split()
        return out[1]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def other_host_line(name: str, directory: Path) -> str:
    """A known_hosts line naming `name` with a key that is not the server's (a changed key)."""
    key = directory / "impostor_host_key"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return f"{name} " + " ".join(Path(f"{key}.pub").read_text().split()[:2])
