#!/usr/bin/env python3
"""Safety steps for running a PDS validator's epochs on ephemeral CI runners.

Copy this file with the templates (the workflows call it as `python3 ci/pds_ci.py`). It needs
the `pds-log` package (for the pv.yaml loader and the STR parser) and `git`.

A CI runner starts from nothing, while a PV must never sign two different STRs for one epoch.
On a persistent host the log repo on disk is the memory of what was signed; on CI that memory
is the log's *primary mirror* (the first URL of `mirrors:` in pv.yaml), plus a best-effort
cache of the previous run. So:

restore-log --config pv.yaml [--no-pr-check] [--allow-first-epoch]
    Bring the local log repo (pv.yaml `log_repo`) to the newest history known, and refuse to
    go on (exit 1, nothing signed) on any doubt:
    * no local log: clone the primary; an empty or unreachable primary is refused (a typo in
      the URL, or a wiped mirror, would otherwise restart the log at epoch 1 and sign a second
      STR for epochs already published). `--allow-first-epoch` only for the very first epoch.
    * a local log (restored from the CI cache): fetch the primary; fast-forward if the cache is
      behind, keep it if it is ahead (an earlier run signed an epoch but could not push it:
      this run pushes it), refuse if the two histories diverged.
    * then the checks `pds pv epoch` itself makes before signing (pds_log.pv.authority, the
      same code): the log must extend the primary's history and hold the STR of any epoch the
      primary reserves but lacks; and, unless --no-pr-check or `report_to_pr: false`, the
      newest STR the PV pushed to its area on the PR (refs/heads/pvs/<origin>,
      pvs/<origin>/latest.note) must be in the local log byte for byte. If the PR holds a newer
      or a different STR, this log is not the one the PV signed from; signing now would
      equivocate. Refused.
    This is also how signing moves from a host to CI (or back): stop the old signer, let its
    last epoch reach the primary, then restore-log where the PV is to sign from now on.

check-pushes --config pv.yaml SUMMARY.json
    After `pds pv epoch --json` / `pds pv seal --json`: exit 1 unless the push to the primary
    mirror succeeded (the epoch is then not durable: do not publish it; the CI cache keeps the
    log so that the next run pushes it). A failed push to other mirrors or to the PR area is a
    warning: the next epoch sends everything still missing.

github-matrix PLAN.json [--max-jobs 256]
    Lines for $GITHUB_OUTPUT: `count=<items>` and `batches=<JSON list>`, each batch a string of
    space-separated item ids (one item per job up to --max-jobs items; GitHub allows at most 256
    jobs per matrix, so larger plans are dealt round-robin into --max-jobs batches).

items PLAN.json --index I --total N
    The item ids of job I (1-based) of N parallel jobs, one per line (GitLab `parallel: N`:
    `--index $CI_NODE_INDEX --total $CI_NODE_TOTAL`). Every item belongs to exactly one job.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

BRANCH = "refs/heads/main"  # the log branch (log v1)
TRACKING = "refs/pds-ci/primary"


class Refused(Exception):
    """A condition under which the PV must not sign anything."""


def say(line: str) -> None:
    print(f"pds-ci: {line}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------- git plumbing
def git_env(ssh_key: Path | None, known_hosts: Path | None = None) -> dict[str, str]:
    """pds's own: one SSH identity, no prompt, host keys pinned (an unknown or changed one is refused)."""
    from pds_log.infra.gitremote import git_env as pds_git_env

    env = pds_git_env(ssh_key if ssh_key is not None and ssh_key.exists() else None, known_hosts)
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env


def git(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["git", *args], capture_output=True, text=True, env=env, timeout=600)
    if check and result.returncode != 0:
        raise Refused(f"git {' '.join(args[:4])}... failed: {result.stderr.strip() or result.returncode}")
    return result


def remote_ref(url: str, ref: str, env: dict[str, str]) -> str | None:
    """The commit `ref` points to at `url`, None if it has no such ref; Refused if unreachable."""
    result = git("ls-remote", url, ref, env=env, check=False)
    if result.returncode != 0:
        why = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "git ls-remote failed"
        raise Refused(f"cannot reach {url}: {why}")
    for line in result.stdout.splitlines():
        sha, _, name = line.partition("\t")
        if name == ref:
            return sha
    return None


def local_ref(git_dir: Path, ref: str) -> str | None:
    result = git("--git-dir", str(git_dir), "rev-parse", "--verify", "-q", f"{ref}^{{commit}}", check=False)
    return result.stdout.strip() or None


