"""Checking one PR commit against the policy in effect before it (role-neutral).

Used by the PR's receive hook (at the time of the push) and, independently, by every PV (at
the time it sees the commit): a PV never trusts that the PR's hook ran.

Rules for a commit on the plugin branch, judged against ``pds/policy.yaml`` of its parent (the
root commit: against its own policy, and it must be signed by one of that policy's admins):

* exactly one parent (merge commits are refused: rebase instead);
* an SSH signature (namespace ``git``) that verifies, by a key in the policy, not revoked;
* every changed path is allowed to the signer: ``plugins/<name>/...`` needs a developer key,
  valid at the check time, whose namespaces cover <name>; ``pds/...`` and anything outside
  ``plugins/`` need an admin key; ``pvs/...`` never belongs on the plugin branch;
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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import pygit2

from pds_log.core.commit_signature import SignatureProblem, signer_key
from pds_log.core.errors import FormatError, PdsError
from pds_log.core.manifest import check_pluglets, parse_plugin_manifest, validate_relative_path
from pds_log.core.names import is_valid_name
from pds_log.core.policy import PLUGINS_DIR, POLICY_PATH, PV_AREA_DIR, Policy, short_key

REGULAR = (pygit2.GIT_FILEMODE_BLOB, pygit2.GIT_FILEMODE_BLOB_EXECUTABLE)
MAX_COMMIT_FILES = 10_000  # changed files in one commit (the hook also applies it to a whole push)
MAX_PLUGIN_FILES = 1_000  # files in one plugins/<name>/ directory
MAX_PLUGIN_BYTES = 64 << 20  # bytes of all the files of one plugin
MAX_POLICY_BYTES = 1 << 20


def blob_size(repo: pygit2.Repository, oid: pygit2.Oid) -> int:
    """A blob's size from its object header, without inflating the blob."""
    try:
        _kind, size = repo.odb.read_header(oid)
    except (KeyError, ValueError, pygit2.GitError):
        raise FormatError(f"object {str(oid)[:12]} is missing from the repository") from None
    return size


@dataclass
class CommitVerdict:
    commit: str
    ok: bool = True
    signer: str | None = None  # the policy name of the signing key
    key: str | None = None
    reasons: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    # Refused because no key of the policy signed it (unsigned, bad or unverifiable signature,
    # unknown key): the PR's hook refuses that whenever it runs, so such a commit on the PR's
    # branch means the hook was bypassed (a PR-integrity alarm for the PVs).
    unverifiable: bool = False
    over_limit: bool = False  # refused for changing more files than allowed (not looked at further)

    def refuse(self, reason: str) -> None:
        self.ok = False
        if reason not in self.reasons:
            self.reasons.append(reason)

    def line(self) -> str:
        """One line per refused commit: `refused <id>: <reason>; <reason>...`."""
        return f"refused {self.commit[:12]}: {'; '.join(self.reasons)}"


@dataclass
class Change:
    path: str
    mode: int | None  # None = deleted
    oid: pygit2.Oid | None


def policy_at(repo: pygit2.Repository, commit: pygit2.Commit) -> Policy:
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
    return Policy.parse(repo[entry.id].data, where)


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
                self.policy = policy_at(repo, repo[source])
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


def changes(repo: pygit2.Repository, commit: pygit2.Commit, limit: int | None = None) -> list[Change]:
    """Every file added, modified, deleted or retyped by a commit, against its first parent.

    With `limit`, raises TooManyChanges as soon as more than `limit` files have changed."""
    old = commit.parents[0].tree if commit.parents else None
    out: list[Change] = []
    _diff_trees(repo, old, commit.tree, "", out, limit)
    return out


