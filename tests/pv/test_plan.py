"""The epoch planner (pds_log.pv.plan) on in-memory snapshots: no git, no PR, no verifier.

Includes the cases on which the fan-out's own planner had drifted from the epoch's (issue 14):
a policy change re-examines the plugins of the tree too, and tainted plugins are not verified."""

from __future__ import annotations

import struct

from pds_log.pv.plan import DELETED, INVALID_NAME, PreviousResult, PreviousState, PrSnapshot, plan_epoch
from pds_log.pv.prsource import PluginSnapshot

HEAD = "c0" * 20
OLD = "b0" * 20
ELF = (b"\x7fELF" + bytes([2, 1, 1]) + bytes(9) + struct.pack("<HH", 1, 247)).ljust(64, b"\0")


def plugin(name: str, **files: bytes) -> PluginSnapshot:
    default = {f"{name}.plugin": f"{name}\nupdate_rtt replace a.o\n".encode(), "a.o": ELF}
    return PluginSnapshot(name, HEAD, {**default, **{k.replace("_", "."): v for k, v in files.items()}})


def snapshot(plugins: dict[str, PluginSnapshot | None], changed=None, **kw) -> PrSnapshot:
    present = {n for n, s in plugins.items() if s is not None}
    return PrSnapshot(HEAD, frozenset(plugins if changed is None else changed), frozenset(present), plugins, **kw)


def test_changed_plugins_are_verifiable_with_their_source():
    plan = plan_epoch(PreviousState(), snapshot({"org.a.one": plugin("org.a.one")},
                                                sources={"org.a.one": OLD}), "p1")
    assert plan.changed == ["org.a.one"] and not plan.policy_changed
    [item] = plan.verifiable
    assert item.name == "org.a.one" and item.source == OLD and list(item.manifest.pluglets) == ["a.o"]
    assert plan.rejected == {} and plan.removed == [] and plan.tainted == {}


def test_only_changed_names_are_looked_at():
    plugins = {"org.a.one": plugin("org.a.one"), "org.a.two": plugin("org.a.two")}
    plan = plan_epoch(PreviousState(frozenset({"org.a.two"}), "p1"), snapshot(plugins, changed={"org.a.one"}), "p1")
    assert plan.changed == ["org.a.one"]


def test_a_policy_change_looks_at_every_plugin_of_the_pr_and_of_the_tree():
    """Drifted case 1: the fan-out plan forgot the tree's plugins (set(state.values))."""
    plugins = {"org.a.one": plugin("org.a.one"), "org.a.two": plugin("org.a.two"), "org.a.gone": None}
    snap = PrSnapshot(HEAD, frozenset(), frozenset({"org.a.one", "org.a.two"}), plugins)
    previous = PreviousState(frozenset({"org.a.two", "org.a.gone"}), "old-policy")
    plan = plan_epoch(previous, snap, "new-policy")
    assert plan.policy_changed
    assert plan.changed == ["org.a.gone", "org.a.one", "org.a.two"]
    assert [d.name for d in plan.removed] == ["org.a.gone"] and plan.removed[0].reason == DELETED
    assert [d.name for d in plan.verifiable] == ["org.a.one", "org.a.two"]
    # before the first epoch there is no previous policy: no change
    assert not plan_epoch(PreviousState(), snap, "new-policy").policy_changed


def test_tainted_plugins_are_not_verified():
    """Drifted case 2: the fan-out plan listed verifier runs for plugins of refused commits."""
    plugins = {"org.a.one": plugin("org.a.one"), "org.a.two": plugin("org.a.two")}
    plan = plan_epoch(PreviousState(), snapshot(plugins, tainted={"org.a.one": "commit 123 refused: unsigned"}), "p")
    assert plan.tainted == {"org.a.one": "commit 123 refused: unsigned"}
    assert [d.name for d in plan.verifiable] == ["org.a.two"]


def test_a_previous_taint_stays_until_an_accepted_commit_touches_the_plugin():
    plugins = {"org.a.one": plugin("org.a.one")}
    previous = PreviousState(frozenset(), "p", {"org.a.one": PreviousResult(OLD, "commit 99 refused: x")})
    policy_change = PreviousState(previous.names, "q", previous.results)
    assert plan_epoch(policy_change, snapshot(plugins), "p").tainted == {"org.a.one": "commit 99 refused: x"}
    cleared = plan_epoch(policy_change, snapshot(plugins, sources={"org.a.one": HEAD}), "p")
    assert cleared.tainted == {} and cleared.verifiable[0].source == HEAD


def test_the_source_falls_back_to_the_previous_result_then_to_the_caller():
    plugins = {"org.a.one": plugin("org.a.one"), "org.a.two": plugin("org.a.two")}
    previous = PreviousState(frozenset(), "p", {"org.a.one": PreviousResult(OLD, None)})
    plan = plan_epoch(previous, snapshot(plugins), "p")
    assert {d.name: d.source for d in plan.verifiable} == {"org.a.one": OLD, "org.a.two": None}


def test_rejections_before_any_verifier():
    plugins = {
        "bad name!": plugin("x"),
        "org.a.unreadable": PluginSnapshot("org.a.unreadable", HEAD, {}, "plugins/org.a.unreadable is a symlink"),
        "org.a.nomanifest": PluginSnapshot("org.a.nomanifest", HEAD, {"a.o": ELF}),
        "org.a.notelf": plugin("org.a.notelf", a_o=b"not an object"),
        "org.a.missing": PluginSnapshot("org.a.missing", HEAD, {"org.a.missing.plugin":
                                                                b"org.a.missing\nupdate_rtt replace b.o\n"}),
    }
    plan = plan_epoch(PreviousState(), snapshot(plugins), "p")
    assert plan.verifiable == []
    assert plan.rejected["bad name!"] == INVALID_NAME
    assert plan.rejected["org.a.unreadable"] == "plugins/org.a.unreadable is a symlink"
    assert plan.rejected["org.a.nomanifest"].startswith("malformed manifest: plugins/org.a.nomanifest: no manifest")
    assert "not an eBPF object" in plan.rejected["org.a.notelf"]
    assert "missing pluglet" in plan.rejected["org.a.missing"]
    invalid = next(d for d in plan.decisions if d.name == "bad name!")
    assert invalid.snap is None  # no result record is written for a name that is not one


def test_a_deleted_plugin_is_removed_even_if_it_was_tainted():
    plan = plan_epoch(PreviousState(frozenset({"org.a.one"}), "p"),
                      snapshot({"org.a.one": None}, tainted={"org.a.one": "refused"}), "p")
    assert [d.name for d in plan.removed] == ["org.a.one"] and plan.tainted == {}


def test_the_planner_reads_only_what_it_looks_at():
    """The callers pass lazy mappings over git: the planner must not read unrelated plugins."""
    read: list[str] = []

    class Reading(dict):
        def get(self, name, default=None):
            read.append(name)
            return super().get(name, default)

    plugins = Reading({"org.a.one": plugin("org.a.one"), "org.a.two": plugin("org.a.two")})
    plan_epoch(PreviousState(frozenset({"org.a.two"}), "p"), snapshot(plugins, changed={"org.a.one"}), "p")
    assert read == ["org.a.one"]
