"""Log layout 3 (core/log_layout.py): tiles stored at their position in the tree. A layout-2 log
made by real epochs moves to layout 3 in its next epoch (every tile rewritten at its position,
every other file kept); later epochs rewrite a changed tile in place (a modified file, which
git deltas against its last version); the tree loads from the positioned tiles; the auditor
passes the log and names a wrong, missing or stale tile; publication is byte-identical."""

import json

import pygit2
import pytest

from pds_log.core import log_layout as layout
from pds_log.core.binding import Binding
from pds_log.core.names import name_key
from pds_log.core.tiles import positioned_tiles
from pds_log.core.tree import PrefixTree
from pds_log.pv.config import load_config
from pds_log.pv.epoch import EpochOptions, run_epoch
from pds_log.pv.publish import publish
from tests.pv.test_log_layout import FAST, PLUGINS, set_log_layout, sharded_files, site_files
from tests.support import PDS, World, forger_clone, run

pytestmark = pytest.mark.slow  # real PVs and epochs (seconds each)

# two names whose keys share their first byte: the tree then has a level-1 tile
PAIR = {"org.pds.c15.p": "org.pds.examples.rtt_monitor", "org.pds.c24.p": "org.pds.examples.cwin_total"}


def tree_of(repo: pygit2.Repository, commit: pygit2.Commit) -> PrefixTree:
    bindings = [Binding.decode(repo[oid].data) for p, oid in sharded_files(repo, commit).items()
                if p.startswith("bindings/")]
    return PrefixTree.from_items({name_key(b.name): b.value() for b in bindings})


@pytest.fixture(scope="module")
def moved(tmp_path_factory):
    """A PV pinned to layout 2 runs two real epochs; then, at the default layout, one epoch
    that also changes a plugin (the move to layout 3) and one more change."""
    root = tmp_path_factory.mktemp("loglayout3")
    world = World(root)
    config_path = world.add_pv("pv1.example", verifiers=FAST, acceptance="safety & side_effects")
    set_log_layout(config_path, 2)
    world.push_plugins({**dict(list(PLUGINS.items())[:3]), **PAIR}, message="three and a pair")
    run_epoch(load_config(config_path), EpochOptions(push=False))
    world.push_plugins(dict(list(PLUGINS.items())[3:]), message="two more")
    run_epoch(load_config(config_path), EpochOptions(push=False))
    config = load_config(config_path)
    repo = pygit2.Repository(str(config.log_repo))
    v2 = repo.revparse_single("main")
    before_site = root / "site-v2"
    publish(config.log_repo, before_site, human_site=False)
    set_log_layout(config_path, None)  # the default: layout 3
    progress: list[str] = []
    world.push_plugins({"org.pds.l0.p": "org.pds.examples.state_logger"}, message="change at the move")
    third = run_epoch(load_config(config_path), EpochOptions(push=False, progress=progress.append))
    v3 = repo.revparse_single("main")
    world.push_plugins({"org.pds.c15.p": "org.pds.examples.state_logger"}, message="change after the move")
    later: list[str] = []
    fourth = run_epoch(load_config(config_path), EpochOptions(push=False, progress=later.append))
    return {"world": world, "config": config, "repo": repo, "v2": v2, "v3": v3, "third": third, "fourth": fourth,
            "progress": progress, "later": later, "before_site": site_files(before_site), "root": root}


def test_the_move_writes_every_tile_at_its_position_and_keeps_every_other_file(moved):
    repo, v2, v3 = moved["repo"], moved["v2"], moved["v3"]
    assert moved["third"].updated == ["org.pds.l0.p"]
    assert repo[v3.tree[layout.LAYOUT_FILE].id].data == b'{"log":3}'
    tiles = {layout.tile_path(level, h, 3, prefix): tile.encode()
             for (level, prefix), h, tile in positioned_tiles(tree_of(repo, v3))}
    files = sharded_files(repo, v3)
    assert {p: repo[oid].data for p, oid in files.items() if p.startswith("tiles/")} == tiles
    assert "tiles/0/root" in tiles and any(p.startswith("tiles/1/") for p in tiles)
    old = {p: oid for p, oid in sharded_files(repo, v2).items() if not p.startswith("tiles/")}
    changed = {p for p in old if p.endswith("/org.pds.l0.p.json")}
    assert len(changed) == 2 and all(files[p] != old[p] for p in changed)  # its binding and result
    assert {p: oid for p, oid in files.items() if p in old and p not in changed} == \
        {p: oid for p, oid in old.items() if p not in changed}  # the rest kept, blob for blob
    assert all(layout.parse_sharded_path(p, 3) for p in files)
    assert any("every tile rewritten at its position" in line for line in moved["progress"])