def _diff_trees(repo, old: pygit2.Tree | None, new: pygit2.Tree | None, prefix: str, out: list[Change],
                limit: int | None = None) -> None:
    if limit is not None and len(out) > limit:
        raise TooManyChanges(f"the commit changes more than {limit} files")
    old_entries = {e.name: e for e in old} if old is not None else {}
    new_entries = {e.name: e for e in new} if new is not None else {}
    for name in sorted(old_entries.keys() | new_entries.keys()):
        a, b = old_entries.get(name), new_entries.get(name)
        if a is not None and b is not None and a.id == b.id and a.filemode == b.filemode:
            continue
        path = prefix + name
        a_tree = a is not None and a.filemode == pygit2.GIT_FILEMODE_TREE
        b_tree = b is not None and b.filemode == pygit2.GIT_FILEMODE_TREE
        if a_tree or b_tree:
            _diff_trees(repo, repo[a.id] if a_tree else None, repo[b.id] if b_tree else None, path + "/", out,
                        limit)
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
            path = prefix + item.name
            entries += 1
            if entries > MAX_PLUGIN_FILES:
                return files, f"{base}: more than {MAX_PLUGIN_FILES} files"
            if item.filemode == pygit2.GIT_FILEMODE_TREE:
                stack.append((path + "/", repo[item.id]))
            elif item.filemode in REGULAR:
                size = blob_size(repo, item.id)
                if max_file_bytes is not None and size > max_file_bytes:
                    return files, f"{base}/{path}: {size} bytes, over the {max_file_bytes}-byte limit"
                total += size
                if total > MAX_PLUGIN_BYTES:
                    return files, f"{base}: larger than {MAX_PLUGIN_BYTES} bytes"
                files[path] = repo[item.id].data
            else:
                kind = "symlink" if item.filemode == pygit2.GIT_FILEMODE_LINK else "submodule"
                return files, f"{base}/{path}: {kind} not allowed"
    return files, None


def _signer(commit: pygit2.Commit, policy: Policy, verdict: CommitVerdict) -> str | None:
    """The key that validly signed the commit (recorded in the verdict), or None (refused)."""
    signature, payload = commit.gpg_signature
    try:
        key = signer_key(signature, payload)
    except SignatureProblem as exc:
        verdict.refuse(str(exc))
        verdict.unverifiable = True
        return None
    verdict.key, verdict.signer = key, policy.name_of(key)
    return key


def _usable_signer(commit: pygit2.Commit, policy: Policy, verdict: CommitVerdict, when: int) -> str | None:
    """The signer's key if it is known, unrevoked and valid at `when` (the push), else None (refused)."""
    key = _signer(commit, policy, verdict)
    if key is None:
        return None
    problem = policy.key_problem(key, when)
    if problem:
        verdict.refuse(problem)
        verdict.unverifiable = not policy.principals_for(key)
        return None
    return key


def check_commit(repo: pygit2.Repository, commit: pygit2.Commit, when: int,
                 policy: Policy | None = None, max_files: int = MAX_COMMIT_FILES) -> CommitVerdict:
    """Check a plugin-branch commit; `policy` defaults to the one at its parent. A commit
    changing more than `max_files` files is refused without looking further."""
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
    if not commit.parents and not policy.is_admin(key):
        verdict.refuse(f"root commit must be signed by an admin of its own policy, not {verdict.signer}")
    touched_plugins: set[str] = set()
    namespace_refusals: dict[tuple[str, str], list[str]] = {}
    try:
        changed = changes(repo, commit, limit=max_files)
    except TooManyChanges:
        verdict.refuse(f"changes more than {max_files} files")
        verdict.over_limit = True
        return verdict
    for change in changed:
        path = change.path
        verdict.paths.append(path)
        parts = path.split("/")
        try:
            validate_relative_path(path, path)
        except FormatError as exc:
            verdict.refuse(str(exc))
            continue
        if change.mode is not None:
            if change.mode == pygit2.GIT_FILEMODE_LINK:
                verdict.refuse(f"{path}: symlinks are not allowed")
            elif change.mode == pygit2.GIT_FILEMODE_COMMIT:
                verdict.refuse(f"{path}: submodules are not allowed")
            elif change.mode not in REGULAR:
                verdict.refuse(f"{path}: unsupported file mode {change.mode:o}")
            else:
                size = blob_size(repo, change.oid)
                if size > policy.max_blob_bytes:
                    verdict.refuse(f"{path}: {size} bytes, over the {policy.max_blob_bytes}-byte limit")
        if parts[0] == PLUGINS_DIR and len(parts) >= 3:
            name = parts[1]
            if not is_valid_name(name):
                verdict.refuse(f"{path}: invalid plugin name {name!r}")
                continue
            reason = policy.may_write_plugin(key, name, when)
            if reason:
                namespace_refusals.setdefault((name, reason), []).append(path)
            touched_plugins.add(name)
        elif parts[0] == PLUGINS_DIR:
            verdict.refuse(f"{path}: files directly under plugins/ are not allowed (use plugins/<name>/...)")
        elif parts[0] == PV_AREA_DIR:
            verdict.refuse(f"{path}: PV areas live on refs/heads/pvs/<origin>, not on the plugin branch")
        elif not policy.is_admin(key):
            what = "the policy" if path.startswith("pds/") else "files outside plugins/"
            verdict.refuse(f"{path}: signer {verdict.signer or short_key(key)} is not an admin and may not change {what}")
    for (name, reason), paths in namespace_refusals.items():
        where = paths[0] if len(paths) == 1 else f"plugins/{name}/ ({len(paths)} files)"
        verdict.refuse(f"{where}: {reason}")
    if POLICY_PATH in verdict.paths:
        try:
            policy_at(repo, commit)
        except FormatError as exc:
            verdict.refuse(str(exc))
    if touched_plugins:
        try:
            plugins = {e.name: e for e in repo[commit.tree[PLUGINS_DIR].id]}
        except KeyError:
            plugins = {}
        for name in sorted(touched_plugins):
            _check_plugin(repo, plugins.get(name), name, verdict, policy.max_blob_bytes)
    return verdict


