"""The embedded-default PR, for real: keygen, new, build, signed push accepted; then every
refusal case pushed for real and refused with its reason, the PR unchanged."""

import json
import os
import shutil
import stat
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pygit2
import pytest

from tests.support import PDS, Workspace, build_example, make_key, run

pytestmark = pytest.mark.slow  # real git pushes through the PR's hooks

CASES_DIR = "plugins"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A PR with an admin, developer alice (be.example.*), bob (org.bob.*, expired), a
    revoked key, a PV area for pv1, and alice's first plugin pushed through the real CLI."""
    root = tmp_path_factory.mktemp("pr")
    keys = {n: make_key(root, n) for n in ("admin", "alice", "bob", "mallory", "revoked", "pv1")}
    pr = root / "pr.git"
    run(*PDS, "pr", "init", pr, "--admin-key", keys["admin"], "--admin-name", "root-admin")
    run(*PDS, "pr", "add-developer", "--repo", pr, "--admin-key", keys["admin"], "--name", "alice",
        "--key", f"{keys['alice']}.pub", "--namespace", "be.example.*")
    run(*PDS, "pr", "add-developer", "--repo", pr, "--admin-key", keys["admin"], "--name", "bob",
        "--key", f"{keys['bob']}.pub", "--namespace", "org.bob.*", "--valid-before", "2020-01-01T00:00:00Z")
    run(*PDS, "pr", "add-developer", "--repo", pr, "--admin-key", keys["admin"], "--name", "revoked",
        "--key", f"{keys['revoked']}.pub", "--namespace", "be.example.*")
    run(*PDS, "pr", "revoke", "--repo", pr, "--admin-key", keys["admin"], "--key", f"{keys['revoked']}.pub",
        "--reason", "laptop stolen")
    run(*PDS, "pr", "add-pv", "--repo", pr, "--admin-key", keys["admin"], "--origin", "pv1.example",
        "--key", f"{keys['pv1']}.pub")
    # the developer round trip through the CLI: new, build, submit
    run(*PDS, "dev", "new", "be.example.hello", "--dir", root)
    run(*PDS, "dev", "build", root / "be.example.hello")
    out = run(*PDS, "dev", "submit", root / "be.example.hello", "--repo", pr, "--key", keys["alice"],
              "--author", "alice")
    assert "pushed" in out.stdout
    good = build_example("org.pds.examples.rtt_monitor", root / "built", rename="be.example.rtt")
    return {"root": root, "keys": keys, "pr": pr, "good": good}


def refs(pr: Path) -> dict[str, str]:
    repo = pygit2.Repository(str(pr))
    return {r: str(repo.references[r].target) for r in repo.references}


@pytest.fixture
def ws(world, tmp_path):
    return Workspace(world["pr"], tmp_path / "ws")


def refused(ws, world, result, *messages):
    before = refs(world["pr"])
    assert result.returncode != 0, result.stderr
    for message in messages:
        assert message in result.stderr, result.stderr
    assert refs(world["pr"]) == before
    return result.stderr


def test_round_trip_accepted(world, ws):
    repo = pygit2.Repository(str(world["pr"]))
    tree = repo.revparse_single("main").tree
    assert "plugins/be.example.hello/hello_update_rtt.o" in {f"plugins/be.example.hello/{e.name}"
                                                             for e in repo[tree["plugins/be.example.hello"].id]}
    ws.add_plugin(world["good"])
    ws.commit("add rtt", world["keys"]["alice"])
    before = refs(world["pr"])["refs/heads/main"]
    result = ws.push()
    assert result.returncode == 0, result.stderr
    assert refs(world["pr"])["refs/heads/main"] != before


def test_unsigned_commit(world, ws):
    ws.write("plugins/be.example.hello/notes.txt", "x")
    commit = ws.commit("unsigned", None)
    stderr = refused(ws, world, ws.push(), f"refused {commit[:12]}: unsigned commit")
    assert len([ln for ln in stderr.splitlines() if "refused " + commit[:12] in ln]) == 1


def test_unknown_key(world, ws):
    ws.write("plugins/be.example.hello/notes.txt", "x")
    ws.commit("mallory", world["keys"]["mallory"])
    refused(ws, world, ws.push(), "is not in the policy")


def test_revoked_key(world, ws):
    ws.write("plugins/be.example.hello/notes.txt", "x")
    ws.commit("revoked", world["keys"]["revoked"])
    refused(ws, world, ws.push(), "is revoked (laptop stolen)")


def test_expired_key_judged_at_push_time_not_committer_date(world, ws):
    ws.add_plugin(world["good"], "org.bob.rtt")
    old = "2019-06-01T00:00:00+0000"  # before the key's valid_before, but the push is now
    ws.commit("bob backdated", world["keys"]["bob"], env={"GIT_COMMITTER_DATE": old, "GIT_AUTHOR_DATE": old})
    refused(ws, world, ws.push(), "bob's key expired at 2020-01-01T00:00:00Z")


