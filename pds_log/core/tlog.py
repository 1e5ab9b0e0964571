"""An append-only Merkle log (RFC 6962 hashing) and its static tiles (C2SP tlog-tiles).

This is the *log* of a PV's epochs, not the plugin *map* (the prefix tree of tree.py and
tiles.py): entry N is a byte string, the tree over entries 0..n-1 is RFC 6962's Merkle Tree
Hash (MTH), and its heads are published as checkpoints (checkpoint.py).

* leaf hash  = SHA-256(0x00 || entry)
* node hash  = SHA-256(0x01 || left || right)       (the same rule as the map's tree.node_hash)
* MTH(empty) = SHA-256("")

Stored hashes. Every complete, aligned subtree of 2**level entries starting at entry
n * 2**level has one hash, "the hash at (level, n)". A log stores them in the order they come
into existence as entries are appended (entry 0's leaf; entry 1's leaf, then (1, 0); ...), so
the stored index of (level, n) is a function of (level, n) alone -- the same numbering as Go's
golang.org/x/mod/sumdb/tlog, which lets an implementation keep one flat array of hashes.
Everything below reads hashes through a `HashReader` (one batched call per computation, so
a reader backed by HTTP tiles makes one round of GETs), computes tree hashes for any size and
builds or checks inclusion and consistency proofs (RFC 6962 section 2.1; checks as RFC 9162
section 2.1.3.2 and 2.1.4.2).

Tiles (C2SP tlog-tiles, height 8): tile (L, N) holds the hashes at (8L, 256N + i), i < 256,
served at ``tile/<L>/<N>`` (N as 3-digit path elements, all but the last prefixed with "x":
1234067 -> ``x001/x234/067``), a partial tile of W < 256 hashes at ``tile/<L>/<N>.p/<W>``,
and the entries of level-0 tile N at ``tile/entries/<N>[.p/<W>]`` as an entry bundle: each
entry as a big-endian uint16 length then its bytes.

Pure: no I/O. A caller supplies hashes (or tiles) and gets hashes, proofs or errors.
"""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass
from typing import Callable, Iterable, Protocol, Sequence

from .errors import FormatError, VerificationError

# re-exported: the log and the map share the interior-node rule, 0x01 || left || right
from .tree import node_hash as node_hash

HASH_SIZE = 32
TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT  # 256 hashes, 8192 bytes
MAX_TILE_LEVEL = 63
MAX_ENTRY_BYTES = 0xFFFF  # an entry bundle's uint16 length prefix
MAX_PROOF_HASHES = 63  # tlog-witness: "MUST NOT send more than 63 consistency proof lines"
EMPTY_ROOT = hashlib.sha256(b"").digest()

def leaf_hash(entry: bytes) -> bytes:
    """RFC 6962 leaf hash of one log entry."""
    return hashlib.sha256(b"\x00" + entry).digest()


class HashReader(Protocol):
    """Returns the stored hashes at the given stored indexes, in the order asked."""

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]: ...


# ---------------------------------------------------------------------------- stored hashes

def stored_hash_index(level: int, n: int) -> int:
    """The stored index of the hash at (level, n)."""
    if level < 0 or n < 0:
        raise FormatError(f"stored hash ({level}, {n}): level and index must be non-negative")
    last = ((n + 1) << level) - 1  # the subtree's last entry: its hash is stored just after that leaf's chain
    return stored_hash_count(last) + level


def split_stored_hash_index(index: int) -> tuple[int, int]:
    """The inverse of stored_hash_index: (level, n) of a stored index."""
    if index < 0:
        raise FormatError(f"stored hash index {index} is negative")
    # the entry whose append stored `index`: the largest m with stored_hash_count(m) <= index
    lo, hi = 0, index + 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if stored_hash_count(mid) <= index:
            lo = mid
        else:
            hi = mid
    level = index - stored_hash_count(lo)
    return level, lo >> level


def stored_hash_count(n: int) -> int:
    """How many hashes a log of n entries stores: sum over levels of the complete subtrees."""
    if n < 0:
        raise FormatError(f"tree size {n} is negative")
    count = 0
    while n:
        count += n
        n >>= 1
    return count


