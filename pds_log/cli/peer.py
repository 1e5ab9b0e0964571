"""`pds peer`: verify a plugin against trusted PVs; make and check offline proof bundles.

Exit status of verify and check-bundle: 0 only when the plugin is accepted, 1 when it is
rejected (including a PV that cannot be reached or a malformed bundle) or when `verify` could
not check the bytecode (no --bytecode and no --metadata-only), 2 for a usage or configuration
error (bad arguments, bad trust.yaml, unreadable state file).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from pds_log.cli import EXIT_FAILED as EXIT_REJECT
from pds_log.cli import EXIT_OK as EXIT_ACCEPT
from pds_log.cli import UsageProblem, configuration
from pds_log.core.errors import PdsError


def _fail_usage(exc: Exception | str) -> None:
    raise UsageProblem(str(exc))


def _setup(trust_path: str, state: str | None):
    """(trust, state); a bad trust.yaml or state file is a configuration error (exit 2)."""
    from pds_log.peer.trust import PeerState, load_trust

    with configuration():
        trust = load_trust(trust_path)
        if state:
            trust.state_path = Path(state)
        return trust, PeerState.load(trust.state_path)


def _mark(value: bool | None) -> str:
    return "-" if value is None else ("ok" if value else "FAIL")


def _age(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    sign, s = ("-" if seconds < 0 else ""), abs(seconds)
    if s < 120:
        return f"{sign}{s}s"
    if s < 7200:
        return f"{sign}{s // 60}m"
    if s < 2 * 86400:
        return f"{sign}{s // 3600}h"
    return f"{sign}{s // 86400}d"


def _details(r) -> list[str]:
    """A PV's lines under its row: mirror, chain, witnesses, reason, warnings, attempts."""
    out = []
    if r.mirror:
        out.append(f"from {r.mirror}" + (f" via {r.proof_source}" if r.proof_source else ""))
    if r.chain:
        out.append(f"chain: {r.chain}")
    if r.witnessed:
        out.append(f"cosigned by: {', '.join(r.witnessed)}")
    out.append(r.reason)
    out.extend(f"warning: {warning}" for warning in r.bytecode_warnings)
    if r.explanation:
        out.append(f"the PV says (unauthenticated): {r.explanation}")
    if r.evidence:
        out.append(f"evidence of equivocation written to {r.evidence}")
    out.extend(f"tried {attempt}" for attempt in r.attempts)
    return out


def verdict_lines(verdict) -> list[str]:
    """The human table: one row per PV, then its mirror, chain, reason and attempts."""
    head = ["PV", "reach", "epoch", "age", "sig", "chain", "fresh", "proof", "bytecode", "properties", "status"]
    rows = []
    for r in verdict.pvs.values():
        rows.append([r.pv, "yes" if r.reachable else "NO", "-" if r.epoch is None else str(r.epoch), _age(r.age),
                     _mark(r.signature_ok), _mark(r.chain_ok), _mark(r.fresh), r.proof_kind or "-",
                     "-" if r.bytecode is None else ("match" if r.bytecode == "match" else "MISMATCH"),
                     ",".join(r.properties) or "-", r.status + (" (approved)" if r.approved else "")])
    widths = [max(len(x[i]) for x in [head, *rows]) for i in range(len(head))]
    fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()  # noqa: E731
    out = [fmt(head)]
    pad = " " * (widths[0] + 2)
    for row, r in zip(rows, verdict.pvs.values(), strict=True):
        out.append(fmt(row))
        out.extend(pad + line for line in _details(r))
    for problem in verdict.problems:
        out.append(f"problem: {problem}")
    if not verdict.bytecode_checked:
        out.append("bytecode: not checked (no --bytecode DIR given): the PVs vouch for the bytes they bound to "
                   "this name, not for the bytes you hold")
    out.append(f"verdict: {verdict.headline} {verdict.name} (require: {verdict.formula})")
    if verdict.outcome == "incomplete":
        out.append("give --bytecode DIR to check the plugin you hold, or --metadata-only to accept on the PVs' "
                   "metadata alone")
    return out


def print_verdict(verdict, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(verdict.to_obj(), indent=1))
    else:
        click.echo("\n".join(verdict_lines(verdict)))


@click.group()
def peer() -> None:
    """Peer: check that trusted PVs validated a plugin, before injecting it."""


_trust_option = click.option("--trust", "trust_path", required=True, type=click.Path(dir_okay=False),
                             help="trust.yaml: trusted PV keys and mirrors, the requirement formula, max_age.")
_state_option = click.option("--state", default=None, type=click.Path(dir_okay=False),
                             help="Peer state file (newest STR verified per PV); default: trust.yaml's.")
_now_option = click.option("--now", type=int, default=None, metavar="UNIX_SECONDS",
                           help="Check freshness against this time instead of the clock.")
_json_option = click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")


@peer.command("verify")
@click.argument("name")
@_trust_option
@click.option("--bytecode", "bytecode_dir", type=click.Path(exists=True, file_okay=False),
              help="The plugin's directory as you hold it (manifest + .o files): must match the binding.")
