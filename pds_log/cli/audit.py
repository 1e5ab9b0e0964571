"""`pds audit`, `pds monitor`, `pds gossip`: checking PVs from the outside."""

from __future__ import annotations

import json
import sys

import click

from pds_log.cli import configuration

_json_option = click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")


def _trust(trust_path: str, state: str | None):
    """trust.yaml (with --state applied); a bad one is a configuration error (exit 2)."""
    from pathlib import Path

    from pds_log.peer.trust import load_trust

    with configuration():
        trust = load_trust(trust_path)
        if state:
            trust.state_path = Path(state)
    return trust


@click.command("audit")
@click.argument("log_repo", type=click.Path(exists=True, file_okay=False))
@click.option("--pr", "pr_repo", type=click.Path(exists=True, file_okay=False),
              help="A clone of the Plugin Repository: also check each epoch's tree against the PR at its pr "
                   "commit (latest versions, deletions, rejections), bytecode, signers and the PV's PR area.")
@click.option("--vkey", default=None, help="The PV's verifier key (default: trust the first epoch's pv.json).")
@click.option("--ref", default=None, help="Branch or commit to audit (default: main).")
@click.option("--state", "state_path", type=click.Path(dir_okay=False),
              help="Remember the audited head here; the next audit fails if history was rewritten.")
@click.option("--json", "as_json", is_flag=True)
def audit(log_repo, pr_repo, vkey, ref, state_path, as_json):
    """Recompute every epoch of a PV log repo; exit 1 on any finding (2: a bad --vkey or option)."""
    from pds_log.auditor.audit import audit as run_audit
    from pds_log.core.note import NoteVerifier

    if vkey:
        with configuration():
            NoteVerifier.from_string(vkey)

    report = run_audit(log_repo, vkey=vkey, pr_path=pr_repo, ref=ref, state_path=state_path)
    if as_json:
        click.echo(json.dumps(report.to_obj(), indent=1))
    else:
        for finding in report.findings:
            click.echo(f"FINDING {finding}")
        verdict = "clean" if report.ok else f"{len(report.findings)} finding(s)"
        click.echo(f"audited {report.epochs} epochs, {report.plugins} plugins in the final tree, "
                   f"in {report.seconds:.2f} s: {verdict}")
    sys.exit(0 if report.ok else 1)


@click.command("monitor")
@click.option("--developer", "developer_key", required=True,
              help="Your SSH public key (line or .pub file): the key your commits are signed with")
@click.option("--trust", "trust_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--pr", "pr_url", default=None, help="The PR URL (default: the first PV's 'pr' in trust.yaml)")
@click.option("--state", default=None, type=click.Path(dir_okay=False))
@click.option("--now", type=int, default=None, hidden=True)
@_json_option
def monitor(developer_key, trust_path, pr_url, state, now, as_json):
    """Is each of your plugins, at each PV, exactly what you pushed (or absent, and why)? Exit 1 on an alert."""
    from pds_log.auditor.monitor import monitor as run_monitor
    from pds_log.cli import UsageProblem
    from pds_log.infra.sshkeys import read_public_key

    trust = _trust(trust_path, state)
    with configuration():
        read_public_key(developer_key)
    pr_url = pr_url or next((pv.pr for pv in trust.pvs.values() if pv.pr), None)
    if not pr_url:
        raise UsageProblem("no PR URL: pass --pr or set 'pr' for a PV in trust.yaml")
    report = run_monitor(developer_key, trust, pr_url, now=now)
    if as_json:
        click.echo(json.dumps(report.to_obj(), indent=1))
        sys.exit(1 if report.alerts else 0)
    for row in report.rows:
        click.echo(f"{row.status.upper():11} {row.plugin} @ {row.pv}: {row.detail}")
    click.echo(f"{len(report.plugins)} plugin(s) of yours, {len(report.alerts)} alert(s)")
    sys.exit(1 if report.alerts else 0)


@click.command("gossip")
@click.option("--trust", "trust_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--pr", "pr_url", default=None, help="Also read the PV areas of this PR")
@click.option("--state", default=None, type=click.Path(dir_okay=False), help="Also use this peer state")
@click.option("--out", "out_dir", default=".", type=click.Path(file_okay=False), show_default=True,
              help="Where evidence of equivocation is written")
@_json_option
def gossip(trust_path, pr_url, state, out_dir, as_json):
    """Collect each PV's STRs from its mirrors, the PR and the peer state; write proof of any
    equivocation. Exit 1 when a PV equivocated."""
    from pathlib import Path

    from pds_log.auditor.gossip import gossip as run_gossip
    from pds_log.peer.trust import PeerState

    trust = _trust(trust_path, None)
    with configuration():
        peer_state = PeerState.load(Path(state) if state else trust.state_path)
    report = run_gossip(trust, out_dir, pr_url=pr_url, state=peer_state)
    if as_json:
        click.echo(json.dumps(report.to_obj(), indent=1))
        sys.exit(1 if report.evidence else 0)
    for pv, epochs in sorted(report.seen.items()):
        for epoch, texts in sorted(epochs.items()):
            sources = sum(len(s) for s in texts.values())
            flag = "EQUIVOCATION" if len(texts) > 1 else "consistent"
            click.echo(f"{pv} epoch {epoch}: {flag} ({sources} source(s), {len(texts)} distinct STR(s))")
    for problem in report.problems:
        click.echo(f"note: {problem}")
    for path in report.evidence:
        click.echo(f"evidence written: {path} (check it with `pds note verify {path} VKEY`)")
    sys.exit(1 if report.evidence else 0)
