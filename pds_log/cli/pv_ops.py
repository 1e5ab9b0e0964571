"""`pds pv init|epoch|plan|run-one|seal`: the PV operator's commands (added to the `pv` group)."""

from __future__ import annotations

import dataclasses
import json

import click

from pds_log.cli import configuration
from pds_log.cli.progress import terminal_progress

_json_option = click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary on stdout.")


def _config(path: str):
    """The PV's pv.yaml; a bad one is a configuration error (exit 2)."""
    from pds_log.pv.config import load_config

    with configuration():
        return load_config(path)


def _print_summary(summary, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(summary.to_obj(), indent=1, sort_keys=True))
        return
    click.echo(f"epoch {summary.epoch} of {summary.origin}: root {summary.root[:16]}..., {summary.size} plugins, "
               f"PR {summary.pr_to[:12]}")
    for label, names in (("added", summary.added), ("updated", summary.updated)):
        for name in names:
            click.echo(f"  {label:8} {name}")
    for entry in summary.removed:
        click.echo(f"  removed  {entry['name']}: {entry['reason']}")
    for entry in summary.rejected:
        click.echo(f"  rejected {entry['name']}: {entry['reason']}")
    for target, status in summary.pushes.items():
        click.echo(f"  push {target}: {status}")
    _print_witnesses(summary.witnesses)


def _print_witnesses(status: dict[str, str]) -> None:
    if status:
        done = sum(1 for s in status.values() if s.startswith("cosigned"))
        click.echo(f"  witnesses: {done} of {len(status)} cosigned")
    for name, what in status.items():
        click.echo(f"  witness {name}: {what}")


def register(group: click.Group) -> None:
    """Add the PV operator's commands to `group`."""
    _register_init(group)
    _register_epoch(group)
    _register_publish(group)
    _register_check(group)


def _register_init(group: click.Group) -> None:
    """`pv init`: create a PV."""
    @group.command("init")
    @click.argument("directory", type=click.Path(file_okay=False))
    @click.option("--origin", required=True, help="PV name: the STR origin and note key name, e.g. pv1.example.org")
    @click.option("--pr", "pr_url", required=True, help="URL or path of the Plugin Repository")
    @click.option("--branch", default="main", show_default=True)
    @click.option("--acceptance", default=None, help="Acceptance expression over verifier names")
    @click.option("--mirror", "mirrors", multiple=True, help="Git URL the log repo is pushed to (repeatable)")
    @click.option("--no-pin", is_flag=True, help="Do not pin the PR's root commit now (it is then not checked)")
    @click.option("--ssh-key", type=click.Path(exists=True, dir_okay=False),
                  help="An existing SSH private key (no passphrase) the PR admin already added for this PV: "
                       "copied in as the PV's key. Needed to pin the root of an ssh:// PR; default: a new key")
    @click.option("--known-hosts", type=click.Path(exists=True, dir_okay=False),
                  help="known_hosts file with the (checked) host keys of the ssh:// PR and mirrors: copied in "
                       "as keys/known_hosts, the only host keys the PV will accept")
    @click.option("--trust-host-key", is_flag=True,
                  help="Record the host keys the ssh:// PR and mirrors show now in keys/known_hosts and print "
                       "their fingerprints (check them against what the server's operator publishes)")
    @_json_option
    def init_cmd(directory, origin, pr_url, branch, acceptance, mirrors, no_pin, ssh_key, known_hosts,
                 trust_host_key, as_json):
        """Create a PV in DIRECTORY: pv.yaml, signing keys, an empty log repo, state.

        Over ssh, host keys are pinned: give --known-hosts or --trust-host-key (else the running
        user's ~/.ssh/known_hosts must hold them). A failed init leaves nothing behind; run it again."""
        from pds_log.infra.sshkeys import host_key_fingerprint
        from pds_log.pv.config import load_config
        from pds_log.pv.setup import init_pv

        path = init_pv(directory, origin, pr_url, branch=branch, acceptance=acceptance, mirrors=list(mirrors),
                       pin_root=not no_pin, ssh_key=ssh_key, known_hosts=known_hosts, trust_host_key=trust_host_key)
        config = load_config(path)
        pinned = []
        if config.known_hosts is not None:
            for line in config.known_hosts.read_text().splitlines():
                pinned.append({"host": line.split()[0], "fingerprint": host_key_fingerprint(line)})
        if as_json:
            click.echo(json.dumps({"origin": origin, "directory": str(config.base), "config": str(path),
                                   "vkey": str(config.signer().verifier()),
                                   "ssh_public_key": f"{config.ssh_key}.pub" if config.ssh_key else None,
                                   "known_hosts": str(config.known_hosts) if config.known_hosts else None,
                                   "host_keys": pinned, "pr_root": config.pr_root,
                                   "log_repo": str(config.log_repo)}, indent=1))
            return
        click.echo(f"created PV {origin} in {config.base}")
        click.echo(f"  config:        {path}")
        click.echo(f"  verifier key:  {config.signer().verifier()}")
        click.echo(f"  SSH key:       {config.ssh_key}.pub (add it to the PR policy as the area key of {origin})")
        click.echo(f"  log repo:      {config.log_repo}")
        if config.pr_root:
            click.echo(f"  PR root:       {config.pr_root} (pinned)")
        if pinned:
            click.echo(f"  host keys:     pinned in {config.known_hosts}"
                       + (" (recorded now: check these fingerprints out of band)" if trust_host_key else ""))
            for entry in pinned:
                click.echo(f"    {entry['host']} {entry['fingerprint']}")


