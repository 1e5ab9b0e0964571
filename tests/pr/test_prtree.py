"""Incremental change detection over real git trees (pds_log.infra.prtree, commit_check):
adds, updates, removals and moves at every depth are found, and only the subtrees whose ids
changed are opened (counted on a real repository)."""

from __future__ import annotations

import pygit2
import pytest

from pds_log.core.pr_layout import plugin_dir
from pds_log.infra import commit_check
from pds_log.infra.gittree import update_tree
from pds_log.infra.prtree import changed_plugins, list_plugins, plugins_tree


class CountingRepo(pygit2.Repository):
    """A real repository that counts the objects looked up by id (trees opened)."""

    opened = 0

    def __getitem__(self, key):
        obj = super().__getitem__(key)
        if isinstance(obj, pygit2.Tree):
            type(self).opened += 1
        return obj


def files(name: str, tag: str = "") -> dict[str, bytes]:
    return {"p.plugin": f"{name}\nupdate_rtt post a.o\n{tag}".encode(), "a.o": b"\x7fELF" + name.encode()}


def tree_with(repo, base, plugins: dict[str, dict[str, bytes] | None], layout: int = 2):
    changes: dict[str, bytes | None] = {}
    for name, fs in plugins.items():
        if fs is None:
            entry = base[plugin_dir(name, layout)] if base is not None else None
            for sub in ("p.plugin", "a.o"):
                changes[f"{plugin_dir(name, layout)}/{sub}"] = None
            assert entry is not None
        else:
            changes.update({f"{plugin_dir(name, layout)}/{p}": d for p, d in fs.items()})
    return repo[update_tree(repo, base, changes)]


BASE = [f"org.ns{i}.p{j}" for i in range(20) for j in range(20)] + ["be.example", "be.example.hello",
                                                                     "a.b.c.d.e", "a.b.c.d.e.f"]


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    path = tmp_path_factory.mktemp("prtree") / "r.git"
    pygit2.init_repository(str(path), bare=True)
    return CountingRepo(str(path))


@pytest.fixture(scope="module")
def base(repo):
    return tree_with(repo, None, {n: files(n) for n in BASE})


EDITS = {
    "add at depth 2": {"be.new": files("be.new")},
    "add at depth 3 beside a prefix": {"be.example.other": files("be.example.other")},
    "add a prefix of an existing name": {"a.b.c.d": files("a.b.c.d")},
    "add at depth 7": {"a.b.c.d.e.f.g": files("a.b.c.d.e.f.g")},
    "update at depth 2": {"be.example": files("be.example", "v2")},
    "update at depth 6": {"a.b.c.d.e.f": files("a.b.c.d.e.f", "v2")},
    "update one of a prefix pair": {"be.example.hello": files("be.example.hello", "v2")},
    "remove at depth 5 (its child stays)": {"a.b.c.d.e": None},
    "remove the deepest": {"a.b.c.d.e.f": None},
    "move to a deeper name": {"org.ns3.p4": None, "org.ns3.p4.old": files("org.ns3.p4")},
    "move across namespaces": {"org.ns5.p5": None, "be.example.p5": files("org.ns5.p5")},
    "several at once": {"org.ns1.p1": files("org.ns1.p1", "v2"), "org.ns2.p2": None,
                        "org.ns9.p9.q": files("x")},
}


def brute(repo, old, new) -> dict:
    a = {n: e.id for n, e in list_plugins(repo, plugins_tree(repo, old), 2).entries.items()}
    b = {n: e.id for n, e in list_plugins(repo, plugins_tree(repo, new), 2).entries.items()}
    return {n: (a.get(n), b.get(n)) for n in a.keys() | b.keys() if a.get(n) != b.get(n)}


@pytest.mark.parametrize("edit", list(EDITS))
def test_changes_found_at_every_depth_opening_only_changed_subtrees(repo, base, edit):
    new = tree_with(repo, base, EDITS[edit])
    expected = brute(repo, base, new)
    assert set(expected) == set(EDITS[edit])
    old_p, new_p = plugins_tree(repo, base), plugins_tree(repo, new)
    CountingRepo.opened = 0
    found = changed_plugins(repo, old_p, 2, new_p, 2)
    assert found == expected
    # each changed plugin costs at most one tree per label on each side: O(changed x depth),
    # not O(424 plugins)
    bound = sum(2 * len(name.split(".")) for name in EDITS[edit])
    assert CountingRepo.opened <= bound, (CountingRepo.opened, bound)


def test_no_change_opens_nothing(repo, base):
    same = plugins_tree(repo, base)
    CountingRepo.opened = 0
    assert changed_plugins(repo, same, 2, same, 2) == {}
    assert CountingRepo.opened == 0


def test_same_files_in_another_layout_is_no_change(repo, base):
    flat = tree_with(repo, None, {n: files(n) for n in BASE}, layout=1)
    assert changed_plugins(repo, plugins_tree(repo, flat), 1, plugins_tree(repo, base), 2) == {}
    moved = tree_with(repo, base, EDITS["several at once"])
    assert set(changed_plugins(repo, plugins_tree(repo, flat), 1, plugins_tree(repo, moved), 2)) == \
        set(EDITS["several at once"])


def test_commit_file_diff_is_incremental_too(repo, base):
    """commit_check.changes (the hook's, PV's and auditor's file list) lists exactly the
    changed files, opening only the subtrees whose ids differ."""
    sig = pygit2.Signature("t", "t@example.org", 0, 0)
    parent = repo.create_commit(None, sig, sig, "base", base.id, [])
    new = tree_with(repo, base, EDITS["move to a deeper name"])
    child = repo[repo.create_commit(None, sig, sig, "move", new.id, [parent])]
    CountingRepo.opened = 0
    listed = sorted(c.path for c in commit_check.changes(repo, child))
    assert listed == ["plugins/org/ns3/p4/+/a.o", "plugins/org/ns3/p4/+/p.plugin",
                      "plugins/org/ns3/p4/old/+/a.o", "plugins/org/ns3/p4/old/+/p.plugin"]
    assert CountingRepo.opened <= 2 * 7 + 2
