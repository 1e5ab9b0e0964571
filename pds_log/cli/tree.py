"""`pds tree`: compute roots and proofs from a bindings file, check proofs (used by auditors)."""

from __future__ import annotations

import json
import sys

import click

from pds_log.cli import EXIT_FAILED, configuration
from pds_log.core import jsondoc
from pds_log.core.binding import Binding
from pds_log.core.errors import FormatError, PdsError, VerificationError
from pds_log.core.names import name_key
from pds_log.core.proof import Proof, describe, make_proof, verify_proof
from pds_log.core.tree import PrefixTree


def load_bindings(path: str) -> dict[str, Binding]:
    """Read a JSONL file of bindings (one JSON object per line; blank lines ignored)."""
    try:
        data = sys.stdin.buffer.read() if path == "-" else open(path, "rb").read()
    except OSError as exc:
        raise PdsError(f"{path}: {exc.strerror}") from None
    return parse_bindings(data, path)


def parse_bindings(data: bytes, path: str) -> dict[str, Binding]:
    """The bindings of JSONL bytes; each line is decoded on its own, so errors name their line."""
    bindings: dict[str, Binding] = {}
    for lineno, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        binding = Binding.from_obj(jsondoc.loads(line, where), where)
        if binding.name in bindings:
            raise FormatError(f"{where}: second binding for {binding.name}")
        bindings[binding.name] = binding
    return bindings


def tree_of(bindings: dict[str, Binding]) -> PrefixTree:
    return PrefixTree.from_items({name_key(n): b.value() for n, b in bindings.items()})


@click.group()
def tree() -> None:
    """Prefix-tree tools: roots, proofs, proof checks."""


@tree.command("root")
@click.argument("bindings_file", metavar="BINDINGS.jsonl")
def root_cmd(bindings_file: str) -> None:
    """Print the hex root of the tree holding the bindings in BINDINGS.jsonl."""
    with configuration():
        bindings = load_bindings(bindings_file)
    click.echo(tree_of(bindings).root().hex())


@tree.command("prove")
@click.argument("bindings_file", metavar="BINDINGS.jsonl")
@click.argument("name")
@click.option("--epoch", type=click.IntRange(min=0), default=0, show_default=True)
def prove_cmd(bindings_file: str, name: str, epoch: int) -> None:
    """Print the v1 proof JSON (inclusion or absence) for NAME."""
    with configuration():
        bindings = load_bindings(bindings_file)
    proof = make_proof(tree_of(bindings), name, epoch, bindings.__getitem__)
    click.echo(proof.to_json().decode())


@tree.command("check")
@click.argument("proof_file", metavar="PROOF.json")
@click.argument("root_hex", metavar="ROOT_HEX")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def check_cmd(proof_file: str, root_hex: str, as_json: bool) -> None:
    """Exit 0 if PROOF.json is valid for ROOT_HEX (saying inclusion or absence), else 1 (2: a bad
    ROOT_HEX or an unreadable file)."""
    with configuration():
        try:
            root = bytes.fromhex(root_hex)
            if len(root) != 32:
                raise ValueError
        except ValueError:
            raise FormatError(f"root {root_hex[:70]!r} is not 64 hex characters") from None
        try:
            data = sys.stdin.buffer.read() if proof_file == "-" else open(proof_file, "rb").read()
        except OSError as exc:
            raise PdsError(f"{proof_file}: {exc.strerror}") from None
    try:
        proof = Proof.from_json(data)
        verify_proof(proof, root)
    except (FormatError, VerificationError) as exc:
        click.echo(json.dumps({"valid": False, "problem": str(exc)}, indent=1) if as_json else f"invalid: {exc}")
        sys.exit(EXIT_FAILED)
    if as_json:
        click.echo(json.dumps({"valid": True, "kind": proof.kind, "name": proof.name, "epoch": proof.epoch,
                               "describe": describe(proof)}, indent=1))
    else:
        click.echo(f"valid: {proof.kind} ({describe(proof)})")
