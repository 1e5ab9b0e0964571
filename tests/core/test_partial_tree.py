"""Partial prefix trees (core/tree.py stubs, core/tiles.py load_path): a tree known by its root,
loaded from its own tiles only on the paths an epoch touches, must behave exactly like the full
tree on those paths, refuse to go inside what it has not loaded, and refuse a hostile tile."""

import hashlib
import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pds_log.core.errors import FormatError, VerificationError
from pds_log.core.tiles import LEAF, NODE, Tile, TileEntry, all_tiles, load_path, subtree_from_tile, tiles_on_paths
from pds_log.core.tree import ZERO, NotLoaded, PrefixTree, reference_root

H = lambda data: hashlib.sha256(data).digest()  # noqa: E731


def tiles_of(tree: PrefixTree) -> dict[bytes, bytes]:
    return {h: t.encode() for h, t in all_tiles(tree)}


def partial_of(tree: PrefixTree) -> tuple[PrefixTree, dict[bytes, bytes]]:
    store = tiles_of(tree)
    return PrefixTree.partial(tree.root(), len(tree)), store


def encoded(tiles: dict) -> dict[bytes, bytes]:
    return {h: t.encode() for h, t in tiles.items()}


keys = st.binary(min_size=32, max_size=32)


@settings(max_examples=120, deadline=None)
@given(st.dictionaries(keys, keys, max_size=300), st.lists(st.tuples(keys, st.booleans()), max_size=12),
       st.randoms(use_true_random=False))
def test_partial_tree_after_changes_has_the_full_rebuilds_root_and_tiles(items, fresh, rnd):
    """Changes (sets of new and existing keys, deletes) on a partial tree loaded on their
    paths only: same root as the reference, same tiles on those paths, same proofs."""
    full = PrefixTree.from_items(items)
    partial, store = partial_of(full)
    existing = rnd.sample(sorted(items), min(len(items), 6))
    changes: list[tuple[bytes, bytes | None]] = [(k, None if rnd.random() < 0.5 else H(k)) for k in existing]
    changes += [(k, None if delete else H(k + b"v")) for k, delete in fresh]
    touched = [k for k, _ in changes]
    for k in touched:
        load_path(partial, k, lambda level, h: store[h])
    assert partial.root() == full.root()
    assert encoded(tiles_on_paths(partial, touched)) == encoded(tiles_on_paths(full, touched))
    for k in touched:
        assert partial.prove(k) == full.prove(k)
        assert partial.get(k) == full.get(k)
    expected = dict(items)
    for k, v in changes:
        partial.update([(k, v)])
        full.update([(k, v)])
        if v is None:
            expected.pop(k, None)
        else:
            expected[k] = v
    assert partial.root() == reference_root(expected.items()) == PrefixTree.from_items(expected).root()
    assert len(partial) == len(expected)
    assert encoded(tiles_on_paths(partial, touched)) == encoded(tiles_on_paths(full, touched))


def test_randomized_large_tree_loads_only_the_paths_it_needs():
    rnd = random.Random(7)
    items = {rnd.randbytes(32): rnd.randbytes(32) for _ in range(20_000)}
    full = PrefixTree.from_items(items)
    partial, store = partial_of(full)
    fetched: list[bytes] = []

    def fetch(level: int, h: bytes) -> bytes:
        fetched.append(h)
        return store[h]

    changed = rnd.sample(sorted(items), 10)
    for k in changed:
        load_path(partial, k, fetch)
    assert len(fetched) <= 10 * 3 and len(set(fetched)) == len(fetched)  # depth ~ log_256(20k) + 1
    for k in changed:
        partial.set(k, H(k))
        full.set(k, H(k))
    assert partial.root() == full.root()


def test_an_operation_inside_a_stub_is_refused_with_a_clear_error():
    items = {H(i.to_bytes(2, "big")): H(b"v%d" % i) for i in range(600)}
    full = PrefixTree.from_items(items)
    partial, store = partial_of(full)
    k = next(iter(items))
    for op in (lambda: partial.get(k), lambda: partial.prove(k), lambda: partial.set(k, H(b"x")),
               lambda: partial.delete(k), lambda: list(partial.items()), lambda: tiles_on_paths(partial, [k])):
        with pytest.raises(NotLoaded, match="not loaded in this partial tree"):
            op()
    assert partial.root() == full.root()  # a refused set left no trace
    load_path(partial, k, lambda level, h: store[h])
    assert partial.get(k) == items[k]
    crowded = {o[0] for o in items if sum(1 for x in items if x[0] == o[0]) >= 2}
    other = next(o for o in items if o[0] != k[0] and o[0] in crowded)  # another top-level subtree: a stub
    with pytest.raises(NotLoaded) as info:
        partial.get(other)
    assert info.value.depth == 8 and info.value.prefix == other[0]