def _register_epoch(group: click.Group) -> None:
    """`pv epoch`, and the fan-out steps of one epoch: `pv plan`, `pv run-one`, `pv seal`."""
    @group.command("epoch")
    @click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False))
    @_json_option
    @click.option("--wait", is_flag=True, help="Wait for a running epoch job instead of failing at once.")
    @click.option("--no-push", is_flag=True, help="Do not push to the PR area or mirrors this time.")
    @click.option("--now", type=int, default=None, hidden=True, help="STR time (tests).")
    def epoch_cmd(config_path, as_json, wait, no_push, now):
        """Run one epoch: fetch, re-check, verify, update the tree, sign, commit, push."""
        from pds_log.pv.epoch import EpochNotPublished, EpochOptions, run_epoch

        config = _config(config_path)
        try:
            with terminal_progress(enabled=not as_json, label="verifying") as bar:
                summary = run_epoch(config, EpochOptions(now=now, wait_lock=wait, push=not no_push,
                                                         progress=bar.line, steps=bar.step))
        except EpochNotPublished as exc:  # signed and committed: say what, then fail (exit 1)
            _print_summary(exc.summary, as_json)
            raise
        _print_summary(summary, as_json)

    @group.command("plan")
    @click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False))
    @click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Where to write plan.json")
    @_json_option
    def plan_cmd(config_path, out, as_json):
        """List the plugin x verifier runs the next epoch needs (for a CI matrix)."""
        from pds_log.pv.fanout import make_plan, write_json

        plan = make_plan(_config(config_path))
        write_json(out, plan)
        if as_json:
            click.echo(json.dumps({"out": out, "epoch": plan["epoch"], "items": len(plan["items"]),
                                   "pr_to": plan["pr_to"]}, indent=1))
            return
        click.echo(f"epoch {plan['epoch']}: {len(plan['items'])} verifier runs, PR {plan['pr_to'][:12]} -> {out}")

    @group.command("run-one")
    @click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False))
    @click.option("--plan", "plan_path", required=True, type=click.Path(exists=True, dir_okay=False))
    @click.option("--item", "item_id", required=True, help="Item id from the plan")
    @click.option("--out", "out", required=True, type=click.Path(dir_okay=False))
    @_json_option
    def run_one_cmd(config_path, plan_path, item_id, out, as_json):
        """Run one plugin x verifier item of a plan and write its result file."""
        from pds_log.pv.fanout import load_plan, run_one, write_json

        config = _config(config_path)
        with configuration():
            plan = load_plan(plan_path)
        doc = run_one(config, plan, item_id)
        write_json(out, doc)
        if as_json:
            click.echo(json.dumps(doc, indent=1))
            return
        click.echo(f"{doc['plugin']} x {doc['verifier']}: {doc['result']['status']} {doc['result']['reason']}")

    @group.command("seal")
    @click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False))
    @click.option("--plan", "plan_path", required=True, type=click.Path(exists=True, dir_okay=False))
    @click.option("--results", "results_dir", required=True, type=click.Path(exists=True, file_okay=False))
    @_json_option
    @click.option("--no-push", is_flag=True)
    def seal_cmd(config_path, plan_path, results_dir, as_json, no_push):
        """Gather a plan's results, then sign and commit the epoch."""
        from pds_log.pv.epoch import EpochNotPublished, EpochOptions
        from pds_log.pv.fanout import load_plan, seal

        config = _config(config_path)
        with configuration():
            plan = load_plan(plan_path)
        try:
            with terminal_progress(enabled=not as_json, label="sealing") as bar:
                summary = seal(config, plan, results_dir, EpochOptions(push=not no_push, progress=bar.line))
        except EpochNotPublished as exc:
            _print_summary(exc.summary, as_json)
            raise
        _print_summary(summary, as_json)


