"""A PR created in layout 2, for real: `pds dev submit` puts a plugin under its labels (a name
that is a prefix of another included), the real hook refuses paths that are no plugin's files
and names outside the signer's namespace, with the path in the message; a deletion keeps the
longer name."""

from __future__ import annotations

import pygit2
import pytest

from tests.support import PDS, Workspace, make_key, run


@pytest.fixture(scope="module")
def pr(tmp_path_factory):
    root = tmp_path_factory.mktemp("pr2")
    keys = {n: make_key(root, n) for n in ("admin", "alice")}
    path = root / "pr.git"
    run(*PDS, "pr", "init", path, "--admin-key", keys["admin"], "--layout", "2")
    run(*PDS, "pr", "add-developer", "--repo", path, "--admin-key", keys["admin"], "--name", "alice",
        "--key", f"{keys['alice']}.pub", "--namespace", "be.example.*")
    for name in ("be.example.hello", "be.example.hello.x"):
        run(*PDS, "dev", "new", name, "--dir", root)
        run(*PDS, "dev", "build", root / name)
        run(*PDS, "dev", "submit", root / name, "--repo", path, "--key", keys["alice"], "--author", "alice")
    return {"root": root, "keys": keys, "path": path}


def head(pr) -> pygit2.Commit:
    return pygit2.Repository(str(pr["path"])).revparse_single("main")


@pytest.mark.slow
def test_submit_puts_plugins_under_their_labels(pr):
    tree = head(pr).tree
    assert tree["plugins/be/example/hello/+/hello.plugin"].type_str == "blob"
    assert tree["plugins/be/example/hello/x/+/x.plugin"].type_str == "blob"
    assert "layout: 2" in pygit2.Repository(str(pr["path"]))[tree["pds/policy.yaml"].id].data.decode()


@pytest.mark.slow
@pytest.mark.parametrize("path, message", [
    ("plugins/be/example/notes.txt", "plugins/be/example/notes.txt: not in a plugin's files directory"),
    ("plugins/be.example.y/+/y.plugin", "'be.example.y' is not a name label"),
    ("plugins/be/other/z/+/z.plugin", "plugins/be/other/z/+/z.plugin: signer alice may not write outside be.example.*"),
])
def test_the_hook_refuses_misplaced_files(pr, tmp_path, path, message):
    before = str(head(pr).id)
    ws = Workspace(pr["path"], tmp_path / "ws", layout=2)
    ws.write(path, "x\n")
    ws.commit("misplaced", pr["keys"]["alice"])
    result = ws.push()
    assert result.returncode != 0 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert str(head(pr).id) == before


@pytest.mark.slow
def test_deleting_a_prefix_name_keeps_the_longer_one(pr):
    run(*PDS, "dev", "submit", pr["root"] / "be.example.hello", "--repo", pr["path"], "--key", pr["keys"]["alice"],
        "--delete")
    tree = head(pr).tree
    with pytest.raises(KeyError):
        tree["plugins/be/example/hello/+"]
    assert tree["plugins/be/example/hello/x/+/x.plugin"].type_str == "blob"


def count_objects(path) -> dict[str, int]:
    out = run("git", "--git-dir", path, "count-objects", "-v").stdout
    return {k: int(v) for k, v in (line.split(": ") for line in out.splitlines()) if v.isdigit()}


@pytest.mark.slow
def test_pushes_are_stored_packed(pr, tmp_path):
    """`pds pr init` sets receive.unpackLimit 1: a small push adds a pack, no loose objects."""
    before = count_objects(pr["path"])
    run(*PDS, "dev", "new", "be.example.packed", "--dir", tmp_path)
    run(*PDS, "dev", "build", tmp_path / "be.example.packed")
    run(*PDS, "dev", "submit", tmp_path / "be.example.packed", "--repo", pr["path"], "--key", pr["keys"]["alice"])
    after = count_objects(pr["path"])
    assert after["count"] == before["count"]  # loose objects
    assert after["packs"] == before["packs"] + 1 and after["in-pack"] > before["in-pack"]