def test_partial_of_empty_and_one_leaf_trees():
    empty = PrefixTree.partial(ZERO, 0)
    assert empty.root() == ZERO and empty.get(H(b"k")) is None
    with pytest.raises(FormatError):
        PrefixTree.partial(H(b"r"), 0)
    one = PrefixTree.from_items({H(b"k"): H(b"v")})
    partial, store = partial_of(one)
    load_path(partial, H(b"other"), lambda level, h: store[h])
    assert partial.get(H(b"k")) == H(b"v") and partial.root() == one.root()


def _tampered(store: dict[bytes, bytes], level: int) -> dict[bytes, bytes]:
    out = dict(store)
    for h, data in store.items():
        if data[4] == level:
            out[h] = data[:-1] + bytes([data[-1] ^ 1])
    return out


@pytest.mark.parametrize("level", [0, 1])
def test_a_tampered_tile_is_refused_and_the_tree_is_unchanged(level):
    items = {H(bytes([i, j])): H(b"v") for i in range(40) for j in range(20)}
    full = PrefixTree.from_items(items)
    partial, store = partial_of(full)
    bad = _tampered(store, level)
    k = next(o for o in items if sum(1 for x in items if x[0] == o[0]) >= 2)  # a level-1 tile on its path
    with pytest.raises(VerificationError, match="hashes to"):
        load_path(partial, k, lambda lv, h: bad[h])
    assert partial.root() == full.root()
    load_path(partial, k, lambda lv, h: store[h])  # the honest tiles still load
    assert partial.get(k) == items[k]


def test_hostile_tiles_are_format_errors():
    k = H(b"k")
    with pytest.raises(FormatError, match="not a v1 tile"):
        load_path(PrefixTree.partial(H(b"r"), 5), k, lambda lv, h: b"junk")
    wrong_level = Tile(3, (TileEntry(1, NODE, hash=H(b"a")), TileEntry(2, NODE, hash=H(b"b"))))
    with pytest.raises(VerificationError, match="claims level 3"):
        load_path(PrefixTree.partial(H(b"r"), 5), k, lambda lv, h: wrong_level.encode())
    one_leaf = Tile(1, (TileEntry(k[1], LEAF, key=k, value=H(b"v")),))
    with pytest.raises(FormatError, match="one leaf"):
        subtree_from_tile(one_leaf, k[0])
    stray = Tile(1, (TileEntry(k[1], LEAF, key=k, value=H(b"v")), TileEntry(k[1] ^ 1, NODE, hash=H(b"n"))))
    with pytest.raises(FormatError, match="not below the tile's position"):
        subtree_from_tile(stray, k[0] ^ 0xFF)
    with pytest.raises(FormatError, match="no entries"):
        subtree_from_tile(Tile(0, ()), 0)


def test_a_node_entry_that_claims_a_single_leaf_fails_one_level_down():
    """A signed root over a tile whose NODE entry stands for a single leaf (no honest tree has
    that child tile): the paths elsewhere load, the load into that child fails."""
    a, b = bytes([1]) + os.urandom(31), bytes([2]) + os.urandom(31)
    va, vb = H(b"a"), H(b"b")
    from pds_log.core.tree import leaf_hash
    root_tile = Tile(0, (TileEntry(1, NODE, hash=leaf_hash(a, va)), TileEntry(2, LEAF, key=b, value=vb)))
    root = root_tile.top_hash()
    child = Tile(1, (TileEntry(a[1], LEAF, key=a, value=va),))
    store = {root: root_tile.encode(), leaf_hash(a, va): child.encode()}
    partial = PrefixTree.partial(root, 2)
    load_path(partial, b, lambda lv, h: store[h])
    assert partial.get(b) == vb
    with pytest.raises(FormatError, match="one leaf"):
        load_path(partial, a, lambda lv, h: store[h])
