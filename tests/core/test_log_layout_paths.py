"""core/log_layout.py paths and layout.json: tiles by position in layout 3 (a tile's path is
where it sits in the tree, so git deltas each version against the last), by hash before; every
malformed path or layout file is refused with its reason."""

import hashlib

import pytest

from pds_log.core import log_layout as layout
from pds_log.core import static_layout as site
from pds_log.core.errors import FormatError
from pds_log.core.names import name_key
from pds_log.core.tiles import positioned_tiles, tile_prefix
from pds_log.core.tree import PrefixTree

H = bytes.fromhex("ab" * 32)


@pytest.mark.parametrize("level, prefix, path", [
    (0, 0, "tiles/0/root"),
    (1, 0xAB, "tiles/1/a/ab"),
    (2, 0xABCD, "tiles/2/a/b/c/abcd"),
    (3, 0x0BCDEF, "tiles/3/0/b/c/d/0bcdef"),
    (31, 1, "tiles/31/0/0/0/0/" + "0" * 61 + "1"),
])
def test_layout_3_tiles_sit_at_their_position(level, prefix, path):
    assert layout.tile_path(level, H, 3, prefix) == path
    assert layout.parse_sharded_path(path, 3) == ("tiles", level, path.rsplit("/", 1)[1])


def test_layouts_1_and_2_name_tiles_by_hash():
    assert layout.tile_path(1, H, 1) == f"tiles/1/ab/{H.hex()}"
    assert layout.tile_path(1, H, 2) == f"tiles/1/a/b/a/b/{H.hex()}"
    assert layout.tile_path(1, H, 2, 0x12) == f"tiles/1/a/b/a/b/{H.hex()}"  # the position is not used


@pytest.mark.parametrize("level, prefix", [(1, None), (1, 256), (1, -1), (0, 1), (32, 0)])
def test_a_layout_3_tile_path_needs_a_position_in_the_tree(level, prefix):
    with pytest.raises(FormatError, match="no position in the tree"):
        layout.tile_path(level, H, 3, prefix)


@pytest.mark.parametrize("path, why", [
    ("tiles/0/abcd", "the level-0 tile is tiles/0/root"),
    ("tiles/1/a/abc", "not a level-1 tile position"),
    ("tiles/1/a/AB", "not a level-1 tile position"),
    ("tiles/2/a/b/abcd", "wrong shard"),
    ("tiles/1/b/ab", "wrong shard"),
    (f"tiles/1/a/b/a/b/{H.hex()}", "not a level-1 tile position"),  # a layout-2 path
    ("tiles/32/x", "bad tile level"),
])
def test_bad_layout_3_tile_paths_are_refused(path, why):
    with pytest.raises(FormatError, match=why):
        layout.parse_sharded_path(path, 3)


def test_tiles_are_not_moved_by_path_into_or_out_of_layout_3():
    with pytest.raises(FormatError, match="tiles are not moved between log layouts 2 and 3"):
        layout.reshard_path(f"tiles/1/a/b/a/b/{H.hex()}", 2, 3)
    digest = hashlib.sha256(b"x").hexdigest()
    path = layout.blob_path("bytecode", digest, 2)
    assert layout.reshard_path(path, 2, 3) == path == layout.blob_path("bytecode", digest, 3)
    assert layout.reshard_path(layout.binding_path("org.x.p", 2), 2, 3) == layout.binding_path("org.x.p", 3)


def test_every_tile_of_a_tree_publishes_under_its_hash():
    tree = PrefixTree.from_items({name_key(f"org.x.p{i}"): hashlib.sha256(b"%d" % i).digest() for i in range(600)})
    seen = 0
    for (level, prefix), tile_hash, tile in positioned_tiles(tree):
        path = layout.tile_path(level, tile_hash, 3, prefix)
        assert layout.published_tile_path(path, tile.encode(), 3) == site.tile_path(level, tile_hash)
        seen += 1
    assert seen > 2  # a root and level-1 tiles
    key = name_key("org.x.p7")
    assert tile_prefix(key, 0) == 0 and tile_prefix(key, 1) == key[0] and tile_prefix(key, 2) == key[0] << 8 | key[1]


def test_a_tile_file_that_is_not_the_tile_of_its_level_is_refused():
    tree = PrefixTree.from_items({name_key(f"org.x.p{i}"): hashlib.sha256(b"%d" % i).digest() for i in range(600)})
    root_tile = next(t for (level, _), _, t in positioned_tiles(tree) if level == 0)
    with pytest.raises(FormatError, match="holds a level-0 tile"):
        layout.published_tile_path("tiles/1/a/ab", root_tile.encode(), 3)
    with pytest.raises(FormatError):
        layout.published_tile_path("tiles/1/a/ab", b"PDT1junk", 3)
    with pytest.raises(FormatError, match="not a layout-3 tile path"):
        layout.published_tile_path(f"tiles/0/a/b/a/b/{H.hex()}", root_tile.encode(), 2)


@pytest.mark.parametrize("version", [2, 3])
def test_layout_files_of_known_versions_round_trip(version):
    data = layout.layout_file(version)
    assert data == f'{{"log":{version}}}'.encode()
    assert layout.parse_layout_file(data) == version
    assert layout.parse_layout_file(None) == 1


@pytest.mark.parametrize("data, why", [
    (b'{"log":4}', "not a known log layout"),
    (b'{"log":1}', "not a known log layout"),
    (b'{"log":true}', "not a known log layout"),
    (b'{"log": 3}', "not canonical"),
    (b'{"log":3,"x":1}', "not a known log layout"),
    (b"[" * 100, "not a layout file"),
])
def test_bad_layout_files_are_refused(data, why):
    with pytest.raises(FormatError, match=why):
        layout.parse_layout_file(data)
