"""`pds note`: verify signed notes (STRs, equivocation proofs)."""

from __future__ import annotations

import json
import os
import sys
from typing import NoReturn

import click

from pds_log.cli import EXIT_FAILED, configuration
from pds_log.core import checkpoint, equivocation, jsondoc
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


def _invalid(problem: str, as_json: bool) -> NoReturn:
    click.echo(json.dumps({"valid": False, "problem": problem}, indent=1) if as_json else f"invalid: {problem}")
    sys.exit(EXIT_FAILED)


def _evidence_type(data: bytes, as_json: bool) -> str | None:
    """The `type` of an evidence document (a JSON object), None for anything else (a note)."""
    if not data.lstrip().startswith(b"{"):
        return None
    try:
        doc = jsondoc.loads(data, "evidence", max_bytes=checkpoint.MAX_EVIDENCE_BYTES)
    except FormatError as exc:
        _invalid(str(exc), as_json)
    kind = doc.get("type") if isinstance(doc, dict) else None
    if kind not in (checkpoint.EVIDENCE_TYPE, equivocation.EVIDENCE_TYPE):
        _invalid(f"evidence: unknown type {str(kind)[:60]!r} (expected {equivocation.EVIDENCE_TYPE} or "
                 f"{checkpoint.EVIDENCE_TYPE})", as_json)
    return str(kind)


@note.command("verify")
@click.argument("note_file", metavar="NOTE")
@click.argument("vkey", metavar="VKEY")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def verify_cmd(note_file: str, vkey: str, as_json: bool) -> None:
    """Check that NOTE carries a valid signature by VKEY (a verifier key string or a file
    holding one). Prints the signed text; exit 0 when valid, 1 otherwise (2: a bad VKEY or a
    NOTE file that cannot be read).

    NOTE may also be a proof of equivocation written by `pds gossip` (two different STRs for
    one epoch): it is valid when both notes verify and differ; or a `pds-checkpoint-equivocation`
    document (two STR v2 checkpoints that are not one append-only log, written by a peer or a
    witness): valid when both verify and either have one size and two roots, or its
    consistency path yields the larger one's root but not the smaller one's."""
    with configuration():
        verifier = load_verifier(vkey)
        data = read_input(note_file)
    signer = f"{verifier.name}+{verifier.key_id.hex()}"
    kind = _evidence_type(data, as_json)
    if kind == checkpoint.EVIDENCE_TYPE:  # STR v2: two checkpoints that are not one append-only log
        try:
            forked = checkpoint.check_evidence(data, verifier)
        except (FormatError, VerificationError) as exc:
            _invalid(str(exc), as_json)
        if as_json:
            click.echo(json.dumps({"valid": True, "kind": "checkpoint-equivocation", "signer": signer,
                                   "sizes": [forked.a.size, forked.b.size], "describe": forked.describe()},
                                  indent=1))
        else:
            click.echo(f"valid: proof of equivocation: {forked.describe()}")
        return
    if kind == equivocation.EVIDENCE_TYPE:
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
