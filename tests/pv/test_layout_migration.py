"""Moving a real PR from layout 1 to layout 2 (`pds pr migrate-layout`): one admin-signed commit
the real hook accepts; the PV's next epoch sees no plugin changed (same root, same bindings);
later pushes (`pds dev submit`) land in the new layout and are seen as exactly what they change;
a layout change that also alters a plugin is refused; the auditor agrees with every epoch."""

from __future__ import annotations

import json
import shutil

import pygit2
import pytest

from pds_log.auditor.audit import audit
from pds_log.core import log_layout as layout
from pds_log.pv.config import load_config
from tests.support import PDS, Workspace, epoch, run

PLUGINS = {"org.pds.a": "org.pds.examples.cwin_total",  # a prefix of the next name
           "org.pds.a.b": "org.pds.examples.rtt_monitor",
           "org.pds.x.y.z": "org.pds.examples.state_logger"}


def bindings(config_path) -> dict[str, bytes]:
    config = load_config(config_path)
    repo = pygit2.Repository(str(config.log_repo))
    tree = repo.revparse_single("main").tree
    return {name: repo[tree[layout.binding_path(name, layout.LATEST_LAYOUT)].id].data for name in PLUGINS}


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    from tests.support import World

    world = World(tmp_path_factory.mktemp("relayout"))
    config = world.add_pv("pv1.example", acceptance="reproducible & safety")
    world.push_plugins(PLUGINS, message="three plugins, layout 1")
    e1 = epoch(config)
    before = bindings(config)
    out = run(*PDS, "pr", "migrate-layout", "--repo", world.pr, "--admin-key", world.admin, "--json")
    migration = json.loads(out.stdout)
    e2 = epoch(config)
    return {"world": world, "config": config, "e1": e1, "e2": e2, "before": before, "migration": migration}


@pytest.mark.slow
def test_migration_is_one_accepted_commit_in_layout_2(scenario):
    world, migration = scenario["world"], scenario["migration"]
    assert migration["plugins"] == 3 and migration["layout"] == 2
    repo = pygit2.Repository(str(world.pr))
    head = repo.revparse_single("main")
    assert str(head.id) == migration["commit"]
    tree = head.tree
    for name in PLUGINS:
        assert tree[f"plugins/{name.replace('.', '/')}/+"].type_str == "tree"
        assert tree[f"plugins/{name.replace('.', '/')}/+"].id == head.parents[0].tree[f"plugins/{name}"].id
    assert "layout: 2" in repo[tree["pds/policy.yaml"].id].data.decode()
    assert "plugins/org.pds.a" not in [e.name for e in repo[tree["plugins"].id]]


@pytest.mark.slow
def test_next_epoch_sees_no_plugin_changed(scenario):
    e1, e2 = scenario["e1"], scenario["e2"]
    assert sorted(e1["added"]) == sorted(PLUGINS)
    assert e2["added"] == e2["updated"] == e2["removed"] == e2["rejected"] == [] and e2["alarms"] == []
    assert e2["root"] == e1["root"] and e2["size"] == 3
    assert e2["pr_to"] == scenario["migration"]["commit"]
    assert bindings(scenario["config"]) == scenario["before"]  # same bytes, same source commits
    log = pygit2.Repository(str(load_config(scenario["config"]).log_repo))
    record = json.loads(log[log.revparse_single("main").tree[layout.epoch_record_path(2)].id].data)
    [checked] = record["commits"]
    assert checked["id"] == scenario["migration"]["commit"] and checked["ok"] and checked["plugins"] == []


@pytest.mark.slow
def test_pushes_after_the_migration_land_in_layout_2(scenario, tmp_path):
    world, config = scenario["world"], scenario["config"]
    new = world.example("org.pds.examples.cwin_total", "org.pds.a.b")  # a new version of org.pds.a.b
    run(*PDS, "dev", "submit", new, "--repo", world.pr, "--key", world.key("alice"), "--author", "alice")
    repo = pygit2.Repository(str(world.pr))
    head = repo.revparse_single("main")
    assert head.tree["plugins/org/pds/a/b/+/cwin_total.plugin"].type_str == "blob"
    e3 = epoch(config)
    assert e3["updated"] == ["org.pds.a.b"] and e3["added"] == e3["removed"] == []
    after = bindings(config)
    assert after["org.pds.a"] == scenario["before"]["org.pds.a"]
    assert after["org.pds.a.b"] != scenario["before"]["org.pds.a.b"]
    report = audit(load_config(config).log_repo, pr_path=world.pr)
    assert report.ok, [str(f) for f in report.findings]


@pytest.mark.slow
def test_a_layout_change_that_alters_a_plugin_is_refused(scenario, tmp_path):
    world = scenario["world"]
    ws = Workspace(world.pr, tmp_path / "ws", layout=2)
    before = str(pygit2.Repository(str(world.pr)).revparse_single("main").id)
    policy = (ws.path / "pds/policy.yaml").read_text()
    ws.write("pds/policy.yaml", policy.replace("layout: 2\n", ""))  # back to layout 1 ...
    for name in PLUGINS:
        shutil.move(ws.path / ws.plugin_path(name), ws.path / "moved" / name)
    shutil.rmtree(ws.path / "plugins")
    shutil.move(ws.path / "moved", ws.path / "plugins")
    ws.write("plugins/org.pds.a/extra.txt", "slipped in with the move\n")  # ... and one more file
    ws.commit("layout 2 -> 1, and a change", world.admin)
    result = ws.push()
    assert result.returncode != 0
    assert "plugins/org.pds.a: a commit changing the PR layout (from 2 to 1) must move every plugin unchanged " \
           "(files differ); change plugins in another commit" in result.stderr
    assert str(pygit2.Repository(str(world.pr)).revparse_single("main").id) == before
    again = run(*PDS, "pr", "migrate-layout", "--repo", world.pr, "--admin-key", world.admin, check=False)
    assert again.returncode != 0 and "already in layout 2" in again.stderr
    assert "Traceback" not in again.stderr