def test_namespace_checked_per_commit_not_net_diff(world, ws):
    alice = world["keys"]["alice"]
    ws.write("plugins/be.example.hello/notes.txt", "mine")
    ws.commit("inside", alice)
    ws.add_plugin(world["good"], "org.victim.rtt")
    sneaky = ws.commit("outside", alice)
    ws.remove("plugins/org.victim.rtt")
    ws.commit("revert: net diff is clean", alice)
    refused(ws, world, ws.push(), f"refused {sneaky[:12]}: plugins/org.victim.rtt/",
            "signer alice may not write outside be.example.*")


def test_non_fast_forward_and_deletion(world, ws):
    run("git", "-C", ws.path, "reset", "-q", "--hard", "HEAD~1")
    ws.write("plugins/be.example.hello/notes.txt", "rewrite")
    ws.commit("rewrite history", world["keys"]["alice"])
    refused(ws, world, ws.push("main", "--force"), "non-fast-forward")
    refused(ws, world, ws.push(":refs/heads/main"), "deleting a ref is not allowed")


def test_other_refs(world, ws):
    ws.write("plugins/be.example.hello/notes.txt", "x")
    ws.commit("feature", world["keys"]["alice"])
    refused(ws, world, ws.push("refs/heads/feature"), "only refs/heads/main and refs/heads/pvs/<origin>")
    run("git", "-C", ws.path, "tag", "v1")
    refused(ws, world, ws.push("refs/tags/v1:refs/tags/v1"), "only refs/heads/main")


@pytest.mark.parametrize("mutate, message", [
    (lambda ws: ws.write("plugins/be.example.rtt/rtt_monitor.plugin", "be.example.rtt\nupdate_rtt sideways x.o\n"),
     "malformed manifest: rtt_monitor.plugin:2: anchor 'sideways'"),
    (lambda ws: ws.write("plugins/be.example.rtt/rtt_monitor.plugin", "be.example.rtt\nupdate_rtt post gone.o\n"),
     "plugins/be.example.rtt/gone.o: missing pluglet"),
    (lambda ws: ws.write("plugins/be.example.rtt/record_progress.o", b"\x7fELF not really"),
     "plugins/be.example.rtt/record_progress.o: not an eBPF object"),
    (lambda ws: ws.write("plugins/be.example.rtt/record_progress.o", Path("/bin/true").read_bytes()),
     "not an eBPF object: ELF machine is 62"),
    (lambda ws: ws.write("plugins/be.example.rtt/big.bin", os.urandom((1 << 20) + 1)),
     "plugins/be.example.rtt/big.bin: 1048577 bytes, over the 1048576-byte limit"),
    (lambda ws: os.symlink("/etc/passwd", ws.path / "plugins/be.example.rtt/link"),
     "plugins/be.example.rtt/link: symlinks are not allowed"),
    (lambda ws: ws.write("plugins/stray.txt", "x"), "files directly under plugins/ are not allowed"),
    (lambda ws: ws.write("pvs/pv1.example/str/1.note", "x"), "PV areas live on refs/heads/pvs/<origin>"),
    (lambda ws: ws.write("pds/policy.yaml", "version: 1\nadmins: []\n"), "is not an admin and may not change the policy"),
])
def test_content_refusals(world, ws, mutate, message):
    ws.add_plugin(world["good"], "be.example.rtt")
    mutate(ws)
    ws.commit("bad content", world["keys"]["alice"])
    refused(ws, world, ws.push(), message)


def test_submodule_refused(world, ws):
    sub = ws.path / "plugins/be.example.hello/sub"
    run("git", "-C", ws.path, "update-index", "--add", "--cacheinfo",
        f"160000,{'1' * 40},plugins/be.example.hello/sub")
    assert not sub.exists()
    run("git", "-C", ws.path, "-c", "gpg.format=ssh", "-c", f"user.signingkey={world['keys']['alice']}",
        "commit", "-q", "-S", "-m", "submodule")
    refused(ws, world, ws.push(), "submodules are not allowed")


def test_dotdot_path_refused(world, ws):
    """A tree entry named '..' cannot come from git itself; craft one and push it."""
    repo = pygit2.Repository(str(ws.path))
    head = repo.revparse_single("HEAD")
    blob = repo.create_blob(b"escape")
    raw = b"100644 ..\x00" + blob.raw
    inner = repo.odb.write(pygit2.enums.ObjectType.TREE, raw)
    plugins = repo.TreeBuilder(repo[head.tree["plugins"].id])
    plugins.insert("be.example.evil", inner, pygit2.GIT_FILEMODE_TREE)
    top = repo.TreeBuilder(head.tree)
    top.insert("plugins", plugins.write(), pygit2.GIT_FILEMODE_TREE)
    from pds_log.infra.gitsign import signed_commit

    commit = signed_commit(ws.path / ".git", top.write(), [str(head.id)], "dotdot", world["keys"]["alice"], "alice")
    stderr = refused(ws, world, ws.push(f"{commit}:refs/heads/main"), "")
    assert ".." in stderr and ("unsafe path" in stderr or "hasDotdot" in stderr)


