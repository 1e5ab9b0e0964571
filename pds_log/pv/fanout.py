"""The epoch split for CI fan-out: plan -> run-one (a CI matrix) -> seal.

* `plan` fetches the PR and lists the (plugin x verifier) runs the next epoch needs and the
  cache does not already hold; it signs nothing and changes nothing but the PR mirror. Which
  plugins the epoch verifies is decided by the epoch's own planner (pds_log.pv.plan), on the
  same commit checks, so the plan and the sealed epoch cannot disagree.
* `run-one` runs one item of the plan on the plugin's files at the plan's PR commit and writes
  a result file; it needs no key.
* `seal` loads the result files into the verifier cache and runs the normal epoch pinned to the
  plan's PR commit with every verifier result required from the cache. The lock, the
  compare-and-swap commit and the one-STR-per-epoch guarantees are those of the epoch job.
  A plan made against another log head is refused (stale plan).

Plan (JSON, v1): {"v":1, "origin", "epoch", "log_head", "pr_from", "pr_to", "policy",
"items": [{"id", "plugin", "verifier", "files_sha256"}]}.
Result (JSON, v1): {"v":1, "id", "plugin", "verifier", "files_sha256", "config_digest", "result"}.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from pds_log.core.binding import plugin_files_digest
from pds_log.core.errors import FormatError, PdsError
from pds_log.core.manifest import parse_plugin_manifest
from pds_log.infra.files import atomic_write_bytes

from . import verification
from .config import PvConfig
from .epoch import EpochOptions, EpochSummary, check_commits, open_context, plan_for, run_epoch, select_pr_head
from .logrepo import LogRepo
from .prsource import PrMirror

PLAN_VERSION = 1


def _mirror(config: PvConfig) -> PrMirror:
    return PrMirror(config.state_dir / "pr.git", config.pr_url, config.pr_branch, config.ssh_key, config.known_hosts)


def make_plan(config: PvConfig) -> dict[str, Any]:
    ctx = open_context(config, lambda line: None)
    ctx.pr_head = select_pr_head(ctx, ctx.mirror.fetch(), None)
    ctx.now = int(time.time())
    plan = plan_for(ctx, check_commits(ctx))  # the epoch's planner: rejected and tainted plugins run nothing
    verifiers = verification.build(config)
    cache = verification.cache_for(config)
    items: list[dict[str, str]] = []
    for decision in plan.verifiable:
        assert decision.snap is not None
        digest = plugin_files_digest(decision.snap.files)
        for vname, verifier in verifiers.items():
            if cache.get(verifier, digest) is None:
                items.append({"id": f"{len(items):04d}", "plugin": decision.name, "verifier": vname,
                              "files_sha256": digest})
    return {"v": PLAN_VERSION, "origin": config.origin, "epoch": ctx.epoch,
            "log_head": str(ctx.head.id) if ctx.head else None, "pr_from": ctx.last_pr,
            "pr_to": str(ctx.pr_head.id), "policy": config.policy_hash(), "items": items}


def load_plan(path: str | Path) -> dict[str, Any]:
    try:
        plan = json.loads(Path(path).read_text())
    except OSError as exc:
        raise PdsError(f"{path}: {exc.strerror}") from None
    except ValueError as exc:
        raise FormatError(f"{path}: invalid JSON ({exc})") from None
    if not isinstance(plan, dict) or plan.get("v") != PLAN_VERSION or not isinstance(plan.get("items"), list):
        raise FormatError(f"{path}: not a v{PLAN_VERSION} epoch plan")
    return plan


def run_one(config: PvConfig, plan: dict[str, Any], item_id: str) -> dict[str, Any]:
    item = next((i for i in plan["items"] if i["id"] == item_id), None)
    if item is None:
        raise PdsError(f"plan has no item {item_id!r} (items: {', '.join(i['id'] for i in plan['items'][:20])}...)")
    mirror = _mirror(config)
    mirror.fetch()
    snap = mirror.plugin(mirror.commit(plan["pr_to"]), item["plugin"])
    if snap is None or snap.problem:
        raise PdsError(f"{item['plugin']} is not readable at {plan['pr_to']}")
    if plugin_files_digest(snap.files) != item["files_sha256"]:
        raise PdsError(f"{item['plugin']}: files at {plan['pr_to'][:12]} do not match the plan")
    manifest = parse_plugin_manifest(snap.files, item["plugin"])
    verifiers = verification.build(config)
    if item["verifier"] not in verifiers:
        raise PdsError(f"verifier {item['verifier']!r} is not in {config.path}")
    verifier = verifiers[item["verifier"]]
    result = verification.run_one(verifier, snap, manifest)
    return {"v": PLAN_VERSION, "id": item_id, "plugin": item["plugin"], "verifier": item["verifier"],
            "files_sha256": item["files_sha256"], "config_digest": verifier.config_digest(),
            "result": result.to_obj()}


def seal(config: PvConfig, plan: dict[str, Any], results_dir: str | Path,
         options: EpochOptions | None = None) -> EpochSummary:
    log = LogRepo(config.log_repo)
    head = log.head()
    if (str(head.id) if head else None) != plan["log_head"]:
        raise PdsError(f"stale plan: made against log head {plan['log_head']}, the log is now at "
                       f"{head.id if head else 'nothing'}; make a new plan")
    if plan["policy"] != config.policy_hash():
        raise PdsError("stale plan: the PV's verifier configuration changed since the plan")
    verifiers = verification.build(config)
    cache = verification.cache_for(config)
    wanted = {i["id"]: i for i in plan["items"]}
    for path in sorted(Path(results_dir).glob("*.json")):
        try:
            doc = json.loads(path.read_text())
        except ValueError as exc:
            raise FormatError(f"{path}: invalid JSON ({exc})") from None
        item = wanted.get(doc.get("id"))
        if item is None or any(doc.get(k) != item[k] for k in ("plugin", "verifier", "files_sha256")):
            raise PdsError(f"{path}: result does not match any item of the plan")
        verifier = verifiers[item["verifier"]]
        if doc.get("config_digest") != verifier.config_digest():
            raise PdsError(f"{path}: produced with another configuration of {item['verifier']}")
        cache.put(verifier, item["files_sha256"], verification.result_from_obj(doc["result"]))
    opts = dataclasses.replace(options or EpochOptions(), pr_head=plan["pr_to"], require_cached=True)
    return run_epoch(config, opts)


def write_json(path: str | Path, obj: dict[str, Any]) -> None:
    atomic_write_bytes(Path(path), json.dumps(obj, indent=1, sort_keys=True).encode() + b"\n")
