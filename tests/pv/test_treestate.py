"""The PV's tree state (pv/treestate.py): loaded from tiles path by path, it gives the same
values, root and tiles as the full state; a bad tile, at any point of the epoch, makes it load
in full and apply the changes made so far again; what needs every name loads it in full."""

import hashlib
import random

import pytest

from pds_log.core.errors import PdsError
from pds_log.core.tiles import all_tiles, positioned_tiles, tile_prefix
from pds_log.pv.treestate import TreeState

H = lambda data: hashlib.sha256(data).digest()  # noqa: E731


def world(n: int, seed: int = 3):
    rnd = random.Random(seed)
    values = {f"org.t.p{i}": rnd.randbytes(32) for i in range(n)}
    full = TreeState.from_values(values)
    tiles = {h: t.encode() for h, t in all_tiles(full.tree)}
    return values, full, tiles


def partial(values, full, tiles, bad: set[bytes] = frozenset(), calls: list | None = None):
    loads: list[int] = []

    def fetch(level, h, key):
        if calls is not None:
            calls.append(h)
        if h in bad:
            return tiles[h][:-1] + bytes([tiles[h][-1] ^ 1])
        if h not in tiles:
            raise PdsError(f"no tile {h.hex()}")
        return tiles[h]

    def full_load():
        loads.append(1)
        return dict(values)

    state = TreeState.partial(full.tree.root(), len(full.tree), fetch, full_load)
    return state, loads


def apply(state: TreeState, changes):
    for name, value in changes:
        if value is None:
            state.delete(name)
        else:
            state.set(name, value)


CHANGES = [("org.t.p5", H(b"new")), ("org.t.p17", None), ("org.t.fresh", H(b"fresh")), ("org.t.p5", H(b"again")),
           ("org.t.absent", None)]


def test_partial_state_matches_the_full_state_and_loads_few_tiles():
    values, full, tiles = world(3000)
    calls: list[bytes] = []
    state, loads = partial(values, full, tiles, calls=calls)
    names = [n for n, _ in CHANGES]
    assert {p: (h, t.encode()) for p, (h, t) in state.tiles_on_paths(names).items()} == \
        {p: (h, t.encode()) for p, (h, t) in full.tiles_on_paths(names).items()}
    assert [state.get(n) for n in names] == [full.get(n) for n in names]
    apply(state, CHANGES)
    apply(full, CHANGES)
    assert state.tree.root() == full.tree.root() and len(state.tree) == len(full.tree)
    assert state.is_partial and not loads and state.fallback is None
    assert len(calls) == state.tiles_loaded <= 3 * len(names)
    assert "org.t.p5" in state.names() and "org.t.p17" not in state.names()


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_bad_tile_falls_back_to_the_full_load_and_keeps_the_changes(when):
    """A tampered tile on the path of the last change: met before any change, or after some."""
    values, full, tiles = world(3000)
    bad = {h for (level, _), (h, _) in full.tiles_on_paths(["org.t.p900"]).items() if level == 1}
    assert bad  # the level-1 tile over org.t.p900's key
    state, loads = partial(values, full, tiles, bad)
    changes = list(CHANGES)
    if when == "before":
        changes.insert(0, ("org.t.p900", H(b"x")))
    else:
        changes.append(("org.t.p900", H(b"x")))
    apply(state, changes)
    apply(full, changes)
    assert loads == [1] and not state.is_partial
    assert "tile check failed" in state.fallback and "hashes to" in state.fallback
    assert state.tree.root() == full.tree.root() and state.values == full.values


def test_tiles_are_fetched_by_a_key_on_their_path():
    """Log layout 3 stores a tile at its position: the fetch is given a key on the tile's path,
    and that key's prefix at the tile's level is the tile's position."""
    values, full, tiles = world(3000)
    by_position = {(level, prefix): (h, t.encode()) for (level, prefix), h, t in positioned_tiles(full.tree)}
    seen: list[tuple[int, int]] = []

    def fetch(level, h, key):
        position = (level, tile_prefix(key, level))
        seen.append(position)
        stored_hash, data = by_position[position]
        return data

    state = TreeState.partial(full.tree.root(), len(full.tree), fetch, lambda: dict(values))
    apply(state, CHANGES)
    apply(full, CHANGES)
    assert state.is_partial and state.fallback is None and state.tree.root() == full.tree.root()
    assert seen and {lv for lv, _ in seen} == {0, 1}


def test_a_missing_tile_falls_back_too():
    values, full, tiles = world(500)
    root_only = {full.tree.root(): tiles[full.tree.root()]}
    state, loads = partial(values, full, root_only)
    state.set("org.t.p1", H(b"v"))
    full.set("org.t.p1", H(b"v"))
    assert loads == [1] and "no tile" in state.fallback
    assert state.tree.root() == full.tree.root()


def test_every_name_loads_in_full():
    values, full, tiles = world(200)
    state, loads = partial(values, full, tiles)
    state.set("org.t.new", H(b"n"))
    assert sorted(state.names()) == sorted([*values, "org.t.new"]) and loads == [1]
    assert state.fallback == "every name was needed"


def test_partial_state_saves_no_cache_and_removes_a_stale_one(tmp_path):
    values, full, tiles = world(50)
    cache = tmp_path / "tree.cache"
    full.save(cache, "c1")
    assert TreeState.load(cache, "c1", full.tree.root()).values == values
    state, _ = partial(values, full, tiles)
    state.save(cache, "c2")
    assert not cache.exists()
