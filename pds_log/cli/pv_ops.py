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


def register(group: click.Group) -> None:
    @group.command("init")
    @click.argument("directory", type=click.Path(file_okay=False))
    @click.option("--origin", required=True, help="PV name: the STR origin and note key name, e.g. pv1.example.org")
    @click.option("--pr", "pr_url", required=True, help="URL or path of the Plugin Repository")
    @click.option("--branch", default="main", show_default=True)
    @click.option("--acceptance", default=None, help="Acceptance expression over verifier names")
    @click.option("--mirror", "mirrors", multiple=True, help="Git URL the log repo is pushed to (repeatable)")
    @click.option("--no-pin", is_flag=True, help="Do not pin the PR's root commit now (it is then not checked)")
    @_json_option
    def init_cmd(directory, origin, pr_url, branch, acceptance, mirrors, no_pin, as_json):
        """Create a PV in DIRECTORY: pv.yaml, signing keys, an empty log repo, state."""
        from pds_log.pv.config import load_config
        from pds_log.pv.setup import init_pv

        path = init_pv(directory, origin, pr_url, branch=branch, acceptance=acceptance, mirrors=list(mirrors),
                       pin_root=not no_pin)
        config = load_config(path)
        if as_json:
            click.echo(json.dumps({"origin": origin, "directory": str(config.base), "config": str(path),
                                   "vkey": str(config.signer().verifier()),
                                   "ssh_public_key": f"{config.ssh_key}.pub" if config.ssh_key else None,
                                   "log_repo": str(config.log_repo)}, indent=1))
            return
        click.echo(f"created PV {origin} in {config.base}")
        click.echo(f"  config:        {path}")
        click.echo(f"  verifier key:  {config.signer().verifier()}")
        click.echo(f"  SSH key:       {config.ssh_key}.pub (add it to the PR policy as the area key of {origin})")
        click.echo(f"  log repo:      {config.log_repo}")

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
        repo = _config(config_path).log_repo if config_path else log_repo
        publisher = Publisher(repo, out, vkey, human_site=not no_site)
        with terminal_progress(enabled=not as_json, label="publishing epochs") as bar:
            publisher.progress = bar.step
            summary = publisher.publish()
        if as_json:
            click.echo(json.dumps(dataclasses.asdict(summary), indent=1))
            return
        click.echo(f"published epochs {summary.epochs[0] if summary.epochs else '-'}..{summary.latest_epoch} to {out}: "
                   f"{summary.files_written} files, {summary.bytes_written} bytes written")

    @group.command("prove")
    @click.argument("name")
    @click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False))
    @click.option("--log", "log_repo", type=click.Path(exists=True, file_okay=False))
    def prove_cmd(name, config_path, log_repo):
        """Print the one-file proof (inclusion or absence) for NAME at the log's latest epoch."""
        from pds_log.pv.publish import Publisher

        if bool(config_path) == bool(log_repo):
            raise click.UsageError("give exactly one of --config or --log")
        repo = _config(config_path).log_repo if config_path else log_repo
        pub = Publisher(repo, "/nonexistent", human_site=False)
        signed = pub.log.latest_str(pub.head, pub.verifier)
        click.echo(pub.proof_at(pub.head, signed.head.root, signed.head.epoch, name).to_json().decode())

    @group.command("check")
    @click.argument("plugin_dir", type=click.Path(exists=True, file_okay=False))
    @click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
                  help="A PV's pv.yaml: run its verifiers (default: the default verifier set)")
    @click.option("--name", default=None, help="Plugin name (default: the directory name)")
    @click.option("--json", "as_json", is_flag=True)
    def check_cmd(plugin_dir, config_path, name, as_json):
        """Run a PV's verifiers on a local plugin directory (before you push). Exit 0 if all pass."""
        from pathlib import Path

        import verifier_runners as vr
        from pds_log.core.manifest import check_pluglets, parse_plugin_manifest
        from pds_log.core.errors import PdsError
        from pds_log.developer.build import read_plugin_dir
        from pds_log.pv import verification
        from pds_log.pv.setup import DEFAULT_VERIFIERS

        directory = Path(plugin_dir).resolve()
        name = name or directory.name
        files = read_plugin_dir(directory)
        manifest = parse_plugin_manifest(files, name)
        problems = check_pluglets(manifest, files)
        if problems:
            raise PdsError(f"{name}: " + "; ".join(problems) + " (run `pds dev build` first?)")
        if config_path:
            verifiers = verification.build(_config(config_path))
        else:
            verifiers = vr.build_verifiers(DEFAULT_VERIFIERS)
        plugin = vr.PluginInput(name, "0" * 40, files, manifest)
        results = [vr.run_verifier_bounded(v, plugin) for v in verifiers.values()]
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
