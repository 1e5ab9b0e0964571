"""The PV's epoch log (STR v2) in its log repo: append an epoch's record, prove consistency.

The log repo keeps the epoch log as its C2SP tlog-tiles files under ``tlog/`` (formats.md,
"Log repository"): every full tile, and the partial tiles of the epoch's own size (a later
epoch deletes the partials it supersedes, the publisher has copied them from that epoch's
commit). Appending epoch E's record reads O(log E) hashes from those tiles, checks that they
hash to the log root the previous STR v2 signed, and writes O(log E) files.

The first v2 epoch of a log that was v1 before (or of a new log) rebuilds the log from the
STRs: entry e-1 is the record of epoch e's STR (map root, time, pr, size, policy), which is
the migration formats.md fixes. It reads every earlier STR once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pygit2

from pds_log.core import log_layout as layout
from pds_log.core import tlog
from pds_log.core.checkpoint import EpochRecord
from pds_log.core.errors import PdsError
from pds_log.core.note import NoteVerifier
from pds_log.core.strs import SignedStr, open_any, record_of

from .logrepo import LogRepo


class CommitTiles:
    """Reads the epoch log's tiles from one commit of the log repo (a TileHashReader source)."""

    def __init__(self, log: LogRepo, commit: pygit2.Commit) -> None:
        self.log = log
        self.commit = commit

    def __call__(self, tile: tlog.TileId) -> bytes:
        path = layout.tlog_path(tile.path())
        data = self.log.read(self.commit, path)
        if data is None:
            raise PdsError(f"{self.log.path}: commit {str(self.commit.id)[:12]} has no {path} "
                           f"(the epoch log is incomplete)")
        return data


def reader_at(log: LogRepo, commit: pygit2.Commit, size: int) -> tlog.TileHashReader:
    return tlog.TileHashReader(size, CommitTiles(log, commit))


def prover(log: LogRepo, commit: pygit2.Commit, size: int) -> Callable[[int], list[bytes]]:
    """old -> the consistency proof from size `old` to `size`, from the commit's tiles."""
    def prove(old: int) -> list[bytes]:
        return tlog.prove_consistency(size, old, reader_at(log, commit, size))

    return prove


class _Overlay:
    """Stored hashes: the new ones of this append, else those of the log before it."""

    def __init__(self, extra: dict[int, bytes], base: tlog.HashReader) -> None:
        self.extra = extra
        self.base = base

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        missing = [i for i in indexes if i not in self.extra]
        got = dict(zip(missing, self.base.read_hashes(missing), strict=True)) if missing else {}
        return [self.extra[i] if i in self.extra else got[i] for i in indexes]


@dataclass
class Appended:
    log_root: bytes  # the log root at size record.epoch
    changes: dict[str, bytes | None] = field(default_factory=dict)  # tlog/ files of the epoch commit
    migrated: int = 0  # earlier epochs rebuilt from their STRs (first v2 epoch only)


def append(log: LogRepo, head: pygit2.Commit | None, prev: SignedStr | None, verifier: NoteVerifier,
           record: EpochRecord) -> Appended:
    """The epoch log after appending `record` (entry record.epoch - 1) to the log at `head`."""
    size = record.epoch - 1
    last = prev.head.epoch if prev else 0
    if last != size:
        raise PdsError(f"epoch log: record of epoch {record.epoch} does not follow epoch {last}")
    if head is None or prev is None or prev.version == 1:
        return _rebuild(log, head, verifier, record)
    reader = reader_at(log, head, size)
    stored = tlog.tree_hash(size, reader)
    if stored != getattr(prev.head, "log_root", None):
        raise PdsError(f"{log.path}: the epoch log under {layout.TLOG_DIR}/ hashes to {stored.hex()[:16]}... at size "
                       f"{size}, but the STR of epoch {size} signed another log root; refusing to continue")
    entry = record.entry()
    new = tlog.stored_hashes_for_entry(size, entry, reader)
    first = tlog.stored_hash_count(size)
    overlay = _Overlay({first + i: h for i, h in enumerate(new)}, reader)
    out = Appended(tlog.tree_hash(size + 1, overlay))
    for tile in tlog.new_tiles(size, size + 1):
        out.changes[layout.tlog_path(tile.path())] = tlog.read_tile_data(tile, overlay)
        _drop_superseded(out.changes, tlog.tile_for_size(tile.level, tile.n, size))
    for bundle in tlog.entry_bundles_for(size, size + 1):
        before: list[bytes] = []
        if bundle.width > 1:
            old = tlog.TileId(-1, bundle.n, bundle.width - 1)
            before = tlog.decode_entry_bundle(CommitTiles(log, head)(old), old.path())
            if len(before) != old.width:
                raise PdsError(f"{log.path}: {layout.tlog_path(old.path())} holds {len(before)} entries, "
                               f"not {old.width}")
            _drop_superseded(out.changes, old)
        out.changes[layout.tlog_path(bundle.path())] = tlog.encode_entry_bundle([*before, entry])
    return out


def _drop_superseded(changes: dict[str, bytes | None], old: tlog.TileId | None) -> None:
    if old is not None and old.width < tlog.TILE_WIDTH:
        changes[layout.tlog_path(old.path())] = None


def records_from_strs(log: LogRepo, commit: pygit2.Commit, verifier: NoteVerifier, epochs: int) -> list[EpochRecord]:
    """The records of epochs 1..epochs, each rebuilt from its STR (either version) in `commit`."""
    out = []
    for epoch in range(1, epochs + 1):
        signed = open_any(log.read_required(commit, layout.str_path(epoch)), verifier)
        if signed.head.epoch != epoch:
            raise PdsError(f"{log.path}: {layout.str_path(epoch)} is the STR of epoch {signed.head.epoch}")
        out.append(record_of(signed.head))
    return out


def all_files(entries: list[bytes]) -> tuple[bytes, dict[str, bytes | None]]:
    """(log root, every tlog/ file) of the log holding `entries`: its tiles at that size."""
    hashes = tlog.MemoryHashes.empty()
    for entry in entries:
        hashes.append(entry)
    files: dict[str, bytes | None] = {}
    for tile in tlog.tiles_for_size(len(entries)):
        files[layout.tlog_path(tile.path())] = tlog.read_tile_data(tile, hashes)
        if tile.level == 0:
            bundle = tlog.TileId(-1, tile.n, tile.width)
            start = tile.n * tlog.TILE_WIDTH
            files[layout.tlog_path(bundle.path())] = tlog.encode_entry_bundle(entries[start:start + tile.width])
    return hashes.root(), files


def _rebuild(log: LogRepo, head: pygit2.Commit | None, verifier: NoteVerifier, record: EpochRecord) -> Appended:
    """The first v2 epoch: the log of every earlier epoch's record (from its v1 STR) and this one."""
    earlier = records_from_strs(log, head, verifier, record.epoch - 1) if head is not None else []
    root, files = all_files([r.entry() for r in (*earlier, record)])
    return Appended(root, files, len(earlier))
