"""Log layout 2 (core/log_layout.py): a PV set to it writes it; a layout-1 log made by real epochs is
migrated inside its next epoch (same root, same blobs at their new paths); the auditor passes
it and names a file in the wrong shard or a bad layout.json; publication is byte-identical;
and the epoch's tree loads from the log's tiles, falling back to a full load on a bad tile."""

import hashlib
import json

import pygit2
import pytest

from pds_log.core import log_layout as layout
from pds_log.core import static_layout as site
from pds_log.core.errors import FormatError
from pds_log.pv.config import load_config
from pds_log.pv.epoch import EpochOptions, run_epoch
from pds_log.pv.publish import publish
from tests.support import PDS, World, forger_clone, run

pytestmark = pytest.mark.slow  # real PVs and epochs (seconds each)

FAST = {"safety": {"runner": "bytecode_safety"}, "side_effects": {"runner": "side_effects"}}
PLUGINS = {f"org.pds.l{i}.p": ex for i, ex in enumerate(["org.pds.examples.rtt_monitor", "org.pds.examples.cwin_total",
                                                          "org.pds.examples.local_call", "org.pds.examples.state_logger",
                                                          "org.pds.examples.rtt_monitor"])}


def sharded_files(repo: pygit2.Repository, commit: pygit2.Commit) -> dict[str, pygit2.Oid]:
    out = {}
    for top in layout.SHARDED_DIRS:
        if top not in commit.tree:
            continue
        stack = [(top, repo[commit.tree[top].id])]
        while stack:
            prefix, tree = stack.pop()
            for entry in tree:
                path = f"{prefix}/{entry.name}"
                if entry.type_str == "tree":
                    stack.append((path, repo[entry.id]))
                else:
                    out[path] = entry.id
    return out


def site_files(out):
    """The immutable published files a peer fetches (not the human site, the publisher's state,
    or the files that change by design: latest.note, status/)."""
    return {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in out.rglob("*") if p.is_file() and not p.relative_to(out).as_posix().startswith(".")
            and not site.is_mutable(p.relative_to(out).as_posix())}


def set_log_layout(config_path, value: int | None) -> None:
    text = "\n".join(line for line in config_path.read_text().splitlines() if not line.startswith("log_layout:"))
    config_path.write_text(text + "\n" + (f"log_layout: {value}\n" if value is not None else ""))


@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    """A PV pinned to layout 1 runs two real epochs; then, unpinned, one epoch with nothing new
    (the migration) and one with a change."""
    root = tmp_path_factory.mktemp("loglayout")
    world = World(root)
    config_path = world.add_pv("pv1.example", verifiers=FAST, acceptance="safety & side_effects")
    set_log_layout(config_path, 1)
    world.push_plugins(dict(list(PLUGINS.items())[:3]), message="three")
    first = run_epoch(load_config(config_path), EpochOptions(push=False))
    world.push_plugins(dict(list(PLUGINS.items())[3:]), message="two more")
    second = run_epoch(load_config(config_path), EpochOptions(push=False))
    config = load_config(config_path)
    repo = pygit2.Repository(str(config.log_repo))
    v1_head = repo.revparse_single("main")
    before_site = root / "site-v1"
    publish(config.log_repo, before_site, human_site=False)
    before = site_files(before_site)
    set_log_layout(config_path, 2)  # the move 1 -> 2 (the default, 3: test_log_layout3.py)
    lines = []
    third = run_epoch(load_config(config_path), EpochOptions(push=False, progress=lines.append))
    v2_head = repo.revparse_single("main")
    return {"world": world, "config_path": config_path, "config": config, "repo": repo, "v1": v1_head,
            "v2": v2_head, "summaries": [first, second, third], "before_site": before, "root": root,
            "progress": lines}


def test_a_pinned_layout_1_pv_writes_layout_1(migrated):
    repo, v1 = migrated["repo"], migrated["v1"]
    assert layout.LAYOUT_FILE not in v1.tree
    files = sharded_files(repo, v1)
    assert files and all(layout.parse_sharded_path(p, 1) for p in files)
    assert any(p.startswith("tiles/") for p in files) and any(p.startswith("bytecode/") for p in files)


def test_the_next_epoch_migrates_same_root_same_blobs_moved(migrated):
    repo, v1, v2 = migrated["repo"], migrated["v1"], migrated["v2"]
    second, third = migrated["summaries"][1:]
    assert third.root == second.root and third.size == second.size and not third.added + third.updated
    assert repo[v2.tree[layout.LAYOUT_FILE].id].data == b'{"log":2}'
    old, new = sharded_files(repo, v1), sharded_files(repo, v2)
    assert {layout.reshard_path(p, 1, 2): oid for p, oid in old.items()} == new
    assert any("files moved to their new shards" in line for line in migrated["progress"])
    for path in new:
        layout.parse_sharded_path(path, 2)
        with pytest.raises(FormatError, match="wrong shard"):
            layout.parse_sharded_path(path, 1)


