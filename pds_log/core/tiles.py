"""Tiles: the prefix tree cut into 8-level pieces for static publication (tile format v1).

A tile at level t (t = 0..31) covers the subtree at one position of depth 8t. Tiles exist for
the root (when the tree is non-empty) and for every position of depth 8t, t >= 1, whose subtree
holds two or more leaves. A tile lists the non-empty positions 8 levels below its own
(depth 8t + 8), by index i = the 8 key bits [8t, 8t+8):

* LEAF (kind 0): the subtree there holds exactly one leaf: its key and value;
* NODE (kind 1): two or more leaves: the subtree hash at depth 8t+8, which is also the name of
  the child tile at level t+1.

Anyone can recompute a tile's own hash from its entries: an empty position hashes to zero, a
position whose subtree holds exactly one leaf hashes to that leaf's hash, any other to
H(0x01 || left || right) -- the tree's own rule. A tile is therefore content-addressed by the
hash of its position (the STR root for the root tile), which is what a parent's NODE entry
carries: unchanged subtrees keep their tiles across epochs, and a peer verifies each tile it
fetches against the hash it expected.

Binary encoding: b"PDT1", level (1 byte), entry count (2 bytes, big-endian), then per entry in
increasing index: index (1 byte), kind (1 byte), key || value (64 bytes) or hash (32 bytes).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from .errors import FormatError, VerificationError
from .tree import (
    ZERO,
    Node,
    NotLoaded,
    PrefixTree,
    _fold,
    _rehash,
    build_from_nodes,
    check_key,
    leaf_hash,
    node_hash,
    stub,
)

TILE_MAGIC = b"PDT1"
TILE_HEIGHT = 8
MAX_LEVEL = 256 // TILE_HEIGHT - 1  # 31
LEAF, NODE = 0, 1


@dataclass(frozen=True)
class TileEntry:
    index: int
    kind: int
    key: bytes = b""
    value: bytes = b""
    hash: bytes = b""

    def node_hash(self) -> bytes:
        return leaf_hash(self.key, self.value) if self.kind == LEAF else self.hash


@dataclass(frozen=True)
class Tile:
    level: int
    entries: tuple[TileEntry, ...]

    def encode(self) -> bytes:
        out = [TILE_MAGIC, struct.pack(">BH", self.level, len(self.entries))]
        for e in self.entries:
            out.append(bytes((e.index, e.kind)))
            out.append(e.key + e.value if e.kind == LEAF else e.hash)
        return b"".join(out)

    @classmethod
    def decode(cls, data: bytes, where: str = "tile") -> "Tile":
        if len(data) < 7 or data[:4] != TILE_MAGIC:
            raise FormatError(f"{where}: not a v1 tile (bad magic)")
        level, count = struct.unpack_from(">BH", data, 4)
        if level > MAX_LEVEL:
            raise FormatError(f"{where}: level {level} > {MAX_LEVEL}")
        if count > 256:
            raise FormatError(f"{where}: {count} entries, at most 256")
        pos = 7
        entries: list[TileEntry] = []
        for n in range(count):
            entry, pos = _decode_entry(data, pos, n, level, where)
            if entries and entry.index <= entries[-1].index:
                raise FormatError(f"{where}: entry {n} index {entry.index} not increasing")
            entries.append(entry)
        if pos != len(data):
            raise FormatError(f"{where}: {len(data) - pos} trailing bytes")
        if level == MAX_LEVEL and any(e.kind == NODE for e in entries):
            raise FormatError(f"{where}: a level-{MAX_LEVEL} tile cannot have child tiles")
        return cls(level, tuple(entries))

    def _levels(self) -> list[list[tuple[int, bytes, TileEntry | None]]]:
        """Bottom-up hashes of the tile's 8 levels: levels[j][i] = (count class, hash, single leaf).

        count class: 0 empty, 1 exactly one leaf (hash = its leaf hash), 2 two or more."""
        bottom: list[tuple[int, bytes, TileEntry | None]] = [(0, ZERO, None)] * 256
        for e in self.entries:
            bottom[e.index] = (1, e.node_hash(), e) if e.kind == LEAF else (2, e.hash, None)
        levels = [bottom]
        row = bottom
        for _ in range(TILE_HEIGHT):
            nxt: list[tuple[int, bytes, TileEntry | None]] = []
            for i in range(0, len(row), 2):
                (cl, hl, el), (cr, hr, er) = row[i], row[i + 1]
                if cl + cr == 0:
                    nxt.append((0, ZERO, None))
                elif cl + cr == 1:  # one single leaf, other side empty: compressed
                    nxt.append((1, hl if cl else hr, el or er))
                else:
                    nxt.append((2, node_hash(hl, hr), None))
            levels.append(nxt)
            row = nxt
        levels.reverse()  # levels[0] = the tile's own position, levels[8] = its frontier
        return levels

    def top_hash(self) -> bytes:
        return self._levels()[0][0][1]


def _decode_entry(data: bytes, pos: int, n: int, level: int, where: str) -> tuple[TileEntry, int]:
    """Entry `n` of a tile at byte `pos`: (the entry, the position after it)."""
    if pos + 2 > len(data):
        raise FormatError(f"{where}: truncated at entry {n}")
    index, kind = data[pos], data[pos + 1]
    pos += 2
    if kind == LEAF:
        if pos + 64 > len(data):
            raise FormatError(f"{where}: truncated leaf entry {n}")
        key, value = data[pos:pos + 32], data[pos + 32:pos + 64]
        if _bits(key, level * TILE_HEIGHT, TILE_HEIGHT) != index:
            raise FormatError(f"{where}: leaf entry {n} key does not belong at index {index}")
        return TileEntry(index, LEAF, key=key, value=value), pos + 64
    if kind == NODE:
        if pos + 32 > len(data):
            raise FormatError(f"{where}: truncated node entry {n}")
        return TileEntry(index, NODE, hash=data[pos:pos + 32]), pos + 32
    raise FormatError(f"{where}: entry {n} has unknown kind {kind}")


def _bits(key: bytes, start: int, count: int) -> int:
    return (int.from_bytes(key, "big") >> (256 - start - count)) & ((1 << count) - 1)


# ---------------------------------------------------------------------- building (PV side)
def _entries_under(node: Node, depth: int, bottom: int, out: list[TileEntry]) -> None:
    """Collect the frontier entries at depth `bottom` of a stored subtree."""
    if len(node) == 3:
        out.append(TileEntry(_bits(node[0], bottom - TILE_HEIGHT, TILE_HEIGHT), LEAF, key=node[0], value=node[1]))
        return
    b = node[0]
    if len(node) == 4:  # a stub (partial tree): fine at or below the frontier, never above it
        if b < bottom:
            raise NotLoaded(b, node[2], node[1], "tile")
        out.append(TileEntry((node[2] >> (256 - bottom)) & 0xFF, NODE,
                             hash=_fold(node[1], node[2], b, bottom) if b > bottom else node[1]))
        return
    if b >= bottom:
        own = node[4] if node[4] is not None else _rehash(node)
        h = _fold(own, node[3], b, bottom) if b > bottom else own
        index = (node[3] >> (256 - bottom)) & 0xFF
        out.append(TileEntry(index, NODE, hash=h))
        return
    _entries_under(node[1], b + 1, bottom, out)
    _entries_under(node[2], b + 1, bottom, out)


def tile_at(tree: PrefixTree, level: int, prefix: int) -> tuple[bytes, Tile] | None:
    """The tile at (level, prefix of 8*level bits) and its hash, or None if none exists there."""
    depth = level * TILE_HEIGHT
    node = tree.node_at(prefix, depth)
    if node is None or (level > 0 and len(node) == 3):
        return None
    tree.root()  # make sure no dirty hashes remain
    entries: list[TileEntry] = []
    _entries_under(node, depth, depth + TILE_HEIGHT, entries)
    entries.sort(key=lambda e: e.index)
    tile = Tile(level, tuple(entries))
    if len(node) == 3:
        top = node[2]
    elif len(node) == 4:
        top = _fold(node[1], node[2], node[0], depth) if node[0] > depth else node[1]
    else:
        top = _fold(node[4], node[3], node[0], depth) if node[0] > depth else node[4]
    return top, tile


TilePosition = tuple[int, int]  # (level, prefix): the tile covering the keys whose first 8*level bits are prefix


def tile_prefix(key: bytes, level: int) -> int:
    """The position (8*level-bit prefix) at `level` of the tile on `key`'s path."""
    return int.from_bytes(key, "big") >> (256 - level * TILE_HEIGHT) if level else 0


