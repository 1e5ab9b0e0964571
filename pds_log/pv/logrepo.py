"""The PV's log repository (format: pds_log.core.log_layout): read state, write one commit per
epoch, and move the branch with a compare-and-swap so a concurrent job loses cleanly."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Iterator, Mapping

import pygit2

from pds_log.core import log_layout as layout
from pds_log.core.binding import Binding
from pds_log.core.errors import FormatError, PdsError
from pds_log.core.tiles import tile_prefix
from pds_log.infra.gittree import blob_at, commit_at, read_path, tree_at, update_tree, walk_blobs

BRANCH = "refs/heads/main"
ZERO_OID = "0" * 40


class RaceLost(PdsError):
    """Another epoch job moved the log branch first; this job committed nothing."""


class LogRepo:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.repo = pygit2.Repository(str(self.path))
        except pygit2.GitError:
            raise PdsError(f"{self.path}: not a git repository (create the PV with `pds pv init`)") from None

    @classmethod
    def init(cls, path: str | Path) -> "LogRepo":
        pygit2.init_repository(str(path), bare=True, initial_head="main")
        return cls(path)

    # ------------------------------------------------------------------ reading
    def head(self) -> pygit2.Commit | None:
        try:
            ref = self.repo.references[BRANCH]
        except KeyError:
            return None
        return commit_at(self.repo, ref.target)

    def read(self, commit: pygit2.Commit, path: str) -> bytes | None:
        return read_path(self.repo, commit.tree, path)

    def read_required(self, commit: pygit2.Commit, path: str) -> bytes:
        """The bytes at `path`, which every epoch commit holds: its absence is an error."""
        data = self.read(commit, path)
        if data is None:
            raise PdsError(f"{self.path}: commit {commit.id} has no {path}")
        return data

    def layout(self, commit: pygit2.Commit) -> int:
        """The log layout of an epoch commit (its layout.json; 1 without one)."""
        try:
            return layout.parse_layout_file(self.read(commit, layout.LAYOUT_FILE),
                                            f"{self.path}: commit {commit.id}: {layout.LAYOUT_FILE}")
        except FormatError as exc:
            raise PdsError(str(exc)) from None

    def tile(self, commit: pygit2.Commit, level: int, tile_hash: bytes, log_layout: int, key: bytes) -> bytes:
        """The bytes of the tile `tile_hash` at `level` on `key`'s path in the epoch's tree
        (PdsError if the commit has none there; the caller checks the hash)."""
        data = self.read(commit, layout.tile_path(level, tile_hash, log_layout, tile_prefix(key, level)))
        if data is None:
            raise PdsError(f"{self.path}: commit {commit.id} has no tile {level}/{tile_hash.hex()}")
        return data

    def reshard(self, commit: pygit2.Commit, from_layout: int, to_layout: int) -> dict[str, pygit2.Oid | None]:
        """The tree changes that move every file under the sharded directories (layout.SHARDED_DIRS)
        of `commit` from its `from_layout` path to its `to_layout` path: the same blobs (by id), moved."""
        moves: dict[str, pygit2.Oid | None] = {}
        for top in layout.SHARDED_DIRS:
            try:
                entry = commit.tree[top]
            except KeyError:
                continue
            for path, oid in walk_blobs(self.repo, tree_at(self.repo, entry.id), top + "/"):
                if top == "tiles" and layout.rewrites_tiles(from_layout, to_layout):
                    moves[path] = None  # tiles are rewritten at their positions (pv.epoch)
                    continue
                try:
                    target = layout.reshard_path(path, from_layout, to_layout)
                except FormatError as exc:
                    raise PdsError(f"{self.path}: commit {commit.id}: {exc}; refusing to migrate the log") from None
                moves[path] = None
                moves[target] = oid
        return moves

    def bindings(self, commit: pygit2.Commit) -> Iterator[Binding]:
        """Every binding in the epoch's tree (reads one blob per plugin)."""
        try:
            entry = commit.tree["bindings"]
        except KeyError:
            return
        log_layout = self.layout(commit)
        for path, oid in walk_blobs(self.repo, tree_at(self.repo, entry.id), "bindings/"):
            try:
                name = layout.name_from_record_path(path, log_layout)
            except FormatError as exc:
                raise PdsError(f"{self.path}: commit {commit.id}: {exc}") from None
            binding = Binding.decode(blob_at(self.repo, oid), path)
            if binding.name != name:
                raise PdsError(f"{path}: holds the binding of {binding.name}")
            yield binding

    # ------------------------------------------------------------------ writing
    def write_epoch_commit(self, parent: pygit2.Commit | None, changes: Mapping[str, bytes | pygit2.Oid | None],
                           epoch: int, origin: str, when: int, message: str) -> pygit2.Oid:
        """Write the epoch's objects and commit (not yet on the branch: see `advance`)."""
        tree_id = update_tree(self.repo, parent.tree if parent else None, changes)
        sig = pygit2.Signature(origin, f"{origin}@pds.invalid", when, 0)
        parents = [parent.id] if parent else []
        return self.repo.create_commit(None, sig, sig, message, tree_id, parents)

    def advance(self, old: pygit2.Oid | None, new: pygit2.Oid, epoch: int) -> None:
        """Move the branch from `old` to `new` atomically, only if it is still at `old`."""
        result = subprocess.run(
            ["git", "--git-dir", str(self.path), "update-ref", "-m", f"epoch {epoch}", BRANCH, str(new),
             str(old) if old else ZERO_OID],
            capture_output=True, text=True)
        if result.returncode != 0:
            now = self.head()
            raise RaceLost(
                f"log branch moved (now at {now.id if now else 'nothing'}, expected {old or 'nothing'}): "
                f"another epoch job committed first; this epoch committed nothing ({result.stderr.strip()})")