def test_after_the_migration_epochs_write_layout_2_and_the_auditor_passes(migrated):
    world, config_path, repo = migrated["world"], migrated["config_path"], migrated["repo"]
    world.push_plugins({"org.pds.l0.p": "org.pds.examples.state_logger"}, message="one change")
    fourth = run_epoch(load_config(config_path), EpochOptions(push=False))
    assert fourth.updated == ["org.pds.l0.p"]
    head = repo.revparse_single("main")
    assert all(layout.parse_sharded_path(p, 2) for p in sharded_files(repo, head))
    result = run(*PDS, "audit", migrated["config"].log_repo, "--pr", world.pr, "--json", check=False)
    report = json.loads(result.stdout)
    assert result.returncode == 0 and report["ok"] and report["epochs"] == 4, report["findings"]


def test_publication_of_the_migrated_log_is_byte_identical(migrated, tmp_path):
    """Every file published from the layout-1 log is published, byte for byte, at the same
    path from the migrated log; the migration epoch adds only its own STR and record."""
    out = tmp_path / "site-v2"
    repo = migrated["repo"]
    clone = tmp_path / "log-at-migration.git"
    run("git", "clone", "-q", "--bare", "--single-branch", migrated["config"].log_repo, clone)
    pygit2.Repository(str(clone)).references["refs/heads/main"].set_target(migrated["v2"].id)
    publish(clone, out, human_site=False)
    after, before = site_files(out), migrated["before_site"]
    assert {p: h for p, h in after.items() if p in before} == before
    new = set(after) - set(before)
    assert new == {layout.str_path(3), layout.epoch_record_path(3)}, sorted(new)
    assert repo  # the module's log is untouched by this test


@pytest.fixture
def clone(migrated, tmp_path):
    return forger_clone(migrated["config"].log_repo, tmp_path / "clone")


def audit(path):
    result = run(*PDS, "audit", path, "--json", check=False)
    return result.returncode, json.loads(result.stdout)


def moved_and_audited(clone, victim, wrong) -> tuple[int, dict]:
    """The audit of the log after the forger moved `victim` to `wrong` in its last epoch."""
    wrong.parent.mkdir(parents=True, exist_ok=True)
    victim.rename(wrong)
    run("git", "-C", clone, "add", "-A")
    run("git", "-C", clone, "commit", "-q", "--amend", "--no-edit")
    return audit(clone)


def test_auditor_names_a_file_in_the_wrong_shard(clone):
    moved = sorted((clone / "bytecode").rglob("*"))
    victim = next(p for p in moved if p.is_file())
    code, report = moved_and_audited(clone, victim, clone / "bytecode" / victim.name[:2] / victim.name)  # layout-1 path
    assert code == 1
    assert any(f["check"] == "layout" and "wrong shard" in f["message"] and victim.name in f["message"]
               for f in report["findings"]), report["findings"]


def test_auditor_names_a_record_in_the_wrong_shard(clone):
    name = "org.pds.l1.p"
    victim = clone / layout.binding_path(name, 2)
    code, report = moved_and_audited(clone, victim, clone / layout.binding_path(name, 1))  # layout-1 path, in a layout-2 log
    assert code == 1
    assert any(f["check"] == "layout" and "wrong shard" in f["message"] and layout.binding_path(name, 1) in f["message"]
               for f in report["findings"]), report["findings"]


def test_a_migration_epoch_that_also_changes_a_plugin(tmp_path):
    """The migration moves bindings/ and results/ too; what the epoch writes at the new paths
    wins, the auditor compares each record with its moved parent, and the publisher publishes
    only the changed plugin's results record for the epoch."""
    world = World(tmp_path)
    config_path = world.add_pv("pv4.example", verifiers=FAST, acceptance="safety & side_effects")
    set_log_layout(config_path, 1)
    world.push_plugins(dict(list(PLUGINS.items())[:3]), message="three")
    first = run_epoch(load_config(config_path), EpochOptions(push=False))
    assert "org.pds.l0.p" in first.added
    set_log_layout(config_path, 2)
    world.push_plugins({"org.pds.l0.p": "org.pds.examples.state_logger"}, message="one change")
    second = run_epoch(load_config(config_path), EpochOptions(push=False))
    assert second.updated == ["org.pds.l0.p"] and not second.added + second.removed
    config = load_config(config_path)
    repo = pygit2.Repository(str(config.log_repo))
    head = repo.revparse_single("main")
    files = sharded_files(repo, head)
    assert all(layout.parse_sharded_path(p, 2) for p in files)
    assert {layout.name_from_record_path(p, 2) for p in files if p.startswith("bindings/")} == set(first.added)
    result = run(*PDS, "audit", config.log_repo, "--pr", world.pr, "--json", check=False)
    report = json.loads(result.stdout)
    assert result.returncode == 0 and report["ok"], report["findings"]
    out = tmp_path / "site"
    publish(config.log_repo, out, human_site=False)
    assert sorted(p.name for p in (out / "results" / "2").iterdir()) == ["org.pds.l0.p.json"]


