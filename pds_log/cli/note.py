"""`pds note`: verify signed notes (STRs, equivocation proofs)."""

from __future__ import annotations

import json
import os
import sys

import click

from pds_log.cli import EXIT_FAILED, configuration
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


def _invalid(problem: str, as_json: bool) -> None:
    click.echo(json.dumps({"valid": False, "problem": problem}, indent=1) if as_json else f"invalid: {problem}")
    sys.exit(EXIT_FAILED)


@note.command("verify")
@click.argument("note_file", metavar="NOTE")
@click.argument("vkey", metavar="VKEY")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def verify_cmd(note_file: str, vkey: str, as_json: bool) -> None:
    """Check that NOTE carries a valid signature by VKEY (a verifier key string or a file
    holding one). Prints the signed text; exit 0 when valid, 1 otherwise (2: a bad VKEY or a
    NOTE file that cannot be read).

    NOTE may also be a proof of equivocation written by `pds gossip` (two different STRs for
    one epoch): it is valid when both notes verify and differ."""
    with configuration():
        verifier = load_verifier(vkey)
        data = read_input(note_file)
    signer = f"{verifier.name}+{verifier.key_id.hex()}"
    if equivocation.is_evidence(data):
        try:
            found = equivocation.check(data, verifier)
        except (FormatError, VerificationError) as exc:
            _invalid(str(exc), as_json)
        if as_json:
            click.echo(json.dumps({"valid": True, "kind": "equivocation", "signer": signer, "epoch": found.epoch,
                                   "describe": found.describe()}, indent=1))
        else:
            click.echo(f"valid: proof of equivocation: {found.describe()}")
        return
    try:
        signed, _ = open_note(data, [verifier])
    except (FormatError, VerificationError) as exc:
        _invalid(str(exc), as_json)
    try:
        head = TreeHead.parse_text(signed.text)
    except FormatError:
        head = None
    if as_json:
        doc: dict[str, object] = {"valid": True, "kind": "str" if head else "note", "signer": signer,
                                  "text": signed.text}
        if head:
            doc["str"] = {"origin": head.origin, "epoch": head.epoch, "root": head.root.hex(), "size": head.size}
        click.echo(json.dumps(doc, indent=1))
        return
    click.echo(f"valid: signed by {signer}")
    if head:
        click.echo(f"STR: origin {head.origin}, epoch {head.epoch}, root {head.root.hex()}, size {head.size}")
    click.echo(signed.text, nl=False)
