"""`pds audit`: recompute a PV's whole history from a plain clone of its log repo.

For every epoch commit (oldest first) the auditor checks:

* shape: one parent per commit (a linear history), message ``epoch <E>``;
* layout (core/log_layout.py): ``layout.json`` absent (layout 1) or exactly ``{"log":2}``, never
  going back from 2 to 1; every file an epoch adds under ``tiles/``, ``bytecode/`` and ``logs/``
  sits in its own shard for the commit's layout (all of them at the first epoch and at the
  epoch that migrates 1 -> 2); and the migrating epoch moves every earlier file to its new path
  with the same blob (no content changes; only tiles the epoch replaced may go);
* STR: signed by the PV key (given, or the one in the first epoch's pv.json, which must never
  change), epoch numbers 1, 2, 3..., chain (v1: prev hash, time; v2: time; no v1 after a v2),
  ``latest.note`` equal to ``epochs/.../<E>.note``, and every earlier STR file still
  byte-identical;
* epoch log (STR v2, formats.md): the auditor rebuilds the log from the STRs (entry E-1 = the
  record of epoch E's STR, v1 or v2), so the log root of every STR v2 must be the root of
  exactly the records of epochs 1..E -- which makes the first v2 epoch's log (the v1 -> v2
  migration) hold exactly the earlier epochs' records -- and the ``tlog/`` tiles and entry
  bundles the epoch commit adds must be the recomputed ones;
* tree: the committed bindings (canonical, at their right paths) rebuild to the STR's root and
  size; the STR's policy is the hash of pv.json's acceptance config;
* changes: the bindings added, changed and removed by the commit are exactly the epoch
  record's added / updated / removed lists (nothing changes silently), every accepted binding
  has a results record whose verifier verdicts satisfy the acceptance expression and whose
  passing verifiers are the binding's properties, every rejection has a results record with
  its reason, the tiles of the changed paths are present, and every accepted object is in
  bytecode/ and hashes to its name;
* results: every ``results/`` record the commit adds or changes says this epoch (a record is
  rewritten only by a re-verification in its own new epoch; one is never deleted), and agrees
  with the tree (``accepted`` = in the tree with that binding; ``rejected`` = absent, listed in the
  epoch record, with verdicts that do not satisfy the acceptance expression; ``removed`` =
  absent); every plugin the commit adds, changes, removes or rejects has a new record;
* with a PR clone: every accepted binding's manifest and objects are the files of
  ``plugins/<name>/`` at the binding's source commit, that commit was signed by a key the PR
  policy allowed for that name, and the STRs the PV pushed to its PR area are the log's STRs;
* with a PR clone, the tree against the PR at the STR's ``pr`` commit, decided as an honest PV
  decides it (pds_log.pv.epoch): each epoch's PR commits are the ones between the previous
  STR's ``pr`` and this one's (which must descend from it), each re-checked against the PR
  policy at the STR's time; a plugin whose directory changed in that range has as its latest
  version the last of those commits touching it -- or is *tainted* when that commit was refused,
  until a valid commit changes it again. Then every plugin present at the ``pr`` commit is in
  the tree with its latest version as source, or has a ``rejected`` record of the epoch of its
  latest version or later (for that commit); no tainted plugin is in the tree; every plugin
  absent at the ``pr`` commit (deleted) is absent from the tree; and a ``results/`` record
  changes only for a plugin the PV had to re-verify (its directory changed in the range, or the
  acceptance policy changed). Only the plugins that changed in the PR or the log are looked
  at per epoch, so the cost follows the changes, not the number of plugins;
* with a state file: the history continues the one audited before (no rewrite).

Findings name the epoch and the check. The exit status is non-zero on any finding.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pygit2

from pds_log.core import jsondoc, tlog
from pds_log.core import log_layout as layout
from pds_log.core.binding import Binding, canonical_json
from pds_log.core.errors import FormatError, PdsError, VerificationError
from pds_log.core.formula import Formula
from pds_log.core.names import is_valid_name, name_key
from pds_log.core.note import NoteVerifier
from pds_log.core.pr_layout import plugin_dir
from pds_log.core.records import PvDescriptor, ResultRecord
from pds_log.core.signed_root import SignedTreeRoot, check_chain
from pds_log.core.strs import SignedStr, TreeHeadV2, open_any, record_of
from pds_log.core.tiles import MAX_LEVEL, positioned_tiles, positioned_tiles_on_paths, tile_prefix
from pds_log.core.tree import PrefixTree
from pds_log.infra import commit_check
from pds_log.infra.files import atomic_write_bytes
from pds_log.infra.gittree import blob_at, commit_at, entry_name, read_path, renamed_diff, tree_at, walk_blobs
from pds_log.infra.prtree import changed_plugins, plugin_entry, plugins_tree

# A log record is small; anything bigger is hostile and is refused before it is parsed.
MAX_RECORD_BYTES = 4 << 20


@dataclass
class Finding:
    epoch: int | None
    check: str
    message: str

    def __str__(self) -> str:
        where = f"epoch {self.epoch}" if self.epoch is not None else "log"
        return f"{where}: {self.check}: {self.message}"


@dataclass
class AuditReport:
    epochs: int = 0
    plugins: int = 0
    findings: list[Finding] = field(default_factory=list)
    head: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_obj(self) -> dict:
        return {"ok": self.ok, "epochs": self.epochs, "plugins": self.plugins, "head": self.head,
                "seconds": round(self.seconds, 3),
                "findings": [{"epoch": f.epoch, "check": f.check, "message": f.message} for f in self.findings]}


@dataclass
class Changes:
    """What one epoch commit changed under bindings/ and results/ (name -> git delta code)."""

    added: dict[str, Binding] = field(default_factory=dict)
    modified: dict[str, Binding] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    results: dict[str, str] = field(default_factory=dict)  # name -> "A" | "M" | "D"
    sharded: list[str] = field(default_factory=list)  # files added or changed under tiles/, bytecode/, logs/
    epoch_files: list[str] = field(default_factory=list)  # epochs/ files other than this epoch's own


def decode_binding(data: bytes | None, where: str) -> Binding:
    """Binding.decode, behind the bounded JSON reader (a hostile log makes a finding)."""
    if data is None:
        raise FormatError(f"{where}: not a file")
    binding = Binding.from_obj(jsondoc.loads(data, where, max_bytes=MAX_RECORD_BYTES), where)
    if binding.encode() != data:
        raise FormatError(f"{where}: not in canonical form (sorted keys, no spaces)")
    return binding


def decode_epoch_record(data: bytes, where: str) -> layout.EpochRecord:
    jsondoc.loads(data, where, max_bytes=MAX_RECORD_BYTES)  # bounds first; then the strict reader
    record = layout.EpochRecord.decode(data, where)
    for entry in record.rejected + record.removed:
        if not isinstance(entry["name"], str) or not isinstance(entry["reason"], str):
            raise FormatError(f"{where}: removed/rejected names and reasons must be strings")
    for label, names in (("added", record.added), ("updated", record.updated)):
        if not all(isinstance(n, str) for n in names):
            raise FormatError(f"{where}: {label} must list names")
    if not isinstance(record.pr_to, str):
        raise FormatError(f"{where}: pr.to must be a commit id")
    return record


@dataclass
class Latest:
    """The version of a plugin an honest PV must serve: the last PR commit that changed its
    directory (`source`), or the refusal that taints it; `since` = the epoch that commit arrived."""

    source: str | None
    taint: str | None
    since: int


@dataclass(frozen=True)
class PluginsAt:
    """`name in plugins`: whether a PR commit has a directory for plugin `name`."""

    commit: pygit2.Commit
    layout: int

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and plugin_entry(self.commit.tree, name, self.layout) is not None


class PrView:
    """The PR clone as the PV sees it (pds_log.pv.prsource): plugin directories by tree id, the
    plugins a commit touches against its first parent, commit verdicts at an epoch's time."""

    def __init__(self, repo: pygit2.Repository) -> None:
        self.repo = repo

    def commit(self, oid: str) -> pygit2.Commit | None:
        try:
            obj = self.repo[oid]
        except (KeyError, ValueError, TypeError):
            return None
        return obj if isinstance(obj, pygit2.Commit) else None

    def layout(self, commit: pygit2.Commit) -> int:
        return commit_check.layout_at(self.repo, commit)

    def plugins(self, commit: pygit2.Commit) -> "PluginsAt":
        """The plugins at `commit`, looked up one name at a time (O(depth) each)."""
        return PluginsAt(commit, self.layout(commit))

    def touched(self, commit: pygit2.Commit) -> set[str]:
        return self.changed(commit.parents[0] if commit.parents else None, commit)

    def changed(self, old: pygit2.Commit | None, new: pygit2.Commit) -> set[str]:
        """As pds_log.pv.prsource.changed_plugin_names: each commit read in its own layout."""
        old_tree = plugins_tree(self.repo, old.tree) if old is not None else None
        old_layout = self.layout(old) if old is not None else self.layout(new)
        return set(changed_plugins(self.repo, old_tree, old_layout, plugins_tree(self.repo, new.tree),
                                   self.layout(new)))

    def new_commits(self, new: pygit2.Commit, old: pygit2.Commit | None) -> list[pygit2.Commit]:
        walker = self.repo.walk(new.id, pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.REVERSE)
        if old is not None:
            walker.hide(old.id)
        return list(walker)

    def last_touching(self, head: pygit2.Commit, name: str) -> str:
        """As pds_log.pv.epoch.last_touching_commit: first-parent walk back from head."""
        commit = head
        while True:
            if name in self.touched(commit) or not commit.parents:
                return str(commit.id)
            commit = commit.parents[0]


