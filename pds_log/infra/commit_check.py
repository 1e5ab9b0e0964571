"""Checking one PR commit against the policy in effect before it (role-neutral).

Used by the PR's receive hook (at the time of the push) and, independently, by every PV (at
the time it sees the commit): a PV never trusts that the PR's hook ran.

Rules for a commit on the plugin branch, judged against ``pds/policy.yaml`` of its parent (the
root commit: against its own policy, and it must be signed by one of that policy's admins):

* exactly one parent (merge commits are refused: rebase instead);
* an SSH signature (namespace ``git``) that verifies, by a key in the policy, not revoked;
* every changed path is allowed to the signer: a plugin's files (``plugins/<name>/...`` in PR
  layout 1, ``plugins/<label>/.../<label>/+/...`` in layout 2, pds_log.core.pr_layout) need a
  developer key, valid at the check time, whose namespaces cover <name>; ``pds/...`` and
  anything outside ``plugins/`` need an admin key; ``pvs/...`` never belongs on the plugin
  branch;
* a commit that changes the layout moves every plugin unchanged (same directory tree ids):
  it is compared plugin by plugin (`pds_log.infra.prtree`), not file by file, so that the
  migration of a large PR is one commit under the file limits;
* every changed entry is a regular file (no symlink, no submodule), with a safe path and at
  most ``max_blob_bytes``; a commit changes at most `MAX_COMMIT_FILES` files;
* every plugin the commit touches still has a well-formed manifest whose pluglets exist and
  are eBPF ELF objects (or the plugin directory is gone entirely), and at most
  `MAX_PLUGIN_FILES` files of `MAX_PLUGIN_BYTES` bytes in all.

Sizes are always read from object headers (`blob_size`) before any blob is read: a 1 GiB
blob of zeros is a 1 MB pack, and inflating it to learn its size is the attack. Limits that
count (files per commit, per plugin) stop the walk as soon as they are exceeded, so a hostile
tree costs at most the limit.

The policy a commit is judged against is normally its parent's. A caller that knows better
passes `policy`: a PV passes the policy *in effect*, i.e. the one set by the last commit it
did not refuse, so that a refused (e.g. planted, unsigned) commit that rewrites
``pds/policy.yaml`` never changes the rules for the commits after it (see pds_log.pv.epoch).

A commit on a PV area (``refs/heads/pvs/<origin>``) must be signed by that PV's key and touch
only ``pvs/<origin>/...`` (checked by `check_pv_area_commit`).

The rules themselves are pure functions of plain data in pds_log.core.changes
(`judge_changes`, `judge_pv_area_changes`, `file_problem`); this module extracts a commit's
changes from git for them. `CommitVerdict` lives there too (imported here for the callers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Iterable

import pygit2

from pds_log.core.changes import (
    ChangeSet,
    CommitVerdict,
    FileChange,
    PluginContent,
    Relayout,
    judge_changes,
    judge_pv_area_changes,
    new_layout,
    usable_signer,
)
from pds_log.core.errors import FormatError, PdsError
from pds_log.core.policy import PLUGINS_DIR, POLICY_PATH, Policy
from pds_log.core.pr_layout import DEFAULT_LAYOUT, plugin_dir
from pds_log.infra.gittree import blob_at, commit_at, entry_name, tree_at
from pds_log.infra.prtree import list_plugins, plugin_entry, plugins_tree

REGULAR = (pygit2.GIT_FILEMODE_BLOB, pygit2.GIT_FILEMODE_BLOB_EXECUTABLE)
MAX_COMMIT_FILES = 10_000  # changed files in one commit (the hook also applies it to a whole push)
MAX_PLUGIN_FILES = 1_000  # files in one plugins/<name>/ directory
MAX_PLUGIN_BYTES = 64 << 20  # bytes of all the files of one plugin
MAX_POLICY_BYTES = 1 << 20
LAYOUT_FALLBACK_DEPTH = 1000  # ancestors tried for the layout when a commit's policy does not parse


def blob_size(repo: pygit2.Repository, oid: pygit2.Oid) -> int:
    """A blob's size from its object header, without inflating the blob."""
    try:
        _kind, size = repo.odb.read_header(oid)
    except (KeyError, ValueError, pygit2.GitError):
        raise FormatError(f"object {str(oid)[:12]} is missing from the repository") from None
    return size


