"""`pds pr`: create and administer a Plugin Repository."""

from __future__ import annotations

import json

import click

from pds_log.cli import configuration


@click.group()
def pr() -> None:
    """Plugin Repository: init, policy administration (signed commits), hooks."""


@pr.command("init")
@click.argument("path", type=click.Path(file_okay=False))
@click.option("--admin-key", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The first admin's SSH private key (signs the root commit; its .pub goes in the policy)")
@click.option("--admin-name", default="admin", show_default=True)
@click.option("--branch", default="main", show_default=True)
@click.option("--max-blob-bytes", type=click.IntRange(min=1), default=None)
@click.option("--layout", type=click.IntRange(1, 2), default=None,
              help="PR layout: 1 = plugins/<name>/ (the default), 2 = plugins/<label>/.../+/ (cost per push "
                   "independent of the number of plugins; see formats.md)")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def init_cmd(path, admin_key, admin_name, branch, max_blob_bytes, layout, as_json):
    """Create a bare PR repository with the PDS hooks and an admin-signed initial policy."""
    from pds_log.pr.repo import init_pr

    root = init_pr(path, admin_key, admin_name, branch, max_blob_bytes, layout)
    if as_json:
        click.echo(json.dumps({"path": path, "branch": branch, "root_commit": str(root)}, indent=1))
        return
    click.echo(f"created PR {path} (root commit {root}); validators pin this root commit")


def _edit(repo: str, admin_key: str, mutate, as_json: bool) -> None:
    from pds_log.pr.repo import edit_policy

    commit = edit_policy(repo, admin_key, mutate)
    if as_json:
        click.echo(json.dumps({"repo": repo, "policy_commit": str(commit)}, indent=1))
    else:
        click.echo(f"policy updated in commit {commit[:12]}")


_json_option = click.option("--json", "as_json", is_flag=True, help="Print the policy commit as JSON.")


@pr.command("add-developer")
@click.option("--repo", required=True, help="PR URL or path")
@click.option("--admin-key", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--name", required=True, help="Principal name of the developer")
@click.option("--key", "pubkey", required=True, help="The developer's SSH public key (line or .pub file)")
@click.option("--namespace", "namespaces", multiple=True, required=True, help="e.g. 'be.example.*' (repeatable)")
@click.option("--valid-after", default=None, help="ISO 8601 time or unix seconds")
@click.option("--valid-before", default=None, help="ISO 8601 time or unix seconds")
@_json_option
def add_developer(repo, admin_key, name, pubkey, namespaces, valid_after, valid_before, as_json):
    """Allow a developer key to write plugins under NAMESPACEs (a commit signed by an admin)."""
    from pds_log.core.names import validate_namespace
    from pds_log.core.policy import key_id, parse_time
    from pds_log.infra.sshkeys import read_public_key

    with configuration():  # a bad key, namespace or time is the admin's to fix (exit 2)
        kid = key_id(read_public_key(pubkey))
        for ns in namespaces:
            validate_namespace(ns)
        after = parse_time(valid_after, "--valid-after")
        before = parse_time(valid_before, "--valid-before")

    _edit(repo, admin_key, lambda policy: policy.add_developer(name, kid, namespaces, after, before), as_json)


@pr.command("add-pv")
@click.option("--repo", required=True)
@click.option("--admin-key", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--origin", required=True, help="The PV's origin (its area is refs/heads/pvs/<origin>)")
@click.option("--key", "pubkey", required=True, help="The PV's SSH public key (line or .pub file)")
@_json_option
def add_pv(repo, admin_key, origin, pubkey, as_json):
    """Give a PV its area on the PR (a commit signed by an admin)."""
    from pds_log.core.policy import key_id
    from pds_log.infra.sshkeys import read_public_key

    with configuration():
        kid = key_id(read_public_key(pubkey))

    _edit(repo, admin_key, lambda policy: policy.add_pv(origin, kid), as_json)


@pr.command("revoke")
@click.option("--repo", required=True)
@click.option("--admin-key", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--key", "pubkey", required=True, help="The SSH public key to revoke (line or .pub file)")
@click.option("--reason", required=True)
@_json_option
def revoke(repo, admin_key, pubkey, reason, as_json):
    """Revoke a key: every commit it signs is refused from now on (a commit signed by an admin)."""
    from pds_log.core.policy import key_id
    from pds_log.infra.sshkeys import read_public_key

    with configuration():
        kid = key_id(read_public_key(pubkey))

    _edit(repo, admin_key, lambda policy: policy.revoke(kid, reason), as_json)


@pr.command("migrate-layout")
@click.option("--repo", required=True, help="PR URL or path")
@click.option("--admin-key", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--layout", type=click.IntRange(1, 2), default=2, show_default=True,
              help="The PR layout to move to (1: plugins/<name>/, 2: plugins/<label>/.../+/)")
@click.option("--json", "as_json", is_flag=True, help="Print the commit and the count as JSON.")
def migrate_layout_cmd(repo, admin_key, layout, as_json):
    """Move every plugin to another PR layout: one commit signed by an admin, same files.

    The hook accepts it only if every plugin keeps its files; the PVs' next epoch then sees no
    plugin changed (same bytes, same bindings)."""
    from pds_log.pr.repo import migrate_layout

    commit, moved = migrate_layout(repo, admin_key, layout)
    if as_json:
        click.echo(json.dumps({"repo": repo, "layout": layout, "commit": commit, "plugins": moved}, indent=1))
    else:
        click.echo(f"moved {moved} plugin(s) to layout {layout} in commit {commit[:12]}")


@pr.command("install-hooks")
@click.argument("path", type=click.Path(exists=True, file_okay=False))
def install_hooks_cmd(path):
    """(Re)install the PDS hooks into an existing bare repository."""
    from pds_log.pr.repo import install_hooks

    for hook in install_hooks(path):
        click.echo(f"installed {hook}")


@pr.command("gitolite-hooks")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--owner", default=None, help="The gitolite user (Debian: gitolite3): owns the hooks and the "
              "directories up to its home, and must be able to run --python with pds_log")
@click.option("--python", "python", default=None, type=click.Path(exists=True, dir_okay=False),
              help="The Python the hooks run (#! line), e.g. /opt/pds/bin/python; default: this one")
@click.option("--json", "as_json", is_flag=True, help="Print the hooks written as a JSON list.")
def gitolite_hooks_cmd(directory, owner, python, as_json):
    """Write pds-pre-receive and pds-post-receive for gitolite's repo-specific hooks."""
    from pds_log.pr.repo import write_gitolite_hooks

    hooks = [str(h) for h in write_gitolite_hooks(directory, python, owner)]
    if as_json:
        click.echo(json.dumps(hooks))
        return
    for hook in hooks:
        click.echo(f"wrote {hook}")


@pr.command("gitolite-conf")
@click.argument("conf", type=click.Path(exists=True, dir_okay=False))
@click.option("--rules", type=click.Path(exists=True, dir_okay=False), default=None,
              help="The PDS rules to add (default: the shipped templates/gitolite/gitolite.conf)")
@click.option("--json", "as_json", is_flag=True, help="Print {merged: CONF} as JSON.")
def gitolite_conf_cmd(conf, rules, as_json):
    """Add the PDS rules to CONF (gitolite-admin's conf/gitolite.conf), keeping its own rules.

    Refuses if CONF already has rules for the PR's repo, or if the result would give nobody RW+
    on gitolite-admin (pushing that locks the gitolite admin out)."""
    from pds_log.pr.gitolite import merge_gitolite_conf_file

    merged = merge_gitolite_conf_file(conf, rules)
    click.echo(json.dumps({"merged": str(merged)}) if as_json else f"merged the PDS rules into {merged}")
