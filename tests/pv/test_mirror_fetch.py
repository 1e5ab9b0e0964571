"""The PV's PR mirror: fetch-pack moves the refs only after the new objects are all there."""

from __future__ import annotations

import os
import subprocess

import pygit2
import pytest

from pds_log.core.errors import PdsError
from pds_log.pv.prsource import PrMirror

SIG = pygit2.Signature("t", "t@example.org", 0, 0)


def commit_files(repo: pygit2.Repository, files: dict[str, bytes], message: str) -> pygit2.Oid:
    """A commit on main whose tree is `files` (paths with directories) over its parent's."""
    index = pygit2.Index()
    head = repo.references.get("refs/heads/main")
    if head is not None:
        index.read_tree(repo[head.target].tree)
    for path, data in files.items():
        index.add(pygit2.IndexEntry(path, repo.create_blob(data), pygit2.GIT_FILEMODE_BLOB))
    tree = index.write_tree(repo)
    return repo.create_commit("refs/heads/main", SIG, SIG, message, tree, [head.target] if head else [])


@pytest.fixture
def pr_and_mirror(tmp_path):
    pr = pygit2.init_repository(str(tmp_path / "pr.git"), bare=True)
    commit_files(pr, {f"plugins/org/g{i}/p{i}/+/p.plugin": b"x%d\n" % i for i in range(20)}, "first")
    pr.references.create("refs/heads/pvs/pv1", pr.references["refs/heads/main"].target)
    mirror = PrMirror(tmp_path / "state" / "pr.git", str(tmp_path / "pr.git"), "main")
    return pr, mirror


def test_fetch_moves_main_and_pv_areas_and_keeps_one_pack_per_fetch(pr_and_mirror):
    pr, mirror = pr_and_mirror
    first = mirror.fetch()
    assert first.id == pr.references["refs/heads/main"].target
    assert mirror.repo.references["refs/remotes/pr/pvs/pv1"].target == first.id
    second = commit_files(pr, {"plugins/org/g3/p3/+/p.plugin": b"changed\n"}, "second")
    assert mirror.fetch().id == second
    packs = os.listdir(mirror.path / "objects" / "pack")
    assert sorted(p.rsplit(".", 1)[1] for p in packs) == ["idx", "idx", "pack", "pack"]  # no .keep left
    assert mirror.fetch().id == second  # nothing new: the refs stay


def test_a_fetch_missing_an_object_is_refused_and_moves_no_ref(pr_and_mirror, tmp_path):
    pr, mirror = pr_and_mirror
    first = mirror.fetch()
    second = commit_files(pr, {"plugins/org/g3/p3/+/p.plugin": b"changed\n", "plugins/org/g4/p4/+/a.o": b"o"},
                          "second")
    new_objects = subprocess.run(["git", "--git-dir", pr.path, "rev-list", "--objects", str(second), f"^{first.id}"],
                                 capture_output=True, text=True, check=True).stdout.split("\n")
    missing = pr.create_blob(b"o")
    for line in new_objects:  # the new objects but one blob, as a PR's incomplete pack would leave them
        oid = line.split(" ")[0]
        if oid and oid != str(missing):
            obj = pr[oid]
            mirror.repo.odb.write(obj.type, obj.read_raw())
    with pytest.raises(PdsError, match="incomplete or corrupt pack"):
        mirror._check_complete([str(second)], [str(first.id)], dict(os.environ))
    mirror.repo.odb.write(pygit2.GIT_OBJECT_BLOB, b"o")
    mirror._check_complete([str(second)], [str(first.id)], dict(os.environ))  # now complete: no error
    assert mirror.repo.references["refs/remotes/pr/main"].target == first.id