def stored_hashes_for_entry(n: int, entry: bytes, reader: HashReader) -> list[bytes]:
    """The hashes to append to a log of n entries when appending `entry` as entry n."""
    h = leaf_hash(entry)
    out = [h]
    need = []
    level = 0
    while (n >> level) & 1:  # each completed subtree needs its left sibling
        need.append(stored_hash_index(level, (n >> level) - 1))
        level += 1
    lefts = reader.read_hashes(need) if need else []
    for left in lefts:
        h = node_hash(left, h)
        out.append(h)
    return out


@dataclass
class MemoryHashes:
    """All stored hashes of a log held in a list: the PV's working copy and the tests' log."""

    hashes: list[bytes]
    size: int = 0

    @classmethod
    def empty(cls) -> "MemoryHashes":
        return cls([], 0)

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        out = []
        for i in indexes:
            if not 0 <= i < len(self.hashes):
                raise VerificationError(f"stored hash {i} is beyond the log ({len(self.hashes)} hashes)")
            out.append(self.hashes[i])
        return out

    def append(self, entry: bytes) -> int:
        """Append one entry; returns its index."""
        self.hashes.extend(stored_hashes_for_entry(self.size, entry, self))
        self.size += 1
        return self.size - 1

    def root(self, size: int | None = None) -> bytes:
        return tree_hash(self.size if size is None else size, self)


# ---------------------------------------------------------------------------- tree hashes

def _maxpow2_below(n: int) -> int:
    """The largest power of two strictly less than n (n >= 2): RFC 6962's split point."""
    return 1 << ((n - 1).bit_length() - 1)


def _aligned(lo: int, hi: int) -> list[tuple[int, int]]:
    """(level, n) of the complete subtrees whose MTH-combination is MTH(D[lo:hi]), left to right."""
    out = []
    while lo < hi:
        size = hi - lo
        if size & (size - 1) == 0 and lo % size == 0:
            out.append((size.bit_length() - 1, lo >> (size.bit_length() - 1)))
            break
        k = _maxpow2_below(size)
        level = k.bit_length() - 1
        out.append((level, lo >> level))
        lo += k
    return out


def _range_hash(lo: int, hi: int, hashes: dict[tuple[int, int], bytes]) -> bytes:
    parts = [hashes[p] for p in _aligned(lo, hi)]
    h = parts[-1]
    for left in reversed(parts[:-1]):
        h = node_hash(left, h)
    return h


def _range_hashes(ranges: Sequence[tuple[int, int]], reader: HashReader) -> list[bytes]:
    """MTH(D[lo:hi]) for each range, reading all needed stored hashes in one batch."""
    need: list[tuple[int, int]] = []
    for lo, hi in ranges:
        for p in _aligned(lo, hi):
            if p not in need:
                need.append(p)
    values = reader.read_hashes([stored_hash_index(level, n) for level, n in need]) if need else []
    if len(values) != len(need) or any(not isinstance(v, bytes) or len(v) != HASH_SIZE for v in values):
        raise VerificationError("hash reader returned the wrong number or size of hashes")
    got = dict(zip(need, values, strict=True))
    return [_range_hash(lo, hi, got) for lo, hi in ranges]


def tree_hash(n: int, reader: HashReader) -> bytes:
    """MTH of the first n entries."""
    if n < 0:
        raise FormatError(f"tree size {n} is negative")
    if n == 0:
        return EMPTY_ROOT
    return _range_hashes([(0, n)], reader)[0]


# ---------------------------------------------------------------------------- proofs

def _inclusion_ranges(m: int, lo: int, hi: int) -> list[tuple[int, int]]:
    """RFC 6962 PATH(m, D[lo:hi]) as ranges, leaf-side first."""
    out: list[tuple[int, int]] = []
    while hi - lo > 1:
        k = _maxpow2_below(hi - lo)
        if m < lo + k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo = lo + k
    out.reverse()
    return out


def _consistency_ranges(m: int, lo: int, hi: int, whole: bool) -> list[tuple[int, int]]:
    """RFC 6962 SUBPROOF(m, D[lo:hi], b) as ranges (m is an absolute old size)."""
    if m == hi:
        return [] if whole else [(lo, hi)]
    k = _maxpow2_below(hi - lo)
    if m <= lo + k:
        return _consistency_ranges(m, lo, lo + k, whole) + [(lo + k, hi)]
    return _consistency_ranges(m, lo + k, hi, False) + [(lo, lo + k)]