def test_after_the_move_a_changed_tile_is_rewritten_in_place(moved):
    """The property that lets git store and send a tile as a delta: the same path, a new blob."""
    repo = moved["repo"]
    head = repo.revparse_single("main")
    assert moved["fourth"].updated == ["org.pds.c15.p"]
    deltas = {d.new_file.path or d.old_file.path: d.status for d in
              repo.diff(moved["v3"].tree, head.tree).deltas if (d.new_file.path or d.old_file.path).startswith("tiles/")}
    level1 = layout.tile_path(1, b"", 3, name_key("org.pds.c15.p")[0])
    assert deltas == {"tiles/0/root": pygit2.enums.DeltaStatus.MODIFIED, level1: pygit2.enums.DeltaStatus.MODIFIED}
    assert any("tiles loaded from the log" in line for line in moved["later"]), moved["later"]


def test_the_auditor_passes_the_moved_log(moved):
    result = run(*PDS, "audit", moved["config"].log_repo, "--pr", moved["world"].pr, "--json", check=False)
    report = json.loads(result.stdout)
    assert result.returncode == 0 and report["ok"] and report["epochs"] == 4, report["findings"]


def test_publication_across_the_move_is_byte_identical(moved, tmp_path):
    out = tmp_path / "site"
    publish(moved["config"].log_repo, out, human_site=False)
    after, before = site_files(out), moved["before_site"]
    assert {p: h for p, h in after.items() if p in before} == before
    new_tiles = {p for p in set(after) - set(before) if p.startswith("tiles/")}
    assert new_tiles and all(layout.parse_sharded_path(p, 1) for p in new_tiles)  # published by hash


@pytest.fixture
def clone(moved, tmp_path):
    return forger_clone(moved["config"].log_repo, tmp_path / "clone")


def amended_audit(clone) -> tuple[int, dict]:
    run("git", "-C", clone, "add", "-A")
    run("git", "-C", clone, "commit", "-q", "--amend", "--no-edit")
    result = run(*PDS, "audit", clone, "--json", check=False)
    return result.returncode, json.loads(result.stdout)


def test_the_auditor_names_a_wrong_tile_at_its_position(clone):
    (clone / "tiles" / "0" / "root").write_bytes((clone / "tiles" / "0" / "root").read_bytes()[:-1] + b"\0")
    code, report = amended_audit(clone)
    assert code == 1
    assert any(f["check"] == "tiles" and "missing or wrong" in f["message"] for f in report["findings"])


def test_the_auditor_names_a_stale_tile_where_the_tree_has_none(clone, moved):
    key = name_key("org.pds.c15.p")  # changed in the last epoch: its path is checked
    repo = moved["repo"]
    levels = {level for (level, prefix), _, _ in positioned_tiles(tree_of(repo, repo.revparse_single("main")))
              if prefix == (int.from_bytes(key, "big") >> (256 - 8 * level) if level else 0)}
    below = max(levels) + 1
    path = layout.tile_path(below, b"", 3, int.from_bytes(key, "big") >> (256 - 8 * below))
    (clone / path).parent.mkdir(parents=True, exist_ok=True)
    (clone / path).write_bytes((clone / "tiles" / "0" / "root").read_bytes())
    code, report = amended_audit(clone)
    assert code == 1
    assert any(f["check"] == "tiles" and path in f["message"] and "where the tree has none" in f["message"]
               for f in report["findings"]), report["findings"]


def test_the_auditor_names_a_tile_off_its_position(clone):
    (clone / "tiles" / "0" / "root").rename(clone / "tiles" / "0" / "rooot")
    code, report = amended_audit(clone)
    assert code == 1
    assert any(f["check"] == "layout" and "tiles/0/rooot" in f["message"] for f in report["findings"])
    assert any(f["check"] == "tiles" and "missing or wrong" in f["message"] for f in report["findings"])


def test_publishing_a_log_whose_positioned_tile_is_junk_fails_with_its_path(clone, tmp_path):
    """A hostile log clone: the file at a tile's position is not a tile. The publisher names the
    epoch and the file, serves no STR, and does not crash."""
    (clone / "tiles" / "0" / "root").write_bytes(b"PDT1" + b"\xff" * 5000)
    run("git", "-C", clone, "add", "-A")
    run("git", "-C", clone, "commit", "-q", "--amend", "--no-edit")
    out = tmp_path / "site"
    result = run(*PDS, "pv", "publish", "--log", clone, "--out", out, "--no-site", check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert "log epoch 4: tiles/0/root" in result.stderr, result.stderr
    assert not (out / "latest.note").exists()  # written last: no reader sees an STR whose files are missing