@click.option("--metadata-only", is_flag=True,
              help="Without --bytecode: accept on the PVs' signed metadata alone (the verdict says so). "
                   "Without either, a satisfied formula is INCOMPLETE, exit 1.")
@_state_option
@click.option("--via", type=click.Choice(["tiles", "proof"]), default="tiles", show_default=True,
              help="tiles: walk the tree tiles (any plugin); proof: the one-file proof when the PV published one "
                   "at its latest epoch (else the tiles).")
@_now_option
@_json_option
@click.option("--no-cache", is_flag=True,
              help="Fetch every file from the mirrors (default: reuse the verified copies kept next to the state "
                   "file, and ask for latest.note only if it changed).")
def verify_cmd(name, trust_path, bytecode_dir, metadata_only, state, via, now, as_json, no_cache):
    """Fetch each PV's latest STR and proof, check them, and evaluate the formula.

    Exit 0 only on accept: with --bytecode, or with --metadata-only (1 reject, or bytecode not
    checked; 2 usage or configuration error)."""
    from pds_log.core.names import validate_name
    from pds_log.peer.verify import verify_plugin

    trust, peer_state = _setup(trust_path, state)
    try:
        validate_name(name)
    except PdsError as exc:
        _fail_usage(exc)
    if metadata_only and bytecode_dir:
        _fail_usage("give --bytecode or --metadata-only, not both")
    verdict = verify_plugin(name, trust, bytecode_dir=bytecode_dir, now=now, via=via, state=peer_state,
                            metadata_only=metadata_only, cache_dir=False if no_cache else None)
    print_verdict(verdict, as_json)
    sys.exit(EXIT_ACCEPT if verdict.ok else EXIT_REJECT)


@peer.command("bundle")
@click.argument("name")
@_trust_option
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False), help="Where to write the bundle.")
@click.option("--bytecode", "bytecode_dir", type=click.Path(exists=True, file_okay=False),
              help="The plugin version you will send (checked against every binding; its hashes go in the bundle).")
@_state_option
@click.option("--via", type=click.Choice(["tiles", "proof"]), default="tiles", show_default=True)
@_now_option
@_json_option
@click.option("--from-size", "from_sizes", type=click.IntRange(min=1), multiple=True, metavar="N",
              help="STR v2: also carry the consistency proof from epoch-log size N (the receiver's last verified "
                   "epoch, when known); repeatable. Your own last verified size is always included.")
def bundle_cmd(name, trust_path, out, bytecode_dir, state, via, now, as_json, from_sizes):
    """Write an offline proof bundle for NAME: each PV's STR and a one-file proof, and the bytecode hashes
    (for an STR v2: the cosigned checkpoint and its epoch-log proofs).

    Exit 0 when written, 1 when no trusted PV vouches for NAME, 2 on a usage error."""
    from pds_log.core.names import validate_name
    from pds_log.peer.bundle import make_bundle

    trust, peer_state = _setup(trust_path, state)
    try:
        validate_name(name)
    except PdsError as exc:
        _fail_usage(exc)
    try:
        bundle, verdict = make_bundle(name, trust, out, bytecode_dir=bytecode_dir, now=now, via=via, state=peer_state,
                                      from_sizes=tuple(from_sizes))
    except PdsError as exc:
        click.echo(f"pds: {exc}", err=True)
        sys.exit(EXIT_REJECT)
    if as_json:
        click.echo(json.dumps({"out": out, "bundle": bundle, "verdict": verdict.to_obj()}, indent=1))
    else:
        click.echo("\n".join(verdict_lines(verdict)))
        click.echo(f"wrote {out}: {len(bundle['pvs'])} PV(s) ({', '.join(sorted(bundle['pvs']))}), "
                   f"{len(bundle['bytecode'])} file hash(es)")


@peer.command("check-bundle")
@click.argument("bundle_file", type=click.Path(exists=True, dir_okay=False))
@_trust_option
@click.option("--bytecode", "bytecode_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="The plugin's directory as received: must match the bindings.")
@_state_option
@_now_option
@_json_option
def check_bundle_cmd(bundle_file, trust_path, bytecode_dir, state, now, as_json):
    """Verify a proof bundle fully offline (no network). Exit 0 only on accept (1 reject, 2 usage error)."""
    from pds_log.core.errors import FormatError
    from pds_log.peer.bundle import check_bundle

    trust, peer_state = _setup(trust_path, state)
    try:
        data = Path(bundle_file).read_bytes()
    except OSError as exc:
        _fail_usage(f"{bundle_file}: {exc.strerror}")
    try:
        verdict = check_bundle(data, trust, bytecode_dir, now=now, state=peer_state)
    except FormatError as exc:
        if as_json:
            click.echo(json.dumps({"accepted": False, "outcome": "reject", "verdict": "REJECT",
                                   "problems": [f"malformed bundle: {exc}"]}, indent=1))
        else:
            click.echo(f"malformed bundle: {exc}\nverdict: REJECT (require: {trust.formula.text})")
        sys.exit(EXIT_REJECT)
    print_verdict(verdict, as_json)
    sys.exit(EXIT_ACCEPT if verdict.ok else EXIT_REJECT)
