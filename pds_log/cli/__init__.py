"""The `pds` command line: one subcommand group per role, each in its own module.

Subcommands are imported lazily so that `pds tree root` does not pay for (or break on) the
imports of the PV's verifiers. The CLI stays thin: parse arguments, call the library, print.
`PdsError` (and click's own usage errors) become a one-line message, never a traceback.

Exit codes, the same in every command (`exit_code` decides):
  0  ok
  1  verification failed or refused (a rejected plugin, an audit finding, an invalid note, a
     PV that refuses to sign, a failed fetch or push): any `PdsError` not marked as below
  2  usage or configuration error: a bad option or argument, a missing or unreadable file the
     user named, a malformed configuration file (pv.yaml, trust.yaml, keys). Commands load
     what the user configured inside `configuration()`, which marks its errors `UsageProblem`.
A `FormatError` is not a usage error by itself: a malformed STR, proof or log found while
verifying is a failed verification (1); a malformed pv.yaml is the operator's to fix (2).
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Iterator

import click

from pds_log.core.errors import PdsError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageProblem(PdsError):
    """A usage or configuration error (exit 2): the user, not the data under check, must change something."""


@contextlib.contextmanager
def configuration() -> Iterator[None]:
    """Errors raised while loading what the user configured or named are usage problems (exit 2)."""
    try:
        yield
    except UsageProblem:
        raise
    except PdsError as exc:
        raise UsageProblem(str(exc)) from None
    except OSError as exc:
        raise UsageProblem(_os_message(exc)) from None


def _os_message(exc: OSError) -> str:
    where = exc.filename if exc.filename is not None else ""
    return f"{where}: {exc.strerror or exc}" if where else str(exc.strerror or exc)


def exit_code(exc: BaseException) -> int:
    """The one place that maps an error to an exit status (see the module docstring)."""
    if isinstance(exc, (UsageProblem, click.UsageError, OSError)):
        return EXIT_USAGE
    if isinstance(exc, click.ClickException):
        return exc.exit_code
    return EXIT_FAILED

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
    "witness": "pds_log.cli.witness:witness",
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
        sys.exit(exit_code(exc))
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exit_code(exc))
    except OSError as exc:  # a file the user named cannot be read or written
        if isinstance(exc, BrokenPipeError):
            sys.exit(EXIT_FAILED)
        click.echo(f"pds: error: {_os_message(exc)}", err=True)
        sys.exit(exit_code(exc))
    except click.Abort:
        click.echo("pds: aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("pds: interrupted", err=True)
        sys.exit(130)