def test_merge_commit_refused(world, ws):
    base = run("git", "-C", ws.path, "rev-parse", "HEAD").stdout.strip()
    ws.write("plugins/be.example.hello/a.txt", "a")
    ws.commit("a", world["keys"]["alice"])
    run("git", "-C", ws.path, "checkout", "-q", "-b", "side", base)
    ws.write("plugins/be.example.hello/b.txt", "b")
    ws.commit("b", world["keys"]["alice"])
    run("git", "-C", ws.path, "checkout", "-q", "-")
    run("git", "-C", ws.path, "-c", "gpg.format=ssh", "-c", f"user.signingkey={world['keys']['alice']}",
        "merge", "-q", "-S", "--no-edit", "side")
    refused(ws, world, ws.push(), "merge commit: rebase")


def pv_area_commit(ws, key, files: dict, origin="pv1.example", orphan=True):
    run("git", "-C", ws.path, "checkout", "-q", "--orphan", f"area-{time.monotonic_ns()}")
    run("git", "-C", ws.path, "rm", "-rq", "--cached", ".")
    run("git", "-C", ws.path, "clean", "-qfdx")
    for rel, data in files.items():
        ws.write(rel, data)
    return ws.commit("pv area", key)


def test_pv_area(world, ws):
    keys = world["keys"]
    pv_area_commit(ws, keys["pv1"], {"pvs/pv1.example/str/1.note": "note"})
    ok = ws.push("refs/heads/pvs/pv1.example")
    assert ok.returncode == 0, ok.stderr
    pv_area_commit(ws, keys["alice"], {"pvs/pv1.example/str/1.note": "forged"})
    refused(ws, world, ws.push("refs/heads/pvs/pv1.example", "--force"), "non-fast-forward")
    refused(ws, world, ws.push("refs/heads/pvs/pv2.example"),  # no such PV (known PVs: tests/pr/test_hostile_push.py)
            "the policy names no PV 'pv2.example'")
    run("git", "-C", ws.path, "fetch", "-q", "origin", "refs/heads/pvs/pv1.example")
    run("git", "-C", ws.path, "checkout", "-q", "-B", "on-area", "FETCH_HEAD")
    ws.write("pvs/other/str/1.note", "x")
    ws.commit("pv1 outside its area", keys["pv1"])
    refused(ws, world, ws.push("refs/heads/pvs/pv1.example"), "PV pv1.example may write only under pvs/pv1.example/")
    ws.reset_to_remote()
    run("git", "-C", ws.path, "checkout", "-q", "main")
    ws.reset_to_remote()
    ws.write("plugins/be.example.hello/notes.txt", "from the pv")
    ws.commit("pv writes main", keys["pv1"])
    refused(ws, world, ws.push(), "is not a developer key")


def test_hook_fails_closed(world, tmp_path):
    broken = tmp_path / "broken.git"
    shutil.copytree(world["pr"], broken)
    (broken / "hooks" / "pre-receive").write_text("#!/bin/sh\nexec %s -c 'import sys; sys.exit(\"boom\")'\n"
                                                  % sys.executable)
    from pds_log.pr.hook import pre_receive

    code, lines = pre_receive(str(tmp_path / "missing.git"), "0 1 refs/heads/main\n")
    assert code == 1 and "the PR hook failed" in lines[0]


class Recorder(BaseHTTPRequestHandler):
    hits: list = []

    def do_POST(self):  # noqa: N802
        Recorder.hits.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_post_receive_notifies_and_never_blocks(world, ws):
    server = HTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        (world["pr"] / "pds-notify.yaml").write_text(
            f"webhooks:\n  - url: http://127.0.0.1:1/dead\n  - url: http://127.0.0.1:{server.server_port}/hook\n")
        ws.write("plugins/be.example.hello/notify.txt", str(time.time()))
        ws.commit("notify", world["keys"]["alice"])
        result = ws.push()
        assert result.returncode == 0, result.stderr
        assert "127.0.0.1:1/dead: failed" in result.stderr and "HTTP 204" in result.stderr
        assert Recorder.hits and Recorder.hits[-1]["ref"] == "refs/heads/main"
    finally:
        (world["pr"] / "pds-notify.yaml").unlink()
        server.shutdown()


def test_hooks_are_executable(world):
    mode = (world["pr"] / "hooks" / "pre-receive").stat().st_mode
    assert mode & stat.S_IXUSR
