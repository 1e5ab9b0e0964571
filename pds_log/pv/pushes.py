"""After an epoch: send the STRs and failure reports to the PV's area on the PR, and the log
repo to its mirrors. Each push sends everything still missing, so a failed push is retried by
the next epoch; a failure never undoes the epoch, but it is an error of the run
(pds_log.pv.epoch.EpochNotPublished, exit 1): the epoch is signed and not yet published."""

from __future__ import annotations

import hashlib
import subprocess

import pygit2

from pds_log.core import log_layout as layout
from pds_log.core import note as notes
from pds_log.core.binding import canonical_json
from pds_log.core.errors import PdsError
from pds_log.core.strs import parse_head
from pds_log.infra.files import exclusive_lock
from pds_log.infra.giterrors import connection_problem
from pds_log.infra.gitremote import git_env, pinned_hosts_file
from pds_log.infra.gitsign import signed_commit
from pds_log.infra.gittree import commit_at, read_path, update_tree

from .config import PvConfig
from .logrepo import BRANCH, LogRepo
from .prsource import hosts_setting


def area_ref(origin: str) -> str:
    return f"refs/heads/pvs/{origin}"


def area_paths(origin: str, epoch: int) -> tuple[str, str]:
    base = f"pvs/{origin}"
    return f"{base}/str/{epoch}.note", f"{base}/reports/{epoch}.json"


def failure_report(record: layout.EpochRecord, str_sha256: str) -> bytes:
    """The report a PV sends the PR for one epoch: what it rejected or removed, and why."""
    return canonical_json({
        "v": 1, "origin": record.origin, "epoch": record.epoch, "str_sha256": str_sha256,
        "pr": {"from": record.pr_from, "to": record.pr_to},
        "rejected": sorted(record.rejected, key=lambda r: r["name"]),
        "removed": sorted(record.removed, key=lambda r: r["name"]),
        "refused_commits": [c for c in record.commits if not c.get("ok", True)],
    }) + b"\n"


def _last_epoch_in(repo: pygit2.Repository, commit: pygit2.Commit | None, origin: str) -> int:
    if commit is None:
        return 0
    data = read_path(repo, commit.tree, f"pvs/{origin}/latest.note")
    if data is None:
        return 0
    text = notes.parse(data).text
    return parse_head(text).epoch


def push_pr_area(config: PvConfig) -> str:
    """Commit the missing STRs and reports to refs/heads/pvs/<origin> and push it."""
    try:
        with exclusive_lock(config.state_dir / "pr-mirror.lock", wait=True):
            return _push_pr_area(config)
    except Exception as exc:  # a failed push must never undo or block the epoch
        return f"failed: {exc}"


def _push_pr_area(config: PvConfig) -> str:
    log = LogRepo(config.log_repo)
    head = log.head()
    if head is None:
        return "nothing to push"
    mirror = pygit2.Repository(str(config.state_dir / "pr.git"))
    ref = area_ref(config.origin)
    local = mirror.references.get(ref)
    remote = mirror.references.get(f"refs/remotes/pr/pvs/{config.origin}")
    base: pygit2.Commit | None = None
    if local is not None:
        base = commit_at(mirror, local.target)
        if remote is not None and not (remote.target == local.target
                                       or mirror.descendant_of(local.target, remote.target)):
            base = commit_at(mirror, remote.target)  # our local tip is stale: restart from what the PR has
    elif remote is not None:
        base = commit_at(mirror, remote.target)
    done = _last_epoch_in(mirror, base, config.origin)
    latest = parse_head(notes.parse(log.read_required(head, layout.LATEST_STR)).text).epoch
    if done < latest:
        changes: dict[str, bytes | None] = {}
        for epoch in range(done + 1, latest + 1):
            note = log.read_required(head, layout.str_path(epoch))
            record = layout.EpochRecord.decode(log.read_required(head, layout.epoch_record_path(epoch)))
            str_file, report_file = area_paths(config.origin, epoch)
            changes[str_file] = note
            changes[report_file] = failure_report(record, hashlib.sha256(note).hexdigest())
        changes[f"pvs/{config.origin}/latest.note"] = log.read_required(head, layout.LATEST_STR)
        tree = update_tree(mirror, base.tree if base else None, changes)
        commit = _signed_commit(config, mirror, tree, base, f"{config.origin}: epochs {done + 1}..{latest}")
        mirror.references.create(ref, commit, force=True)
    known_hosts = pinned_hosts_file(config.pr_url, config.known_hosts, "keys.known_hosts in pv.yaml")
    result = subprocess.run(["git", "--git-dir", str(mirror.path), "push", "--quiet", config.pr_url,
                             f"{ref}:{ref}"], capture_output=True, text=True,
                            env=git_env(config.ssh_key, known_hosts), timeout=120)
    if result.returncode != 0:
        why = connection_problem(result.stderr, config.pr_url, action="push to", key_setting="keys.ssh in pv.yaml",
                                 hosts_setting=hosts_setting(config.known_hosts))
        last = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "git push failed"
        return f"failed: {why or last}"
    return "ok"


def _signed_commit(config: PvConfig, repo: pygit2.Repository, tree: pygit2.Oid,
                   parent: pygit2.Commit | None, message: str) -> pygit2.Oid:
    """A commit signed with the PV's SSH key (the PR accepts nothing else on its area)."""
    if not config.ssh_key:
        raise PdsError("the PV has no SSH key (keys.ssh in pv.yaml) to sign its PR area commits")
    return signed_commit(repo.path, tree, [str(parent.id)] if parent else [], message, config.ssh_key,
                         config.origin)


def push_mirrors(config: PvConfig) -> dict[str, str]:
    results = {}
    for url in config.mirrors:
        try:
            known_hosts = pinned_hosts_file(url, config.known_hosts, "keys.known_hosts in pv.yaml")
        except PdsError as exc:
            results[url] = f"failed: {exc}"
            continue
        result = subprocess.run(["git", "--git-dir", str(config.log_repo), "push", "--quiet", url,
                                 f"{BRANCH}:{BRANCH}"], capture_output=True, text=True,
                                env=git_env(config.ssh_key, known_hosts), timeout=300)
        if result.returncode == 0:
            results[url] = "ok"
        else:
            lines = result.stderr.strip().splitlines()
            why = connection_problem(result.stderr, url, action="push to", key_setting="keys.ssh in pv.yaml",
                                     hosts_setting=hosts_setting(config.known_hosts))
            results[url] = f"failed: {why or (lines[-1] if lines else 'git push failed')}"
    return results
