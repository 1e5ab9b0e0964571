"""The PV's in-memory tree: loaded from the log's tiles path by path, or in full.

The log repo is the truth. An epoch that changes k plugins needs the tree only on the k paths
of their keys, and the log already holds the tree cut into tiles (core.tiles), each stored at
its position (by its hash before log layout 3); so the state starts as the signed STR root
alone (`TreeState.partial`), and the first use of a key loads the O(log N) tiles on its path,
each checked against the hash its parent gave (the root tile against the STR root):
O(changed * log N), not O(N).

What needs every name (the planner when the acceptance policy changed) loads the state in full
(`names`), as does any tile that is missing, malformed or does not hash to what its parent
says (`fallback`): then the tree is rebuilt from the cache or from the bindings (one blob per
plugin), checked against the signed root, and the changes made so far are applied again.

The cache (state/tree.cache) stores (name, key, value) for the last committed epoch of a state
that was loaded in full; it is only trusted when the tree it yields has exactly the root that
the log's latest STR signed.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Collection, Iterator

from pds_log.core.errors import PdsError
from pds_log.core.names import name_key
from pds_log.core.tiles import Tile, TilePosition, load_path, positioned_tiles, positioned_tiles_on_paths
from pds_log.core.tree import NotLoaded, PrefixTree
from pds_log.infra.files import atomic_write_bytes

CACHE_MAGIC = b"PDSTREE1\n"


def _on_path(fetch_tile: Callable[[int, bytes, bytes], bytes], key: bytes, level: int, tile_hash: bytes) -> bytes:
    return fetch_tile(level, tile_hash, key)


@dataclass
class TreeState:
    tree: PrefixTree
    values: dict[str, bytes] | None = field(default_factory=dict)  # name -> leaf value; None: partial
    # partial: a tile's bytes by (level, hash, a key on its path): the log stores tiles by hash or
    # by position (log layout 3), and the key gives the position
    fetch_tile: Callable[[int, bytes, bytes], bytes] | None = None
    full_load: Callable[[], dict[str, bytes]] | None = None  # partial: every value, root checked
    journal: list[tuple[str, bytes | None]] = field(default_factory=list)  # partial: changes so far
    tiles_loaded: int = 0
    fallback: str | None = None  # why a partial state was loaded in full

    @classmethod
    def from_values(cls, values: dict[str, bytes]) -> "TreeState":
        return cls(PrefixTree.from_items({name_key(n): v for n, v in values.items()}), dict(values))

    @classmethod
    def partial(cls, root: bytes, size: int, fetch_tile: Callable[[int, bytes, bytes], bytes],
                full_load: Callable[[], dict[str, bytes]]) -> "TreeState":
        """The state of a tree known by its signed root and size, loaded on demand from tiles."""
        return cls(PrefixTree.partial(root, size), None, fetch_tile, full_load)

    @property
    def is_partial(self) -> bool:
        return self.values is None

    # ------------------------------------------------------------------ loading
    def _load_full(self, why: str) -> dict[str, bytes]:
        assert self.full_load is not None
        values = self.full_load()
        tree = PrefixTree.from_items({name_key(n): v for n, v in values.items()})
        for name, value in self.journal:
            if value is None:
                values.pop(name, None)
                tree.delete(name_key(name))
            else:
                values[name] = value
                tree.set(name_key(name), value)
        self.tree, self.values, self.fallback = tree, values, why
        self.journal = []
        return values

    def load_paths(self, names: Collection[str]) -> None:
        """Make every operation on `names` possible (load the tiles on their paths); on any
        tile that fails its check, load the state in full instead."""
        if self.values is not None:
            return
        fetch_tile = self.fetch_tile
        assert fetch_tile is not None
        try:
            for name in names:
                key = name_key(name)
                self.tiles_loaded += load_path(self.tree, key, partial(_on_path, fetch_tile, key))
        except PdsError as exc:  # FormatError / VerificationError from a tile, PdsError from the read
            self._load_full(f"tile check failed, tree loaded in full: {exc}")

    def _key(self, name: str) -> bytes:
        self.load_paths((name,))
        return name_key(name)

    # ------------------------------------------------------------------ use
    def get(self, name: str) -> bytes | None:
        if self.values is not None:
            return self.values.get(name)
        return self.tree.get(self._key(name))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def names(self) -> Collection[str]:
        """Every name in the tree, listed only when iterated (which loads the state in full)."""
        return _Names(self)

    def all_values(self) -> dict[str, bytes]:
        if self.values is None:
            return self._load_full("every name was needed")
        return self.values

    def set(self, name: str, value: bytes) -> None:
        key = self._key(name)
        self.tree.set(key, value)
        if self.values is not None:
            self.values[name] = value
        else:
            self.journal.append((name, value))

    def delete(self, name: str) -> None:
        if self.values is not None:
            if self.values.pop(name, None) is not None:
                self.tree.delete(name_key(name))
            return
        if self.tree.delete(self._key(name)):
            self.journal.append((name, None))

    def tiles_on_paths(self, names: Collection[str]) -> dict[TilePosition, tuple[bytes, Tile]]:
        """core.tiles.positioned_tiles_on_paths for the keys of `names`, their paths loaded first."""
        self.load_paths(names)
        try:
            return positioned_tiles_on_paths(self.tree, [name_key(n) for n in names])
        except NotLoaded as exc:  # load_paths loaded every path: a bug, never a hostile log
            raise PdsError(f"tree state: {exc}") from None

    def all_tiles(self) -> dict[TilePosition, tuple[bytes, Tile]]:
        """Every tile of the tree by position (loads the state in full)."""
        self.all_values()
        return {position: (h, tile) for position, h, tile in positioned_tiles(self.tree)}

    # ------------------------------------------------------------------ the cache
    def save(self, path: Path, commit: str) -> None:
        """Write the cache of a state loaded in full; a partial state needs none (the next
        epoch loads from the tiles), so a stale cache is removed instead."""
        if self.values is None:
            path.unlink(missing_ok=True)
            return
        header = json.dumps({"commit": commit, "count": len(self.values), "root": self.tree.root().hex()})
        parts = [CACHE_MAGIC, header.encode(), b"\n"]
        for name in sorted(self.values):
            raw = name.encode()
            parts.append(struct.pack(">B", len(raw)) + raw + self.values[name])
        atomic_write_bytes(path, b"".join(parts))

    @classmethod
    def load(cls, path: Path, commit: str, root: bytes) -> "TreeState | None":
        """The cached state if it belongs to `commit` and rebuilds to `root`; else None."""
        found = cls._load_cached(path, commit, root)
        return cls(found[1], found[0]) if found is not None else None

    @classmethod
    def load_values(cls, path: Path, commit: str, root: bytes) -> dict[str, bytes] | None:
        """The cached values if they belong to `commit` and rebuild to `root`; else None."""
        found = cls._load_cached(path, commit, root)
        return found[0] if found is not None else None

    @staticmethod
    def _load_cached(path: Path, commit: str, root: bytes) -> tuple[dict[str, bytes], PrefixTree] | None:
        try:
            data = path.read_bytes()
        except OSError:
            return None
        if not data.startswith(CACHE_MAGIC):
            return None
        try:
            end = data.index(b"\n", len(CACHE_MAGIC))
            header = json.loads(data[len(CACHE_MAGIC):end])
            if header["commit"] != commit or header["root"] != root.hex():
                return None
            values = {}
            pos = end + 1
            for _ in range(header["count"]):
                n = data[pos]
                name = data[pos + 1:pos + 1 + n].decode()
                values[name] = data[pos + 1 + n:pos + 33 + n]
                pos += 33 + n
            if pos != len(data):
                return None
        except (ValueError, KeyError, IndexError, UnicodeDecodeError, json.JSONDecodeError):
            return None
        tree = PrefixTree.from_items({name_key(n): v for n, v in values.items()})
        return (values, tree) if tree.root() == root else None


class _Names(Collection[str]):
    """The names of a state: membership by a path load, iteration by a full load."""

    def __init__(self, state: TreeState) -> None:
        self._state = state

    def __contains__(self, name: object) -> bool:
        return name in self._state

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._state.all_values()))

    def __len__(self) -> int:
        return len(self._state.tree)
