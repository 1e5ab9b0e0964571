"""Creating SSH-signed git commits (what the PR accepts) without a work tree."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pygit2

from pds_log.core.errors import PdsError


def signed_commit(git_dir: str | Path, tree: pygit2.Oid | str, parents: list[str], message: str,
                  key: str | Path, name: str, email: str | None = None) -> pygit2.Oid:
    """`git commit-tree -S` with an SSH key (gpg.format=ssh, namespace git); returns the id."""
    args = ["git", "--git-dir", str(git_dir), "-c", "gpg.format=ssh", "-c", f"user.signingkey={key}",
            "commit-tree", "-S", str(tree), "-m", message]
    for parent in parents:
        args += ["-p", str(parent)]
    email = email or f"{name}@pds.invalid"
    env = dict(os.environ, GIT_AUTHOR_NAME=name, GIT_AUTHOR_EMAIL=email, GIT_COMMITTER_NAME=name,
               GIT_COMMITTER_EMAIL=email)
    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)
    if result.returncode != 0:
        raise PdsError(f"signing a commit with {key} failed: {result.stderr.strip()}")
    return pygit2.Oid(hex=result.stdout.strip())


def signing_config(key: str | Path) -> list[str]:
    """`git -c ...` options that make `git commit -S` sign with this SSH key."""
    return ["-c", "gpg.format=ssh", "-c", f"user.signingkey={key}", "-c", "commit.gpgsign=true"]