def test_auditor_names_a_bad_layout_file(clone):
    (clone / layout.LAYOUT_FILE).write_bytes(b'{"log": 2}')
    run("git", "-C", clone, "commit", "-q", "-a", "--amend", "--no-edit")
    code, report = audit(clone)
    assert code == 1
    assert any(f["check"] == "layout" and "canonical" in f["message"] for f in report["findings"]), report["findings"]


def test_a_layout_2_log_never_goes_back(migrated):
    config_path = migrated["config_path"]
    set_log_layout(config_path, 1)
    try:
        result = run(*PDS, "pv", "epoch", "--config", config_path, check=False)
        assert result.returncode != 0 and "never goes back" in result.stderr
    finally:
        set_log_layout(config_path, 2)


def test_new_pvs_write_layout_3(tmp_path):
    world = World(tmp_path)
    config_path = world.add_pv("pv2.example", verifiers=FAST, acceptance="safety")
    world.push_plugins({"org.pds.n.p": "org.pds.examples.rtt_monitor"})
    run_epoch(load_config(config_path), EpochOptions(push=False))
    repo = pygit2.Repository(str(load_config(config_path).log_repo))
    head = repo.revparse_single("main")
    assert repo[head.tree[layout.LAYOUT_FILE].id].data == layout.layout_file(3) == b'{"log":3}'
    assert all(layout.parse_sharded_path(p, 3) for p in sharded_files(repo, head))


@pytest.mark.parametrize("value", [0, 4, "2", True, None, [2]])
def test_pv_yaml_log_layout_refuses_anything_but_1_2_or_3(value):
    from pathlib import Path

    import yaml

    from pds_log.pv.config import parse_config

    base = {"version": 1, "origin": "pv1.example", "pr": {"url": "/srv/pr.git"}, "keys": {"note": "keys/note.key"},
            "verifiers": {"safety": {"runner": "bytecode_safety"}}, "acceptance": "safety"}
    assert parse_config(yaml.safe_dump(base).encode(), Path("/srv/pv.yaml")).log_layout == 3
    assert parse_config(yaml.safe_dump({**base, "log_layout": 1}).encode(), Path("/srv/pv.yaml")).log_layout == 1
    with pytest.raises(FormatError, match="'log_layout' must be one of 1, 2, 3"):
        parse_config(yaml.safe_dump({**base, "log_layout": value}).encode(), Path("/srv/pv.yaml"))


def test_a_policy_change_loads_every_name_and_still_re_verifies_all(tmp_path):
    """The planner needs every name in the tree when the acceptance policy changes: the tree
    state, loaded from tiles, then loads in full; a plugin the new policy rejects leaves."""
    world = World(tmp_path)
    config_path = world.add_pv("pv3.example", verifiers={**FAST, "never": {"runner": "external", "inline": {
        "argv": ["true"], "pass": "never-matches", "fail": ""}}}, acceptance="safety")
    world.push_plugins({"org.pds.q.a": "org.pds.examples.rtt_monitor", "org.pds.q.b": "org.pds.examples.cwin_total"})
    first = run_epoch(load_config(config_path), EpochOptions(push=False))
    assert sorted(first.added) == ["org.pds.q.a", "org.pds.q.b"]
    config_path.write_text(config_path.read_text().replace("acceptance: safety", "acceptance: safety & never"))
    lines: list[str] = []
    second = run_epoch(load_config(config_path), EpochOptions(push=False, progress=lines.append))
    assert "every name was needed" in lines and second.size == 0
    assert sorted(r["name"] for r in second.removed) == ["org.pds.q.a", "org.pds.q.b"]
    result = run(*PDS, "audit", load_config(config_path).log_repo, "--pr", world.pr, "--json", check=False)
    assert json.loads(result.stdout)["ok"], result.stdout
