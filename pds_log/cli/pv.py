"""`pds pv`: the Plugin Validator's commands."""

from __future__ import annotations

import click

from pds_log.cli.pv_ops import register


@click.group()
def pv() -> None:
    """Plugin Validator: init, epochs (or plan/run-one/seal), publish, local checks."""


register(pv)
