"""Tiles: proofs from tiles equal proofs from the tree; tiles verify; updates touch few tiles."""

import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pds_log.core.errors import FormatError, VerificationError
from pds_log.core.tiles import LEAF, NODE, Tile, all_tiles, prove_from_tiles, tiles_on_paths
from pds_log.core.tree import PrefixTree


def store_of(tree):
    return {h: t.encode() for h, t in all_tiles(tree)}


def clustered_items(rnd, n):
    items = {rnd.randbytes(32): rnd.randbytes(32) for _ in range(n)}
    for k in list(items)[:3]:
        for bit in (255, 100, 12):
            b = bytearray(k)
            b[bit >> 3] ^= 1 << (7 - (bit & 7))
            items[bytes(b)] = rnd.randbytes(32)
    return items


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(st.integers(0, 400), st.integers(0, 2**32))
def test_tile_proofs_equal_tree_proofs(n, seed):
    rnd = random.Random(seed)
    items = clustered_items(rnd, n)
    tree = PrefixTree.from_items(items)
    store = store_of(tree)
    for h, data in store.items():
        assert Tile.decode(data).top_hash() == h
    probes = list(items)[:15] + [rnd.randbytes(32) for _ in range(10)]
    for key in probes:
        assert prove_from_tiles(key, tree.root(), lambda level, h: store[h]) == tree.prove(key)


def test_incremental_tiles_equal_full_set():
    rnd = random.Random(5)
    items = clustered_items(rnd, 3000)
    tree = PrefixTree.from_items(items)
    before = store_of(tree)
    changed = list(items)[:10] + [rnd.randbytes(32) for _ in range(10)]
    old_on_paths = tiles_on_paths(tree, changed)
    for k in changed[:5]:
        tree.delete(k)
    for k in changed[5:]:
        tree.set(k, rnd.randbytes(32))
    new_on_paths = tiles_on_paths(tree, changed)
    after = store_of(tree)
    expected = (set(before) - set(old_on_paths)) | set(new_on_paths)
    assert expected == set(after)
    # a change of 20 keys rewrites a handful of tiles per key, not the tree
    assert len(new_on_paths) <= 20 * 3 and len(after) > 200


@pytest.mark.slow
def test_tampered_or_wrong_tiles_are_rejected():
    rnd = random.Random(9)
    tree = PrefixTree.from_items(clustered_items(rnd, 1000))
    store = store_of(tree)
    key = next(iter(dict(tree.items())))
    root = tree.root()
    child = next(h for h, data in store.items() if Tile.decode(data).level == 1)

    def tampered(level, h):
        data = bytearray(store[h])
        if h == child or level == 1:
            data[-1] ^= 1
        return bytes(data)

    keys_under_child = [k for k, _ in tree.items() if prove_from_tiles(k, root, lambda _level, h: store[h])]
    with pytest.raises(VerificationError, match="does not hash"):
        for k in keys_under_child[:50]:
            prove_from_tiles(k, root, tampered)
    with pytest.raises(VerificationError, match="does not hash"):
        prove_from_tiles(key, os.urandom(32), lambda _level, h: store.get(h) or store[root])


@pytest.mark.parametrize("data, message", [
    (b"XXXX\x00\x00\x00", "bad magic"),
    (b"PDT1\x00\x00\x01\x05\x00", "truncated leaf"),
    (b"PDT1\x00\x00\x01\x05\x07" + bytes(32), "unknown kind"),
    (b"PDT1\x00\x00\x00junk", "trailing bytes"),
    (b"PDT1\x20\x00\x00", "level 32"),
    (b"PDT1\x00\x00\x02\x05\x01" + bytes(32) + b"\x05\x01" + bytes(32), "not increasing"),
    (b"PDT1\x00\x00\x01\x05\x00" + bytes(64), "does not belong at index 5"),
])
def test_malformed_tiles(data, message):
    with pytest.raises(FormatError, match=message):
        Tile.decode(data)


def test_tile_encoding_roundtrip_kinds():
    rnd = random.Random(1)
    tree = PrefixTree.from_items(clustered_items(rnd, 600))
    kinds = set()
    for _, tile in all_tiles(tree):
        assert Tile.decode(tile.encode()) == tile
        kinds |= {e.kind for e in tile.entries}
    assert kinds == {LEAF, NODE}