def prove_inclusion(tree_size: int, index: int, reader: HashReader) -> list[bytes]:
    """The inclusion proof of entry `index` in the tree of `tree_size` entries."""
    if not 0 <= index < tree_size:
        raise FormatError(f"entry {index} is not in a tree of size {tree_size}")
    return _range_hashes(_inclusion_ranges(index, 0, tree_size), reader)


def prove_consistency(new_size: int, old_size: int, reader: HashReader) -> list[bytes]:
    """The consistency proof from the tree of old_size entries to that of new_size."""
    if not 0 <= old_size <= new_size:
        raise FormatError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size == 0 or old_size == new_size:
        return []
    return _range_hashes(_consistency_ranges(old_size, 0, new_size, True), reader)


def check_proof_hashes(proof: Sequence[bytes], what: str) -> None:
    if len(proof) > MAX_PROOF_HASHES:
        raise VerificationError(f"{what}: {len(proof)} hashes, more than a 2**63 tree needs")
    for h in proof:
        if not isinstance(h, bytes) or len(h) != HASH_SIZE:
            raise FormatError(f"{what}: every hash must be {HASH_SIZE} bytes")


def root_from_inclusion(proof: Sequence[bytes], tree_size: int, index: int, leaf: bytes) -> bytes:
    """The root that an inclusion proof of leaf hash `leaf` at `index` implies (RFC 9162 2.1.3.2)."""
    check_proof_hashes(proof, "inclusion proof")
    if not 0 <= index < tree_size:
        raise VerificationError(f"inclusion proof: entry {index} is not in a tree of size {tree_size}")
    fn, sn, r = index, tree_size - 1, leaf
    for p in proof:
        if sn == 0:
            raise VerificationError("inclusion proof: too long for its tree size")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise VerificationError("inclusion proof: too short for its tree size")
    return r


def check_inclusion(proof: Sequence[bytes], tree_size: int, root: bytes, index: int, leaf: bytes) -> None:
    """Raises VerificationError unless the proof shows leaf hash `leaf` at `index` under `root`."""
    if root_from_inclusion(proof, tree_size, index, leaf) != root:
        raise VerificationError(f"inclusion proof of entry {index} does not match the root of size {tree_size}")


def check_consistency(proof: Sequence[bytes], new_size: int, new_root: bytes,
                      old_size: int, old_root: bytes) -> None:
    """Raises VerificationError unless the proof shows the old tree is a prefix of the new one
    (RFC 9162 2.1.4.2; old size 0 is consistent with anything, with an empty proof)."""
    check_proof_hashes(proof, "consistency proof")
    if not 0 <= old_size <= new_size:
        raise VerificationError(f"consistency proof: old size {old_size} is above new size {new_size}")
    if old_size == 0 or old_size == new_size:
        _check_trivial_consistency(proof, new_size, new_root, old_size, old_root)
        return
    _check_consistency_path(proof, new_size, new_root, old_size, old_root)


def _check_trivial_consistency(proof: Sequence[bytes], new_size: int, new_root: bytes,
                               old_size: int, old_root: bytes) -> None:
    """check_consistency from size 0 or between equal sizes, where the proof must be empty."""
    if old_size == 0:
        if proof:
            raise VerificationError("consistency proof from size 0 must be empty")
        if old_root != EMPTY_ROOT or (new_size == 0 and new_root != EMPTY_ROOT):
            raise VerificationError("consistency proof: a tree of size 0 has the empty root")
        return
    if proof:
        raise VerificationError("consistency proof between equal sizes must be empty")
    if old_root != new_root:
        raise VerificationError(f"two different roots for tree size {new_size}")


def _check_consistency_path(proof: Sequence[bytes], new_size: int, new_root: bytes,
                            old_size: int, old_root: bytes) -> None:
    """check_consistency for 0 < old_size < new_size: RFC 9162 2.1.4.2's verification walk."""
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    if not path:
        raise VerificationError("consistency proof is empty")
    fr, sr = consistency_path_roots(path, old_size, new_size, "consistency proof")
    if fr != old_root or sr != new_root:
        raise VerificationError(f"consistency proof from size {old_size} to size {new_size} does not verify")


