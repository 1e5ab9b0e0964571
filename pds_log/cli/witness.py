"""`pds witness`: a C2SP tlog-witness for PV epoch logs (init, serve, status, evidence)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from pds_log.cli import EXIT_FAILED, configuration
from pds_log.core import checkpoint as cp
from pds_log.core.errors import FormatError, VerificationError
from pds_log.core.note import NoteVerifier
from pds_log.infra.files import atomic_write_bytes
from pds_log.witness import config as wconfig


@click.group()
def witness() -> None:
    """Witness PV epoch logs: cosign checkpoints only after checking they extend the last one."""


@witness.command("init")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--name", required=True, help="The witness's cosigner name, e.g. witness.example/w1.")
@click.option("--log", "logs", multiple=True, metavar="VKEY",
              help="A log to witness: its note verifier key (its name is the log's origin). Repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print the witness's name and verifier key as JSON.")
def init_cmd(directory: str, name: str, logs: tuple[str, ...], as_json: bool) -> None:
    """Create a witness in DIRECTORY (witness.yaml, witness.key); prints its verifier key."""
    with configuration():
        signer = wconfig.init(Path(directory), name, list(logs))
    if as_json:
        click.echo(json.dumps({"name": name, "vkey": str(signer.verifier()), "logs": list(logs)}, indent=1))
        return
    click.echo(str(signer.verifier()))


@witness.command("serve")
@click.argument("directory", type=click.Path(file_okay=False, exists=True))
@click.option("--listen", default="127.0.0.1:0", show_default=True, help="HOST:PORT (port 0: any free port).")
def serve_cmd(directory: str, listen: str) -> None:
    """Serve POST /add-checkpoint; prints `listening on http://HOST:PORT` once ready."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise click.UsageError(f"--listen {listen!r}: expected HOST:PORT")
    from pds_log.witness.server import make_server

    with configuration():
        conf = wconfig.load(Path(directory))
        server, state = make_server(conf, host, int(port))
    bound_host, bound_port = server.socket.getsockname()[:2]  # server_address is typed str | bytes
    click.echo(f"listening on http://{bound_host}:{bound_port}", nl=True)
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        state.close()


@witness.command("status")
@click.argument("directory", type=click.Path(file_okay=False, exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print the state as JSON.")
def status_cmd(directory: str, as_json: bool) -> None:
    """The latest cosigned size and root per log, and the refused requests kept."""
    from pds_log.witness.state import Witness

    with configuration():
        conf = wconfig.load(Path(directory))
        state = Witness(conf.state_path, conf.signer(), conf.logs)
    logs = [{"origin": o, "size": s, "root": cp.b64(r)} for o, s, r in state.all_states()]
    refused = [{"id": i, "origin": o, "status": st, "reason": why, "evidence": ev is not None}
               for i, o, st, why, _req, ev in state.refused()]
    state.close()
    if as_json:
        click.echo(json.dumps({"name": conf.name, "logs": logs, "refused": refused}, indent=1))
        return
    for entry in logs:
        click.echo(f"{entry['origin']}: size {entry['size']} root {entry['root']}")
    for r in refused:
        click.echo(f"refused #{r['id']} {r['origin']} ({r['status']}): {r['reason']}"
                   + (" [evidence]" if r["evidence"] else ""))


@witness.command("evidence")
@click.argument("directory", type=click.Path(file_okay=False, exists=True))
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the files written as a JSON list.")
def evidence_cmd(directory: str, out: str, as_json: bool) -> None:
    """Write each kept proof of log equivocation to OUT/<id>.json; prints the files."""
    from pds_log.witness.state import Witness

    with configuration():
        conf = wconfig.load(Path(directory))
        state = Witness(conf.state_path, conf.signer(), conf.logs)
    Path(out).mkdir(parents=True, exist_ok=True)
    written = []
    for i, _origin, _status, _why, _req, evidence in state.refused():
        if evidence is not None:
            path = Path(out) / f"{i}.json"
            atomic_write_bytes(path, evidence)
            written.append(str(path))
    state.close()
    click.echo(json.dumps(written, indent=1) if as_json else "\n".join(written), nl=bool(written) or as_json)


@witness.command("check-evidence")
@click.argument("evidence_file", type=click.Path(dir_okay=False, exists=True))
@click.argument("vkey")
@click.option("--json", "as_json", is_flag=True, help="Print {valid, reason} as JSON.")
def check_evidence_cmd(evidence_file: str, vkey: str, as_json: bool) -> None:
    """Check that EVIDENCE_FILE proves the log of VKEY signed two inconsistent checkpoints."""
    with configuration():
        verifier = NoteVerifier.from_string(vkey)
        data = Path(evidence_file).read_bytes()
    try:
        found = cp.check_evidence(data, verifier)
    except (FormatError, VerificationError) as exc:
        click.echo(json.dumps({"valid": False, "reason": str(exc)}) if as_json else f"invalid: {exc}")
        sys.exit(EXIT_FAILED)
    if as_json:
        click.echo(json.dumps({"valid": True, "reason": found.describe()}))
        return
    click.echo(f"valid: proof of equivocation: {found.describe()}")