@dataclass
class Change:
    path: str
    mode: int | None  # None = deleted
    oid: pygit2.Oid | None


def policy_bytes(repo: pygit2.Repository, commit: pygit2.Commit) -> bytes:
    """The bytes of ``pds/policy.yaml`` at `commit` (a regular file of bounded size), unparsed."""
    try:
        entry = commit.tree[POLICY_PATH]
    except KeyError:
        raise FormatError(f"commit {str(commit.id)[:12]} has no {POLICY_PATH}") from None
    where = f"{POLICY_PATH}@{str(commit.id)[:12]}"
    if entry.filemode not in REGULAR:
        raise FormatError(f"{where}: not a regular file")
    size = blob_size(repo, entry.id)
    if size > MAX_POLICY_BYTES:
        raise FormatError(f"{where}: {size} bytes, over the {MAX_POLICY_BYTES}-byte limit for a policy")
    return blob_at(repo, entry.id)


def policy_at(repo: pygit2.Repository, commit: pygit2.Commit) -> Policy:
    return Policy.parse(policy_bytes(repo, commit), f"{POLICY_PATH}@{str(commit.id)[:12]}")


_LAYOUTS: dict[pygit2.Oid, int] = {}  # policy blob -> its layout (content-addressed, so shared)


def layout_at(repo: pygit2.Repository, commit: pygit2.Commit) -> int:
    """The PR layout of `commit`'s tree: the ``layout`` of its own ``pds/policy.yaml``; when
    that one does not parse (a planted commit), of the newest first-parent ancestor's that
    does; layout 1 when none does."""
    try:
        blob = commit.tree[POLICY_PATH].id
    except KeyError:
        blob = None
    if blob is not None and blob in _LAYOUTS:
        return _LAYOUTS[blob]
    try:
        policy, source = usable_policy(repo, commit, LAYOUT_FALLBACK_DEPTH)
    except FormatError:
        return DEFAULT_LAYOUT
    if blob is not None and source == str(commit.id):
        if len(_LAYOUTS) > 1024:
            _LAYOUTS.clear()
        _LAYOUTS[blob] = policy.layout
    return policy.layout


class TooManyChanges(FormatError):
    """A commit changes more files than the caller allows (the walk stopped at the limit)."""


def usable_policy(repo: pygit2.Repository, commit: pygit2.Commit, depth: int) -> tuple[Policy, str]:
    """The policy at `commit`, else at its newest first-parent ancestor (at most `depth` back)
    where it parses; returns it and that commit's id. For a history that may hold a planted,
    unparseable policy; raises the first FormatError if none parses."""
    first_error: FormatError | None = None
    failed: set[pygit2.Oid] = set()  # policy blobs already found unusable (most commits share one)
    for _ in range(depth):
        try:
            blob = commit.tree[POLICY_PATH].id
        except KeyError:
            blob = None
        if blob is None or blob not in failed:
            try:
                return policy_at(repo, commit), str(commit.id)
            except FormatError as exc:
                first_error = first_error or exc
                if blob is not None:
                    failed.add(blob)
        if not commit.parents:
            break
        commit = commit.parents[0]
    raise first_error or FormatError(f"no usable {POLICY_PATH} within {depth} commits")