def positioned_tiles_on_paths(tree: PrefixTree, keys: Iterable[bytes]) -> dict[TilePosition, tuple[bytes, Tile]]:
    """Every tile on the paths of `keys`, by position, with its hash: what a change to those
    keys rewrites."""
    out: dict[TilePosition, tuple[bytes, Tile]] = {}
    seen: set[TilePosition] = set()
    for key in keys:
        check_key(key)
        for level in range(MAX_LEVEL + 1):
            prefix = tile_prefix(key, level)
            if (level, prefix) in seen:
                continue
            seen.add((level, prefix))
            found = tile_at(tree, level, prefix)
            if found is None:
                break
            out[(level, prefix)] = found
    return out


def tiles_on_paths(tree: PrefixTree, keys: Iterable[bytes]) -> dict[bytes, Tile]:
    """Every tile on the paths of `keys` (by hash): what a change to those keys rewrites."""
    return dict(positioned_tiles_on_paths(tree, keys).values())


def positioned_tiles(tree: PrefixTree) -> Iterator[tuple[TilePosition, bytes, Tile]]:
    """Every tile of the tree with its position and hash, root first (a full publication)."""
    if len(tree) == 0:
        return
    pending = [(0, 0)]
    while pending:
        level, prefix = pending.pop()
        found = tile_at(tree, level, prefix)
        if found is None:
            continue
        yield (level, prefix), found[0], found[1]
        for e in found[1].entries:
            if e.kind == NODE:
                pending.append((level + 1, (prefix << TILE_HEIGHT) | e.index))