def consistency_path_roots(path: Sequence[bytes], old_size: int, new_size: int, what: str) -> tuple[bytes, bytes]:
    """RFC 9162 2.1.4.2's walk over a non-empty consistency path (the proof with, for an old
    size that is a power of two, the old root first): the (old root, new root) it implies.
    Shared by proof checking and by equivocation evidence; `what` names the path in errors."""
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationError(f"{what}: too long for its tree sizes")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise VerificationError(f"{what}: too short for its tree sizes")
    return fr, sr


# ---------------------------------------------------------------------------- tiles

@dataclass(frozen=True, order=True)
class TileId:
    """Tile (level, n) of `width` hashes (256 = full); level -1 names an entry bundle."""

    level: int
    n: int
    width: int = TILE_WIDTH

    def __post_init__(self) -> None:
        if not -1 <= self.level <= MAX_TILE_LEVEL or self.n < 0 or not 1 <= self.width <= TILE_WIDTH:
            raise FormatError(f"invalid tile (level {self.level}, index {self.n}, width {self.width})")

    @property
    def is_entries(self) -> bool:
        return self.level == -1

    def path(self) -> str:
        """``tile/<L>/<N>[.p/<W>]`` or ``tile/entries/<N>[.p/<W>]`` exactly as C2SP tlog-tiles."""
        level = "entries" if self.level == -1 else str(self.level)
        suffix = "" if self.width == TILE_WIDTH else f".p/{self.width}"
        return f"tile/{level}/{encode_tile_index(self.n)}{suffix}"


