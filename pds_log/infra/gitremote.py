"""Talking to remote git repositories (file paths or ssh) with the git CLI."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pygit2

from pds_log.core.errors import PdsError
from pds_log.infra.giterrors import connection_problem

FETCHED = "refs/pds/fetched"


def git_env(ssh_key: str | Path | None) -> dict[str, str]:
    """Environment for git over ssh with one identity and no prompt."""
    env = dict(os.environ)
    if ssh_key:
        env["GIT_SSH_COMMAND"] = (f"ssh -i {ssh_key} -o IdentitiesOnly=yes -o BatchMode=yes "
                                  f"-o StrictHostKeyChecking=accept-new")
    return env


def fetch_branch(url: str, dest: str | Path, branch: str = "main",
                 ssh_key: str | Path | None = None) -> tuple[pygit2.Repository, pygit2.Commit]:
    """Fetch `branch` of `url` into a (new or existing) bare repo at `dest`; returns the repo
    and the branch tip."""
    dest = Path(dest)
    if not (dest / "HEAD").exists():
        pygit2.init_repository(str(dest), bare=True)
    result = subprocess.run(["git", "--git-dir", str(dest), "fetch", "--quiet", url,
                             f"+refs/heads/{branch}:{FETCHED}"], capture_output=True, text=True,
                            env=git_env(ssh_key), timeout=300)
    if result.returncode != 0:
        raise PdsError(connection_problem(result.stderr, url, action=f"fetch {branch} from")
                       or f"cannot fetch {branch} from {url}: {result.stderr.strip()}")
    repo = pygit2.Repository(str(dest))
    return repo, repo[repo.references[FETCHED].target]


def push(git_dir: str | Path, url: str, commit: str, ref: str, ssh_key: str | Path | None = None) -> str:
    """Push `commit` to `ref`; raises PdsError carrying the remote's refusal lines."""
    result = subprocess.run(["git", "--git-dir", str(git_dir), "push", "--porcelain", url, f"{commit}:{ref}"],
                            capture_output=True, text=True, env=git_env(ssh_key), timeout=300)
    if result.returncode != 0:
        if why := connection_problem(result.stderr, url, action="push to"):
            raise PdsError(why)
        lines = [ln.removeprefix("remote: ").strip() for ln in result.stderr.splitlines()
                 if "refused" in ln or "error" in ln.lower() or "denied" in ln.lower() or "DENIED" in ln]
        raise PdsError("push refused:\n  " + "\n  ".join(lines or [result.stderr.strip()]))
    return result.stdout