def all_tiles(tree: PrefixTree) -> Iterator[tuple[bytes, Tile]]:
    """Every tile of the tree, root first (a full publication)."""
    for _, tile_hash, tile in positioned_tiles(tree):
        yield tile_hash, tile


# ---------------------------------------------------------------------- loading (partial trees)
def subtree_from_tile(tile: Tile, prefix: int, where: str = "tile") -> Node:
    """The part of the tree tile `tile` (at its level, position `prefix`) describes: its leaves,
    and a stub for each NODE entry (the child tile, not loaded). FormatError on a tile that no
    honest tree has there: a leaf whose key is not below the tile's position, or a tile below
    the root holding fewer than two leaves."""
    level = tile.level
    depth = level * TILE_HEIGHT
    child_depth = depth + TILE_HEIGHT
    if not tile.entries:
        raise FormatError(f"{where}: a tile with no entries")
    if level > 0 and len(tile.entries) == 1 and tile.entries[0].kind == LEAF:
        raise FormatError(f"{where}: a level-{level} tile holding one leaf (not canonical)")
    if level == MAX_LEVEL and any(e.kind == NODE for e in tile.entries):  # pragma: no cover - Tile.decode refuses
        raise FormatError(f"{where}: child tiles below level {MAX_LEVEL}")
    items: list[tuple[int, Node]] = []
    for e in tile.entries:
        if e.kind == LEAF:
            kint = int.from_bytes(e.key, "big")
            if depth and kint >> (256 - depth) != prefix:
                raise FormatError(f"{where}: leaf {e.key.hex()[:16]}... is not below the tile's position")
            items.append((kint, (e.key, e.value, leaf_hash(e.key, e.value))))
        else:
            rep = ((prefix << TILE_HEIGHT) | e.index) << (256 - child_depth)
            items.append((rep, stub(child_depth, rep, e.hash)))
    return build_from_nodes(items)


