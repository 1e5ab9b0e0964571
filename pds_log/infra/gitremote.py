"""Talking to remote git repositories (file paths or ssh) with the git CLI.

Every ssh connection pds makes checks the server's host key strictly against a known_hosts
file: an unknown key and a changed key are refused, never learnt (no trust on first use; see
security.md). A caller that pins its own file (a PV's `keys.known_hosts`) gets that file alone,
the system-wide list and any KnownHostsCommand switched off, and ssh never writes to it.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pygit2

from pds_log.core.errors import PdsError
from pds_log.infra.giterrors import connection_problem
from pds_log.infra.gittree import commit_at
from pds_log.infra.sshkeys import ssh_endpoint

FETCHED = "refs/pds/fetched"


def ssh_command(ssh_key: str | Path | None, known_hosts: str | Path | None = None) -> str:
    """The GIT_SSH_COMMAND: one identity (if given), strict host key checking, pinned hosts file
    (if given). ssh parses each -o value like a config line, so a path with blanks is quoted
    inside the option too."""
    args = ["ssh", "-o", "StrictHostKeyChecking=yes", "-o", "UpdateHostKeys=no"]
    if ssh_key:
        args += ["-i", str(ssh_key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"]
    if known_hosts:
        text = str(known_hosts)
        if any(c in text for c in "\"\n\r"):
            raise PdsError(f"known_hosts path {text!r}: a path with quotes or line breaks cannot be given to ssh")
        args += ["-o", f'UserKnownHostsFile="{text}"', "-o", "GlobalKnownHostsFile=/dev/null",
                 "-o", "KnownHostsCommand=none"]
    return " ".join(shlex.quote(a) for a in args)


def git_env(ssh_key: str | Path | None, known_hosts: str | Path | None = None) -> dict[str, str]:
    """Environment for git over ssh: strict host keys always; with a key, that one identity and
    no prompt; with `known_hosts`, that file only."""
    env = dict(os.environ)
    env["GIT_SSH_COMMAND"] = ssh_command(ssh_key, known_hosts)
    return env


def pinned_hosts_file(url: str, known_hosts: str | Path | None, setting: str) -> Path | None:
    """The known_hosts file ssh must check `url`'s server against: the one `setting` pins, else
    $HOME/.ssh/known_hosts (named explicitly: ssh itself would read the passwd entry's home,
    not $HOME). Refuses when that file does not exist; None for a URL that is not ssh."""
    if ssh_endpoint(url) is None:
        return None
    path = Path(known_hosts) if known_hosts else Path.home() / ".ssh" / "known_hosts"
    if not path.is_file():
        named = f"{setting} names {path}, which does not exist" if known_hosts else \
            f"{setting} is not set and {path} does not exist"
        raise PdsError(f"{url} is an SSH URL and its host key must be pinned, but {named}: record the server's "
                       f"key there (`pds pv init --trust-host-key` prints its fingerprint to check; or "
                       f"ssh-keyscan, checked out of band)")
    return path


def fetch_branch(url: str, dest: str | Path, branch: str = "main", ssh_key: str | Path | None = None,
                 known_hosts: str | Path | None = None) -> tuple[pygit2.Repository, pygit2.Commit]:
    """Fetch `branch` of `url` into a (new or existing) bare repo at `dest`; returns the repo
    and the branch tip."""
    dest = Path(dest)
    if not (dest / "HEAD").exists():
        pygit2.init_repository(str(dest), bare=True)
    result = subprocess.run(["git", "--git-dir", str(dest), "fetch", "--quiet", url,
                             f"+refs/heads/{branch}:{FETCHED}"], capture_output=True, text=True,
                            env=git_env(ssh_key, known_hosts), timeout=300)
    if result.returncode != 0:
        raise PdsError(connection_problem(result.stderr, url, action=f"fetch {branch} from",
                                          hosts_setting=str(known_hosts or "~/.ssh/known_hosts"))
                       or f"cannot fetch {branch} from {url}: {result.stderr.strip()}")
    repo = pygit2.Repository(str(dest))
    return repo, commit_at(repo, repo.references[FETCHED].target)


def push(git_dir: str | Path, url: str, commit: str, ref: str, ssh_key: str | Path | None = None,
         known_hosts: str | Path | None = None) -> str:
    """Push `commit` to `ref`; raises PdsError carrying the remote's refusal lines."""
    result = subprocess.run(["git", "--git-dir", str(git_dir), "push", "--porcelain", url, f"{commit}:{ref}"],
                            capture_output=True, text=True, env=git_env(ssh_key, known_hosts), timeout=300)
    if result.returncode != 0:
        if why := connection_problem(result.stderr, url, action="push to",
                                     hosts_setting=str(known_hosts or "~/.ssh/known_hosts")):
            raise PdsError(why)
        lines = [ln.removeprefix("remote: ").strip() for ln in result.stderr.splitlines()
                 if "refused" in ln or "error" in ln.lower() or "denied" in ln.lower() or "DENIED" in ln]
        raise PdsError("push refused:\n  " + "\n  ".join(lines or [result.stderr.strip()]))
    return result.stdout
