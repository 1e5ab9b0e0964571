"""Issue 12: one bad plugin in a multi-plugin push. git takes a push whole, so the hook refuses
it, but names the bad plugin with its reason, says the others pass, and gives commands that
push them apart; the test pushes 3 plugins for real (one with a bad manifest), then runs the
hook's own advice literally and sees the two good plugins land."""

from __future__ import annotations

import os
import re
import subprocess

import pygit2
import pytest

from tests.support import World, run

pytestmark = pytest.mark.slow  # real PRs, builds and epochs: tens of seconds


def test_a_bad_plugin_in_a_three_plugin_push_is_named_and_the_others_can_be_pushed_apart(tmp_path):
    world = World(tmp_path)
    ws = world.ws
    ws.reset_to_remote()
    for name in ("org.pds.one", "org.pds.bad", "org.pds.two"):
        ws.add_plugin(world.example("org.pds.examples.rtt_monitor", name), name)
    (manifest,) = (ws.path / "plugins" / "org.pds.bad").glob("*.plugin")
    manifest.write_bytes(b"org.pds.bad\nupdate_rtt sideways record_progress.o\n")
    commit = ws.commit("three plugins", world.key("alice"))
    before = {r: str(pygit2.Repository(str(world.pr)).references[r].target)
              for r in pygit2.Repository(str(world.pr)).references}

    result = ws.push()

    assert result.returncode != 0
    err = result.stderr
    assert f"refused {commit[:12]}: plugins/org.pds.bad: malformed manifest" in err, err
    assert re.search(rf"refused plugin org\.pds\.bad \(commit {commit[:12]}\): plugins/org\.pds\.bad: "
                     r"malformed manifest: .*sideways", err), err
    assert f"the other 2 plugin(s) of commit {commit[:12]} pass the PR's checks (org.pds.one, org.pds.two)" in err
    assert "org.pds.one:" not in err and "refused plugin org.pds.one" not in err
    repo = pygit2.Repository(str(world.pr))
    assert {r: str(repo.references[r].target) for r in repo.references} == before  # atomic: nothing landed

    # the advice, run as the hook printed it (the developer's git signs with their SSH key)
    advice = re.search(r"for the last commit: (.*?); then fix", err).group(1)
    for key, value in (("gpg.format", "ssh"), ("user.signingkey", str(world.key("alice")))):
        run("git", "-C", ws.path, "config", key, value)
    done = subprocess.run(["bash", "-c", advice], cwd=ws.path, capture_output=True, text=True,
                          env={**os.environ, "GIT_EDITOR": "true"})
    assert done.returncode == 0, done.stderr
    repo = pygit2.Repository(str(world.pr))
    tip = repo[repo.references["refs/heads/main"].target]
    assert sorted(e.name for e in tip.tree["plugins"]) == ["org.pds.one", "org.pds.two"]
    assert tip.message.startswith("three plugins")
    # and the bad one is still in the work tree, to fix and push on its own
    assert manifest.exists() and "org.pds.bad" in run("git", "-C", ws.path, "status", "--porcelain").stdout


def test_a_push_whose_every_plugin_is_bad_gets_no_split_advice(tmp_path):
    world = World(tmp_path)
    ws = world.ws
    ws.reset_to_remote()
    for name in ("org.pds.bad1", "org.pds.bad2"):
        ws.add_plugin(world.example("org.pds.examples.rtt_monitor", name), name)
        (manifest,) = (ws.path / "plugins" / name).glob("*.plugin")
        manifest.write_bytes(b"\xff\xfe")
    ws.commit("two bad plugins", world.key("alice"))
    result = ws.push()
    assert result.returncode != 0
    assert "refused plugin" not in result.stderr and "pass the PR's checks" not in result.stderr
    assert result.stderr.count("malformed manifest") == 2
