"""The PV's view of the Plugin Repository: a local mirror fetched with pygit2.

The PV never trusts the PR: the new head must descend from the last head it processed,
every new commit is re-checked against the PR's policy (pds_log.infra.commit_check), and
plugin files are read from git blobs only (a symlink or submodule entry makes the plugin
invalid; nothing is ever checked out). Each commit's tree is read in the PR layout its own
policy sets (pds_log.infra.prtree, `commit_check.layout_at`); what changed between two commits
is found by diffing only the subtrees whose ids differ.

A hostile PR cannot make the PV inflate what it will refuse: the fetch is `git fetch-pack` (its
index-pack streams big blobs; libgit2's fetch held a 1 GiB zero blob, a 1 MB pack, in memory:
1.1 GB RSS), and every blob's size is read from its object header and checked against the
per-plugin limits (files, bytes) before the blob is read.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pygit2

from pds_log.core.errors import FormatError, PdsError
from pds_log.core.pr_layout import PLUGINS_DIR, plugin_dir
from pds_log.infra.commit_check import MAX_PLUGIN_BYTES, MAX_PLUGIN_FILES, layout_at, read_plugin_tree
from pds_log.infra.files import clear_stale_git_locks, exclusive_lock
from pds_log.infra.giterrors import connection_problem
from pds_log.infra.gitremote import git_env, pinned_hosts_file
from pds_log.infra.gittree import commit_at, tree_at
from pds_log.infra.prtree import changed_plugins, list_plugins, plugin_entry, plugins_tree

__all__ = ["MAX_PLUGIN_BYTES", "MAX_PLUGIN_FILES", "PLUGINS_DIR", "HistoryRewritten", "PluginSnapshot", "PrMirror",
           "changed_plugin_names", "read_plugin_tree"]
FETCH_TIMEOUT = 600  # seconds for one fetch of the PR
MIRROR_PREFIX = "refs/remotes/pr/"  # the PR's refs/heads/<x> are the mirror's refs/remotes/pr/<x>


def hosts_setting(known_hosts: Path | None) -> str:
    """Where a PV's pinned host keys are, for messages."""
    return f"keys.known_hosts in pv.yaml ({known_hosts})" if known_hosts else \
        "~/.ssh/known_hosts (pv.yaml sets no keys.known_hosts)"


class HistoryRewritten(PdsError):
    """The PR's branch no longer contains the last head this PV processed."""


@dataclass
class PluginSnapshot:
    """A plugin's files at one PR commit (regular files only), or why they are unusable."""

    name: str
    commit: str
    files: dict[str, bytes]
    problem: str | None = None


