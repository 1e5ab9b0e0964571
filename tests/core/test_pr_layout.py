"""The PR layouts (pds_log.core.pr_layout), the policy's `layout:` key, and the commit rules
in layout 2 and across a layout change, judged on in-memory changes (no git)."""

from __future__ import annotations

import pytest

from pds_log.core.changes import MODE_FILE, ChangeSet, FileChange, PluginContent, Relayout, judge_changes
from pds_log.core.errors import FormatError
from pds_log.core.policy import Policy
from pds_log.core.pr_layout import plugin_dir, plugin_of
from tests.core.test_changes import ADMIN, ALICE, T0, plugin, policy


def test_plugin_dir_in_both_layouts_and_prefix_names_are_apart():
    assert plugin_dir("be.example.hello", 1) == "plugins/be.example.hello"
    assert plugin_dir("be.example.hello", 2) == "plugins/be/example/hello/+"
    assert plugin_dir("be.example", 2) == "plugins/be/example/+"  # a prefix of be.example.hello
    for name in ("be.example", "be.example.hello", "be.example.hello.x-1", "a_b.c"):
        for layout in (1, 2):
            assert plugin_of(plugin_dir(name, layout) + "/sub/f.o", layout) == (name, None)


@pytest.mark.parametrize("path, why", [
    ("plugins/be/example/hello.plugin", "not in a plugin's files directory"),
    ("plugins/be/+/x.plugin", "invalid plugin name 'be'"),
    ("plugins/be.example/hello/+/x.plugin", "'be.example' is not a name label"),
    ("plugins/be/example/+", "must be a directory"),
    ("plugins/README", "not in a plugin's files directory"),
])
def test_layout2_paths_that_are_no_plugins_files(path, why):
    name, problem = plugin_of(path, 2)
    assert name is None and problem is not None and why in problem and path in problem


def test_the_first_plus_is_the_plugins_directory():
    assert plugin_of("plugins/be/example/+/sub/+/f", 2) == ("be.example", None)
    assert plugin_of("pds/policy.yaml", 2) == (None, None)


def test_policy_layout_key():
    base = f"version: 1\nadmins:\n  - {{name: root, key: {ADMIN}}}\n"
    assert Policy.parse(base).layout == 1
    assert Policy.parse(base + "layout: 2\n").layout == 2
    for bad in ("3", "true", "'2'", "0"):
        with pytest.raises(FormatError, match="layout must be one of 1, 2"):
            Policy.parse(base + f"layout: {bad}\n", "pds/policy.yaml@abc")
    one = Policy.parse(base)
    assert "layout" not in one.to_yaml()  # a layout-1 policy keeps its bytes
    one.layout = 2
    assert Policy.parse(one.to_yaml()).layout == 2


def layout2_set(plugins: dict[str, dict[str, bytes]]) -> ChangeSet:
    files = [FileChange(f"{plugin_dir(n, 2)}/{p}", MODE_FILE, len(d)) for n, fs in plugins.items() for p, d in fs.items()]
    return ChangeSet(files, {n: PluginContent(files=fs) for n, fs in plugins.items()})


def test_layout2_commit_rules():
    p = policy()
    p.layout = 2
    ok = judge_changes(layout2_set({"org.pds.a": plugin("org.pds.a"), "org.pds.a.b": plugin("org.pds.a.b")}),
                       ALICE, p, T0)
    assert ok.ok, ok.reasons
    assert ok.plugins == ["org.pds.a", "org.pds.a.b"]
    outside = judge_changes(layout2_set({"be.other.x": plugin("be.other.x")}), ALICE, p, T0)
    assert not outside.ok and "plugins/be/other/x/+/ (2 files)" in outside.reasons[0]
    stray = judge_changes(ChangeSet([FileChange("plugins/org/pds/notes.txt", MODE_FILE, 3)], {}), ALICE, p, T0)
    assert not stray.ok and "plugins/org/pds/notes.txt: not in a plugin's files directory" in stray.reasons[0]
    # the flat path of layout 1 is no plugin's file in layout 2
    flat = judge_changes(ChangeSet([FileChange("plugins/org.pds.a/a.plugin", MODE_FILE, 3)], {}), ALICE, p, T0)
    assert not flat.ok and "plugins/org.pds.a/a.plugin: not in a plugin's files directory" in flat.reasons[0]


def relayout_set(before: dict[str, str], after: dict[str, str], stray=()) -> ChangeSet:
    p2 = policy()
    p2.layout = 2
    text = p2.to_yaml().encode()
    return ChangeSet([FileChange("pds/policy.yaml", MODE_FILE, len(text))], {}, policy_text=text,
                     relayout=Relayout(before, after, stray))


def test_a_layout_change_moves_every_plugin_unchanged():
    same = {"org.pds.a": "1" * 40, "org.pds.a.b": "2" * 40}
    ok = judge_changes(relayout_set(same, dict(same)), ADMIN, policy(), T0)
    assert ok.ok, ok.reasons
    assert ok.plugins == []  # no plugin touched: the PVs see nothing changed
    changed = judge_changes(relayout_set(same, {"org.pds.a": "3" * 40, "org.pds.c": "4" * 40}), ADMIN, policy(), T0)
    assert not changed.ok
    text = "; ".join(changed.reasons)
    assert "plugins/org/pds/a/+: a commit changing the PR layout (from 1 to 2) must move every plugin unchanged " \
           "(files differ)" in text
    assert "plugins/org/pds/a/b/+" in text and "(gone)" in text and "plugins/org/pds/c/+" in text and "(new)" in text
    stray = judge_changes(relayout_set(same, dict(same), ["plugins/org/junk"]), ADMIN, policy(), T0)
    assert not stray.ok and "plugins/org/junk: not in a plugin's files directory" in stray.reasons[0]


def test_a_layout_change_needs_an_admin_and_a_comparison():
    same = {"org.pds.a": "1" * 40}
    by_dev = judge_changes(relayout_set(same, same), ALICE, policy(), T0)
    assert not by_dev.ok and "is not an admin and may not change the policy" in by_dev.reasons[0]
    cs = relayout_set(same, same)
    unchecked = ChangeSet(cs.files, {}, policy_text=cs.policy_text)
    verdict = judge_changes(unchecked, ADMIN, policy(), T0)
    assert not verdict.ok and "were not compared" in verdict.reasons[0]
