"""Writing git trees directly into the object database (no index, no work tree).

The PV log repo holds hundreds of thousands of files; going through an index would cost O(N)
per epoch. `update_tree` rewrites only the subtrees on the paths of the changed files, so an
epoch that changes k files writes O(k * depth) objects.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, Mapping

import pygit2

from pds_log.core.errors import PdsError

BLOB_MODE = pygit2.GIT_FILEMODE_BLOB
TREE_MODE = pygit2.GIT_FILEMODE_TREE


def tree_at(repo: pygit2.Repository, oid: pygit2.Oid | str) -> pygit2.Tree:
    """The tree object `oid`; anything else (a blob where a directory was expected, in a
    hostile repository) is an error, never a crash further on."""
    obj = repo[oid]
    if not isinstance(obj, pygit2.Tree):
        raise PdsError(f"git object {oid} is a {obj.type_str}, expected a tree")
    return obj


def commit_at(repo: pygit2.Repository, oid: pygit2.Oid | str) -> pygit2.Commit:
    """The commit object `oid` (an error if it is another kind of object)."""
    obj = repo[oid]
    if not isinstance(obj, pygit2.Commit):
        raise PdsError(f"git object {oid} is a {obj.type_str}, expected a commit")
    return obj


def entry_name(entry: pygit2.Object) -> str:
    """The name of an entry read from a tree (pygit2 types `name` Optional because objects
    looked up by id have none; one from a tree always has)."""
    if entry.name is None:
        raise PdsError(f"git tree entry {entry.id} has no name")
    return entry.name


def blob_at(repo: pygit2.Repository, oid: pygit2.Oid | str) -> bytes:
    """The bytes of blob `oid` (an error if it is another kind of object)."""
    obj = repo[oid]
    if not isinstance(obj, pygit2.Blob):
        raise PdsError(f"git object {oid} is a {obj.type_str}, expected a blob")
    return obj.data


def update_tree(repo: pygit2.Repository, base: pygit2.Tree | None,
                changes: Mapping[str, bytes | pygit2.Oid | None]) -> pygit2.Oid:
    """A new tree = `base` with each path set to its bytes, or to an existing blob of the
    repository given by its id (a file moved, not rewritten), or removed when None.

    Empty directories left by removals disappear, as git requires."""
    grouped: dict[str, dict[str, bytes | pygit2.Oid | None]] = {}
    direct: dict[str, bytes | pygit2.Oid | None] = {}
    for path, data in changes.items():
        head, sep, rest = path.partition("/")
        if not head or head in (".", ".."):
            raise PdsError(f"bad path in tree update: {path!r}")
        if sep:
            grouped.setdefault(head, {})[rest] = data
        else:
            direct[head] = data
    builder = repo.TreeBuilder(base) if base is not None else repo.TreeBuilder()
    for name, data in direct.items():
        _set_file(repo, builder, base, name, data)
    for name, sub in grouped.items():
        sub_base = None
        if base is not None and name in base:
            entry = base[name]
            if entry.type_str == "tree":
                sub_base = tree_at(repo, entry.id)
        new_id = update_tree(repo, sub_base, sub)
        if len(tree_at(repo, new_id)) == 0:
            if base is not None and name in base:
                builder.remove(name)
        else:
            builder.insert(name, new_id, TREE_MODE)
    return builder.write()


def _set_file(repo: pygit2.Repository, builder: pygit2.TreeBuilder, base: pygit2.Tree | None, name: str,
              data: bytes | pygit2.Oid | None) -> None:
    if data is None:
        if base is not None and name in base:
            builder.remove(name)
    elif isinstance(data, pygit2.Oid):  # the id of a blob the caller read from this repository
        builder.insert(name, data, BLOB_MODE)
    else:
        builder.insert(name, repo.create_blob(data), BLOB_MODE)


def read_path(repo: pygit2.Repository, tree: pygit2.Tree, path: str) -> bytes | None:
    """The bytes of the blob at `path` in `tree`, or None if there is none."""
    try:
        entry = tree[path]
    except KeyError:
        return None
    obj = repo[entry.id]
    return obj.data if isinstance(obj, pygit2.Blob) else None


def walk_blobs(repo: pygit2.Repository, tree: pygit2.Tree, prefix: str = "") -> Iterator[tuple[str, pygit2.Oid]]:
    """Every blob under `tree` as (path, oid), depth first."""
    for entry in tree:
        path = f"{prefix}{entry.name}"
        if entry.type_str == "tree":
            yield from walk_blobs(repo, tree_at(repo, entry.id), path + "/")
        elif entry.type_str == "blob":
            yield path, entry.id


def renamed_diff(repo: pygit2.Repository, old: pygit2.Tree, new: pygit2.Tree, tops: Iterable[str],
                 rename: Callable[[str], str]) -> list[tuple[str, str, pygit2.Oid | None]]:
    """(path in `new`, "A" | "M" | "D", blob id in `new` or None) of every file under the
    directories `tops` that differs between `old`, each of its paths first mapped by `rename`
    (a log layout migration's moves), and `new`. Walks both trees whole."""
    def files(tree: pygit2.Tree, mapped: bool) -> dict[str, pygit2.Oid]:
        out: dict[str, pygit2.Oid] = {}
        for top in tops:
            sub = subtree(repo, tree, top)
            for path, oid in walk_blobs(repo, sub, top + "/") if sub is not None else ():
                out[rename(path) if mapped else path] = oid
        return out

    before, after = files(old, True), files(new, False)
    changed: list[tuple[str, str, pygit2.Oid | None]] = [
        (path, "A" if path not in before else "M", oid) for path, oid in after.items() if before.get(path) != oid]
    changed += [(path, "D", None) for path in before if path not in after]
    return sorted(changed)


def subtree(repo: pygit2.Repository, tree: pygit2.Tree, path: str) -> pygit2.Tree | None:
    try:
        entry = tree[path]
    except KeyError:
        return None
    return tree_at(repo, entry.id) if entry.type_str == "tree" else None
