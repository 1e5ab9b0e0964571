"""`pds dev submit`: commit a plugin directory to the PR, signed with the developer's SSH key,
and push it (the PR's hook decides). The plugin goes where the PR's layout puts it
(pds_log.core.pr_layout: ``plugins/<name>/`` in layout 1, ``plugins/<label>/.../+/`` in layout 2),
read from the policy at the branch tip."""

from __future__ import annotations

import tempfile
from pathlib import Path

from pds_log.core.errors import PdsError
from pds_log.core.manifest import check_pluglets, parse_plugin_manifest
from pds_log.core.names import validate_name
from pds_log.core.pr_layout import plugin_dir
from pds_log.infra.commit_check import layout_at
from pds_log.infra.gitremote import fetch_branch, push
from pds_log.infra.gitsign import signed_commit
from pds_log.infra.gittree import tree_at, update_tree, walk_blobs

from .build import read_plugin_dir


def submit_plugin(directory: str | Path, pr_url: str, key: str | Path, name: str | None = None,
                  message: str | None = None, author: str = "developer", delete: bool = False) -> str:
    """Replace the plugin's directory in the PR with `directory` (or delete it); returns the commit."""
    directory = Path(directory).resolve()
    name = validate_name(name or directory.name)
    key = Path(key).resolve()
    files: dict[str, bytes] = {}
    if not delete:
        files = read_plugin_dir(directory)
        manifest = parse_plugin_manifest(files, name)
        problems = check_pluglets(manifest, files)
        if problems:
            raise PdsError(f"{name}: " + "; ".join(problems) + " (run `pds dev build` first)")
    with tempfile.TemporaryDirectory(prefix="pds-submit-") as tmp:
        clone, tip = fetch_branch(pr_url, Path(tmp) / "pr.git", "main", key)
        base = plugin_dir(name, layout_at(clone, tip)) + "/"
        changes: dict[str, bytes | None] = {}
        try:
            old = tree_at(clone, tip.tree[base.rstrip("/")].id)
            changes.update({base + path: None for path, _ in walk_blobs(clone, old)})
        except KeyError:
            if delete:
                raise PdsError(f"{name} is not in the PR") from None
        changes.update({base + path: data for path, data in files.items()})
        tree = update_tree(clone, tip.tree, changes)
        if tree == tip.tree.id:
            raise PdsError(f"{name}: nothing changed since the PR's current version")
        verb = "delete" if delete else ("update" if any(v is None for v in changes.values()) else "add")
        commit = signed_commit(clone.path, tree, [str(tip.id)], message or f"{verb} {name}", key, author)
        push(clone.path, pr_url, str(commit), "refs/heads/main", key)
        return str(commit)
