"""The PR's receive hooks.

pre-receive (the gate; a refused push changes nothing):

* ``refs/heads/<branch>`` (the plugin branch, from the policy): no deletion, fast-forward only,
  and every new commit passes `pds_log.infra.commit_check.check_commit` at the time of the push;
  a push changes at most `MAX_PUSH_FILES` files in all (sizes are read from object headers,
  never by inflating a blob);
* ``refs/heads/pvs/<origin>``: only for an origin the policy names; no deletion, fast-forward
  only (its first commit may be an orphan), every new commit signed by that PV's key and
  touching only ``pvs/<origin>/``; and the commit the ref ends up at must itself be such a
  commit, even when the push brings no new commit (``git push PR <existing sha>:pvs/<x>``
  would otherwise create or move an area with no check at all). This is what gitolite's
  per-PV ``RW`` rules give; the embedded default enforces it here;
* any other ref is refused.

The policy in effect is the one at the branch tip. If that one does not parse (a commit
planted into the repository behind the hook's back, as a compromised server could), the
hook falls back to the newest first-parent ancestor whose policy parses, so that an admin
can still push the repair; the PVs never trust the PR's history this way (pds_log.pv.epoch).

Each refused commit gets one line naming the commit and the path: ``refused <id>: <path>:
<reason>``. A commit refused only because of some of the plugins it touches also gets one
``refused plugin <name>`` line per bad plugin and a line naming the plugins that pass and how
to push them without the bad ones (a git push is atomic: the hook cannot take part of it).
Any unexpected error refuses the push (fail closed).

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
from pds_log.core.policy import POLICY_PATH, Policy
from pds_log.core.pr_layout import DEFAULT_LAYOUT, plugin_dir
from pds_log.infra.commit_check import (
    MAX_COMMIT_FILES,
    CommitVerdict,
    check_commit,
    check_pv_area_commit,
    policy_at,
    usable_policy,
)
from pds_log.infra.gittree import commit_at

ZERO = "0" * 40
PV_REF_PREFIX = "refs/heads/pvs/"
MAX_PUSH_FILES = MAX_COMMIT_FILES  # changed files over all the commits of one push
POLICY_FALLBACK_DEPTH = 1000  # ancestors tried when the tip's policy does not parse


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
    commits = new_commits(repo, update)
    if update.ref == branch:
        return _check_branch_commits(repo, update, commits, branch_policy, now)
    return _check_pv_area_update(repo, update, commits, branch_policy, now)


def _check_branch_commits(repo: pygit2.Repository, update: RefUpdate, commits: list[pygit2.Commit],
                          branch_policy: Policy | None, now: int) -> list[str]:
    """check_update's refusal lines for the new commits of the plugin branch."""
    lines: list[str] = []
    # Each commit is judged against the policy in effect before it: the branch's, then the
    # one each accepted commit of this push sets (the same as "its parent's" when the
    # branch's history is sound, and still usable when a planted tip's policy is not).
    policy, budget = branch_policy, MAX_PUSH_FILES
    for commit in commits:
        verdict = check_commit(repo, commit, when=now, policy=policy if commit.parents else None,
                               max_files=min(budget, MAX_COMMIT_FILES))
        if verdict.over_limit:
            lines.append(f"refused {update.ref}: the push changes more than {MAX_PUSH_FILES} files "
                         f"(commit {str(commit.id)[:12]} and those before it); split it into smaller pushes")
            break
        budget -= len(verdict.paths)
        if not verdict.ok:
            lines.extend(_lines(verdict, policy.layout if policy is not None else DEFAULT_LAYOUT))
        elif POLICY_PATH in verdict.paths or not commit.parents:
            policy = policy_at(repo, commit)
    return lines


def _check_pv_area_update(repo: pygit2.Repository, update: RefUpdate, commits: list[pygit2.Commit],
                          branch_policy: Policy | None, now: int) -> list[str]:
    """check_update's refusal lines for an update of a PV's area, refs/pv/<origin>."""
    lines: list[str] = []
    origin = update.ref[len(PV_REF_PREFIX):]
    if branch_policy is None:
        return [f"refused {update.ref}: no policy yet"]
    if origin not in {p.origin for p in branch_policy.pvs}:
        return [f"refused {update.ref}: the policy names no PV {origin!r}; only a PV's own key may "
                f"create or move its area"]
    tip = repo.get(update.new)
    if not isinstance(tip, pygit2.Commit):
        return [f"refused {update.ref}: {update.new[:12]} is not a commit"]
    for commit in commits:
        verdict = check_pv_area_commit(repo, commit, origin, branch_policy, now)
        if not verdict.ok:
            lines.extend(_lines(verdict))
    if tip.id not in {c.id for c in commits}:
        # An existing commit (another area's, the plugin branch's, an old one of this area):
        # the ref may point at it only if it is a commit this PV could have pushed itself.
        verdict = check_pv_area_commit(repo, tip, origin, branch_policy, now)
        if not verdict.ok:
            lines.append(f"refused {update.ref}: existing commit {update.new[:12]} is not a commit of PV "
                         f"{origin}'s area: {'; '.join(verdict.reasons)}")
    return lines


def _lines(verdict: CommitVerdict, layout: int = DEFAULT_LAYOUT) -> list[str]:
    """The refusal line of a commit; when only some of the plugins it touches are bad, also one
    line per bad plugin and how to push the good ones apart (git takes a push whole or not at
    all, so the hook cannot accept part of it)."""
    lines = [verdict.line()]
    split = verdict.refused_alone()
    if split is None:
        return lines
    bad, good = split
    short = verdict.commit[:12]
    for name in bad:
        lines.append(f"refused plugin {name} (commit {short}): {'; '.join(verdict.plugin_reasons[name])}")
    paths = " ".join(plugin_dir(name, layout) for name in bad)
    lines.append(f"the other {len(good)} plugin(s) of commit {short} pass the PR's checks ({', '.join(good)}), but a "
                 f"push is accepted or refused whole: leave out {', '.join(bad)} and push again, e.g. for the last "
                 f"commit: git reset --soft HEAD~1 && git restore --staged {paths} && git commit -S -C ORIG_HEAD "
                 f"&& git push; then fix and push {', '.join(bad)} on its own")
    return lines


def _current_policy(repo: pygit2.Repository) -> Policy | None:
    """The policy in effect on the plugin branch before this push (see the module docstring)."""
    for name in ("refs/heads/main", *[r for r in repo.references if r.startswith("refs/heads/") and
                                       not r.startswith(PV_REF_PREFIX)]):
        if name in repo.references:
            commit = commit_at(repo, repo.references[name].target)
            policy, _ = usable_policy(repo, commit, POLICY_FALLBACK_DEPTH)
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


def _head_on_plugin_branch(repo_path: str) -> None:
    """HEAD on the policy's branch (gitolite made the repo with HEAD on master); never fails the push."""
    from .gitolite import point_head_at

    try:
        policy = _current_policy(open_repo(repo_path))
        if policy is not None and (changed := point_head_at(repo_path, policy.branch)):
            print(f"pds: {changed}", file=sys.stderr)
    except Exception as exc:  # noqa: BLE001 - the push is accepted already
        print(f"pds: could not point HEAD at the plugin branch ({type(exc).__name__}: {exc})", file=sys.stderr)


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
        _head_on_plugin_branch(repo_path)
        sys.exit(0)
    print(f"pds hook: unknown hook {kind!r}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
    main()
