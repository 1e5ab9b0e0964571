"""Generate the CLI reference page (site/docs/cli.md) from the commands' own help.

    python -m pds_log.cli.reference > site/docs/cli.md
"""

from __future__ import annotations

import click

from pds_log.cli import SUBCOMMANDS, cli


def render() -> str:
    ctx = click.Context(cli, info_name="pds", terminal_width=100, max_content_width=100)
    lines = ["# CLI reference", "", "Generated from `pds --help` (`python -m pds_log.cli.reference`).", "",
             "Conventions, the same in every command:", "",
             "- exit status **0** ok; **1** verification failed or refused (a rejected or unchecked plugin, an "
             "audit finding, an invalid note, a PV that refuses to sign, a failed fetch or push); **2** usage or "
             "configuration error (a bad option, a missing file, a malformed pv.yaml, trust.yaml or key);",
             "- `--json` on every command that reports: stdout is then one JSON document; messages and errors "
             "go to stderr;",
             "- long epochs and publishes draw a progress bar on stderr when it is a terminal (never with "
             "`--json`, never when `CI` is set, never into a pipe or log);",
             "- a failed git fetch or push says what to do (SSH key refused, unknown or changed host key, no "
             "repository at the URL, no connection).", ""]
    for name in sorted(SUBCOMMANDS):
        command = cli.get_command(ctx, name)
        if command is None:
            continue
        _render(command, f"pds {name}", lines, ctx)
    return "\n".join(lines) + "\n"


def _render(command: click.Command, path: str, lines: list[str], parent: click.Context) -> None:
    ctx = click.Context(command, info_name=path.split()[-1], parent=parent, terminal_width=100,
                        max_content_width=100)
    lines += [f"## `{path}`", "", "```", command.get_help(ctx).replace(f"Usage: {path.split()[-1]}", f"Usage: {path}"),
              "```", ""]
    if isinstance(command, click.Group):
        for sub in sorted(command.list_commands(ctx)):
            child = command.get_command(ctx, sub)
            if child is not None:
                _render(child, f"{path} {sub}", lines, ctx)


if __name__ == "__main__":
    print(render(), end="")