def _check_plugin(repo, entry, name, verdict, max_file_bytes: int) -> None:
    base = f"{PLUGINS_DIR}/{name}"
    if entry is None:
        return  # the plugin was deleted
    if entry.filemode != pygit2.GIT_FILEMODE_TREE:
        verdict.refuse(f"{base}: must be a directory")
        return
    files, problem = read_plugin_tree(repo, repo[entry.id], base, max_file_bytes)
    if problem:
        verdict.refuse(problem)
        return
    try:
        manifest = parse_plugin_manifest(files, name)
    except FormatError as exc:
        verdict.refuse(f"{base}: malformed manifest: {exc}")
        return
    except (ValueError, RecursionError) as exc:  # a parser that let its own error escape
        verdict.refuse(f"{base}: malformed manifest: {type(exc).__name__}: {str(exc)[:200]}")
        return
    for problem in check_pluglets(manifest, files, prefix=base + "/"):
        verdict.refuse(problem)


def check_pv_area_commit(repo: pygit2.Repository, commit: pygit2.Commit, origin: str, policy: Policy,
                         when: int) -> CommitVerdict:
    """A commit on refs/heads/pvs/<origin>: signed by that PV, touching only pvs/<origin>/."""
    verdict = CommitVerdict(str(commit.id))
    if len(commit.parents) > 1:
        verdict.refuse("merge commit in a PV area")
        return verdict
    key = _usable_signer(commit, policy, verdict, when)
    if key is None:
        return verdict
    if origin not in policy.pv_origin(key):
        verdict.refuse(f"only the key of PV {origin} may write its area (signer: {verdict.signer or short_key(key)})")
    prefix = f"{PV_AREA_DIR}/{origin}/"
    try:
        changed = changes(repo, commit, limit=MAX_COMMIT_FILES)
    except TooManyChanges:
        verdict.refuse(f"changes more than {MAX_COMMIT_FILES} files")
        return verdict
    for change in changed:
        verdict.paths.append(change.path)
        if not change.path.startswith(prefix):
            verdict.refuse(f"{change.path}: PV {origin} may write only under {prefix}")
        elif change.mode is not None and change.mode not in REGULAR:
            verdict.refuse(f"{change.path}: only regular files are allowed")
        elif change.mode is not None and blob_size(repo, change.oid) > policy.max_blob_bytes:
            verdict.refuse(f"{change.path}: over the {policy.max_blob_bytes}-byte limit")
    return verdict
