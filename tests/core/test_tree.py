"""The prefix tree against its definition (reference_root) and hand-computed hashes."""

import hashlib
import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pds_log.core.errors import FormatError
from pds_log.core.tree import ZERO, PrefixTree, common_prefix_bits, key_bit, leaf_hash, node_hash, reference_root

H = lambda data: hashlib.sha256(data).digest()  # noqa: E731


def key_with_bits(bits: str, fill: int = 0) -> bytes:
    """A key starting with the given bit string, the rest `fill`."""
    n = int(bits.ljust(256, str(fill)), 2)
    return n.to_bytes(32, "big")


def test_empty_tree_root_is_zero():
    assert PrefixTree().root() == ZERO
    assert PrefixTree.from_items({}).root() == ZERO


def test_single_leaf_root_is_leaf_hash_by_hand():
    k, v = H(b"k"), H(b"v")
    assert PrefixTree.from_items({k: v}).root() == H(b"\x00" + k + v)


def test_two_leaves_split_at_first_bit_by_hand():
    a, b = key_with_bits("0"), key_with_bits("1")
    va, vb = H(b"a"), H(b"b")
    expected = H(b"\x01" + H(b"\x00" + a + va) + H(b"\x00" + b + vb))
    assert PrefixTree.from_items({a: va, b: vb}).root() == expected


def test_two_leaves_sharing_two_bits_hash_the_unary_chain():
    # keys 000.. and 001..: branch at depth 2; depths 1 and 0 are unary with zero siblings
    a, b = key_with_bits("000"), key_with_bits("001")
    va, vb = H(b"a"), H(b"b")
    branch = H(b"\x01" + H(b"\x00" + a + va) + H(b"\x00" + b + vb))  # at depth 2
    depth1 = H(b"\x01" + branch + ZERO)  # bit 1 of both keys is 0 -> left
    root = H(b"\x01" + depth1 + ZERO)  # bit 0 is 0 -> left
    assert PrefixTree.from_items({a: va, b: vb}).root() == root


def test_keys_differing_only_in_last_bit():
    a = key_with_bits("1" * 255 + "0")
    b = key_with_bits("1" * 256)
    tree = PrefixTree.from_items({a: H(b"a"), b: H(b"b")})
    assert tree.root() == reference_root({a: H(b"a"), b: H(b"b")}.items())
    siblings, leaf = tree.prove(a)
    assert len(siblings) == 256 and leaf == (a, H(b"a"))
    assert all(s is None for s in siblings[:255]) and siblings[255] == leaf_hash(b, H(b"b"))


def test_bad_keys_rejected():
    with pytest.raises(FormatError):
        PrefixTree.from_items({b"short": ZERO})
    with pytest.raises(FormatError):
        PrefixTree().set(ZERO, b"x")


def test_helpers():
    assert common_prefix_bits(ZERO, ZERO) == 256
    assert common_prefix_bits(key_with_bits("1"), ZERO) == 0
    assert key_bit(key_with_bits("01"), 1) == 1 and key_bit(key_with_bits("01"), 0) == 0
    assert node_hash(ZERO, ZERO) == H(b"\x01" + bytes(64))


keys = st.binary(min_size=32, max_size=32)
values = st.binary(min_size=32, max_size=32)


def clustered(draw_keys: list[bytes]) -> list[bytes]:
    """Add keys sharing long prefixes with the drawn ones (exercises long unary chains)."""
    out = list(draw_keys)
    for k in draw_keys[:3]:
        for bit in (255, 200, 9):
            b = bytearray(k)
            b[bit >> 3] ^= 1 << (7 - (bit & 7))
            out.append(bytes(b))
    return out


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(st.lists(keys, max_size=40), st.randoms(use_true_random=False))
def test_bulk_and_incremental_match_definition(key_list, rnd):
    key_list = clustered(key_list)
    items = {k: H(k) for k in key_list}
    bulk = PrefixTree.from_items(items)
    assert bulk.root() == reference_root(items.items())
    assert len(bulk) == len(items)
    inc = PrefixTree()
    order = list(items)
    rnd.shuffle(order)
    for k in order:
        inc.set(k, items[k])
    assert inc.root() == bulk.root()
    assert list(inc.items()) == sorted(items.items())
    # delete half, update a few, compare with the definition after each batch
    for k in order[: len(order) // 2]:
        assert inc.delete(k)
        del items[k]
    assert not inc.delete(H(b"never inserted"))
    for k in order[len(order) // 2:][:5]:
        items[k] = H(items[k])
        inc.set(k, items[k])
    assert inc.root() == reference_root(items.items())
    assert len(inc) == len(items)
    for k in order:
        assert inc.get(k) == items.get(k)


def test_update_batch_equals_rebuild():
    rnd = random.Random(7)
    items = {rnd.randbytes(32): rnd.randbytes(32) for _ in range(3000)}
    tree = PrefixTree.from_items(items)
    changes = []
    for k in list(items)[:100]:
        changes.append((k, None))
        del items[k]
    for _ in range(100):
        k, v = rnd.randbytes(32), rnd.randbytes(32)
        changes.append((k, v))
        items[k] = v
    for k in list(items)[500:550]:
        items[k] = rnd.randbytes(32)
        changes.append((k, items[k]))
    tree.update(changes)
    assert tree.root() == PrefixTree.from_items(items).root()


def test_setting_same_value_keeps_root():
    tree = PrefixTree.from_items({H(b"a"): H(b"1"), H(b"b"): H(b"2")})
    before = tree.root()
    tree.set(H(b"a"), H(b"1"))
    assert tree.root() == before


def test_delete_to_empty_and_back():
    tree = PrefixTree()
    tree.set(H(b"a"), H(b"1"))
    assert tree.delete(H(b"a"))
    assert tree.root() == ZERO and len(tree) == 0
    tree.set(H(b"a"), H(b"1"))
    assert tree.root() == leaf_hash(H(b"a"), H(b"1"))


def test_large_random_tree_matches_definition():
    rnd = random.Random(3)
    items = {os.urandom(32): rnd.randbytes(32) for _ in range(2000)}
    assert PrefixTree.from_items(items).root() == reference_root(items.items())


@pytest.mark.parametrize("items", [
    {"a" * 32: ZERO}, {ZERO: "b" * 32}, {ZERO: bytearray(32)}, {ZERO: ZERO, b"\x01" * 31: ZERO},
    {ZERO: ZERO, b"\x01" * 32: b"short"},
])
def test_bulk_build_rejects_bad_keys_and_values(items):
    with pytest.raises(FormatError, match="32 bytes"):
        PrefixTree.from_items(items)