def open_log(path: str | Path, ref: str | None = None) -> tuple[pygit2.Repository, pygit2.Commit]:
    try:
        repo = pygit2.Repository(str(path))
    except pygit2.GitError:
        raise PdsError(f"{path}: not a git repository") from None
    candidates = [ref] if ref else ["refs/heads/main", "refs/remotes/origin/main", "HEAD"]
    for name in candidates:
        try:
            obj = repo.revparse_single(name)
        except (KeyError, pygit2.GitError):
            continue
        commit = obj.peel(pygit2.Commit)
        return repo, commit
    raise PdsError(f"{path}: no branch main (tried {', '.join(candidates)})")


def first_parent_chain(head: pygit2.Commit) -> list[pygit2.Commit]:
    chain = []
    commit = head
    while True:
        chain.append(commit)
        if not commit.parents:
            break
        commit = commit.parents[0]
    chain.reverse()
    return chain


class Auditor:
    def __init__(self, log_path: str | Path, *, vkey: str | None = None, pr_path: str | Path | None = None,
                 ref: str | None = None, state_path: str | Path | None = None) -> None:
        self.repo, self.head = open_log(log_path, ref)
        self.vkey = vkey
        self.pr = pygit2.Repository(str(pr_path)) if pr_path else None
        self.pr_view = PrView(self.pr) if self.pr is not None else None
        self.state_path = Path(state_path) if state_path else None
        self.report = AuditReport(head=str(self.head.id))
        self._acceptance: tuple[str, list[str]] | None = None
        self._formula: Formula | None = None
        # The PR as of the previous epoch: its `pr` commit and each plugin's latest version.
        self._pr_commit: pygit2.Commit | None = None
        self._latest: dict[str, Latest] = {}
        self._pr_usable = True
        self._verdicts: dict[tuple[str, int], object] = {}
        self._policy_chain: commit_check.PolicyChain | None = None  # built on the first PR walk
        self._judged_by: dict[str, str | None] = {}  # PR commit -> the commit whose policy judged it
        self._elog = tlog.MemoryHashes.empty()  # the epoch log rebuilt from the STRs
        self._entries: list[bytes] = []
        self._v2_since: int | None = None
        self._log_layout = 1  # the layout of the epoch commit being checked

    def find(self, epoch: int | None, check: str, message: str) -> None:
        self.report.findings.append(Finding(epoch, check, message))

    def read(self, commit: pygit2.Commit, path: str) -> bytes | None:
        return read_path(self.repo, commit.tree, path)

    # ------------------------------------------------------------------ main loop
    def run(self) -> AuditReport:
        import time

        t0 = time.perf_counter()
        chain = first_parent_chain(self.head)
        verifier = self._verifier(chain[0])
        if verifier is None:
            return self.report
        bindings: dict[str, Binding] = {}
        tree = PrefixTree()
        prev: SignedStr | None = None
        str_bytes: dict[int, bytes] = {}
        for index, commit in enumerate(chain, start=1):
            self.report.epochs = index
            signed = self._check_str(commit, index, verifier, prev, str_bytes)
            if signed is None:
                break  # without a valid STR nothing else of this epoch (or later) can be trusted
            epoch = signed.head.epoch
            self._check_epoch_log(commit, epoch, signed)
            parent = commit.parents[0] if commit.parents else None
            parent_layout = self._log_layout
            self._log_layout = self._layout_of(commit, epoch, parent_layout if parent is not None else None)
            changes = self._changes(parent, commit, epoch, parent_layout)
            self._check_shards(parent, commit, epoch, parent_layout, changes)
            self._apply_changes(epoch, signed, changes, bindings, tree)
            self._check_policy(commit, signed, epoch)
            for path in changes.epoch_files:
                if not path.endswith(".note"):  # STRs: the byte-identity check above names them
                    self.find(epoch, "history", f"{path} (the record of epoch {Path(path).stem}) changed in "
                                                f"epoch {epoch}: an epoch's files are written once")
            record = self._check_record(commit, epoch, signed, changes)
            results = self._check_results(commit, epoch, changes, record, bindings)
            keys = [name_key(n) for n in (*changes.added, *changes.modified, *changes.deleted)]
            if parent is not None and layout.rewrites_tiles(parent_layout, self._log_layout):
                self._check_all_tiles(commit, epoch, tree)
            else:
                self._check_tiles(commit, epoch, tree, keys)
            if self.pr is not None:
                # the PR walk first: it judges this epoch's new commits, which bindings may name
                self._check_pr_tree(commit, epoch, signed, prev, changes, record, results, bindings)
                for binding in (*changes.added.values(), *changes.modified.values()):
                    self._check_against_pr(epoch, binding, signed.head.time)
            prev = signed
        self.report.plugins = len(bindings)
        if self.pr is not None and prev is not None:
            self._check_pr_area(prev.head.origin, str_bytes, verifier)
        self._check_state(chain, str_bytes)
        self.report.seconds = time.perf_counter() - t0
        return self.report

    def _apply_changes(self, epoch: int, signed: SignedStr, changes: Changes,
                       bindings: dict[str, Binding], tree: PrefixTree) -> None:
        """Apply an epoch's binding changes to `bindings` and `tree`; the tree must then be the
        one the STR signed."""
        for name, binding in {**changes.added, **changes.modified}.items():
            bindings[name] = binding
            tree.set(name_key(name), binding.value())
        for name in changes.deleted:
            bindings.pop(name, None)
            tree.delete(name_key(name))
        if tree.root() != signed.head.root:
            self.find(epoch, "tree", f"bindings rebuild to root {tree.root().hex()[:16]}..., "
                                     f"the STR signed {signed.head.root.hex()[:16]}...")
        if len(tree) != signed.head.size:
            self.find(epoch, "tree", f"{len(tree)} bindings, the STR says size {signed.head.size}")

    # ------------------------------------------------------------------ checks
    def _layout_of(self, commit: pygit2.Commit, epoch: int, before: int | None) -> int:
        """The commit's log layout (layout.json); a finding if it is malformed or goes back."""
        try:
            found = layout.parse_layout_file(self.read(commit, layout.LAYOUT_FILE))
        except FormatError as exc:
            self.find(epoch, "layout", str(exc))
            return before or layout.LATEST_LAYOUT
        if before is not None and found < before:
            self.find(epoch, "layout", f"log layout goes back from {before} to {found}")
        return found

    def _check_shards(self, parent: pygit2.Commit | None, commit: pygit2.Commit, epoch: int,
                      parent_layout: int, changes: Changes) -> None:
        """Every file added under tiles/, bytecode/, logs/ in its shard; at a layout change,
        every file of the commit there, and every file of the parent moved with its blob
        (bindings/ and results/ files are checked as records: `_record_deltas`)."""
        migrating = parent is not None and parent_layout != self._log_layout
        paths = changes.sharded
        if migrating:
            paths = [p for top in layout.CONTENT_DIRS for p, _ in self._blobs_under(commit, top)]
        for path in paths:
            try:
                layout.parse_sharded_path(path, self._log_layout)
            except FormatError as exc:
                self.find(epoch, "layout", str(exc))
        if not migrating:
            return
        assert parent is not None
        for top in layout.CONTENT_DIRS:
            if top == "tiles" and layout.rewrites_tiles(parent_layout, self._log_layout):
                continue  # rewritten at their positions, not moved: _check_all_tiles
            for path, oid in self._blobs_under(parent, top):
                try:
                    target = layout.reshard_path(path, parent_layout, self._log_layout)
                except FormatError as exc:
                    self.find(epoch - 1, "layout", str(exc))
                    continue
                try:
                    moved = commit.tree[target].id
                except KeyError:
                    if top != "tiles":  # tiles off the tree's new paths go; content-addressed files stay
                        self.find(epoch, "layout", f"{path} was not moved to {target} by the layout migration")
                    continue
                if moved != oid:
                    self.find(epoch, "layout", f"{path} -> {target}: the migration changed the file's content")

    def _blobs_under(self, commit: pygit2.Commit, top: str) -> Iterator[tuple[str, pygit2.Oid]]:
        try:
            entry = commit.tree[top]
        except KeyError:
            return iter(())
        if entry.type_str != "tree":
            return iter([(top, entry.id)])
        return walk_blobs(self.repo, tree_at(self.repo, entry.id), top + "/")

    def _descriptor(self, commit: pygit2.Commit) -> PvDescriptor:
        data = self.read(commit, layout.PV_DESCRIPTOR)
        if data is None:
            raise FormatError(f"{layout.PV_DESCRIPTOR} missing")
        return PvDescriptor.decode(data, layout.PV_DESCRIPTOR)

    def _verifier(self, first: pygit2.Commit) -> NoteVerifier | None:
        try:
            logged = NoteVerifier.from_string(self._descriptor(first).vkey)
        except (ValueError, FormatError) as exc:
            self.find(1, "descriptor", f"pv.json unreadable: {exc}")
            logged = None
        if self.vkey:
            expected = NoteVerifier.from_string(self.vkey)
            if logged is not None and logged != expected:
                self.find(1, "descriptor", f"pv.json names key {logged}, not the expected {expected}")
            return expected
        if logged is None:
            self.find(1, "descriptor", "no pv.json with the PV key in the first epoch (pass --vkey)")
        return logged

    def _check_str(self, commit, index, verifier, prev, str_bytes) -> SignedStr | None:
        if len(commit.parents) > 1:
            self.find(index, "history", f"commit {commit.id} is a merge; the log must be linear")
        if commit.message.split("\n", 1)[0] != f"epoch {index}":
            first = commit.message.splitlines()[0][:60] if commit.message else ""
            self.find(index, "history", f"commit {str(commit.id)[:12]} is not 'epoch {index}' "
                                        f"(message: {first!r}): an epoch was dropped or added")
        note = self.read(commit, layout.str_path(index))
        latest = self.read(commit, layout.LATEST_STR)
        if note is None:
            self.find(index, "str", f"{layout.str_path(index)} missing (epoch numbering broken)")
            return None
        if latest != note:
            self.find(index, "str", f"{layout.LATEST_STR} differs from {layout.str_path(index)}")
        try:
            signed = open_any(note, verifier)
        except (FormatError, VerificationError) as exc:
            self.find(index, "signature", f"STR does not verify with {verifier.name}+{verifier.key_id.hex()}: {exc}")
            return None
        if signed.head.epoch != index:
            self.find(index, "epoch", f"STR says epoch {signed.head.epoch}, expected {index}")
        self._check_link(index, prev, signed)
        for earlier, data in str_bytes.items():
            kept = self.read(commit, layout.str_path(earlier))
            if kept != data:
                self.find(index, "history", f"the STR of epoch {earlier} was changed or removed "
                                            f"(two STRs for epoch {earlier})")
                str_bytes[earlier] = kept if kept is not None else data
        str_bytes[index] = note
        return signed

    def _check_link(self, index: int, prev: SignedStr | None, signed: SignedStr) -> None:
        """v1 after v1 (or first): the prev chain; v2: origin, epoch and time follow; never v1 after v2."""
        head = signed.head
        if isinstance(head, TreeHeadV2):
            if prev is not None and (head.origin != prev.head.origin or head.time < prev.head.time):
                self.find(index, "chain", f"STR v2 of epoch {head.epoch}: origin or time does not follow epoch "
                                          f"{prev.head.epoch} (time {head.time} < {prev.head.time}?)")
            return
        prev_v1 = None
        if prev is not None:
            if isinstance(prev.head, TreeHeadV2):
                self.find(index, "chain", f"epoch {head.epoch} is signed as STR v1 after STR v2 epochs: a log never "
                                          f"goes back from v2 to v1")
                return
            prev_v1 = SignedTreeRoot(prev.head, prev.note)
        try:
            check_chain(prev_v1, SignedTreeRoot(head, signed.note))
        except VerificationError as exc:
            self.find(index, "chain", str(exc))

    def _check_epoch_log(self, commit: pygit2.Commit, epoch: int, signed: SignedStr) -> None:
        """Append the STR's record to the epoch log rebuilt so far; an STR v2 must sign its root,
        and the epoch commit must add exactly the recomputed tlog/ files."""
        entry = record_of(signed.head).entry()
        self._entries.append(entry)
        self._elog.append(entry)
        head = signed.head
        if not isinstance(head, TreeHeadV2):
            return
        first = self._v2_since is None
        if first:
            self._v2_since = epoch
        root = self._elog.root()
        if head.log_root != root:
            what = f"the records of epochs 1..{epoch}"
            if first:
                what += " rebuilt from their STRs (the v1 -> v2 migration must hold exactly the earlier records)"
            self.find(epoch, "epoch log", f"STR v2 signs log root {head.log_root.hex()[:16]}..., but {what} hash to "
                                          f"{root.hex()[:16]}...")
        for path, data in self._tlog_files(epoch, first).items():
            stored = self.read(commit, layout.tlog_path(path))
            if stored != data:
                self.find(epoch, "epoch log", f"{layout.tlog_path(path)} is "
                                              f"{'missing' if stored is None else 'not the recomputed file'}")

    def _tlog_files(self, epoch: int, first: bool) -> dict[str, bytes]:
        """The tlog/ files (published paths) epoch `epoch` must add: its new tiles and entry
        bundles, or at the first v2 epoch every tile of the log at that size."""
        old = 0 if first else epoch - 1
        wanted: dict[str, bytes] = {}
        for tile in tlog.new_tiles(old, epoch):
            wanted[tile.path()] = tlog.read_tile_data(tile, self._elog)
        bundles = (tlog.entry_bundles_for(old, epoch) if not first else
                   [tlog.TileId(-1, t.n, t.width) for t in tlog.tiles_for_size(epoch) if t.level == 0])
        for bundle in bundles:
            start = bundle.n * tlog.TILE_WIDTH
            wanted[bundle.path()] = tlog.encode_entry_bundle(self._entries[start:start + bundle.width])
        return wanted

    def _record_deltas(self, parent, commit, epoch, changes: Changes, parent_layout: int) -> list[tuple[str, str]]:
        """(path, "A" | "M" | "D") of the commit's bindings/ and results/ files (at a layout
        migration, each parent record compared at its new path); the other paths it changes go to
        `changes` (epochs/ files, files under the content-addressed directories)."""
        if parent is None:
            entries = []
            for p, _ in walk_blobs(self.repo, commit.tree):
                if p.startswith(("bindings/", "results/")):
                    entries.append((p, "A"))
                elif p.split("/", 1)[0] in layout.CONTENT_DIRS:
                    changes.sharded.append(p)
        else:
            entries = []
            migrating = parent_layout != self._log_layout
            if migrating:
                entries = self._migrated_record_deltas(parent, commit, epoch, parent_layout)
            for delta in self.repo.diff(parent.tree, commit.tree).deltas:
                path = delta.new_file.path or delta.old_file.path
                if path.startswith("epochs/") and path not in (layout.str_path(epoch),
                                                                layout.epoch_record_path(epoch)):
                    changes.epoch_files.append(path)
                if path.split("/", 1)[0] in layout.CONTENT_DIRS and delta.status != pygit2.enums.DeltaStatus.DELETED:
                    changes.sharded.append(path)
                if not path.startswith(("bindings/", "results/")) or migrating:
                    continue
                code = {pygit2.enums.DeltaStatus.ADDED: "A", pygit2.enums.DeltaStatus.MODIFIED: "M",
                        pygit2.enums.DeltaStatus.DELETED: "D"}.get(delta.status, "?")
                entries.append((path, code))
        return entries

    def _migrated_record_deltas(self, parent, commit, epoch, parent_layout: int) -> list[tuple[str, str]]:
        """_record_deltas at a layout migration: the parent's records at their new paths."""
        bad: list[str] = []

        def moved(path: str) -> str:
            try:
                return layout.reshard_path(path, parent_layout, self._log_layout)
            except FormatError as exc:
                bad.append(str(exc))
                return path  # compared as is: it matches nothing of the commit, so shows as deleted

        deltas = renamed_diff(self.repo, parent.tree, commit.tree, layout.RECORD_DIRS, moved)
        for message in bad:
            self.find(epoch - 1, "layout", message)
        return [(path, code) for path, code, _ in deltas]

    def _changes(self, parent, commit, epoch, parent_layout: int) -> Changes:
        """The bindings/ and results/ changes of one epoch commit, bindings decoded."""
        changes = Changes()
        for path, code in self._record_deltas(parent, commit, epoch, changes, parent_layout):
            try:
                name = layout.name_from_record_path(path, self._log_layout)
            except FormatError as exc:
                self.find(epoch, "layout", str(exc))
                continue
            if path.startswith("results/"):
                changes.results[name] = code
                continue
            if code == "D":
                changes.deleted.append(name)
                continue
            try:
                binding = decode_binding(self.read(commit, path), path)
            except FormatError as exc:
                self.find(epoch, "binding", str(exc))
                continue
            if binding.name != name:
                self.find(epoch, "binding", f"{path} holds the binding of {binding.name}")
                continue
            (changes.added if code == "A" else changes.modified)[name] = binding
        return changes

    def _check_policy(self, commit, signed, epoch) -> None:
        try:
            desc = self._descriptor(commit)
            acceptance, verifier_names = desc.acceptance, desc.verifiers
            policy = desc.computed_policy()
        except (TypeError, ValueError, FormatError) as exc:
            self.find(epoch, "descriptor", f"pv.json missing or malformed: {exc}")
            return
        if policy != signed.head.policy:
            self.find(epoch, "policy", f"STR policy {signed.head.policy[:16]}... is not the hash of pv.json's "
                                       f"acceptance config ({policy[:16]}...)")
        config = (acceptance, [str(v) for v in verifier_names])
        if config != self._acceptance:
            self._acceptance = config
            try:
                self._formula = Formula.parse(acceptance, known_pvs=config[1])
            except Exception as exc:  # noqa: BLE001 -- a hostile formula must make a finding, whatever the library raises
                self._formula = None
                self.find(epoch, "descriptor", f"pv.json acceptance {acceptance[:80]!r} does not parse: {exc}")

    def _result(self, commit, name, epoch) -> ResultRecord | None:
        """The results record of `name` in `commit`; a malformed one is a finding (and None)."""
        path = layout.result_path(name, self._log_layout)
        data = self.read(commit, path)
        if data is None:
            return None
        try:
            record = ResultRecord.decode(data, path)  # strict: a malformed record is a finding
        except FormatError as exc:
            self.find(epoch, "results", str(exc))
            return None
        if record.name != name:
            self.find(epoch, "results", f"{path} holds the record of {record.name[:130]!r}")
            return None
        return record

    def _check_record(self, commit, epoch, signed, changes: Changes) -> layout.EpochRecord | None:
        added, modified, deleted = changes.added, changes.modified, changes.deleted
        path = layout.epoch_record_path(epoch)
        data = self.read(commit, path)
        if data is None:
            self.find(epoch, "record", f"{path} missing")
            return None
        try:
            record = decode_epoch_record(data, path)
        except FormatError as exc:
            self.find(epoch, "record", str(exc))
            return None
        if record.root != signed.head.root.hex() or record.pr_to != signed.head.pr:
            self.find(epoch, "record", "epoch record root/PR differ from the STR")
        for label, actual, claimed in (("added", set(added), set(record.added)),
                                       ("updated", set(modified), set(record.updated)),
                                       ("removed", set(deleted), {r["name"] for r in record.removed})):
            silent = actual - claimed
            if silent:
                self.find(epoch, "silent change", f"{label} without a record: {', '.join(sorted(silent))}")
            missing = claimed - actual
            if missing:
                self.find(epoch, "record", f"record says {label} but the tree did not change: "
                                           f"{', '.join(sorted(missing))}")
        for name, binding in {**added, **modified}.items():
            self._check_entered(commit, epoch, name, binding)
        for entry in record.rejected:
            result = self._result(commit, entry["name"], epoch) if is_valid_name(entry["name"]) else None
            if result is not None and result.status != "rejected":
                self.find(epoch, "results", f"{entry['name']}: rejected in the record, '{result.status}' in results")
        return record

    def _check_entered(self, commit: pygit2.Commit, epoch: int, name: str, binding: Binding) -> None:
        """A binding the epoch added or changed: accepted by its results record, with the passing
        verifiers as its properties and its bytecode in the log."""
        formula, acceptance = self._formula, (self._acceptance or ("", []))[0]
        result = self._result(commit, name, epoch)
        if result is None or result.status != "accepted":
            self.find(epoch, "results", f"{name} entered the tree without an 'accepted' results record")
            return
        if result.binding_value != binding.value().hex():
            self.find(epoch, "results", f"{name}: results record is for another binding")
        verdicts = result.verdicts
        if formula is not None and not formula.evaluate(verdicts):
            self.find(epoch, "results", f"{name}: verifier results do not satisfy '{acceptance}'")
        if sorted(v for v, ok in verdicts.items() if ok) != list(binding.properties):
            self.find(epoch, "results", f"{name}: properties {list(binding.properties)} are not the passing "
                                        f"verifiers {sorted(v for v, ok in verdicts.items() if ok)}")
        for path, digest in ((binding.manifest_path, binding.manifest_sha256), *binding.pluglets.items()):
            blob = self.read(commit, layout.blob_path("bytecode", digest, self._log_layout))
            if blob is None or hashlib.sha256(blob).hexdigest() != digest:
                self.find(epoch, "bytecode", f"{name}: {path} ({digest[:12]}...) missing from bytecode/")

    def _check_results(self, commit, epoch, changes: Changes, record: layout.EpochRecord | None,
                       bindings: dict[str, Binding]) -> dict[str, ResultRecord | None]:
        """Every results/ record written by this commit is of this epoch and agrees with the tree;
        every plugin the epoch added, changed, removed or rejected got a new record. Returns the
        records read (name -> record) for the PR checks."""
        rejected = {e["name"] for e in record.rejected} if record is not None else set()
        must_be_new = set(changes.added) | set(changes.modified) | set(changes.deleted) | \
            {n for n in rejected if is_valid_name(n)}
        read: dict[str, ResultRecord | None] = {}
        for name in sorted(set(changes.results) | must_be_new):
            code = changes.results.get(name)
            if code == "D":
                self.find(epoch, "results", f"{name}: results record deleted (a record is replaced, never removed)")
                read[name] = None
                continue
            result = self._result(commit, name, epoch)
            read[name] = result
            if code is None:  # in must_be_new, untouched by the commit
                if result is None or result.epoch != epoch:
                    self.find(epoch, "results", f"{name}: the epoch changed it in the tree or rejected it, "
                                                f"but wrote no results record of epoch {epoch}")
                continue
            if result is None:
                continue  # malformed: already a finding
            if result.epoch != epoch:
                self.find(epoch, "results", f"{name}: record of epoch {result.epoch} changed in epoch {epoch} "
                                            f"(a record is rewritten only by a re-verification in its own new epoch)")
            self._check_result_status(epoch, name, result, bindings.get(name), record, rejected)
        return read

    def _check_result_status(self, epoch: int, name: str, result: ResultRecord, binding: Binding | None,
                             record: layout.EpochRecord | None, rejected: set[str]) -> None:
        """A results record this commit wrote agrees with the tree (`binding`) and the epoch record."""
        if result.status == "accepted":
            if binding is None or binding.value().hex() != result.binding_value:
                self.find(epoch, "results", f"{name}: record says accepted, but the tree "
                                            f"{'does not hold it' if binding is None else 'holds another binding'}")
        else:
            if binding is not None:
                self.find(epoch, "results", f"{name}: record says {result.status}, but it is in the tree")
            if result.status == "rejected":
                if record is not None and name not in rejected:
                    self.find(epoch, "results", f"{name}: record says rejected in epoch {epoch}, "
                                                f"the epoch record does not list it")
                acceptance = self._acceptance[0] if self._acceptance else "the acceptance"
                if result.verdicts and self._formula is not None and self._formula.evaluate(result.verdicts):
                    self.find(epoch, "results", f"{name}: record says rejected, but its verifier results "
                                                f"satisfy '{acceptance}'")

    def _check_tiles(self, commit, epoch, tree, keys) -> None:
        """The tiles on the changed paths are in the commit, and (tiles by position) no tile
        is left at the first position below them, where the tree now has none."""
        tiles = positioned_tiles_on_paths(tree, keys)
        for (level, prefix), (tile_hash, tile) in tiles.items():
            data = self.read(commit, layout.tile_path(level, tile_hash, self._log_layout, prefix))
            if data != tile.encode():
                self.find(epoch, "tiles", f"tile {level}/{tile_hash.hex()[:16]}... missing or wrong")
        if self._log_layout < layout.TILES_BY_POSITION:
            return
        for key in keys:
            level = next(lv for lv in range(MAX_LEVEL + 2) if (lv, tile_prefix(key, lv)) not in tiles)
            if level <= MAX_LEVEL:
                path = layout.tile_position_path(level, tile_prefix(key, level))
                if self.read(commit, path) is not None:
                    self.find(epoch, "tiles", f"{path}: a tile where the tree has none")

    def _check_all_tiles(self, commit, epoch, tree) -> None:
        """At the move to tiles by position: every tile of the tree at its position, and
        nothing else under tiles/."""
        expected = {layout.tile_path(level, h, self._log_layout, prefix): tile.encode()
                    for (level, prefix), h, tile in positioned_tiles(tree)}
        present = dict(self._blobs_under(commit, "tiles"))
        for path, data in expected.items():
            oid = present.get(path)
            if oid is None or blob_at(self.repo, oid) != data:
                self.find(epoch, "tiles", f"{path}: tile missing or wrong after the move to tiles by position")
        for path in sorted(set(present) - set(expected))[:20]:
            self.find(epoch, "tiles", f"{path}: not a tile of the epoch's tree")

    # ------------------------------------------------------------------ PR checks
    def _pr_repo(self) -> pygit2.Repository:
        """The PR checked against (the PR checks run only when the auditor was given one)."""
        if self.pr is None:
            raise PdsError("no PR to check the log against (give its path)")
        return self.pr

    def _check_against_pr(self, epoch: int, binding: Binding, when: int) -> None:
        pr = self._pr_repo()
        try:
            commit = commit_at(pr, binding.source)
        except (KeyError, ValueError):
            self.find(epoch, "pr", f"{binding.name}: source commit {binding.source[:12]} is not in the PR")
            return
        except PdsError as exc:  # the PR has the object, but it is not a commit
            self.find(epoch, "pr", f"{binding.name}: source {binding.source[:12]}: {exc}")
            return
        base = plugin_dir(binding.name, commit_check.layout_at(pr, commit)) + "/"
        for path, digest in ((binding.manifest_path, binding.manifest_sha256), *binding.pluglets.items()):
            data = read_path(pr, commit.tree, base + path)
            if data is None:
                self.find(epoch, "pr", f"{binding.name}: {path} is not in the PR at {binding.source[:12]}")
            elif hashlib.sha256(data).hexdigest() != digest:
                self.find(epoch, "bytecode", f"{binding.name}: {path} in the log ({digest[:12]}...) differs from "
                                             f"the PR's at {binding.source[:12]} "
                                             f"({hashlib.sha256(data).hexdigest()[:12]}...)")
        verdict = self._commit_verdict(commit, when)  # as the PV did, at its epoch time
        if not verdict.ok:
            self.find(epoch, "signer", f"{binding.name}: source commit {binding.source[:12]} fails the PR policy: "
                                       f"{'; '.join(verdict.reasons)}")

    def _commit_verdict(self, commit: pygit2.Commit, when: int):
        """The PR policy's verdict on `commit` at time `when`, judged as the PV judges it: by
        the policy in effect when the PR walk reached it (commit_check.PolicyChain), memoised
        (an epoch checks each new commit once for the walk and again for every binding it is
        the source of)."""
        key = (str(commit.id), when)
        if key not in self._verdicts:
            judged_by = self._judged_by.get(str(commit.id), self._policy_chain.source if self._policy_chain else None)
            self._verdicts[key] = commit_check.PolicyChain.verdict_with(self._pr_repo(), commit, judged_by, when)
        return self._verdicts[key]

    def _walk_verdict(self, commit: pygit2.Commit, when: int):
        """Judge the next PR commit of the walk (in the PV's order), moving the policy in effect."""
        if self._policy_chain is None:
            self._policy_chain = commit_check.PolicyChain(self._pr_repo(), None)
        verdict, judged_by = self._policy_chain.judge(commit, when)
        self._judged_by[str(commit.id)] = judged_by
        self._verdicts[(str(commit.id), when)] = verdict
        return verdict

    def _claimed_verdicts(self, record: layout.EpochRecord | None, epoch: int) -> list[tuple[str, bool]] | None:
        """The epoch record's `commits`: (PR commit id, policy verdict) in the PV's order."""
        if record is None:
            return None
        out = []
        for entry in record.commits:
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) \
                    or not isinstance(entry.get("ok"), bool):
                self.find(epoch, "record", "epoch record commits need an id and an ok flag")
                return None
            out.append((entry["id"], entry["ok"]))
        return out

    def _check_pr_tree(self, commit, epoch, signed, prev, changes: Changes, record: layout.EpochRecord | None,
                       results: dict[str, ResultRecord | None], bindings: dict[str, Binding]) -> None:
        """The tree against the PR at the STR's `pr` commit, as an honest PV decides it."""
        assert self.pr_view is not None
        if not self._pr_usable:
            return
        view = self.pr_view
        pr_commit = self._str_pr_commit(epoch, signed)
        if pr_commit is None:
            return
        old = self._pr_commit
        source_of, tainted = self._walk_new_pr_commits(epoch, signed, record, pr_commit, old)
        changed = view.changed(old, pr_commit) if old is None or old.id != pr_commit.id else set()
        present = view.plugins(pr_commit)
        self._follow_latest(epoch, pr_commit, changed, present, source_of, tainted)
        self._check_rewritten_results(epoch, signed, prev, old, changes, changed)
        # Only plugins that changed in the PR or in the log can change verdict this epoch.
        for name in sorted(changed | set(changes.added) | set(changes.modified) | set(changes.deleted)
                           | set(changes.results)):
            if is_valid_name(name):  # else the PV rejects the directory name; it can never be in the tree
                self._check_pr_plugin(commit, epoch, signed, pr_commit, name, name in present, results,
                                      bindings.get(name))
        self._pr_commit = pr_commit

    def _str_pr_commit(self, epoch: int, signed: SignedStr) -> pygit2.Commit | None:
        """The PR commit the STR names, if it is in the PR clone and descends from the previous
        epoch's; else None, and the PR tree checks stop."""
        assert self.pr_view is not None and self.pr is not None
        pr_commit = self.pr_view.commit(signed.head.pr)
        if pr_commit is None:
            self.find(epoch, "pr", f"the STR's PR commit {signed.head.pr[:12]} is not in the PR clone "
                                   f"(stale clone or rewritten PR); PR tree checks stop here")
            self._pr_usable = False
            return None
        old = self._pr_commit
        if old is not None and old.id != pr_commit.id and not self.pr.descendant_of(pr_commit.id, old.id):
            self.find(epoch, "pr history", f"the STR's PR commit {signed.head.pr[:12]} does not descend from the "
                                           f"previous epoch's {str(old.id)[:12]}; PR tree checks stop here")
            self._pr_usable = False
            return None
        return pr_commit

    def _walk_new_pr_commits(self, epoch: int, signed: SignedStr, record: layout.EpochRecord | None,
                             pr_commit: pygit2.Commit, old: pygit2.Commit | None
                             ) -> tuple[dict[str, str], dict[str, str]]:
        """Re-check each new PR commit as the PV does, against the epoch record's `commits` and
        `pr_policy`: the last commit touching a plugin gives its source (name -> commit id), or
        taints it when that commit was refused (name -> reason)."""
        assert self.pr_view is not None
        view = self.pr_view
        source_of: dict[str, str] = {}
        tainted: dict[str, str] = {}
        claimed = self._claimed_verdicts(record, epoch)
        new_commits = view.new_commits(pr_commit, old) if old is None or old.id != pr_commit.id else []
        if claimed is not None and sorted(c for c, _ in claimed) != sorted(str(c.id) for c in new_commits):
            self.find(epoch, "pr commits", f"the epoch record lists {len(claimed)} PR commit(s), the PR has "
                                           f"{len(new_commits)} between the STRs' pr commits: a commit was hidden "
                                           f"or invented")
        claimed_ok = dict(claimed or [])
        for pr_c in new_commits:
            touched = view.touched(pr_c)
            verdict = self._walk_verdict(pr_c, signed.head.time)  # every commit: any may set the policy
            said = claimed_ok.get(str(pr_c.id))
            if said is not None and said != verdict.ok:
                self.find(epoch, "pr commits", f"the epoch record says PR commit {str(pr_c.id)[:12]} was "
                                               f"{'accepted' if said else 'refused'}; re-checked against the "
                                               f"PR policy it is {'accepted' if verdict.ok else 'refused'}")
            commit_check.follow_plugins(verdict, touched, source_of, tainted)
        in_effect = self._policy_chain.source if self._policy_chain else None
        if record is not None and record.pr_policy and in_effect and record.pr_policy != in_effect:
            self.find(epoch, "pr policy", f"the epoch record says the PR policy of {record.pr_policy[:12]} is in "
                                          f"effect; walking the PR, it is {in_effect[:12]}'s")
        return source_of, tainted

    def _follow_latest(self, epoch: int, pr_commit: pygit2.Commit, changed: set[str], present: PluginsAt,
                       source_of: dict[str, str], tainted: dict[str, str]) -> None:
        """Move the version an honest PV must serve of each plugin the PR changed this epoch."""
        assert self.pr_view is not None
        view = self.pr_view
        for name in changed:
            if name not in present:
                self._latest.pop(name, None)
            elif name in tainted:
                self._latest[name] = Latest(None, tainted[name], epoch)
            elif name in source_of:
                self._latest[name] = Latest(source_of[name], None, epoch)
            else:  # changed only through a merge's second parent: the PV walks first parents back
                before = self._latest.get(name)
                if before is not None and before.taint:
                    self._latest[name] = Latest(None, before.taint, epoch)
                else:
                    self._latest[name] = Latest(view.last_touching(pr_commit, name), None, epoch)

    def _check_rewritten_results(self, epoch: int, signed: SignedStr, prev: SignedStr | None,
                                 old: pygit2.Commit | None, changes: Changes, changed: set[str]) -> None:
        """A results record is rewritten only when the PR changed its plugin or the policy changed."""
        policy_changed = prev is not None and prev.head.policy != signed.head.policy
        range_text = f"{str(old.id)[:12] if old is not None else 'the root'}..{signed.head.pr[:12]}"
        for name, code in sorted(changes.results.items()):
            if code != "D" and not policy_changed and name not in changed:
                self.find(epoch, "results", f"{name}: record rewritten in epoch {epoch} although the PR did not "
                                            f"change the plugin ({range_text}) nor the policy: nothing to re-verify")

    def _check_pr_plugin(self, commit: pygit2.Commit, epoch: int, signed: SignedStr, pr_commit: pygit2.Commit,
                         name: str, in_pr: bool, results: dict[str, ResultRecord | None],
                         binding: Binding | None) -> None:
        """Plugin `name` is served (`binding`) or rejected as the PR at the STR's commit says."""
        assert self.pr_view is not None
        if not in_pr:
            if binding is not None:
                self.find(epoch, "pr tree", f"{name}: deleted from the PR at {signed.head.pr[:12]} "
                                            f"but still in the tree (source {binding.source[:12]})")
            return
        latest = self._latest.get(name)
        if latest is None:  # present but never seen changing: the clone lacks history
            latest = self._latest[name] = Latest(self.pr_view.last_touching(pr_commit, name), None, epoch)
        if binding is not None:
            if latest.taint:
                self.find(epoch, "pr tree", f"{name}: in the tree although its latest PR change is refused "
                                            f"({latest.taint})")
            elif binding.source != latest.source:
                self.find(epoch, "pr tree", f"{name}: the tree serves source {binding.source[:12]}, but the PR "
                                            f"at {signed.head.pr[:12]} has {str(latest.source)[:12]} (of epoch "
                                            f"{latest.since}): an update was ignored")
            return
        result = results[name] if name in results else self._result(commit, name, epoch)
        wanted = f"commit {latest.source[:12]}" if latest.source else "its refused commit"
        if result is None or result.status != "rejected" or result.epoch < latest.since:
            state = "no results record" if result is None else f"a '{result.status}' record of epoch {result.epoch}"
            self.find(epoch, "pr tree", f"{name}: in the PR at {signed.head.pr[:12]} ({wanted}, epoch "
                                        f"{latest.since}) but absent from the tree with {state}: "
                                        f"neither served nor rejected")
        elif latest.source is not None and result.commit != latest.source:
            self.find(epoch, "pr tree", f"{name}: rejected for commit {str(result.commit)[:12]}, but the PR's "
                                        f"latest for it is {latest.source[:12]}: the new version was never judged")

    def _check_pr_area(self, origin: str, str_bytes: dict[int, bytes], verifier: NoteVerifier) -> None:
        pr = self._pr_repo()
        ref = None
        for name in (f"refs/heads/pvs/{origin}", f"refs/remotes/origin/pvs/{origin}"):
            if name in pr.references:
                ref = pr.references[name]
                break
        if ref is None:
            return
        area = pr[ref.target]
        prefix = f"pvs/{origin}/str/"
        try:
            entry = area.peel(pygit2.Commit).tree[prefix.rstrip("/")]
        except (KeyError, pygit2.GitError, ValueError):
            return
        if entry.type_str != "tree":
            self.find(None, "pr area", f"{prefix.rstrip('/')} in the PR area is not a directory")
            return
        for item in tree_at(pr, entry.id):
            item_name = entry_name(item)
            if not item_name.endswith(".note") or item.type_str != "blob":
                continue
            try:
                epoch = int(item_name[:-5])
            except ValueError:
                continue
            data = blob_at(pr, item.id)
            if epoch in str_bytes and data != str_bytes[epoch]:
                try:
                    open_any(data, verifier)
                    self.find(epoch, "equivocation", f"the STR the PV pushed to the PR for epoch {epoch} differs "
                                                     f"from the log's; both are validly signed")
                except (FormatError, VerificationError):
                    self.find(epoch, "pr area", f"the PR area holds an invalid STR for epoch {epoch}")

    def _check_state(self, chain: list[pygit2.Commit], str_bytes: dict[int, bytes]) -> None:
        if self.state_path is None:
            return
        try:
            seen = jsondoc.loads(self.state_path.read_bytes(), str(self.state_path), max_bytes=MAX_RECORD_BYTES)
        except FileNotFoundError:
            seen = None
        except (OSError, FormatError) as exc:
            self.find(None, "state", f"{self.state_path} unreadable: {exc}")
            return
        if seen is not None and (not isinstance(seen, dict) or not isinstance(seen.get("epoch"), int)
                                 or seen["epoch"] < 1 or not isinstance(seen.get("str_sha256"), str)):
            self.find(None, "state", f"{self.state_path}: not an audit state file")
            return
        if seen:
            epoch = int(seen["epoch"])
            if epoch > len(chain):
                self.find(epoch, "history", f"the log now ends at epoch {len(chain)}, before the audited epoch {epoch}")
            elif hashlib.sha256(str_bytes.get(epoch, b"")).hexdigest() != seen["str_sha256"] or \
                    str(chain[epoch - 1].id) != seen["commit"]:
                self.find(epoch, "history", "history rewritten: epoch "
                                            f"{epoch} differs from the one audited before")
        if self.report.ok and chain:
            last = len(chain)
            atomic_write_bytes(self.state_path, canonical_json({
                "epoch": last, "commit": str(chain[-1].id),
                "str_sha256": hashlib.sha256(str_bytes[last]).hexdigest()}))


def audit(log_path, **kwargs) -> AuditReport:
    return Auditor(log_path, **kwargs).run()


def iter_lines(report: AuditReport) -> Iterator[str]:
    for finding in report.findings:
        yield str(finding)
