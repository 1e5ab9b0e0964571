"""`pds key`: PV note-signing keys."""

from __future__ import annotations

import json
import os
import re

import click

from pds_log.core.errors import PdsError
from pds_log.core.note import NoteSigner
from pds_log.infra.files import atomic_write_text


def default_key_path(origin: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", origin) + ".key"


@click.group()
def key() -> None:
    """Signing keys for STRs (C2SP signed notes, Ed25519)."""


@key.command("generate")
@click.argument("origin")
@click.option("--out", "out", type=click.Path(dir_okay=False), help="Private key file [default: ORIGIN.key].")
@click.option("--json", "as_json", is_flag=True, help="Print the key files and verifier key as JSON.")
def generate_cmd(origin: str, out: str | None, as_json: bool) -> None:
    """Write a new signing key for ORIGIN (mode 0600) and print its verifier key string.

    The public verifier key is also written next to it, as FILE.pub."""
    path = out or default_key_path(origin)
    if os.path.exists(path):
        raise PdsError(f"{path} already exists; refusing to overwrite a signing key")
    signer = NoteSigner.generate(origin)
    atomic_write_text(path, signer.to_string() + "\n", mode=0o600)
    vkey = str(signer.verifier())
    atomic_write_text(path + ".pub", vkey + "\n")
    if as_json:
        click.echo(json.dumps({"origin": origin, "key": path, "vkey_file": path + ".pub", "vkey": vkey}, indent=1))
    else:
        click.echo(vkey)