def _register_publish(group: click.Group) -> None:
    """`pv publish` and `pv prove`: what a PV's log shows peers."""
    @group.command("publish")
    @click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
                  help="PV config (its log repo is published)")
    @click.option("--log", "log_repo", type=click.Path(exists=True, file_okay=False),
                  help="Or any clone of a PV log repo")
    @click.option("--out", "out", required=True, type=click.Path(file_okay=False))
    @click.option("--vkey", default=None, help="Expected verifier key (default: the one in the log's pv.json)")
    @click.option("--no-site", is_flag=True, help="Only the machine-readable files, no HTML site")
    @_json_option
    def publish_cmd(config_path, log_repo, out, vkey, no_site, as_json):
        """Write the static files peers and mirrors serve (only what is new since last time)."""
        from pds_log.pv.publish import Publisher

        if bool(config_path) == bool(log_repo):
            raise click.UsageError("give exactly one of --config or --log")
        config = _config(config_path) if config_path else None
        repo = config.log_repo if config else log_repo
        cosigned, witnesses = None, None
        if config is not None and config.witnesses:
            from pds_log.pv.cosign import stored_checkpoint

            cosigned, witnesses = stored_checkpoint(config), [w.verifier for w in config.witnesses]
        publisher = Publisher(repo, out, vkey, human_site=not no_site, cosigned=cosigned, witnesses=witnesses)
        with terminal_progress(enabled=not as_json, label="publishing epochs") as bar:
            publisher.progress = bar.step
            summary = publisher.publish()
        if as_json:
            click.echo(json.dumps(dataclasses.asdict(summary), indent=1))
            return
        click.echo(f"published epochs {summary.epochs[0] if summary.epochs else '-'}..{summary.latest_epoch} to {out}: "
                   f"{summary.files_written} files, {summary.bytes_written} bytes written")

    @group.command("cosign")
    @click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False))
    @click.option("--out", "out", type=click.Path(file_okay=False),
                  help="A directory `pds pv publish` writes: republish its checkpoint with the cosignatures")
    @_json_option
    def cosign_cmd(config_path, out, as_json):
        """Ask the witnesses whose cosignature the latest STR v2 lacks again (pv.yaml `witnesses:`)
        and keep the cosignatures that verify; with --out, publish (the checkpoint last).

        Exit 0 even when a witness is still down: the output says which."""
        from pds_log.pv.cosign import collect_latest, stored_checkpoint
        from pds_log.pv.publish import Publisher

        config = _config(config_path)
        report = collect_latest(config)
        doc = {"epoch": report.epoch, "witnesses": report.status, "cosigned": report.cosigned}
        if out:
            summary = Publisher(config.log_repo, out, cosigned=stored_checkpoint(config),
                                witnesses=[w.verifier for w in config.witnesses]).publish()
            doc["published"] = {"out": out, "checkpoint_cosigners": summary.checkpoint_cosigners}
        if as_json:
            click.echo(json.dumps(doc, indent=1, sort_keys=True))
            return
        click.echo(report.summary_line())
        _print_witnesses(report.status)
        if out:
            cosigners = doc["published"]["checkpoint_cosigners"]
            click.echo(f"  published checkpoint to {out} with {len(cosigners)} cosignatures")

    @group.command("prove")
    @click.argument("name")
    @click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False))
    @click.option("--log", "log_repo", type=click.Path(exists=True, file_okay=False))
    def prove_cmd(name, config_path, log_repo):
        """Print the one-file proof (inclusion or absence) for NAME at the log's latest epoch."""

        if bool(config_path) == bool(log_repo):
            raise click.UsageError("give exactly one of --config or --log")
        from pds_log.pv.publish import latest_proof

        repo = _config(config_path).log_repo if config_path else log_repo
        click.echo(latest_proof(repo, name).to_json().decode())


def _register_check(group: click.Group) -> None:
    """`pv check`: a developer runs a PV's verifiers on a local plugin."""
    @group.command("check")
    @click.argument("plugin_dir", type=click.Path(exists=True, file_okay=False))
    @click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
                  help="A PV's pv.yaml or published pv.json: run its verifiers (default: the default set)")
    @click.option("--name", default=None, help="Plugin name (default: the directory name)")
    @click.option("--json", "as_json", is_flag=True)
    def check_cmd(plugin_dir, config_path, name, as_json):
        """Run a PV's verifiers on a local plugin directory (before you push). Exit 0 if all pass."""
        from pds_log.pv.local_check import check_plugin_dir, load_verifiers

        with configuration():  # a bad pv.yaml / pv.json is the user's to fix (exit 2)
            verifiers = load_verifiers(config_path)
        name, results = check_plugin_dir(plugin_dir, verifiers, name)
        if as_json:
            click.echo(json.dumps([r.to_obj() for r in results], indent=1))
        else:
            width = max(len(r.verifier) for r in results)
            click.echo(f"{'verifier':{width}}  status  time    reason")
            for r in results:
                click.echo(f"{r.verifier:{width}}  {r.status:6}  {r.duration_s:5.2f}s  {r.reason}")
        bad = [r for r in results if r.status != "pass"]
        if not as_json:
            click.echo(f"{name}: " + ("all verifiers pass" if not bad else f"{len(bad)} verifier(s) do not pass"))
        if bad:
            raise SystemExit(1)
