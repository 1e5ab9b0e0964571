"""The gitolite side of a production PR: the hooks as gitolite runs them, its rules, its HEAD.

gitolite runs repo-specific hooks as its own user (Debian's gitolite3: `gitolite3`, home
/var/lib/gitolite3), from `$LOCAL_CODE/hooks/repo-specific/`. So the hooks must be owned by
that user (gitolite links them into each repository and refuses what it cannot manage) and
their `#!` must name a Python that user can run with pds_log importable: a venv under /root,
where an admin typically installed pds, is neither. `write_gitolite_hooks` checks both.
"""

from __future__ import annotations

import os
import pwd
import re
import subprocess
import sys
from pathlib import Path

import pygit2

from pds_log.core.errors import PdsError
from pds_log.infra.files import atomic_write_text
from pds_log.infra.resources import template

HOOK_NAMES = ("pre-receive", "post-receive")
PYTHON_CHECK_TIMEOUT = 60


def write_gitolite_hooks(directory: str | Path, python: str | None = None, owner: str | None = None) -> list[Path]:
    """pds-pre-receive and pds-post-receive in `directory`, run by `python` (default: this
    one). With `owner` (the gitolite user), the hooks and the directories up to its home belong
    to it, and `python` is first checked to import pds_log as that user."""
    python = os.path.abspath(python or sys.executable)  # a venv's python is a symlink: keep it
    account = None
    if owner is not None:
        try:
            account = pwd.getpwnam(owner)
        except KeyError:
            raise PdsError(f"--owner {owner}: no such user") from None
        check_python_for(python, account)
    directory = Path(directory).absolute()
    made = [p for p in (directory, *directory.parents) if not p.exists()]
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in HOOK_NAMES:
        text = template("pr", "hooks", f"{name}.in").read_text().replace("@PYTHON@", python)
        target = directory / f"pds-{name}"
        atomic_write_text(target, text, mode=0o755)
        written.append(target)
    if account is not None:
        home = Path(account.pw_dir)
        owned = [*written, *made]
        owned += [p for p in (directory, *directory.parents) if p != home and p.is_relative_to(home)]
        for path in dict.fromkeys(owned):
            os.chown(path, account.pw_uid, account.pw_gid)
    return written


def check_python_for(python: str, account: pwd.struct_passwd) -> None:
    """Refuse a hook interpreter the gitolite user cannot run, or in which it cannot import
    pds_log (e.g. a venv under /root: its directories are closed to other users)."""
    if os.geteuid() != 0 and os.geteuid() != account.pw_uid:
        raise PdsError(f"--owner {account.pw_name}: run this as root or as {account.pw_name}")
    env = {"PATH": "/usr/bin:/bin", "HOME": account.pw_dir, "LANG": "C.UTF-8"}
    result: subprocess.CompletedProcess[str] | None = None
    try:
        result = subprocess.run([python, "-c", "import pds_log.pr.hook"], capture_output=True, text=True, env=env,
                                cwd="/", timeout=PYTHON_CHECK_TIMEOUT, user=account.pw_uid, group=account.pw_gid,
                                extra_groups=[])
    except (OSError, subprocess.SubprocessError) as exc:
        why = str(exc)
    else:
        why = (result.stderr.strip().splitlines() or ["exit status %d" % result.returncode])[-1]
    if result is None or result.returncode != 0:
        raise PdsError(f"user {account.pw_name} cannot run the hooks with {python} ({why}): install pds where "
                       f"every user can read it (e.g. `python3 -m venv /opt/pds && /opt/pds/bin/pip install ...`) "
                       f"and pass --python /opt/pds/bin/python")


_REPO_LINE = re.compile(r"^\s*repo\s+(.+?)\s*$")


def conf_repos(text: str) -> dict[str, list[str]]:
    """gitolite.conf's rule lines per repository name (`repo a b` names both)."""
    repos: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        stripped = line.split("#", 1)[0].strip()
        if m := _REPO_LINE.match(stripped):
            current = m.group(1).split()
            for name in current:
                repos.setdefault(name, [])
        elif stripped and current and not stripped.startswith(("@", "include", "subconf")):
            for name in current:
                repos[name].append(stripped)
    return repos


def merge_gitolite_conf(existing: str, rules: str) -> str:
    """`existing` (gitolite-admin's conf/gitolite.conf) with the PDS `rules` appended. Refuses to
    give rules twice for a repository, and to produce a conf that gives nobody RW+ on
    gitolite-admin: pushing that would lock the gitolite admin out of gitolite itself."""
    have, adding = conf_repos(existing), conf_repos(rules)
    if twice := sorted(set(have) & set(adding)):
        raise PdsError(f"the conf already has rules for repo {', '.join(twice)}: edit them by hand rather than "
                       f"merging the template again")
    admin_rules = have.get("gitolite-admin", []) + adding.get("gitolite-admin", [])
    if not any(rule.split()[0] == "RW+" for rule in admin_rules if rule.split()):
        raise PdsError("the conf gives nobody RW+ on repo gitolite-admin: pushing it would lock the gitolite "
                       "admin out (restore the 'repo gitolite-admin' rule that `gitolite setup` wrote)")
    return existing.rstrip("\n") + "\n\n" + rules.rstrip("\n") + "\n"


def merge_gitolite_conf_file(conf: str | Path, rules_file: str | Path | None = None) -> Path:
    conf = Path(conf)
    try:
        existing = conf.read_text(encoding="utf-8")
        rules = (Path(rules_file) if rules_file else template("gitolite", "gitolite.conf")).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PdsError(f"cannot read {exc.filename if isinstance(exc, OSError) else conf}: {exc}") from None
    atomic_write_text(conf, merge_gitolite_conf(existing, rules))
    return conf


def point_head_at(repo_path: str | Path, branch: str) -> str | None:
    """Make the repository's HEAD name `branch` once that branch exists (gitolite creates repos
    with HEAD on `master`, so a clone of the PR would check out nothing); returns what changed."""
    repo = pygit2.Repository(str(repo_path))
    ref = f"refs/heads/{branch}"
    if ref not in repo.references:
        return None
    head = repo.references.get("HEAD")
    if head is not None and head.type == pygit2.enums.ReferenceType.SYMBOLIC and head.target == ref:
        return None
    repo.references.create("HEAD", ref, force=True)
    return f"HEAD now names {ref}"