def is_ancestor(git_dir: Path, a: str, b: str) -> bool:
    return git("--git-dir", str(git_dir), "merge-base", "--is-ancestor", a, b, check=False).returncode == 0


def show(git_dir: Path, rev: str, path: str) -> bytes | None:
    result = subprocess.run(["git", "--git-dir", str(git_dir), "show", f"{rev}:{path}"], capture_output=True)
    return result.stdout if result.returncode == 0 else None


def note_epoch(data: bytes, where: str) -> int:
    from pds_log.core import note as notes
    from pds_log.core.strs import parse_head

    try:
        return parse_head(notes.parse(data).text).epoch
    except Exception as exc:  # noqa: BLE001 - any parse problem is a reason to stop
        raise Refused(f"{where}: not an STR ({exc})") from None


# ---------------------------------------------------------------------- restore-log
def load(config_path: str):
    from pds_log.pv.config import load_config

    return load_config(config_path)


def primary_of(config) -> str:
    if not config.mirrors:
        raise Refused(f"{config.path}: no `mirrors:`. On CI the log repo lives on its primary mirror "
                      f"(the first URL of `mirrors:`); without one, every run would start a new log")
    return config.mirrors[0]


def restore_log(config, *, pr_check: bool = True, allow_first_epoch: bool = False) -> str:
    """Returns a one-line description of what was done; raises Refused."""
    log = Path(config.log_repo)
    primary = primary_of(config)
    env = git_env(config.ssh_key, config.known_hosts)
    remote = remote_ref(primary, BRANCH, env)
    if not (log / "HEAD").exists():
        if remote is None and not allow_first_epoch:
            raise Refused(f"the primary mirror {primary} has no {BRANCH} and there is no local log: "
                          f"refusing to start a new log at epoch 1 (run the first epoch by hand, or pass "
                          f"--allow-first-epoch once)")
        git("init", "--bare", "-q", str(log))
        git("--git-dir", str(log), "symbolic-ref", "HEAD", BRANCH)
        what = "no local log: started from an empty log (first epoch)"
        if remote is not None:
            git("--git-dir", str(log), "fetch", "-q", primary, f"+{BRANCH}:{BRANCH}", env=env)
            what = f"cloned the log from {primary} at {remote[:12]}"
    else:
        local = local_ref(log, BRANCH)
        if remote is None:
            if local is None and not allow_first_epoch:
                raise Refused(f"neither {primary} nor the cached log has any epoch: refusing to start a "
                              f"new log (pass --allow-first-epoch for the very first epoch)")
            what = ("the primary mirror is empty; the cached log is kept and this epoch pushes it"
                    if local else "first epoch: empty log")
        else:
            git("--git-dir", str(log), "fetch", "-q", primary, f"+{BRANCH}:{TRACKING}", env=env)
            if local is None or local == remote:
                if local is None:
                    git("--git-dir", str(log), "update-ref", BRANCH, remote)
                what = f"log at {remote[:12]}, same as {primary}"
            elif is_ancestor(log, local, remote):
                git("--git-dir", str(log), "update-ref", BRANCH, remote, local)
                what = f"cached log was behind: fast-forwarded to {primary} at {remote[:12]}"
            elif is_ancestor(log, remote, local):
                what = (f"cached log is ahead of {primary} ({local[:12]} after {remote[:12]}): an earlier run "
                        f"could not push; this epoch pushes it")
            else:
                raise Refused(f"the cached log ({local[:12]}) and {primary} ({remote[:12]}) have diverged: "
                              f"two histories of one log. Stop, find out how (equivocation may already be "
                              f"visible), and restore the right one by hand")
    what += "; " + check_primary(config, log, primary)
    if pr_check and config.report_to_pr:
        what += "; " + check_pr_area(config, log, env)
    elif pr_check:
        what += "; PR area not checked (report_to_pr is false)"
    return what


def check_primary(config, log: Path, primary: str) -> str:
    """The check `pds pv epoch` makes against the primary: history and reservation."""
    from pds_log.pv.authority import LogMirror, SigningRefused, check_unpublished
    from pds_log.pv.logrepo import LogRepo

    try:
        Path(config.state_dir).mkdir(parents=True, exist_ok=True)
        mirror = LogMirror(config, primary)
        view = mirror.view()
        repo = LogRepo(log)
        said = mirror.check(repo)
        head = repo.head()
        check_unpublished(view, repo, note_epoch(repo.read(head, "latest.note"), f"{log}") if head else 0)
    except SigningRefused as exc:
        raise Refused(str(exc)) from None
    return said