class PrMirror:
    """A bare mirror of the PR under the PV's state dir."""

    def __init__(self, path: Path, url: str, branch: str, ssh_key: Path | None = None,
                 known_hosts: Path | None = None, key_setting: str = "keys.ssh in pv.yaml") -> None:
        self.path = path
        self.url = url  # over ssh, the URL names the server's user (Debian's gitolite3: gitolite3)
        self.branch = branch
        self.ssh_key = ssh_key
        self.known_hosts = known_hosts
        self.key_setting = key_setting
        if not (path / "HEAD").exists():
            created = pygit2.init_repository(str(path), bare=True)
            created.config["fetch.unpackLimit"] = 1  # keep each fetch one pack, never loose objects
        self.repo = pygit2.Repository(str(path))

    def fetch(self) -> pygit2.Commit:
        """Fetch the PR's main branch and every PV area; return the new head commit.

        The transfer is `git fetch-pack`, git fetch's own transfer half: one thin pack against
        the refs the mirror has, kept whole (index-pack --fix-thin, fetch.unpackLimit 1). The
        mirror's refs move only after `_check_complete` has read every object the new tips reach
        and the old ones do not. `git fetch` checks the same with `rev-list --objects --not
        --all`, which opens every tree of the new head: O(N) per fetch (0.30 of a 0.32 s fetch
        at 100k plugins); pack-objects' sparse walk opens only the trees whose ids changed.

        Fetches into the mirror are serialised by a lock of their own (plan, run-one and epoch
        jobs may share a state dir), under which ref locks left by a killed fetch are cleared."""
        known_hosts = pinned_hosts_file(self.url, self.known_hosts, "keys.known_hosts in pv.yaml")
        env = git_env(self.ssh_key, known_hosts)
        with exclusive_lock(self.path.parent / "pr-mirror.lock", wait=True):
            clear_stale_git_locks(self.path)
            self.repo = pygit2.Repository(str(self.path))
            old = {ref: self.repo.references[ref].target for ref in self.repo.references
                   if ref.startswith(MIRROR_PREFIX)}
            out = self._git(["fetch-pack", "--thin", "--keep", "-q", "--all", self.url], env, "fetch the PR from")
            packs = [line.split("\t", 1)[1] for line in out.splitlines() if line.startswith("keep\t")]
            wanted = {}
            for line in out.splitlines():
                oid, _, ref = line.partition(" ")
                if ref == f"refs/heads/{self.branch}" or ref.startswith("refs/heads/pvs/"):
                    wanted[MIRROR_PREFIX + ref.removeprefix("refs/heads/")] = oid
            try:
                moved = {ref: oid for ref, oid in wanted.items() if str(old.get(ref)) != oid}
                if moved:
                    self._check_complete(list(moved.values()), [str(o) for o in old.values()], env)
                for ref, oid in moved.items():
                    self.repo.references.create(ref, pygit2.Oid(hex=oid), force=True)
            finally:  # a kept pack's .keep would stop gc from ever merging it
                for pack in packs:
                    (self.path / "objects" / "pack" / f"pack-{pack}.keep").unlink(missing_ok=True)
            subprocess.run(["git", "--git-dir", str(self.path), "gc", "--auto", "--quiet"], capture_output=True,
                           timeout=FETCH_TIMEOUT)  # what git fetch runs after a fetch
        self.repo = pygit2.Repository(str(self.path))  # see the objects and refs just written
        head = self.head()
        if head is None:
            raise PdsError(f"the PR at {self.url} has no branch {self.branch}")
        return head

    def _git(self, args: list[str], env: dict[str, str], action: str, stdin: str | None = None) -> str:
        try:
            result = subprocess.run(["git", "--git-dir", str(self.path), *args], input=stdin, capture_output=True,
                                    text=True, env=env, timeout=FETCH_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise PdsError(f"cannot {action} {self.url}: no answer in {FETCH_TIMEOUT} s") from None
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines()
            raise PdsError(connection_problem(result.stderr, self.url, action=action,
                                              key_setting=self.key_setting,
                                              hosts_setting=hosts_setting(self.known_hosts))
                           or f"cannot {action} {self.url}: {lines[-1] if lines else 'git ' + args[0] + ' failed'}")
        return result.stdout

    def _check_complete(self, new: list[str], old: list[str], env: dict[str, str]) -> None:
        """Refuse a fetch unless every object reachable from `new` and not from `old` (whose
        objects the mirror holds: every earlier fetch passed this check) is in the mirror.
        pack-objects reads each of them (a missing or corrupt one is fatal), walking from
        `old` sparsely: only the trees on paths whose ids differ; no deltas (--window=0), the
        pack itself is discarded. Without `old` (the first fetch) rev-list, as git fetch."""
        if old:
            args, stdin = ["pack-objects", "--revs", "--sparse", "--window=0", "--stdout", "-q"], \
                "".join(f"{oid}\n" for oid in new) + "".join(f"^{oid}\n" for oid in old)
        else:
            args, stdin = ["rev-list", "--objects", "--quiet", "--stdin"], "".join(f"{oid}\n" for oid in new)
        try:
            result = subprocess.run(["git", "--git-dir", str(self.path), *args], input=stdin.encode(),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, timeout=FETCH_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise PdsError(f"checking the objects fetched from {self.url} took over {FETCH_TIMEOUT} s") from None
        if result.returncode != 0:
            why = result.stderr.decode(errors="replace").strip().splitlines()
            raise PdsError(f"the PR at {self.url} sent an incomplete or corrupt pack "
                           f"({why[-1] if why else 'objects missing'}); the mirror's refs were not moved")

    def head(self) -> pygit2.Commit | None:
        try:
            return commit_at(self.repo, self.repo.references[f"refs/remotes/pr/{self.branch}"].target)
        except KeyError:
            return None

    def commit(self, oid: str) -> pygit2.Commit:
        try:
            obj = self.repo[oid]
        except (KeyError, ValueError):
            raise PdsError(f"PR commit {oid} is not in the mirror (history rewritten?)") from None
        if not isinstance(obj, pygit2.Commit):
            raise PdsError(f"{oid} is not a commit")
        return obj

    def check_descends(self, new: pygit2.Commit, last: str | None) -> None:
        """Refuse a PR head that does not descend from the last processed one."""
        if last is None or str(new.id) == last:
            return
        try:
            last_oid = pygit2.Oid(hex=last)
            self.repo[last_oid]
        except (KeyError, ValueError):
            raise HistoryRewritten(
                f"PR history rewritten: the last processed head {last} is gone from {self.branch}; "
                f"refusing to sign anything") from None
        if not self.repo.descendant_of(new.id, last_oid):
            raise HistoryRewritten(
                f"PR history rewritten: new head {new.id} does not descend from the last processed head "
                f"{last}; refusing to sign anything")

    def new_commits(self, new: pygit2.Commit, last: str | None) -> list[pygit2.Commit]:
        """Commits in (last, new], oldest first."""
        walker = self.repo.walk(new.id, pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.REVERSE)
        if last is not None:
            walker.hide(pygit2.Oid(hex=last))
        return list(walker)

    def touched_plugins(self, commit: pygit2.Commit) -> set[str]:
        """Plugin names whose directory a commit changes (against its first parent)."""
        return self.changed_plugins(commit.parents[0] if commit.parents else None, commit)

    def changed_plugins(self, old: pygit2.Commit | None, new: pygit2.Commit) -> set[str]:
        return changed_plugin_names(self.repo, old, new)

    def plugin_names(self, commit: pygit2.Commit) -> list[str]:
        listing = list_plugins(self.repo, plugins_tree(self.repo, commit.tree), layout_at(self.repo, commit))
        return sorted(listing.entries)

    def plugin(self, commit: pygit2.Commit, name: str) -> PluginSnapshot | None:
        """The plugin's files at `commit`, or None if its directory does not exist there."""
        layout = layout_at(self.repo, commit)
        entry = plugin_entry(commit.tree, name, layout)
        if entry is None:
            return None
        snap = PluginSnapshot(name, str(commit.id), {})
        base = plugin_dir(name, layout)
        if entry.type_str != "tree":
            snap.problem = f"{base} is not a directory"
            return snap
        try:
            files, snap.problem = read_plugin_tree(self.repo, tree_at(self.repo, entry.id), base)
        except FormatError as exc:  # e.g. an object the PR's history names but never sent
            files, snap.problem = {}, str(exc)
        if snap.problem is None:
            snap.files = files
        return snap


def changed_plugin_names(repo: pygit2.Repository, old: pygit2.Commit | None, new: pygit2.Commit) -> set[str]:
    """Names whose plugin directory differs between two PR commits, each read in its own
    layout (by object id: git trees are content-addressed, so only the subtrees whose ids
    differ are opened; a plugin moved by a layout change with the same files is unchanged)."""
    old_tree = plugins_tree(repo, old.tree) if old is not None else None
    old_layout = layout_at(repo, old) if old is not None else layout_at(repo, new)
    return set(changed_plugins(repo, old_tree, old_layout, plugins_tree(repo, new.tree), layout_at(repo, new)))