def encode_tile_index(n: int) -> str:
    """N as zero-padded 3-digit path elements, all but the last prefixed with "x"."""
    if n < 0:
        raise FormatError(f"tile index {n} is negative")
    groups = [f"{n % 1000:03d}"]
    n //= 1000
    while n:
        groups.append(f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(reversed(groups))


_TILE_PATH = re.compile(r"tile/(entries|0|[1-9][0-9]?)/((?:x[0-9]{3}/)*[0-9]{3})(?:\.p/([1-9][0-9]{0,2}))?")


def parse_tile_path(path: str) -> TileId:
    """The tile a ``tile/...`` path names; FormatError for any other spelling."""
    m = _TILE_PATH.fullmatch(path) if isinstance(path, str) else None
    if not m:
        raise FormatError(f"not a tlog tile path: {str(path)[:80]!r}")
    level = -1 if m.group(1) == "entries" else int(m.group(1))
    digits = m.group(2).replace("x", "").replace("/", "")
    if len(m.group(2).split("/")) > 1 and m.group(2).startswith("x000"):
        raise FormatError(f"tile path {path!r}: leading zero path element")
    width = int(m.group(3)) if m.group(3) else TILE_WIDTH
    if m.group(3) and width >= TILE_WIDTH:
        raise FormatError(f"tile path {path!r}: partial width must be 1..255")
    if level > MAX_TILE_LEVEL:
        raise FormatError(f"tile path {path!r}: level above {MAX_TILE_LEVEL}")
    return TileId(level, int(digits), width)


def tile_for_size(level: int, n: int, tree_size: int) -> TileId | None:
    """Tile (level, n) as it exists in a tree of tree_size entries (full or partial), or None."""
    hashes_at_level = tree_size >> (TILE_HEIGHT * level)
    width = min(TILE_WIDTH, hashes_at_level - n * TILE_WIDTH)
    return TileId(level, n, width) if width > 0 else None


def tiles_for_size(tree_size: int) -> list[TileId]:
    """Every hash tile of a tree of tree_size entries (the rightmost ones partial)."""
    out = []
    level = 0
    while tree_size >> (TILE_HEIGHT * level):
        count = tree_size >> (TILE_HEIGHT * level)
        for n in range((count + TILE_WIDTH - 1) // TILE_WIDTH):
            tile = tile_for_size(level, n, tree_size)
            assert tile is not None
            out.append(tile)
        level += 1
    return out


def new_tiles(old_size: int, new_size: int) -> list[TileId]:
    """The hash tiles that exist at new_size but not at old_size (new full or partial tiles):
    what publishing the step from old_size to new_size writes, O(log n) for a step of one."""
    if not 0 <= old_size <= new_size:
        raise FormatError(f"no tiles from size {old_size} to size {new_size}")
    out = []
    level = 0
    while new_size >> (TILE_HEIGHT * level):
        old_count, new_count = old_size >> (TILE_HEIGHT * level), new_size >> (TILE_HEIGHT * level)
        for n in range(old_count // TILE_WIDTH, (new_count + TILE_WIDTH - 1) // TILE_WIDTH):
            tile = tile_for_size(level, n, new_size)
            if tile is not None and tile != tile_for_size(level, n, old_size):
                out.append(tile)
        level += 1
    return out


def entry_bundles_for(old_size: int, new_size: int) -> list[TileId]:
    """The entry bundles that change from old_size to new_size (level -1 twins of level-0 tiles)."""
    return [TileId(-1, t.n, t.width) for t in new_tiles(old_size, new_size) if t.level == 0]


def read_tile_data(tile: TileId, reader: HashReader) -> bytes:
    """A hash tile's bytes: its hashes concatenated."""
    if tile.is_entries:
        raise FormatError("an entry bundle holds entries, not hashes")
    level = tile.level * TILE_HEIGHT
    start = tile.n * TILE_WIDTH
    hashes = reader.read_hashes([stored_hash_index(level, start + i) for i in range(tile.width)])
    return b"".join(hashes)


def encode_entry_bundle(entries: Iterable[bytes]) -> bytes:
    out = []
    for e in entries:
        if len(e) > MAX_ENTRY_BYTES:
            raise FormatError(f"log entry of {len(e)} bytes does not fit an entry bundle (max {MAX_ENTRY_BYTES})")
        out.append(struct.pack(">H", len(e)) + e)
    return b"".join(out)


def decode_entry_bundle(data: bytes, where: str = "entry bundle") -> list[bytes]:
    out: list[bytes] = []
    i = 0
    while i < len(data):
        if i + 2 > len(data):
            raise FormatError(f"{where}: truncated length at byte {i}")
        (length,) = struct.unpack_from(">H", data, i)
        if i + 2 + length > len(data):
            raise FormatError(f"{where}: entry {len(out)} runs past the end")
        out.append(bytes(data[i + 2:i + 2 + length]))
        i += 2 + length
        if len(out) > TILE_WIDTH:
            raise FormatError(f"{where}: more than {TILE_WIDTH} entries")
    return out


class TileHashReader:
    """A HashReader over the tiles of a tree of `tree_size` entries, fetched by `read_tile`
    (a callable from TileId to bytes, e.g. a GET of ``<prefix>/<tile.path()>``).

    Tiles are not authenticated here: whatever is computed from them must be checked against
    a signed root (check_inclusion / check_consistency / tree_hash == checkpoint root), which
    a wrong tile cannot pass. Each tile is fetched at most once per reader."""

    def __init__(self, tree_size: int, read_tile: Callable[[TileId], bytes]) -> None:
        self.tree_size = tree_size
        self._read_tile = read_tile
        self._tiles: dict[TileId, list[bytes]] = {}
        self.fetched: list[TileId] = []

    def _tile(self, tile: TileId) -> list[bytes]:
        if tile not in self._tiles:
            data = self._read_tile(tile)
            if not isinstance(data, bytes) or len(data) != tile.width * HASH_SIZE:
                raise VerificationError(f"{tile.path()}: expected {tile.width * HASH_SIZE} bytes")
            self._tiles[tile] = [data[i:i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]
            self.fetched.append(tile)
        return self._tiles[tile]

    def _hash(self, level: int, n: int) -> bytes:
        if (n + 1) << level > self.tree_size:
            raise VerificationError(f"hash ({level}, {n}) is not in a tree of size {self.tree_size}")
        tile_level, rest = divmod(level, TILE_HEIGHT)
        first = n << rest  # the hashes at level 8 * tile_level that this one covers
        count = 1 << rest
        tile_n = first // TILE_WIDTH
        tile = tile_for_size(tile_level, tile_n, self.tree_size)
        assert tile is not None
        hashes = self._tile(tile)[first % TILE_WIDTH:first % TILE_WIDTH + count]
        while len(hashes) > 1:
            hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
        return hashes[0]

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        return [self._hash(*split_stored_hash_index(i)) for i in indexes]
