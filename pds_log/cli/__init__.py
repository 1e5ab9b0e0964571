"""The `pds` command line: one subcommand group per role, each in its own module.

Subcommands are imported lazily so that `pds tree root` does not pay for (or break on) the
imports of the PV's verifiers. The CLI stays thin: parse arguments, call the library, print.
`PdsError` (and click's own usage errors) become a one-line message, never a traceback.
"""

from __future__ import annotations

import importlib
import sys

import click

from pds_log.core.errors import PdsError

# name -> "module:attribute"; each module owns its group.
SUBCOMMANDS = {
    "tree": "pds_log.cli.tree:tree",
    "key": "pds_log.cli.key:key",
    "note": "pds_log.cli.note:note",
    "dev": "pds_log.cli.dev:dev",
    "pr": "pds_log.cli.pr:pr",
    "pv": "pds_log.cli.pv:pv",
    "peer": "pds_log.cli.peer:peer",
    "audit": "pds_log.cli.audit:audit",
    "monitor": "pds_log.cli.audit:monitor",
    "gossip": "pds_log.cli.audit:gossip",
    "demo": "pds_log.cli.demo:demo",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return None  # role not built yet
            raise
        return getattr(module, attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pds-log")
def cli() -> None:
    """Plugin Distribution System: signed plugins, validators' transparency logs, peers' proofs."""


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="pds", standalone_mode=False)
    except PdsError as exc:
        click.echo(f"pds: error: {exc}", err=True)
        sys.exit(1)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("pds: aborted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("pds: interrupted", err=True)
        sys.exit(130)
