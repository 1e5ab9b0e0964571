"""`pds audit`, `pds monitor`, `pds gossip`: checking PVs from the outside."""

from __future__ import annotations

import json
import sys

import click


@click.command("audit")
@click.argument("log_repo", type=click.Path(exists=True, file_okay=False))
@click.option("--pr", "pr_repo", type=click.Path(exists=True, file_okay=False),
              help="A clone of the Plugin Repository: also check bytecode, signers and the PV's PR area.")
@click.option("--vkey", default=None, help="The PV's verifier key (default: trust the first epoch's pv.json).")
@click.option("--ref", default=None, help="Branch or commit to audit (default: main).")
@click.option("--state", "state_path", type=click.Path(dir_okay=False),
              help="Remember the audited head here; the next audit fails if history was rewritten.")
@click.option("--json", "as_json", is_flag=True)
def audit(log_repo, pr_repo, vkey, ref, state_path, as_json):
    """Recompute every epoch of a PV log repo; exit 1 on any finding."""
    from pds_log.auditor.audit import audit as run_audit

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
