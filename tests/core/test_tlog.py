"""The epoch log: RFC 6962 hashing, stored hashes, proofs, tlog-tiles paths and tiles."""

import functools
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pds_log.core import tlog
from pds_log.core.errors import FormatError, VerificationError


def mth(entries):
    """RFC 6962 section 2.1, written as the RFC states it: the reference the log must match."""
    if not entries:
        return hashlib.sha256(b"").digest()
    if len(entries) == 1:
        return hashlib.sha256(b"\x00" + entries[0]).digest()
    k = 1
    while k * 2 < len(entries):
        k *= 2
    return hashlib.sha256(b"\x01" + mth(entries[:k]) + mth(entries[k:])).digest()


def build(n):
    log = tlog.MemoryHashes.empty()
    entries = [b"entry %d" % i for i in range(n)]
    for e in entries:
        log.append(e)
    return log, entries


LOG, ENTRIES = build(700)


@functools.lru_cache(maxsize=1)
def big_log():
    return build(20000)[0]


def test_rfc6962_empty_and_known_roots():
    assert tlog.EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    # RFC 6962 test vector (certificate-transparency-go): the leaf hash of the empty entry
    assert tlog.leaf_hash(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 8, 9, 255, 256, 257, 511, 512, 513, 700])
def test_tree_hash_matches_rfc6962(n):
    assert tlog.tree_hash(n, LOG) == mth(ENTRIES[:n])


def test_stored_hash_numbering():
    # entry 0, entry 1, (1,0), entry 2, entry 3, (1,1), (2,0), entry 4 ...
    assert [tlog.stored_hash_index(0, i) for i in range(5)] == [0, 1, 3, 4, 7]
    assert tlog.stored_hash_index(1, 0) == 2 and tlog.stored_hash_index(1, 1) == 5
    assert tlog.stored_hash_index(2, 0) == 6
    for i in range(5000):
        assert tlog.stored_hash_index(*tlog.split_stored_hash_index(i)) == i
    assert len(LOG.hashes) == tlog.stored_hash_count(700)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_inclusion_proofs_verify_and_bind(data):
    n = data.draw(st.integers(1, 700))
    i = data.draw(st.integers(0, n - 1))
    proof = tlog.prove_inclusion(n, i, LOG)
    root = mth(ENTRIES[:n])
    tlog.check_inclusion(proof, n, root, i, tlog.leaf_hash(ENTRIES[i]))
    with pytest.raises(VerificationError):
        tlog.check_inclusion(proof, n, root, i, tlog.leaf_hash(b"other"))
    if proof:
        bad = list(proof)
        j = data.draw(st.integers(0, len(bad) - 1))
        bad[j] = bytes(32)
        with pytest.raises(VerificationError):
            tlog.check_inclusion(bad, n, root, i, tlog.leaf_hash(ENTRIES[i]))
    with pytest.raises(VerificationError):
        tlog.check_inclusion(proof + [bytes(32)], n, root, i, tlog.leaf_hash(ENTRIES[i]))


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_consistency_proofs_verify_and_bind(data):
    n = data.draw(st.integers(0, 700))
    m = data.draw(st.integers(0, n))
    proof = tlog.prove_consistency(n, m, LOG)
    tlog.check_consistency(proof, n, mth(ENTRIES[:n]), m, mth(ENTRIES[:m]))
    if 0 < m < n:
        forked = ENTRIES[:m - 1] + [b"forked"] + ENTRIES[m:n]
        with pytest.raises(VerificationError):
            tlog.check_consistency(proof, n, mth(ENTRIES[:n]), m, mth(forked[:m]))
        with pytest.raises(VerificationError):
            tlog.check_consistency(proof, n, mth(forked), m, mth(ENTRIES[:m]))


def test_consistency_edge_cases():
    root5 = LOG.root(5)
    with pytest.raises(VerificationError):
        tlog.check_consistency([], 5, root5, 5, LOG.root(4))  # same size, another root
    with pytest.raises(VerificationError):
        tlog.check_consistency([bytes(32)], 5, root5, 0, tlog.EMPTY_ROOT)  # old size 0: empty proof only
    with pytest.raises(VerificationError):
        tlog.check_consistency([], 4, LOG.root(4), 5, root5)  # shrinking
    with pytest.raises(VerificationError):
        tlog.check_consistency([], 0, bytes(32), 0, tlog.EMPTY_ROOT)  # size 0 has the empty root


