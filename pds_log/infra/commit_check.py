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
  most ``max_blob_bytes``;
* every plugin the commit touches still has a well-formed manifest whose pluglets exist and
  are eBPF ELF objects (or the plugin directory is gone entirely).

A commit on a PV area (``refs/heads/pvs/<origin>``) must be signed by that PV's key and touch
only ``pvs/<origin>/...`` (checked by `check_pv_area_commit`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pygit2

from pds_log.core.commit_signature import SignatureProblem, signer_key
from pds_log.core.errors import FormatError
from pds_log.core.manifest import check_pluglets, parse_plugin_manifest, validate_relative_path
from pds_log.core.names import is_valid_name
from pds_log.core.policy import PLUGINS_DIR, POLICY_PATH, PV_AREA_DIR, Policy, short_key

REGULAR = (pygit2.GIT_FILEMODE_BLOB, pygit2.GIT_FILEMODE_BLOB_EXECUTABLE)


@dataclass
class CommitVerdict:
    commit: str
    ok: bool = True
    signer: str | None = None  # the policy name of the signing key
    key: str | None = None
    reasons: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

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
    return Policy.parse(repo[entry.id].data, f"{POLICY_PATH}@{str(commit.id)[:12]}")


def changes(repo: pygit2.Repository, commit: pygit2.Commit) -> list[Change]:
    """Every file added, modified, deleted or retyped by a commit, against its first parent."""
    old = commit.parents[0].tree if commit.parents else None
    out: list[Change] = []
    _diff_trees(repo, old, commit.tree, "", out)
    return out


def _diff_trees(repo, old: pygit2.Tree | None, new: pygit2.Tree | None, prefix: str, out: list[Change]) -> None:
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
            _diff_trees(repo, repo[a.id] if a_tree else None, repo[b.id] if b_tree else None, path + "/", out)
            if a is not None and not a_tree:
                out.append(Change(path, None, None))
            if b is not None and not b_tree:
                out.append(Change(path, b.filemode, b.id))
        elif b is None:
            out.append(Change(path, None, None))
        else:
            out.append(Change(path, b.filemode, b.id))


def _plugin_files(repo: pygit2.Repository, tree: pygit2.Tree) -> dict[str, bytes] | None:
    files: dict[str, bytes] = {}
    stack = [("", tree)]
    while stack:
        prefix, sub = stack.pop()
        for item in sub:
            if item.filemode == pygit2.GIT_FILEMODE_TREE:
                stack.append((prefix + item.name + "/", repo[item.id]))
            elif item.filemode in REGULAR:
                files[prefix + item.name] = repo[item.id].data
            else:
                return None
    return files


def _signer(commit: pygit2.Commit, policy: Policy, verdict: CommitVerdict) -> str | None:
    """The key that validly signed the commit (recorded in the verdict), or None (refused)."""
    signature, payload = commit.gpg_signature
    try:
        key = signer_key(signature, payload)
    except SignatureProblem as exc:
        verdict.refuse(str(exc))
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
        return None
    return key


def check_commit(repo: pygit2.Repository, commit: pygit2.Commit, when: int,
                 policy: Policy | None = None) -> CommitVerdict:
    """Check a plugin-branch commit; `policy` defaults to the one at its parent."""
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
    for change in changes(repo, commit):
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
                size = repo[change.oid].size
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
            _check_plugin(repo, plugins.get(name), name, verdict)
    return verdict


def _check_plugin(repo, entry, name, verdict) -> None:
    base = f"{PLUGINS_DIR}/{name}"
    if entry is None:
        return  # the plugin was deleted
    if entry.filemode != pygit2.GIT_FILEMODE_TREE:
        verdict.refuse(f"{base}: must be a directory")
        return
    files = _plugin_files(repo, repo[entry.id])
    if files is None:
        return  # the entry-level check above already refused the symlink/submodule
    try:
        manifest = parse_plugin_manifest(files, name)
    except FormatError as exc:
        verdict.refuse(f"{base}: malformed manifest: {exc}")
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
    for change in changes(repo, commit):
        verdict.paths.append(change.path)
        if not change.path.startswith(prefix):
            verdict.refuse(f"{change.path}: PV {origin} may write only under {prefix}")
        elif change.mode is not None and change.mode not in REGULAR:
            verdict.refuse(f"{change.path}: only regular files are allowed")
        elif change.mode is not None and repo[change.oid].size > policy.max_blob_bytes:
            verdict.refuse(f"{change.path}: over the {policy.max_blob_bytes}-byte limit")
    return verdict
