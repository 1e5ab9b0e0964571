"""`pds peer`: verify a plugin against trusted PVs; make and check offline proof bundles."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


def _trust(path: str, state: str | None):
    from pds_log.peer.trust import load_trust

    trust = load_trust(path)
    if state:
        trust.state_path = Path(state)
    return trust


def print_verdict(verdict, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(verdict.to_obj(), indent=1))
        return
    click.echo(f"{'PV':10} {'status':11} {'epoch':>6}  {'proof':9}  reason")
    for report in verdict.pvs.values():
        epoch = "-" if report.epoch is None else str(report.epoch)
        click.echo(f"{report.pv:10} {report.status:11} {epoch:>6}  {report.proof_kind or '-':9}  {report.reason}")
        if report.explanation:
            click.echo(f"{'':10} {'':11} {'':>6}  {'':9}  the PV says (unauthenticated): {report.explanation}")
        if report.evidence:
            click.echo(f"{'':10} evidence of equivocation written to {report.evidence}")
        for attempt in report.attempts:
            click.echo(f"{'':10} tried {attempt}")
    verdict_word = "ACCEPT" if verdict.accepted else "REJECT"
    click.echo(f"verdict: {verdict_word} {verdict.name} (require: {verdict.formula})")


@click.group()
def peer() -> None:
    """Peer: check that trusted PVs validated a plugin, before injecting it."""


@peer.command("verify")
@click.argument("name")
@click.option("--trust", "trust_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--bytecode", "bytecode_dir", type=click.Path(exists=True, file_okay=False),
              help="The plugin's directory as you hold it (manifest + .o files): must match the binding.")
@click.option("--state", default=None, type=click.Path(dir_okay=False), help="Peer state file (default: trust.yaml's)")
@click.option("--via", type=click.Choice(["tiles", "proof"]), default="tiles", show_default=True)
@click.option("--now", type=int, default=None, hidden=True)
@click.option("--json", "as_json", is_flag=True)
def verify_cmd(name, trust_path, bytecode_dir, state, via, now, as_json):
    """Fetch each PV's latest STR and proof, check them, and evaluate the formula. Exit 0 only on accept."""
    from pds_log.peer.verify import verify_plugin

    verdict = verify_plugin(name, _trust(trust_path, state), bytecode_dir=bytecode_dir, now=now, via=via)
    print_verdict(verdict, as_json)
    sys.exit(0 if verdict.accepted else 1)


@peer.command("bundle")
@click.argument("name")
@click.option("--trust", "trust_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False))
@click.option("--state", default=None, type=click.Path(dir_okay=False))
@click.option("--now", type=int, default=None, hidden=True)
def bundle_cmd(name, trust_path, out, state, now):
    """Write an offline proof bundle for NAME (each PV's STR + one-file proof)."""
    from pds_log.peer.bundle import make_bundle

    bundle, verdict = make_bundle(name, _trust(trust_path, state), out, now=now)
    click.echo(f"wrote {out}: {len(bundle['pvs'])} PV(s) ({', '.join(sorted(bundle['pvs']))})")


@peer.command("check-bundle")
@click.argument("bundle_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--trust", "trust_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--bytecode", "bytecode_dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--state", default=None, type=click.Path(dir_okay=False))
@click.option("--now", type=int, default=None, hidden=True)
@click.option("--json", "as_json", is_flag=True)
def check_bundle_cmd(bundle_file, trust_path, bytecode_dir, state, now, as_json):
    """Verify a proof bundle fully offline. Exit 0 only on accept."""
    from pds_log.peer.bundle import check_bundle
    from pds_log.peer.trust import PeerState

    trust = _trust(trust_path, state)
    peer_state = PeerState.load(trust.state_path)
    verdict = check_bundle(Path(bundle_file).read_bytes(), trust, bytecode_dir, now=now, state=peer_state)
    print_verdict(verdict, as_json)
    sys.exit(0 if verdict.accepted else 1)