def test_tile_paths_exactly_as_c2sp():
    assert tlog.encode_tile_index(1234067) == "x001/x234/067"
    assert tlog.encode_tile_index(0) == "000"
    assert tlog.encode_tile_index(1000) == "x001/000"
    assert tlog.TileId(0, 1234067).path() == "tile/0/x001/x234/067"
    assert tlog.TileId(2, 5, 17).path() == "tile/2/005.p/17"
    assert tlog.TileId(-1, 3, 4).path() == "tile/entries/003.p/4"
    for path in ["tile/0/x001/x234/067", "tile/2/005.p/17", "tile/entries/003.p/4", "tile/63/000"]:
        assert tlog.parse_tile_path(path).path() == path
    for bad in ["tile/00/000", "tile/0/1", "tile/0/001.p/0", "tile/0/001.p/256", "tile/64/000",
                "tile/0/x000/001", "tile/0/001/002", "tile/0/../000", "tile/entries/001.p/007"]:
        with pytest.raises(FormatError):
            tlog.parse_tile_path(bad)


def test_tiles_of_size_70000_as_the_spec_example():
    tiles = tlog.tiles_for_size(70000)
    level0 = [t for t in tiles if t.level == 0]
    assert len([t for t in level0 if t.width == 256]) == 273 and level0[-1].width == 112
    assert [(t.level, t.n, t.width) for t in tiles if t.level > 0] == [(1, 0, 256), (1, 1, 17), (2, 0, 1)]
    assert [t.path() for t in tlog.tiles_for_size(256)] == ["tile/0/000", "tile/1/000.p/1"]


def test_new_tiles_per_step_are_logarithmic():
    assert [t.path() for t in tlog.new_tiles(699, 700)] == ["tile/0/002.p/188"]
    assert [t.path() for t in tlog.new_tiles(255, 256)] == ["tile/0/000", "tile/1/000.p/1"]
    for old in range(0, 700, 37):
        for new in (old + 1, old + 100, 700):
            new = min(new, 700)
            have = set(tlog.tiles_for_size(old))
            assert set(tlog.new_tiles(old, new)) == set(tlog.tiles_for_size(new)) - have


def test_tiles_give_back_every_hash_and_proof():
    n = 700
    served = {t: tlog.read_tile_data(t, LOG) for t in tlog.tiles_for_size(n)}
    assert len(served[tlog.TileId(0, 0)]) == 8192
    reader = tlog.TileHashReader(n, lambda t: served[t])
    assert tlog.tree_hash(n, reader) == LOG.root()
    for old in (1, 100, 256, 300, 699):
        assert tlog.prove_consistency(n, old, reader) == tlog.prove_consistency(n, old, LOG)
    assert tlog.prove_inclusion(n, 699, reader) == tlog.prove_inclusion(n, 699, LOG)
    assert len(reader.fetched) <= 6  # each tile fetched once


def test_tile_reader_refuses_a_short_tile():
    reader = tlog.TileHashReader(10, lambda t: bytes(32 * (t.width - 1)))
    with pytest.raises(VerificationError):
        tlog.tree_hash(10, reader)


@given(st.lists(st.binary(max_size=300), max_size=40))
def test_entry_bundles_round_trip(entries):
    assert tlog.decode_entry_bundle(tlog.encode_entry_bundle(entries)) == entries


def test_entry_bundle_errors():
    with pytest.raises(FormatError):
        tlog.decode_entry_bundle(b"\x00\x05abc")
    with pytest.raises(FormatError):
        tlog.decode_entry_bundle(b"\x00")
    with pytest.raises(FormatError):
        tlog.encode_entry_bundle([bytes(70000)])


@pytest.mark.parametrize("last_seen", [50, 1000, 10000])
@pytest.mark.parametrize("behind", [1, 150, 10000])
def test_catch_up_reads_a_handful_of_tiles(last_seen, behind):
    """A peer that saw size m and now sees size n = m + k proves consistency and the head's
    record inclusion from at most 3 tiles (plus the checkpoint: 4 GETs), however large k is."""
    n = last_seen + behind
    log = big_log()
    reader = tlog.TileHashReader(n, lambda t: tlog.read_tile_data(t, log))
    tlog.check_consistency(tlog.prove_consistency(n, last_seen, reader), n, log.root(n), last_seen, log.root(last_seen))
    tlog.check_inclusion(tlog.prove_inclusion(n, n - 1, reader), n, log.root(n), n - 1, log.hashes[tlog.stored_hash_index(0, n - 1)])
    assert len(reader.fetched) <= 3, [t.path() for t in reader.fetched]
