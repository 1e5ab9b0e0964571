"""git over SSH failing for real (an sshd on 127.0.0.1 run by the test) and what the user is
told: the translation of `pds_log.infra.giterrors`, through `sys.executable -m pds_log`."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from pds_log.infra.giterrors import explain_git_failure, git_failure_kind
from tests.support import PDS, run

SSHD = "/usr/sbin/sshd"
pytestmark = [pytest.mark.slow,  # a real sshd
              pytest.mark.skipif(not (os.path.exists(SSHD) and shutil.which("ssh-keygen")), reason="needs sshd")]


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """An sshd on a free 127.0.0.1 port that admits one key (`good`) as the current user; a bare repo."""
    base = tmp_path_factory.mktemp("sshd")
    host, good, other = keygen(base / "host"), keygen(base / "good"), keygen(base / "other")
    (base / "authorized_keys").write_text((base / "good.pub").read_text())
    run("git", "init", "-q", "--bare", "--initial-branch=main", base / "repo.git")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (base / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nPidFile {base}/sshd.pid\n"
        f"AuthorizedKeysFile {base}/authorized_keys\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        f"UsePAM no\nStrictModes no\n")
    Path("/run/sshd").mkdir(exist_ok=True)
    proc = subprocess.Popen([SSHD, "-D", "-f", str(base / "sshd_config"), "-E", str(base / "sshd.log")])
    deadline = time.monotonic() + 10
    while True:  # wait until it accepts connections (a readiness check, not a sleep)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"sshd did not start: {(base / 'sshd.log').read_text()}")
            time.sleep(0.05)
    user = os.environ.get("USER") or __import__("pwd").getpwuid(os.getuid()).pw_name
    host_line = f"[127.0.0.1]:{port} " + " ".join((base / "host.pub").read_text().split()[:2])
    wrong_line = f"[127.0.0.1]:{port} " + " ".join((base / "other.pub").read_text().split()[:2])
    yield {"base": base, "port": port, "good": good, "other": other, "host_line": host_line,
           "wrong_line": wrong_line, "url": f"ssh://{user}@127.0.0.1:{port}{base}/repo.git",
           "missing": f"ssh://{user}@127.0.0.1:{port}{base}/nope.git"}
    proc.terminate()
    proc.wait(timeout=10)


def ls_remote(sshd, url, key, known_hosts: str) -> str:
    """git's real stderr for one connection attempt with a strict known_hosts."""
    kh = sshd["base"] / f"kh-{abs(hash(known_hosts))}"
    kh.write_text(known_hosts)
    env = {**os.environ, "GIT_SSH_COMMAND": f"ssh -i {key} -o IdentitiesOnly=yes -o BatchMode=yes "
                                            f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={kh}"}
    result = subprocess.run(["git", "ls-remote", url], capture_output=True, text=True, env=env, timeout=60)
    return result.stderr if result.returncode else ""


def test_each_real_failure_is_named_with_what_to_do(sshd):
    good, trusted = sshd["good"], sshd["host_line"] + "\n"
    assert ls_remote(sshd, sshd["url"], good, trusted) == ""  # the setup works: failures below are the cases'
    cases = {
        "auth": (ls_remote(sshd, sshd["url"], sshd["other"], trusted), "refused the SSH key: check keys.ssh"),
        "host-key-unknown": (ls_remote(sshd, sshd["url"], good, ""), "unknown host key for 127.0.0.1"),
        "host-key-changed": (ls_remote(sshd, sshd["url"], good, sshd["wrong_line"] + "\n"),
                             "host key of 127.0.0.1"),
        "not-found": (ls_remote(sshd, sshd["missing"], good, trusted), "no repository at"),
        "no-connection": (ls_remote(sshd, "ssh://127.0.0.1:9/x.git", good, trusted), "cannot connect to"),
    }
    for kind, (stderr, advice) in cases.items():
        assert stderr, kind
        assert git_failure_kind(stderr) == kind, (kind, stderr)
        message = explain_git_failure(stderr, sshd["url"], action="fetch", key_setting="keys.ssh in pv.yaml")
        assert advice in message and "\n" not in message, (kind, message)
        assert "and the repository exists" not in message  # git's generic epilogue is never the message


def test_pv_epoch_says_the_pr_refused_its_key(sshd, tmp_path):
    """A PV whose SSH key the PR server does not know: `pds pv epoch` exits 1 and says what to check."""
    pv = tmp_path / "pv"
    made = run(*PDS, "pv", "init", pv, "--origin", "pv9.example", "--pr", sshd["url"], "--no-pin")
    assert made.returncode == 0, made.stderr
    doc = yaml.safe_load((pv / "pv.yaml").read_text())
    assert doc["pr"]["url"] == sshd["url"]
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "known_hosts").write_text(sshd["host_line"] + "\n")
    result = run(*PDS, "pv", "epoch", "--config", pv / "pv.yaml", check=False, env={**os.environ, "HOME": str(home)})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "refused the SSH key: check keys.ssh in pv.yaml" in result.stderr, result.stderr
    assert sshd["url"] in result.stderr and "and the repository exists" not in result.stderr
