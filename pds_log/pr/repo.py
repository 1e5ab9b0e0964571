"""Creating and administering a Plugin Repository (embedded default: a bare repo + hooks).

`init_pr` creates the bare repository, installs the hooks from pds_log/templates/pr/hooks and
writes the root commit: ``pds/policy.yaml`` naming the first admin, signed by that admin's
SSH key. Validators pin that root commit (trust on first use). Every later policy change is
a commit signed by an admin of the policy in effect, checked by the same hook as any push;
`edit_policy` makes such commits from a temporary clone, and `migrate_layout` the one commit
that moves every plugin to another PR layout (pds_log.core.pr_layout) with the same files.

A new PR keeps what is pushed packed: ``receive.unpackLimit 1`` stores every push as the pack
it came in (never as loose objects), and git's ``gc --auto`` after each push (receive.autogc)
merges packs when there are many (deployment.md, "Keeping the PR packed").
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Callable

import pygit2

from pds_log.core.errors import PdsError
from pds_log.core.policy import POLICY_PATH, Policy, Principal, key_id
from pds_log.core.pr_layout import FILES_DIR, LAYOUT_LABELS, LAYOUTS, PLUGINS_DIR
from pds_log.infra.gitremote import fetch_branch, push
from pds_log.infra.gitsign import signed_commit
from pds_log.infra.gittree import TREE_MODE, blob_at, tree_at, update_tree
from pds_log.infra.prtree import list_plugins, plugins_tree
from pds_log.infra.resources import template
from pds_log.infra.sshkeys import read_public_key

README = "README.md"


def _write_hooks(directory: Path, prefix: str, python: str | None) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in ("pre-receive", "post-receive"):
        text = template("pr", "hooks", f"{name}.in").read_text().replace("@PYTHON@", python or sys.executable)
        target = directory / f"{prefix}{name}"
        target.write_text(text)
        target.chmod(0o755)
        written.append(target)
    return written


def install_hooks(repo_path: str | Path, python: str | None = None) -> list[Path]:
    """Write pre-receive and post-receive hooks that run pds_log with this Python."""
    return _write_hooks(Path(repo_path) / "hooks", "", python)


def init_pr(path: str | Path, admin_key: str | Path, admin_name: str = "admin", branch: str = "main",
            max_blob_bytes: int | None = None, layout: int | None = None) -> str:
    """Create the PR (in PR layout `layout`, default 1); returns the root commit id."""
    path = Path(path).resolve()
    if path.exists() and any(path.iterdir()):
        raise PdsError(f"{path} exists and is not empty")
    admin_key = Path(admin_key).resolve()
    public = read_public_key(str(admin_key) + ".pub" if Path(str(admin_key) + ".pub").exists() else str(admin_key))
    policy = Policy(branch=branch, admins=[Principal(admin_name, key_id(public), "admin")])
    if max_blob_bytes:
        policy.max_blob_bytes = max_blob_bytes
    if layout is not None:
        if layout not in LAYOUTS:
            raise PdsError(f"unknown PR layout {layout} (known: {', '.join(map(str, LAYOUTS))})")
        policy.layout = layout
    readme = template("pr", "README.md").read_bytes()  # before creating anything: a broken install leaves no half PR
    for name in ("pre-receive", "post-receive"):
        template("pr", "hooks", f"{name}.in")
    repo = pygit2.init_repository(str(path), bare=True, initial_head=branch)
    repo.config["receive.denyNonFastForwards"] = True
    repo.config["receive.denyDeletes"] = True
    repo.config["receive.fsckObjects"] = True
    repo.config["receive.unpackLimit"] = 1  # every push stays a pack (see the module docstring)
    tree = update_tree(repo, None, {POLICY_PATH: policy.to_yaml().encode(), README: readme})
    root = signed_commit(path, tree, [], "PDS plugin repository: initial policy", admin_key, admin_name)
    repo.references.create(f"refs/heads/{branch}", root)
    install_hooks(path)
    return str(root)


def edit_policy(pr_url: str, admin_key: str | Path, mutate: Callable[[Policy], str]) -> str:
    """Apply `mutate` to the PR's current policy (it returns the commit message) and push the
    change as a commit signed by `admin_key`; returns the new commit id."""
    admin_key = Path(admin_key).resolve()
    with tempfile.TemporaryDirectory(prefix="pds-pr-admin-") as tmp:
        clone, tip = fetch_branch(pr_url, Path(tmp) / "pr.git", "main", admin_key)
        policy = Policy.parse(blob_at(clone, tip.tree[POLICY_PATH].id))
        message = mutate(policy)
        tree = update_tree(clone, tip.tree, {POLICY_PATH: policy.to_yaml().encode()})
        name = next((p.name for p in policy.admins if p.key == key_id(read_public_key(str(admin_key) + ".pub"))),
                    "admin")
        commit = signed_commit(clone.path, tree, [str(tip.id)], message, admin_key, name)
        push(clone.path, pr_url, str(commit), f"refs/heads/{policy.branch}", admin_key)
        return str(commit)


def _admin_name(policy: Policy, admin_key: Path) -> str:
    return next((p.name for p in policy.admins if p.key == key_id(read_public_key(str(admin_key) + ".pub"))),
                "admin")


def edit_policy_commit(pr_url: str, admin_key: str | Path,
                       build: Callable[[pygit2.Repository, pygit2.Commit, Policy], tuple[pygit2.Oid, str]]) -> str:
    """Fetch the PR, let `build` make the new tree and message from the tip and its policy,
    and push it as one commit signed by `admin_key`; returns the commit id."""
    admin_key = Path(admin_key).resolve()
    with tempfile.TemporaryDirectory(prefix="pds-pr-admin-") as tmp:
        clone, tip = fetch_branch(pr_url, Path(tmp) / "pr.git", "main", admin_key)
        policy = Policy.parse(blob_at(clone, tip.tree[POLICY_PATH].id))
        tree, message = build(clone, tip, policy)
        commit = signed_commit(clone.path, tree, [str(tip.id)], message, admin_key, _admin_name(policy, admin_key))
        push(clone.path, pr_url, str(commit), f"refs/heads/{policy.branch}", admin_key)
        return str(commit)


def migrate_layout(pr_url: str, admin_key: str | Path, layout: int = LAYOUT_LABELS) -> tuple[str, int]:
    """Move every plugin to PR layout `layout` and set it in the policy: one commit signed by
    an admin, which the hook accepts only if every plugin keeps its files (its directory's
    tree id); returns (commit id, plugins moved)."""
    if layout not in LAYOUTS:
        raise PdsError(f"unknown PR layout {layout} (known: {', '.join(map(str, LAYOUTS))})")
    moved = 0

    def build(repo: pygit2.Repository, tip: pygit2.Commit, policy: Policy) -> tuple[pygit2.Oid, str]:
        nonlocal moved
        if policy.layout == layout:
            raise PdsError(f"the PR is already in layout {layout}; nothing to do")
        listing = list_plugins(repo, plugins_tree(repo, tip.tree), policy.layout)
        if listing.stray:
            raise PdsError(f"{listing.stray[0]}: no plugin's directory in layout {policy.layout} "
                           f"({len(listing.stray)} such path(s)); remove them before changing the layout")
        old = policy.layout
        policy.layout = layout
        tree = update_tree(repo, tip.tree, {POLICY_PATH: policy.to_yaml().encode()})
        builder = repo.TreeBuilder(tree_at(repo, tree))
        entries = {name: (e.id, int(e.filemode)) for name, e in listing.entries.items()}
        if entries:
            builder.insert(PLUGINS_DIR, _plugins_tree(repo, entries, layout), TREE_MODE)
        moved = len(entries)
        return builder.write(), f"PR layout {old} -> {layout}: move {moved} plugin(s), files unchanged"

    return edit_policy_commit(pr_url, admin_key, build), moved


def _plugins_tree(repo: pygit2.Repository, entries: dict[str, tuple[pygit2.Oid, int]], layout: int) -> pygit2.Oid:
    """The ``plugins/`` tree holding each plugin's directory object at its place in `layout`."""
    if layout != LAYOUT_LABELS:
        flat = repo.TreeBuilder()
        for name, (oid, mode) in entries.items():
            flat.insert(name, oid, mode)
        return flat.write()
    nested: dict = {}
    for name, target in entries.items():
        node = nested
        for label in name.split("."):
            node = node.setdefault(label, {})
        node[FILES_DIR] = target
    return _write_nested(repo, nested)


def _write_nested(repo: pygit2.Repository, node: dict) -> pygit2.Oid:
    builder = repo.TreeBuilder()
    for part, value in node.items():
        if isinstance(value, dict):
            builder.insert(part, _write_nested(repo, value), TREE_MODE)
        else:
            builder.insert(part, value[0], value[1])
    return builder.write()


def write_gitolite_hooks(directory: str | Path, python: str | None = None, owner: str | None = None) -> list[Path]:
    """The PDS hooks as gitolite repo-specific hooks (see pds_log.pr.gitolite)."""
    from .gitolite import write_gitolite_hooks as write

    return write(directory, python, owner)
