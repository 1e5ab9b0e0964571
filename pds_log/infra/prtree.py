"""Plugins in a PR commit's git tree, in either PR layout (pds_log.core.pr_layout).

Role-neutral: the PR's hook (through pds_log.infra.commit_check), every PV
(pds_log.pv.prsource) and the auditor read plugin directories through these functions, given
the layout the commit's policy sets (`commit_check.layout_at`).

`changed_plugins` is the incremental diff: git trees are content-addressed, so a subtree whose
object id did not change holds no change and is never opened. In layout 2 a diff reads only
the label directories on the paths of the changed plugins: O(changed x depth) tree objects
(each as large as that directory's fan-out), whatever the number of plugins. Between two
layouts (the migration commit) it compares complete listings, once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pygit2

from pds_log.core.errors import FormatError
from pds_log.core.names import MAX_NAME_LENGTH, is_valid_name
from pds_log.core.pr_layout import FILES_DIR, LAYOUT_LABELS, PLUGINS_DIR, is_label, plugin_dir
from pds_log.infra.gittree import entry_name, tree_at

MAX_LABELS = (MAX_NAME_LENGTH + 1) // 2  # labels of the longest name ("a.b.c..." of 1-char labels)


def plugins_tree(repo: pygit2.Repository, tree: pygit2.Tree) -> pygit2.Tree | None:
    """The ``plugins/`` tree of a commit's tree (None when absent or not a directory)."""
    try:
        entry = tree[PLUGINS_DIR]
    except KeyError:
        return None
    return tree_at(repo, entry.id) if entry.filemode == pygit2.GIT_FILEMODE_TREE else None


def plugin_entry(tree: pygit2.Tree, name: str, layout: int) -> pygit2.Object | None:
    """The tree entry of plugin `name`'s directory in a commit's tree, or None if it has none
    (the entry may be a blob or a link: callers refuse a directory that is not a tree)."""
    try:
        return tree[plugin_dir(name, layout)]
    except (KeyError, FormatError):
        return None


@dataclass
class PluginListing:
    """Every plugin directory under ``plugins/`` (name -> its tree entry), and the paths there
    that are no plugin's directory in the layout (`stray`)."""

    entries: dict[str, pygit2.Object] = field(default_factory=dict)
    stray: list[str] = field(default_factory=list)


def list_plugins(repo: pygit2.Repository, plugins: pygit2.Tree | None, layout: int) -> PluginListing:
    """A full listing: O(number of plugins); for name listings and layout changes only."""
    out = PluginListing()
    if plugins is None:
        return out
    if layout != LAYOUT_LABELS:
        for entry in plugins:
            name = entry_name(entry)
            if is_valid_name(name):
                out.entries[name] = entry
            else:
                out.stray.append(f"{PLUGINS_DIR}/{name}")
        return out
    stack: list[tuple[tuple[str, ...], pygit2.Tree]] = [((), plugins)]
    while stack:
        labels, tree = stack.pop()
        for entry in tree:
            part = entry_name(entry)
            path = "/".join((PLUGINS_DIR, *labels, part))
            name = ".".join(labels)
            if part == FILES_DIR and is_valid_name(name):
                out.entries[name] = entry
            elif is_label(part) and entry.filemode == pygit2.GIT_FILEMODE_TREE and len(labels) < MAX_LABELS:
                stack.append(((*labels, part), tree_at(repo, entry.id)))
            else:
                out.stray.append(path)
    return out


Changes = dict[str, tuple[pygit2.Oid | None, pygit2.Oid | None]]


def changed_plugins(repo: pygit2.Repository, old: pygit2.Tree | None, old_layout: int,
                    new: pygit2.Tree | None, new_layout: int) -> Changes:
    """Plugins whose directory differs between two ``plugins/`` trees (each read in its own
    layout): name -> (old id, new id), None where the plugin has no directory. A plugin moved
    between layouts with the same files is unchanged."""
    if old_layout != new_layout:
        before = {n: e.id for n, e in list_plugins(repo, old, old_layout).entries.items()}
        after = {n: e.id for n, e in list_plugins(repo, new, new_layout).entries.items()}
        return {n: (before.get(n), after.get(n)) for n in before.keys() | after.keys()
                if before.get(n) != after.get(n)}
    out: Changes = {}
    if old is not None and new is not None and old.id == new.id:
        return out
    if new_layout == LAYOUT_LABELS:
        _diff_labels(repo, old, new, (), out)
        return out
    old_ids = {entry_name(e): e.id for e in old} if old is not None else {}
    new_ids = {entry_name(e): e.id for e in new} if new is not None else {}
    for name in old_ids.keys() | new_ids.keys():
        if old_ids.get(name) != new_ids.get(name) and is_valid_name(name):
            out[name] = (old_ids.get(name), new_ids.get(name))
    return out


def _subtree(repo: pygit2.Repository, entry: pygit2.Object | None) -> pygit2.Tree | None:
    if entry is None or entry.filemode != pygit2.GIT_FILEMODE_TREE:
        return None
    return tree_at(repo, entry.id)


def _diff_labels(repo: pygit2.Repository, old: pygit2.Tree | None, new: pygit2.Tree | None,
                 labels: tuple[str, ...], out: Changes) -> None:
    """Layout 2: recurse only into the label directories whose tree ids differ."""
    old_entries = {entry_name(e): e for e in old} if old is not None else {}
    new_entries = {entry_name(e): e for e in new} if new is not None else {}
    for part in old_entries.keys() | new_entries.keys():
        a, b = old_entries.get(part), new_entries.get(part)
        if a is not None and b is not None and a.id == b.id and a.filemode == b.filemode:
            continue
        if part == FILES_DIR:
            name = ".".join(labels)
            if is_valid_name(name):
                out[name] = (a.id if a is not None else None, b.id if b is not None else None)
        elif is_label(part) and len(labels) < MAX_LABELS:
            a_sub, b_sub = _subtree(repo, a), _subtree(repo, b)
            if a_sub is not None or b_sub is not None:
                _diff_labels(repo, a_sub, b_sub, (*labels, part), out)
