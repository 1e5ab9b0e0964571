"""`pds dev`: developer tooling."""

from __future__ import annotations

from pathlib import Path

import click

from pds_log.cli import configuration


@click.group()
def dev() -> None:
    """Developer: keys, plugin skeletons, builds, signed submission."""


@dev.command("keygen")
@click.option("--out", default=str(Path.home() / ".pds" / "id_ed25519"), show_default=True,
              type=click.Path(dir_okay=False))
@click.option("--comment", default="pds-developer")
def keygen(out, comment):
    """Create an SSH signing key; give the .pub line to the PR admin."""
    from pds_log.infra.sshkeys import write_ssh_keypair

    Path(out).parent.mkdir(parents=True, exist_ok=True)
    click.echo(write_ssh_keypair(out, comment))


@dev.command("new")
@click.argument("name")
@click.option("--dir", "parent", default=".", type=click.Path(file_okay=False))
def new(name, parent):
    """Create a plugin skeleton NAME/ (PQUIC manifest, a pluglet, the helper header)."""
    from pds_log.developer.skeleton import new_plugin

    click.echo(f"created {new_plugin(name, parent)}")


@dev.command("build")
@click.argument("directory", default=".", type=click.Path(exists=True, file_okay=False))
@click.option("--config", "config_path", default=None, type=click.Path(exists=True, dir_okay=False),
              help="A PV's pv.yaml or published pv.json: build with its pinned recipe")
@click.option("--name", default=None, help="Plugin name (default: the directory name)")
@click.option("--json", "as_json", is_flag=True, help="List the objects built as JSON.")
def build(directory, config_path, name, as_json):
    """Compile every pluglet the manifest names with the pinned recipe (clang to IR, then llc -march=bpf)."""
    import json

    from pds_log.developer.build import build_plugin, recipe_from_pv_file

    with configuration():
        recipe = recipe_from_pv_file(config_path) if config_path else None
    built = [str(obj) for obj in build_plugin(directory, recipe=recipe, name=name)]
    if as_json:
        click.echo(json.dumps({"built": built}, indent=1))
        return
    for obj in built:
        click.echo(f"built {obj}")


@dev.command("import")
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="The new plugin directory")
@click.option("--name", default=None, help="Plugin name (default: the manifest's; give one per variant)")
@click.option("-I", "include_dirs", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="More directories to find headers in (PQUIC's picoquic/ is found by itself)")
@click.option("--json", "as_json", is_flag=True)
def import_cmd(manifest, out, name, include_dirs, as_json):
    """Turn a PQUIC .plugin (with its fragments, sources and headers) or an xBGP .plugin JSON into a
    self-contained PDS plugin directory; says what it copied and rewrote."""
    import json

    from pds_log.developer.importer import import_plugin

    report = import_plugin(manifest, out, name, list(include_dirs))
    click.echo(json.dumps(report.to_obj(), indent=1) if as_json else "\n".join(report.lines()))


@dev.command("submit")
@click.argument("directory", default=".", type=click.Path(exists=True, file_okay=False))
@click.option("--repo", required=True, help="PR URL or path")
@click.option("--key", required=True, type=click.Path(exists=True, dir_okay=False), help="Your SSH private key")
@click.option("--name", default=None, help="Plugin name (default: the directory name)")
@click.option("-m", "--message", default=None)
@click.option("--author", default="developer")
@click.option("--delete", is_flag=True, help="Remove the plugin from the PR instead")
@click.option("--json", "as_json", is_flag=True, help="Print the pushed commit as JSON.")
def submit(directory, repo, key, name, message, author, delete, as_json):
    """Commit the plugin to plugins/<name>/ signed with your key, and push it."""
    import json

    from pds_log.developer.submit import submit_plugin

    commit = submit_plugin(directory, repo, key, name, message, author, delete)
    if as_json:
        click.echo(json.dumps({"repo": repo, "commit": str(commit), "deleted": delete}, indent=1))
        return
    click.echo(f"pushed {commit[:12]} to {repo}")
