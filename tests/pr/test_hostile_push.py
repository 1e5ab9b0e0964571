"""The embedded-default PR's hook against hostile pushes (issue 11): squatting a PV area with a
commit that already exists, and a push of too many files. Real bare repo, real hooks, real
SSH-signed commits."""

import pygit2
import pytest

from pds_log.pr.hook import MAX_PUSH_FILES
from tests.support import PDS, Workspace, make_key, run

pytestmark = pytest.mark.slow  # real git pushes through the PR's hooks


@pytest.fixture(scope="module")
def pr(tmp_path_factory):
    """A PR with an admin, developer alice, and two PVs; pv1 has pushed its area."""
    root = tmp_path_factory.mktemp("hostile-push")
    keys = {n: make_key(root, n) for n in ("admin", "alice", "pv1", "pv2")}
    path = root / "pr.git"
    run(*PDS, "pr", "init", path, "--admin-key", keys["admin"])
    run(*PDS, "pr", "add-developer", "--repo", path, "--admin-key", keys["admin"], "--name", "alice",
        "--key", f"{keys['alice']}.pub", "--namespace", "be.example.*")
    for pv in ("pv1", "pv2"):
        run(*PDS, "pr", "add-pv", "--repo", path, "--admin-key", keys["admin"], "--origin", f"{pv}.example",
            "--key", f"{keys[pv]}.pub")
    ws = Workspace(path, root / "pv1-ws", "pv1")
    run("git", "-C", ws.path, "checkout", "-q", "--orphan", "area")
    run("git", "-C", ws.path, "rm", "-rq", "--cached", ".")
    run("git", "-C", ws.path, "clean", "-qfdx")
    ws.write("pvs/pv1.example/str/1.note", "pv1.example\n1\n")
    area = ws.commit("pv1 area", keys["pv1"])
    result = ws.push("refs/heads/pvs/pv1.example")
    assert result.returncode == 0, result.stderr
    return {"root": root, "keys": keys, "path": path, "area": area}


def refs(path) -> dict[str, str]:
    repo = pygit2.Repository(str(path))
    return {r: str(repo.references[r].target) for r in repo.references}


@pytest.fixture
def ws(pr, tmp_path):
    return Workspace(pr["path"], tmp_path / "ws")


def push_existing(ws, sha: str, ref: str):
    run("git", "-C", ws.path, "fetch", "-q", "origin", "refs/heads/pvs/pv1.example")
    return run("git", "-C", ws.path, "push", "origin", f"{sha}:{ref}", check=False)


@pytest.mark.parametrize("target", ["refs/heads/pvs/unknown", "refs/heads/pvs/pv2.example"])
@pytest.mark.parametrize("which", ["main", "pv1-area"])
def test_an_existing_commit_cannot_squat_a_pv_area(pr, ws, which, target):
    before = refs(pr["path"])
    sha = before["refs/heads/main"] if which == "main" else pr["area"]
    result = push_existing(ws, sha, target)
    assert result.returncode != 0
    if target.endswith("unknown"):
        assert f"refused {target}: the policy names no PV 'unknown'" in result.stderr, result.stderr
    else:
        assert f"refused {target}: existing commit {sha[:12]} is not a commit of PV pv2.example's area" \
               in result.stderr, result.stderr
        assert "only the key of PV pv2.example may write its area" in result.stderr
    assert refs(pr["path"]) == before


def test_a_pv_area_cannot_be_moved_to_another_existing_commit(pr, ws):
    """Fast-forwarding pvs/pv1 onto a later commit of main (main descends from nothing in the
    area, so build one that does: pv2 writes a commit on top of pv1's area)."""
    run("git", "-C", ws.path, "fetch", "-q", "origin", "refs/heads/pvs/pv1.example")
    run("git", "-C", ws.path, "checkout", "-q", "-B", "squat", "FETCH_HEAD")
    ws.write("pvs/pv1.example/str/2.note", "forged\n")
    forged = ws.commit("pv2 writes pv1's area", pr["keys"]["pv2"])
    # first sneak the commit in under pv2's own (not yet existing) area: refused as well
    result = ws.push("refs/heads/pvs/pv2.example")
    assert result.returncode != 0 and "may write only under pvs/pv2.example/" in result.stderr, result.stderr
    before = refs(pr["path"])
    result = ws.push("refs/heads/pvs/pv1.example")
    assert result.returncode != 0 and f"refused {forged[:12]}: only the key of PV pv1.example" in result.stderr
    assert refs(pr["path"]) == before


def test_a_pv_may_still_create_its_area_from_its_own_commit(pr, ws):
    run("git", "-C", ws.path, "checkout", "-q", "--orphan", "pv2")
    run("git", "-C", ws.path, "rm", "-rq", "--cached", ".")
    run("git", "-C", ws.path, "clean", "-qfdx")
    ws.write("pvs/pv2.example/str/1.note", "pv2.example\n1\n")
    commit = ws.commit("pv2 area", pr["keys"]["pv2"])
    result = ws.push("refs/heads/pvs/pv2.example")
    assert result.returncode == 0, result.stderr
    assert refs(pr["path"])["refs/heads/pvs/pv2.example"] == commit
    # and re-pointing a fresh ref at that very commit is a commit of pv2's area: not a squat
    result = push_existing(ws, pr["area"], "refs/heads/pvs/pv1.example")
    assert result.returncode == 0, result.stderr  # no change: pv1's own tip


def test_a_push_of_too_many_files_is_refused(pr, ws):
    """Two admin commits, each under the per-commit limit, together over the per-push limit."""
    half = MAX_PUSH_FILES // 2 + 1
    for part in ("a", "b"):
        for i in range(half):
            ws.write(f"docs/{part}/{i}.txt", f"{part}{i}")
        ws.commit(f"docs {part}", pr["keys"]["admin"])
    before = refs(pr["path"])
    result = ws.push()
    assert result.returncode != 0
    assert f"refused refs/heads/main: the push changes more than {MAX_PUSH_FILES} files" in result.stderr, \
        result.stderr
    assert refs(pr["path"]) == before
    run("git", "-C", ws.path, "reset", "-q", "--hard", "HEAD~1")  # one commit alone is within the limit
    result = ws.push()
    assert result.returncode == 0, result.stderr