def check_pr_area(config, log: Path, env: dict[str, str]) -> str:
    """The newest STR the PV pushed to its PR area must be in `log`, byte for byte (the
    comparison of `pds pv epoch`: pds_log.pv.authority.check_area)."""
    from pds_log.pv.authority import SigningRefused, check_area
    from pds_log.pv.logrepo import LogRepo

    ref = f"refs/heads/pvs/{config.origin}"
    tip = remote_ref(config.pr_url, ref, env)
    if tip is None:
        return "no PR area yet"
    with tempfile.TemporaryDirectory(prefix="pds-ci-area-") as tmp:
        area = Path(tmp) / "area.git"
        git("init", "--bare", "-q", str(area))
        git("--git-dir", str(area), "fetch", "-q", config.pr_url, f"+{ref}:refs/area", env=env)
        published = show(area, "refs/area", f"pvs/{config.origin}/latest.note")
    try:
        return check_area(published, LogRepo(log), "the PR area")
    except SigningRefused as exc:
        raise Refused(str(exc)) from None


# ---------------------------------------------------------------------- check-pushes
def check_pushes(config, summary_path: str) -> tuple[bool, list[str]]:
    primary = primary_of(config)
    try:
        summary = json.loads(Path(summary_path).read_text())
    except (OSError, ValueError) as exc:
        return False, [f"{summary_path}: no epoch summary ({exc})"]
    pushes = summary.get("pushes") or {}
    lines = [f"epoch {summary.get('epoch')} of {summary.get('origin')}: root {str(summary.get('root'))[:16]}..."]
    ok = pushes.get(primary) == "ok"
    if not ok:
        lines.append(f"ERROR: the log did not reach its primary mirror {primary}: "
                     f"{pushes.get(primary, 'not pushed')}. Not publishing; the cached log keeps the epoch "
                     f"and the next run pushes it")
    for target, status in sorted(pushes.items()):
        if target != primary and status != "ok":
            lines.append(f"warning: push to {target}: {status} (retried by the next epoch)")
    return ok, lines


# ---------------------------------------------------------------------- plans
def plan_ids(path: str) -> list[str]:
    plan = json.loads(Path(path).read_text())
    if not isinstance(plan, dict) or not isinstance(plan.get("items"), list):
        raise SystemExit(f"{path}: not an epoch plan")
    ids = [str(item["id"]) for item in plan["items"]]
    if len(set(ids)) != len(ids):
        raise SystemExit(f"{path}: duplicate item ids")
    return ids


def github_matrix(ids: list[str], max_jobs: int = 256) -> dict[str, object]:
    if not ids:
        return {"count": 0, "batches": []}
    jobs = min(len(ids), max_jobs)
    return {"count": len(ids), "batches": [" ".join(ids[i::jobs]) for i in range(jobs)]}


def slice_items(ids: list[str], index: int, total: int) -> list[str]:
    if not 1 <= index <= total:
        raise SystemExit(f"--index must be in 1..{total}")
    return ids[index - 1::total]


# ---------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pds_ci.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("restore-log")
    p.add_argument("--config", required=True)
    p.add_argument("--no-pr-check", action="store_true")
    p.add_argument("--allow-first-epoch", action="store_true")
    p = sub.add_parser("check-pushes")
    p.add_argument("--config", required=True)
    p.add_argument("summary")
    p = sub.add_parser("github-matrix")
    p.add_argument("plan")
    p.add_argument("--max-jobs", type=int, default=256)
    p = sub.add_parser("items")
    p.add_argument("plan")
    p.add_argument("--index", type=int, required=True)
    p.add_argument("--total", type=int, required=True)
    args = parser.parse_args(argv)

    if args.cmd == "restore-log":
        try:
            say(restore_log(load(args.config), pr_check=not args.no_pr_check,
                            allow_first_epoch=args.allow_first_epoch))
        except Refused as exc:
            say(f"REFUSED: {exc}")
            return 1
        return 0
    if args.cmd == "check-pushes":
        try:
            ok, lines = check_pushes(load(args.config), args.summary)
        except Refused as exc:
            ok, lines = False, [f"REFUSED: {exc}"]
        for line in lines:
            say(line)
        return 0 if ok else 1
    if args.cmd == "github-matrix":
        if not 1 <= args.max_jobs <= 256:
            raise SystemExit("--max-jobs must be in 1..256")
        out = github_matrix(plan_ids(args.plan), args.max_jobs)
        print(f"count={out['count']}")
        print(f"batches={json.dumps(out['batches'])}")
        return 0
    if args.cmd == "items":
        for item in slice_items(plan_ids(args.plan), args.index, args.total):
            print(item)
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
