"""`pds note`: verify signed notes (STRs, equivocation proofs)."""

from __future__ import annotations

import os
import sys

import click

from pds_log.core import equivocation
from pds_log.core.errors import FormatError, PdsError, VerificationError
from pds_log.core.note import NoteVerifier, open_note
from pds_log.core.signed_root import TreeHead


def read_input(path: str) -> bytes:
    try:
        return sys.stdin.buffer.read() if path == "-" else open(path, "rb").read()
    except OSError as exc:
        raise PdsError(f"{path}: {exc.strerror}") from None


def load_verifier(vkey: str) -> NoteVerifier:
    """A verifier key given inline or as a file holding it."""
    if "+" not in vkey and os.path.exists(vkey):
        vkey = read_input(vkey).decode("utf-8", "replace").strip()
    return NoteVerifier.from_string(vkey)


@click.group()
def note() -> None:
    """C2SP signed notes."""


@note.command("verify")
@click.argument("note_file", metavar="NOTE")
@click.argument("vkey", metavar="VKEY")
def verify_cmd(note_file: str, vkey: str) -> None:
    """Check that NOTE carries a valid signature by VKEY (a verifier key string or a file
    holding one). Prints the signed text; exit 0 when valid, 1 otherwise.

    NOTE may also be a proof of equivocation written by `pds gossip` (two different STRs for
    one epoch): it is valid when both notes verify and differ."""
    verifier = load_verifier(vkey)
    data = read_input(note_file)
    if equivocation.is_evidence(data):
        try:
            found = equivocation.check(data, verifier)
        except (FormatError, VerificationError) as exc:
            click.echo(f"invalid: {exc}")
            sys.exit(1)
        click.echo(f"valid: proof of equivocation: {found.describe()}")
        return
    try:
        signed, _ = open_note(data, [verifier])
    except (FormatError, VerificationError) as exc:
        click.echo(f"invalid: {exc}")
        sys.exit(1)
    click.echo(f"valid: signed by {verifier.name}+{verifier.key_id.hex()}")
    try:
        head = TreeHead.parse_text(signed.text)
        click.echo(f"STR: origin {head.origin}, epoch {head.epoch}, root {head.root.hex()}, size {head.size}")
    except FormatError:
        pass
    click.echo(signed.text, nl=False)