class PolicyChain:
    """The rule for which PR policy judges a commit, in one place for the PV and the auditor.

    Walk the PR's new commits in order. Each is judged against the policy *in effect*: the
    ``pds/policy.yaml`` of the last commit that was not refused and set it (the root commit
    judges itself). A refused commit never moves it, so a planted commit cannot change the
    rules for the commits after it. `source` is the id of the commit whose policy is in effect
    (None before the root); the PV records it per epoch as ``pr_policy``."""

    def __init__(self, repo: pygit2.Repository, source: str | None) -> None:
        self.repo = repo
        self.source = source
        self.policy: Policy | None = None
        self.problem = "the PR's root commit was refused"
        if source is not None:
            try:
                self.policy = policy_at(repo, commit_at(repo, source))
            except (PdsError, KeyError, ValueError) as exc:  # FormatError included
                self.problem = str(exc)

    def judge(self, commit: pygit2.Commit, when: int) -> tuple[CommitVerdict, str | None]:
        """The verdict on `commit`, and the id of the commit whose policy gave it; moves the
        policy in effect when the commit is accepted and sets one."""
        judged_by = self.source if commit.parents else str(commit.id)
        verdict = CommitVerdict(str(commit.id))
        if commit.parents and self.policy is None:
            verdict.refuse(f"no usable PR policy in effect: {self.problem}")
            return verdict, judged_by
        try:
            verdict = check_commit(self.repo, commit, when=when, policy=self.policy if commit.parents else None)
        except (PdsError, ValueError, RecursionError) as exc:  # defence in depth: refuse, never halt
            verdict.refuse(f"cannot be checked: {type(exc).__name__}: {str(exc)[:300]}")
        if verdict.ok and (not commit.parents or POLICY_PATH in verdict.paths):
            try:
                self.policy, self.source = policy_at(self.repo, commit), str(commit.id)
            except PdsError as exc:  # cannot happen: check_commit parsed it; stay on the old one
                verdict.refuse(str(exc))
        return verdict, judged_by

    @staticmethod
    def verdict_with(repo: pygit2.Repository, commit: pygit2.Commit, judged_by: str | None,
                     when: int) -> CommitVerdict:
        """Re-judge one commit at another time with the policy that judged it (key expiry)."""
        chain = PolicyChain(repo, judged_by)
        if not commit.parents:
            chain.source = None
        return chain.judge(commit, when)[0]


def follow_plugins(verdict: CommitVerdict, touched: Iterable[str], source_of: dict[str, str],
                   tainted: dict[str, str]) -> None:
    """The taint rule, for the PV and the auditor alike: the last commit touching a plugin gives
    its source when accepted, or taints it when refused, until a later accepted commit touches
    it again."""
    for name in touched:
        if verdict.ok:
            tainted.pop(name, None)
            source_of[name] = verdict.commit
        else:
            tainted[name] = f"commit {verdict.commit[:12]} refused: {'; '.join(verdict.reasons)}"


def changes(repo: pygit2.Repository, commit: pygit2.Commit, limit: int | None = None,
            skip: frozenset[str] = frozenset()) -> list[Change]:
    """Every file added, modified, deleted or retyped by a commit, against its first parent,
    leaving out the top-level entries in `skip`. Only subtrees whose ids differ are opened.

    With `limit`, raises TooManyChanges as soon as more than `limit` files have changed."""
    old = commit.parents[0].tree if commit.parents else None
    out: list[Change] = []
    _diff_trees(repo, old, commit.tree, "", out, limit, skip)
    return out


def _diff_trees(repo, old: pygit2.Tree | None, new: pygit2.Tree | None, prefix: str, out: list[Change],
                limit: int | None = None, skip: frozenset[str] = frozenset()) -> None:
    if limit is not None and len(out) > limit:
        raise TooManyChanges(f"the commit changes more than {limit} files")
    old_entries = {entry_name(e): e for e in old} if old is not None else {}
    new_entries = {entry_name(e): e for e in new} if new is not None else {}
    for name in sorted((old_entries.keys() | new_entries.keys()) - skip):
        a, b = old_entries.get(name), new_entries.get(name)
        if a is not None and b is not None and a.id == b.id and a.filemode == b.filemode:
            continue
        path = prefix + name
        a_sub = tree_at(repo, a.id) if a is not None and a.filemode == pygit2.GIT_FILEMODE_TREE else None
        b_sub = tree_at(repo, b.id) if b is not None and b.filemode == pygit2.GIT_FILEMODE_TREE else None
        a_tree, b_tree = a_sub is not None, b_sub is not None
        if a_tree or b_tree:
            _diff_trees(repo, a_sub, b_sub, path + "/", out, limit)
            if a is not None and not a_tree:
                out.append(Change(path, None, None))
            if b is not None and not b_tree:
                out.append(Change(path, b.filemode, b.id))
        elif b is None:
            out.append(Change(path, None, None))
        else:
            out.append(Change(path, b.filemode, b.id))
        if limit is not None and len(out) > limit:
            raise TooManyChanges(f"the commit changes more than {limit} files")