def load_path(tree: PrefixTree, key: bytes, fetch: Callable[[int, bytes], bytes]) -> int:
    """Load into partial `tree` every tile on `key`'s path that it holds as a stub, so that any
    operation on `key` (get, prove, set, delete, tiles_on_paths) works; returns how many tiles
    it loaded. `fetch(level, hash)` returns a tile's bytes. Each tile must hash to what its
    parent (or the root the tree was made from) says: VerificationError otherwise, FormatError
    on a malformed one; the tree is unchanged by a tile that fails."""
    loaded = 0
    while True:
        missing = tree.stub_on_path(key)
        if missing is None:
            return loaded
        level = missing.depth // TILE_HEIGHT
        if missing.depth % TILE_HEIGHT:
            raise FormatError(f"stub at depth {missing.depth}: not a tile position")
        where = f"tile {level}/{missing.hash.hex()}"
        tile = Tile.decode(fetch(level, missing.hash), where)
        if tile.level != level:
            raise VerificationError(f"{where}: claims level {tile.level}, expected {level}")
        tree.replace_stub(missing.depth, missing.rep, subtree_from_tile(tile, missing.prefix, where))
        loaded += 1


# ---------------------------------------------------------------------- proving (peer side)
def prove_from_tiles(
    key: bytes, root: bytes, fetch: Callable[[int, bytes], bytes]
) -> tuple[list[bytes | None], tuple[bytes, bytes] | None]:
    """Walk tiles from the root to `key`'s position, verifying each tile against the hash its
    parent (or the STR) gave; returns (siblings, leaf) exactly as `PrefixTree.prove` does.

    `fetch(level, hash)` returns a tile's bytes. Raises VerificationError on a tile that does
    not hash to what was expected, FormatError on a malformed one."""
    check_key(key)
    siblings: list[bytes | None] = []
    if root == ZERO:
        return siblings, None
    expected = root
    level = 0
    while True:
        data = fetch(level, expected)
        tile = Tile.decode(data, f"tile {level}/{expected.hex()}")
        if tile.level != level:
            raise VerificationError(f"tile {expected.hex()[:16]}... claims level {tile.level}, expected {level}")
        levels = tile._levels()
        if levels[0][0][1] != expected:
            raise VerificationError(f"tile at level {level} does not hash to {expected.hex()[:16]}... (tampered?)")
        if level > 0 and levels[0][0][0] != 2:
            raise VerificationError(f"tile at level {level} holds fewer than two leaves (not canonical)")
        base = level * TILE_HEIGHT
        index = 0
        for j in range(TILE_HEIGHT + 1):
            cls, h, leaf = levels[j][index]
            if cls == 1:
                if leaf is None:  # _levels gives class 1 its single leaf; never trust that silently
                    raise VerificationError("tile: a one-leaf position without its leaf")
                return siblings, (leaf.key, leaf.value)
            if cls == 0:
                return siblings, None
            if j == TILE_HEIGHT:
                break  # a NODE at the frontier: continue in the child tile
            bit = (key[(base + j) >> 3] >> (7 - ((base + j) & 7))) & 1
            other = levels[j + 1][index * 2 + (1 - bit)]
            siblings.append(other[1] if other[0] else None)
            index = index * 2 + bit
        if level == MAX_LEVEL:  # pragma: no cover - rejected by Tile.decode
            raise VerificationError("tile path deeper than 256 bits")
        expected = levels[TILE_HEIGHT][index][1]
        level += 1
