"""`pds demo`: the full local demo (PR + two PVs + developer + peer)."""

from __future__ import annotations

import click


@click.command("demo")
@click.option("--dir", "directory", default=None, type=click.Path(file_okay=False),
              help="Keep everything here (default: a new temp dir) and write DIR/demo.json")
@click.option("--keep-serving", is_flag=True, help="Keep the HTTP servers up until Ctrl-C")
def demo(directory, keep_serving):
    """Create a PR, two PVs and a developer; push example plugins; run epochs; publish; serve
    over HTTP on 127.0.0.1; verify as a peer requiring `pv1 & pv2`."""
    from pds_log.demo import run_demo

    run_demo(directory, say=click.echo, keep_serving=keep_serving)
