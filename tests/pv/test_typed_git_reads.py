"""The typed git readers: an object of the wrong kind (a hostile repository) is a PdsError
naming it, never an AttributeError or TypeError further on."""

import pygit2
import pytest

from pds_log.core.errors import PdsError
from pds_log.infra.gittree import blob_at, commit_at, entry_name, tree_at
from pds_log.pv.logrepo import LogRepo


@pytest.fixture
def repo(tmp_path):
    repo = pygit2.init_repository(str(tmp_path / "r.git"), bare=True)
    blob = repo.create_blob(b"hello\n")
    builder = repo.TreeBuilder()
    builder.insert("a.txt", blob, pygit2.GIT_FILEMODE_BLOB)
    tree = builder.write()
    sig = pygit2.Signature("t", "t@example.org", 0, 0)
    commit = repo.create_commit("refs/heads/main", sig, sig, "one", tree, [])
    return repo, blob, tree, commit


def test_each_reader_returns_its_kind(repo):
    r, blob, tree, commit = repo
    assert blob_at(r, blob) == b"hello\n"
    assert [entry_name(e) for e in tree_at(r, tree)] == ["a.txt"]
    assert commit_at(r, str(commit)).tree.id == tree


@pytest.mark.parametrize("reader, kind", [(commit_at, "commit"), (tree_at, "tree")])
def test_a_blob_where_another_kind_is_expected_is_an_error(repo, reader, kind):
    r, blob, _tree, _commit = repo
    with pytest.raises(PdsError, match=f"git object {blob} is a blob, expected a {kind}"):
        reader(r, blob)


def test_a_tree_where_a_blob_is_expected_is_an_error(repo):
    r, _blob, tree, _commit = repo
    with pytest.raises(PdsError, match="is a tree, expected a blob"):
        blob_at(r, tree)


def test_a_log_commit_without_a_required_file_names_it(tmp_path):
    log = LogRepo.init(tmp_path / "log.git")
    sig = pygit2.Signature("t", "t@example.org", 0, 0)
    builder = log.repo.TreeBuilder()
    builder.insert("x", log.repo.create_blob(b"x"), pygit2.GIT_FILEMODE_BLOB)
    commit = log.repo[log.repo.create_commit(None, sig, sig, "e", builder.write(), [])]
    assert log.read_required(commit, "x") == b"x"
    with pytest.raises(PdsError, match=f"commit {commit.id} has no epochs/1.json"):
        log.read_required(commit, "epochs/1.json")
