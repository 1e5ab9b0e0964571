"""The PR's receive hooks.

pre-receive (the gate; a refused push changes nothing):

* ``refs/heads/<branch>`` (the plugin branch, from the policy): no deletion, fast-forward only,
  and every new commit passes `pds_log.infra.commit_check.check_commit` at the time of the push;
* ``refs/heads/pvs/<origin>``: no deletion, fast-forward only (its first commit may be an
  orphan), every new commit signed by that PV's key and touching only ``pvs/<origin>/``;
* any other ref is refused.

Each refused commit gets one line naming the commit and the path: ``refused <id>: <path>:
<reason>``. Any unexpected error refuses the push (fail closed).

post-receive: notify the PVs' webhooks (pds_log.pr.notify); never fails the push.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from dataclasses import dataclass

import pygit2

from pds_log.core.errors import FormatError
from pds_log.core.policy import Policy
from pds_log.infra.commit_check import CommitVerdict, check_commit, check_pv_area_commit, policy_at

ZERO = "0" * 40
PV_REF_PREFIX = "refs/heads/pvs/"


@dataclass
class RefUpdate:
    old: str
    new: str
    ref: str


def parse_updates(text: str) -> list[RefUpdate]:
    updates = []
    for line in text.splitlines():
        if line.strip():
            old, new, ref = line.split()
            updates.append(RefUpdate(old, new, ref))
    return updates


def open_repo(path: str) -> pygit2.Repository:
    """The repository, seeing the objects of the push still in quarantine."""
    repo = pygit2.Repository(path)
    quarantine = os.environ.get("GIT_OBJECT_DIRECTORY")
    if quarantine and os.path.isdir(quarantine):
        repo.odb.add_disk_alternate(quarantine)
    return repo


def _is_zero(oid: str) -> bool:
    return set(oid) == {"0"}


def new_commits(repo: pygit2.Repository, update: RefUpdate) -> list[pygit2.Commit]:
    """Commits `new` brings that no existing ref already has, oldest first."""
    walker = repo.walk(pygit2.Oid(hex=update.new), pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.REVERSE)
    for ref in repo.references:
        if ref.startswith("refs/"):
            target = repo.references[ref].resolve().target
            if isinstance(repo.get(target), pygit2.Commit):
                walker.hide(target)
    return list(walker)


def check_update(repo: pygit2.Repository, update: RefUpdate, now: int) -> list[str]:
    """Refusal lines for one ref update (empty = accepted)."""
    try:
        branch_policy = _current_policy(repo)
    except FormatError as exc:
        return [f"refused {update.ref}: no usable policy on the plugin branch: {exc}"]
    branch = f"refs/heads/{branch_policy.branch if branch_policy else 'main'}"
    if update.ref != branch and not update.ref.startswith(PV_REF_PREFIX):
        return [f"refused {update.ref}: only {branch} and {PV_REF_PREFIX}<origin> may be pushed"]
    if _is_zero(update.new):
        return [f"refused {update.ref}: deleting a ref is not allowed"]
    if not _is_zero(update.old):
        old, new = pygit2.Oid(hex=update.old), pygit2.Oid(hex=update.new)
        if old != new and not repo.descendant_of(new, old):
            return [f"refused {update.ref}: non-fast-forward update ({update.old[:12]} is not an ancestor of "
                    f"{update.new[:12]}); history is append-only"]
    elif update.ref == branch and branch in repo.references:
        return [f"refused {update.ref}: the branch exists"]  # pragma: no cover - git sends the old id
    lines = []
    commits = new_commits(repo, update)
    if update.ref == branch:
        for commit in commits:
            verdict = check_commit(repo, commit, when=now)
            if not verdict.ok:
                lines.extend(_lines(verdict))
    else:
        origin = update.ref[len(PV_REF_PREFIX):]
        if branch_policy is None:
            return [f"refused {update.ref}: no policy yet"]
        for commit in commits:
            verdict = check_pv_area_commit(repo, commit, origin, branch_policy, now)
            if not verdict.ok:
                lines.extend(_lines(verdict))
    return lines


def _lines(verdict: CommitVerdict) -> list[str]:
    return [verdict.line()]


def _current_policy(repo: pygit2.Repository) -> Policy | None:
    """The policy at the tip of the plugin branch before this push."""
    for name in ("refs/heads/main", *[r for r in repo.references if r.startswith("refs/heads/") and
                                       not r.startswith(PV_REF_PREFIX)]):
        if name in repo.references:
            commit = repo[repo.references[name].target]
            policy = policy_at(repo, commit)
            if f"refs/heads/{policy.branch}" == name:
                return policy
    return None


def pre_receive(repo_path: str, stdin_text: str, now: int | None = None) -> tuple[int, list[str]]:
    now = int(time.time()) if now is None else now
    try:
        repo = open_repo(repo_path)
        lines: list[str] = []
        for update in parse_updates(stdin_text):
            lines.extend(check_update(repo, update, now))
    except Exception as exc:  # noqa: BLE001 - fail closed: an error in the gate refuses the push
        return 1, [f"refused: the PR hook failed ({type(exc).__name__}: {exc}); nothing was accepted",
                   *traceback.format_exc().splitlines()[-3:]]
    return (1 if lines else 0), lines


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    kind = argv[0] if argv else "pre-receive"
    repo_path = os.environ.get("GIT_DIR", ".")
    stdin_text = sys.stdin.read()
    if kind == "pre-receive":
        code, lines = pre_receive(repo_path, stdin_text)
        for line in lines:
            print(line, file=sys.stderr)
        if code:
            print(f"pds: push refused ({len(lines)} problem(s)); the repository is unchanged", file=sys.stderr)
        sys.exit(code)
    if kind == "post-receive":
        from .notify import notify_all

        for line in notify_all(repo_path, parse_updates(stdin_text)):
            print(line, file=sys.stderr)
        sys.exit(0)
    print(f"pds hook: unknown hook {kind!r}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
    main()