def _file_changes(repo: pygit2.Repository, changed: list[Change]) -> list[FileChange]:
    """`changed` with the size of each regular file, from its object header."""
    return [FileChange(c.path, c.mode, blob_size(repo, c.oid) if c.mode in REGULAR and c.oid is not None else 0)
            for c in changed]


def read_plugin_tree(repo: pygit2.Repository, tree: pygit2.Tree, base: str,
                     max_file_bytes: int | None = None) -> tuple[dict[str, bytes], str | None]:
    """The regular files under a plugin's tree, or why they are unusable: a symlink or
    submodule, more than MAX_PLUGIN_FILES entries, a file over `max_file_bytes`, or more than
    MAX_PLUGIN_BYTES in all. Every size comes from the object header before the blob is read."""
    files: dict[str, bytes] = {}
    total = entries = 0
    stack = [("", tree)]
    while stack:
        prefix, sub = stack.pop()
        for item in sub:
            path = prefix + entry_name(item)
            entries += 1
            if entries > MAX_PLUGIN_FILES:
                return files, f"{base}: more than {MAX_PLUGIN_FILES} files"
            if item.filemode == pygit2.GIT_FILEMODE_TREE:
                stack.append((path + "/", tree_at(repo, item.id)))
            elif item.filemode in REGULAR:
                size = blob_size(repo, item.id)
                if max_file_bytes is not None and size > max_file_bytes:
                    return files, f"{base}/{path}: {size} bytes, over the {max_file_bytes}-byte limit"
                total += size
                if total > MAX_PLUGIN_BYTES:
                    return files, f"{base}: larger than {MAX_PLUGIN_BYTES} bytes"
                files[path] = blob_at(repo, item.id)
            else:
                kind = "symlink" if item.filemode == pygit2.GIT_FILEMODE_LINK else "submodule"
                return files, f"{base}/{path}: {kind} not allowed"
    return files, None


def _usable_signer(commit: pygit2.Commit, policy: Policy, verdict: CommitVerdict, when: int) -> str | None:
    signature, payload = commit.gpg_signature
    return usable_signer(signature, payload, policy, when, verdict)


def _policy_change(repo: pygit2.Repository, commit: pygit2.Commit) -> tuple[bytes | None, str | None]:
    try:
        return policy_bytes(repo, commit), None
    except FormatError as exc:
        return None, str(exc)


def change_set(repo: pygit2.Repository, commit: pygit2.Commit, changed: list[Change],
               max_file_bytes: int, layout: int = DEFAULT_LAYOUT, relayout: Relayout | None = None) -> ChangeSet:
    """The git side of the rules: a commit's changes as plain data for core.changes (sizes
    from object headers; a touched plugin's files read only when the judge asks for them,
    in `layout`, the layout of the commit's tree)."""
    files = _file_changes(repo, changed)
    policy_text = policy_problem = None
    if any(c.path == POLICY_PATH for c in changed):
        policy_text, policy_problem = _policy_change(repo, commit)
    return ChangeSet(files, _PluginTrees(repo, commit, max_file_bytes, layout), root=not commit.parents,
                     policy_text=policy_text, policy_problem=policy_problem, relayout=relayout)


def _relayout(repo: pygit2.Repository, commit: pygit2.Commit, old: int, new: int) -> Relayout:
    """Every plugin before (layout `old`) and after (layout `new`) a layout-changing commit."""
    parent = plugins_tree(repo, commit.parents[0].tree) if commit.parents else None
    before = list_plugins(repo, parent, old)
    after = list_plugins(repo, plugins_tree(repo, commit.tree), new)
    return Relayout({n: str(e.id) for n, e in before.entries.items()},
                    {n: str(e.id) for n, e in after.entries.items()}, after.stray)


class _PluginTrees(Mapping[str, PluginContent]):
    """The plugins' directories of a commit's tree, read on access (only the touched plugins
    are), in the layout of that tree."""

    def __init__(self, repo: pygit2.Repository, commit: pygit2.Commit, max_file_bytes: int, layout: int) -> None:
        self.repo, self.commit, self.max_file_bytes, self.layout = repo, commit, max_file_bytes, layout

    def __getitem__(self, name: str) -> PluginContent:
        entry = plugin_entry(self.commit.tree, name, self.layout)
        base = plugin_dir(name, self.layout)
        if entry is None:
            return PluginContent(deleted=True)
        if entry.filemode != pygit2.GIT_FILEMODE_TREE:
            return PluginContent(problem=f"{base}: must be a directory")
        files, problem = read_plugin_tree(self.repo, tree_at(self.repo, entry.id), base, self.max_file_bytes)
        return PluginContent(files=files, problem=problem)

    def _names(self) -> list[str]:
        return sorted(list_plugins(self.repo, plugins_tree(self.repo, self.commit.tree), self.layout).entries)

    def __iter__(self):
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())


def check_commit(repo: pygit2.Repository, commit: pygit2.Commit, when: int,
                 policy: Policy | None = None, max_files: int = MAX_COMMIT_FILES) -> CommitVerdict:
    """Check a plugin-branch commit (rules: pds_log.core.changes.judge_changes); `policy`
    defaults to the one at its parent. A commit changing more than `max_files` files is refused
    without looking further."""
    verdict = CommitVerdict(str(commit.id))
    if len(commit.parents) > 1:
        verdict.refuse("merge commit: rebase onto the branch instead")
        return verdict
    try:
        if policy is None:
            policy = policy_at(repo, commit.parents[0] if commit.parents else commit)
    except FormatError as exc:
        verdict.refuse(f"no usable policy: {exc}")
        return verdict
    key = _usable_signer(commit, policy, verdict, when)
    if key is None:
        return verdict
    layouts = (policy.layout, _commit_layout(repo, commit, policy))
    relayout = _relayout(repo, commit, *layouts) if layouts[0] != layouts[1] else None
    try:  # a layout change is compared plugin by plugin (relayout), not file by file
        changed = changes(repo, commit, limit=max_files, skip=frozenset({PLUGINS_DIR} if relayout else ()))
    except TooManyChanges:
        judge_changes(ChangeSet([], {}, root=not commit.parents), key, policy, when, verdict)
        verdict.refuse(f"changes more than {max_files} files")
        verdict.over_limit = True
        return verdict
    verdict.paths = [c.path for c in changed]
    return judge_changes(change_set(repo, commit, changed, policy.max_blob_bytes, layouts[1], relayout),
                         key, policy, when, verdict)


def _commit_layout(repo: pygit2.Repository, commit: pygit2.Commit, policy: Policy) -> int:
    """The layout the rules read `commit`'s tree in (core.changes.new_layout): its new
    policy's when it changes one that parses, else that of the judging `policy`."""
    parent_blob = None
    if commit.parents:
        try:
            parent_blob = commit.parents[0].tree[POLICY_PATH].id
        except KeyError:
            pass
    try:
        own_blob = commit.tree[POLICY_PATH].id
    except KeyError:
        return policy.layout
    if own_blob == parent_blob:
        return policy.layout
    text, problem = _policy_change(repo, commit)
    return new_layout(ChangeSet([], {}, policy_text=text, policy_problem=problem), policy)


def check_pv_area_commit(repo: pygit2.Repository, commit: pygit2.Commit, origin: str, policy: Policy,
                         when: int) -> CommitVerdict:
    """A commit on refs/heads/pvs/<origin>: signed by that PV, touching only pvs/<origin>/
    (rules: pds_log.core.changes.judge_pv_area_changes)."""
    verdict = CommitVerdict(str(commit.id))
    if len(commit.parents) > 1:
        verdict.refuse("merge commit in a PV area")
        return verdict
    key = _usable_signer(commit, policy, verdict, when)
    if key is None:
        return verdict
    try:
        changed = changes(repo, commit, limit=MAX_COMMIT_FILES)
    except TooManyChanges:
        judge_pv_area_changes(ChangeSet([], {}), key, origin, policy, verdict)
        verdict.refuse(f"changes more than {MAX_COMMIT_FILES} files")
        return verdict
    verdict.paths = [c.path for c in changed]
    files = _file_changes(repo, changed)
    return judge_pv_area_changes(ChangeSet(files, {}), key, origin, policy, verdict)
