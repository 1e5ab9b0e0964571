"""The PV epoch job: fetch, re-check, verify, update the tree, sign, commit once.

Safety properties, and what provides each:

* One STR per epoch, one signer per PV. Before signing, the job proves that its log extends
  the PV's authoritative history (primary log mirror, else its PR area) and reserves the epoch
  there for the exact STR body by a compare-and-swap (pds_log.pv.authority): a second host, a
  copied PV directory or an old CI cache is refused before it signs anything. An exclusive lock
  on the state dir serialises jobs on one machine; the log branch moves by compare-and-swap
  (`git update-ref NEW OLD`). The STR body is written to ``state/pending.json`` before the
  reservation, the signed STR once signed (then the commit id, once written); a job killed
  after that is completed by the next run with the *same* STR (the commit is moved into place,
  or the epoch is replayed with the same PR head and time, and Ed25519 being deterministic
  yields the same bytes) -- or, if that cannot be reproduced, nothing is signed. A push that
  fails after the commit is an error (`EpochNotPublished`); the next run pushes it.
* Atomic epochs. Objects are written first; the branch update is the single commit point. A
  job killed at any moment leaves the log at the previous epoch or at the new complete one.
* History. The new PR head must descend from the last processed head, else nothing is signed.
* Independence. Every new PR commit is re-checked against the PR's policy; a plugin touched
  by a refused commit is rejected (and stays so until a later valid commit touches it).
* A hostile PR cannot stop the PV. A refused commit is never adopted: the plugins it touches
  are tainted as above, and a policy it sets is never used -- every commit is judged against
  the policy *in effect*, the one in ``pds/policy.yaml`` of the last commit the PV did not
  refuse that set it (the epoch record's ``pr_policy``), until an accepted admin commit changes
  it again. A refused commit that no key of the policy signed (unsigned, a bad signature, an
  unknown key) can only be on the PR's branch if its hook was bypassed: its entry in the epoch
  record's ``commits`` carries an ``alarm`` (and so does the failure report sent to the PR
  area, and the site). Whatever a commit or plugin holds, it fails alone and the epoch ends
  with a signed STR.
* Isolation. A malformed plugin is rejected alone, with its reason; it never stops the epoch.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pygit2

from pds_log.core import log_layout as layout
from pds_log.core.binding import Binding, canonical_json, plugin_files_digest, sha256_hex
from pds_log.core.errors import FormatError, PdsError
from pds_log.core.manifest import check_pluglets, parse_plugin_manifest
from pds_log.core.names import is_valid_name, name_key
from pds_log.core import note as notes
from pds_log.core.signed_root import ZERO_HASH, SignedTreeRoot, TreeHead, sign_str
from pds_log.core.tiles import tiles_on_paths
from pds_log.infra.files import atomic_write_bytes, clear_stale_git_locks, exclusive_lock
from pds_log.infra.resources import template

from . import authority, verification
from .config import PvConfig
from .logrepo import LogRepo, RaceLost
from .prsource import PluginSnapshot, PrMirror
from .treestate import TreeState

PENDING = "pending.json"
TREE_CACHE = "tree.cache"
LEGACY_POLICY_DEPTH = 1000  # first-parent commits searched for a usable policy (records without pr_policy)


@dataclass
class EpochOptions:
    now: int | None = None  # STR time (tests); default: the clock
    wait_lock: bool = False
    progress: Callable[[str], None] | None = None
    steps: Callable[[int, int], None] | None = None  # (verifier runs done, of total): drives a progress bar
    pr_head: str | None = None  # process exactly this PR commit (seal of a plan)
    require_cached: bool = False  # every verifier result must come from the cache (seal)
    push: bool = True


@dataclass
class EpochSummary:
    epoch: int
    origin: str
    root: str
    size: int
    str_sha256: str
    pr_from: str | None
    pr_to: str
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[dict[str, str]] = field(default_factory=list)
    rejected: list[dict[str, str]] = field(default_factory=list)
    alarms: list[str] = field(default_factory=list)  # PR-integrity alarms of this epoch
    pushes: dict[str, str] = field(default_factory=dict)
    recovered: bool = False
    seconds: dict[str, float] = field(default_factory=dict)

    def to_obj(self) -> dict[str, Any]:
        return dict(self.__dict__)


class EpochNotPublished(PdsError):
    """The epoch is signed and committed to the local log, but a push failed: it is not yet
    where peers and other signers look. Never an exit 0; the next run pushes it."""

    def __init__(self, summary: EpochSummary, failed: dict[str, str]) -> None:
        self.summary = summary
        self.failed = failed
        where = "; ".join(f"{target}: {status}" for target, status in sorted(failed.items()))
        super().__init__(f"epoch {summary.epoch} is signed and committed locally but not published ({where}). "
                         f"Fix the push target, then run the next epoch (it pushes everything still missing); "
                         f"do not run an epoch elsewhere meanwhile")


# ---------------------------------------------------------------------- recovery
@dataclass
class Replay:
    """An STR was signed for the next epoch but the epoch never committed: the next run must
    reproduce exactly that STR (same PR head, same time) or sign nothing."""

    epoch: int
    head: str  # the STR body (TreeHead text) to reproduce
    time: int
    pr: str
    signed: bool = False  # the STR was signed (not only reserved)


def recover_pending(log: LogRepo, state_dir: Path) -> tuple[int | None, Replay | None]:
    """Deal with an epoch interrupted after its STR was signed.

    Returns (epoch completed now, or None; replay constraint for this run, or None)."""
    path = state_dir / PENDING
    try:
        pending = json.loads(path.read_text())
    except FileNotFoundError:
        return None, None
    except (OSError, json.JSONDecodeError) as exc:
        raise PdsError(f"{path}: unreadable pending epoch record ({exc}); inspect it by hand") from None
    head = log.head()
    head_id = str(head.id) if head else None
    if pending.get("commit") and head_id == pending["commit"]:
        path.unlink()
        return None, None
    if head_id == pending["parent"]:
        commit = pending.get("commit")
        if commit:
            try:
                log.repo[commit]
            except KeyError:
                commit = None
        if commit:
            parent = pygit2.Oid(hex=pending["parent"]) if pending["parent"] else None
            log.advance(parent, pygit2.Oid(hex=commit), pending["epoch"])
            path.unlink()
            return int(pending["epoch"]), None
        note = pending.get("note")
        head_text = notes.parse(note.encode()).text if note else pending["head"]
        return None, Replay(int(pending["epoch"]), head_text, int(pending["time"]), pending["pr"], bool(note))
    # The branch moved on without this STR (another job won the race): it was never published.
    path.unlink()
    return None, None


def load_tree_state(log: LogRepo, head: pygit2.Commit | None, prev: SignedTreeRoot | None,
                    state_dir: Path) -> TreeState:
    if head is None or prev is None:
        return TreeState.from_values({})
    cached = TreeState.load(state_dir / TREE_CACHE, str(head.id), prev.head.root)
    if cached is not None:
        return cached
    state = TreeState.from_values({b.name: b.value() for b in log.bindings(head)})
    if state.tree.root() != prev.head.root:
        raise PdsError(
            f"log repo {log.path}: the bindings of epoch {prev.head.epoch} hash to "
            f"{state.tree.root().hex()}, but its STR signed {prev.head.root.hex()}; refusing to continue")
    return state


# ---------------------------------------------------------------------- the job
class EpochJob:
    def __init__(self, config: PvConfig, options: EpochOptions) -> None:
        self.config = config
        self.options = options
        self.changes: dict[str, bytes | None] = {}
        self.timings: dict[str, float] = {}

    def say(self, line: str) -> None:
        if self.options.progress:
            self.options.progress(line)

    def _tick(self, label: str, start: float) -> float:
        now = time.perf_counter()
        self.timings[label] = round(now - start, 4)
        return now

    def run(self) -> EpochSummary:
        config = self.config
        # Objects are written without an fsync each (thousands per big epoch); one os.sync()
        # before the branch moves makes them durable, and the ref update is fsynced by git.
        pygit2.settings.enable_fsync_gitdir(False)
        config.state_dir.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(config.state_dir / "epoch.lock", wait=self.options.wait_lock):
            summary = self._run_locked()
            if self.options.push:
                summary.pushes = publish_pushes(config, summary)
        failed = {target: status for target, status in summary.pushes.items() if status != "ok"}
        if failed:
            raise EpochNotPublished(summary, failed)
        return summary

    def _run_locked(self) -> EpochSummary:
        config, opts = self.config, self.options
        t0 = time.perf_counter()
        clear_stale_git_locks(config.log_repo)  # left by a killed run; we hold the epoch lock
        log = LogRepo(config.log_repo)
        recovered, replay = recover_pending(log, config.state_dir)
        if recovered:
            self.say(f"recovered epoch {recovered} from an interrupted run")
        signer = config.signer()
        verifier = signer.verifier()
        head = log.head()
        prev = log.latest_str(head, verifier) if head else None
        epoch = prev.head.epoch + 1 if prev else 1
        state = load_tree_state(log, head, prev, config.state_dir)
        t = self._tick("load", t0)

        mirror = PrMirror(config.state_dir / "pr.git", config.pr_url, config.pr_branch, config.ssh_key)
        fetched = mirror.fetch()
        standing = authority.check_standing(config, log, epoch - 1, mirror.repo)
        for line in standing.notes:
            self.say(line)
        replay = self._replay_of(replay, standing.replay)
        want_now, want_pr = (replay.time, replay.pr) if replay is not None else (opts.now, opts.pr_head)
        pr_head = mirror.commit(want_pr) if want_pr else fetched
        last = prev.head.pr if prev else None
        mirror.check_descends(pr_head, last)
        if want_pr:
            mirror.check_descends(fetched, str(pr_head.id))
        commits = mirror.new_commits(pr_head, last)
        if last is None:
            self._check_root(mirror, pr_head)
        t = self._tick("fetch", t)

        now = want_now if want_now is not None else int(time.time())
        policy_source = self._policy_source(log, head, prev, mirror)
        checks, tainted, source_of, policy_source = self._check_commits(mirror, commits, now, policy_source)
        t = self._tick("commit_checks", t)

        policy = config.policy_hash()
        changed = mirror.changed_plugins(mirror.commit(last) if last else None, pr_head)
        if prev is not None and prev.head.policy != policy:
            self.say("acceptance policy changed: re-verifying every plugin")
            changed |= set(mirror.plugin_names(pr_head)) | set(state.values)
        record = layout.EpochRecord(epoch=epoch, origin=config.origin, pr_from=last, pr_to=str(pr_head.id),
                                    time=now, root="", size=0, commits=checks, policy=policy,
                                    pr_policy=policy_source or "")
        old_keys = [name_key(n) for n in changed if is_valid_name(n)]
        old_tiles = tiles_on_paths(state.tree, old_keys)
        self._process_plugins(log, head, mirror, pr_head, sorted(changed), tainted, source_of, state, record, epoch)
        t = self._tick("verify", t)

        root = state.tree.root()
        new_tiles = tiles_on_paths(state.tree, old_keys)
        for h, tile in old_tiles.items():
            if h not in new_tiles:
                self.changes[layout.tile_path(tile.level, h)] = None
        for h, tile in new_tiles.items():
            if h not in old_tiles:
                self.changes[layout.tile_path(tile.level, h)] = tile.encode()
        record.root, record.size = root.hex(), len(state.tree)
        head_str = TreeHead(config.origin, epoch, root, prev.hash if prev else ZERO_HASH, now,
                            str(pr_head.id), len(state.tree), policy)
        t = self._tick("tree", t)

        pending = config.state_dir / PENDING
        parent_id = str(head.id) if head else None
        if replay is not None and (replay.epoch != epoch or replay.head != head_str.text()):
            raise authority.SigningRefused(
                f"epoch {replay.epoch} is reserved for an STR (by an interrupted run, see {pending}, or by another "
                f"signer) that this run cannot reproduce; refusing to sign a second, different STR for that epoch. "
                f"{authority.HOW_TO_MOVE}")
        # The body is persisted before the reservation and the signature before anything can
        # publish it: a run that dies from here on is completed or replayed with this very STR.
        pending_doc: dict[str, Any] = {"epoch": epoch, "parent": parent_id, "head": head_str.text(), "note": None,
                                       "time": now, "pr": str(pr_head.id), "commit": None}
        atomic_write_bytes(pending, json.dumps(pending_doc).encode())
        authority.reserve(standing, authority.Reservation(epoch, head_str.text()))
        signed = sign_str(head_str, signer)
        pending_doc["note"] = signed.note.decode()
        atomic_write_bytes(pending, json.dumps(pending_doc).encode())
        self.changes[layout.LATEST_STR] = signed.note
        self.changes[layout.str_path(epoch)] = signed.note
        self.changes[layout.epoch_record_path(epoch)] = record.encode()
        descriptor = json.dumps(config.descriptor(), indent=1, sort_keys=True).encode() + b"\n"
        if head is None or log.read(head, layout.PV_DESCRIPTOR) != descriptor:
            self.changes[layout.PV_DESCRIPTOR] = descriptor
        if head is None:
            self.changes["README.md"] = template("log", "README.md").read_bytes()
        message = (f"epoch {epoch}\n\nroot {root.hex()}\npr {pr_head.id}\nsize {len(state.tree)}\n"
                   f"added {len(record.added)} updated {len(record.updated)} removed {len(record.removed)} "
                   f"rejected {len(record.rejected)}\n")
        commit_id = log.write_epoch_commit(head, self.changes, epoch, config.origin, now, message)
        os.sync()  # every object of the epoch is on disk before anything points at it
        pending_doc["commit"] = str(commit_id)
        atomic_write_bytes(pending, json.dumps(pending_doc).encode())
        try:
            log.advance(head.id if head else None, commit_id, epoch)
        except RaceLost:
            pending.unlink(missing_ok=True)
            raise
        pending.unlink(missing_ok=True)
        state.save(config.state_dir / TREE_CACHE, str(commit_id))
        self._tick("commit", t)
        return EpochSummary(
            epoch=epoch, origin=config.origin, root=root.hex(), size=len(state.tree),
            str_sha256=signed.hash.hex(), pr_from=last, pr_to=str(pr_head.id), added=sorted(record.added),
            updated=sorted(record.updated), removed=record.to_obj()["removed"], rejected=record.to_obj()["rejected"],
            alarms=[c["alarm"] for c in checks if c.get("alarm")], recovered=bool(recovered), seconds=self.timings)

    # ------------------------------------------------------------------ steps
    def _replay_of(self, local: Replay | None, reserved: authority.Reservation | None) -> Replay | None:
        """The STR this run must reproduce: an interrupted run's here, or the authority's
        reserved-but-unpublished one (which wins over an unsigned local one: it was reserved)."""
        if reserved is not None and (local is None or (local.head != reserved.head and not local.signed)):
            head = reserved.tree_head()
            local = Replay(reserved.epoch, reserved.head, head.time, head.pr)
        if local is not None:
            self.say(f"replaying epoch {local.epoch}: its STR was reserved or signed by an earlier run")
        return local

    def _check_root(self, mirror: PrMirror, pr_head: pygit2.Commit) -> None:
        """On the first epoch, the PR's root commit must be the one pinned at init."""
        pinned = self.config.pr_root
        if not pinned:
            return
        roots = [c for c in mirror.new_commits(pr_head, None) if not c.parents]
        if [str(c.id) for c in roots] != [pinned]:
            raise PdsError(f"the PR's root commit is {', '.join(str(c.id) for c in roots)}, "
                           f"not the pinned {pinned}: wrong or rewritten PR; refusing to sign anything")

    def _policy_source(self, log: LogRepo, head: pygit2.Commit | None, prev: SignedTreeRoot | None,
                       mirror: PrMirror) -> str | None:
        """The PR commit whose policy was in effect after the last epoch (None before the first)."""
        if head is None or prev is None:
            return None
        data = log.read(head, layout.epoch_record_path(prev.head.epoch))
        if data is None:
            raise PdsError(f"log repo {log.path}: no record of epoch {prev.head.epoch}; refusing to continue")
        record = layout.EpochRecord.decode(data, layout.epoch_record_path(prev.head.epoch))
        if record.pr_policy:
            return record.pr_policy
        # Records older than pr_policy: the policy at the last PR head, or where that one does
        # not parse (a planted commit processed by an older PV), the newest one before it.
        from pds_log.infra.commit_check import usable_policy

        try:
            return usable_policy(mirror.repo, mirror.commit(prev.head.pr), LEGACY_POLICY_DEPTH)[1]
        except PdsError:
            return prev.head.pr  # its commits are refused with the reason

    def _check_commits(self, mirror: PrMirror, commits: list[pygit2.Commit], now: int, policy_source: str | None):
        """Re-check every new commit against the policy in effect before it; returns (records,
        tainted name -> reason, name -> source commit, the commit whose policy is in effect after)."""
        from pds_log.infra import commit_check

        records: list[dict[str, Any]] = []
        tainted: dict[str, str] = {}
        source_of: dict[str, str] = {}
        chain = commit_check.PolicyChain(mirror.repo, policy_source)
        for commit in commits:
            touched = sorted(mirror.touched_plugins(commit))
            verdict, judged_by = chain.judge(commit, now)
            # "policy": the commit whose pds/policy.yaml judged this one (so an auditor can redo it)
            entry = {"id": str(commit.id), "signer": verdict.signer, "ok": verdict.ok,
                     "reasons": verdict.reasons, "plugins": touched, "policy": judged_by}
            if verdict.unverifiable:
                entry["alarm"] = (f"PR integrity: commit {str(commit.id)[:12]} is on the PR's branch although no key "
                                  f"of the PR's policy signed it ({'; '.join(verdict.reasons)}); the PR's hook was "
                                  f"bypassed or the PR is compromised. Its changes are not adopted.")
                self.say(entry["alarm"])
            records.append(entry)
            commit_check.follow_plugins(verdict, touched, source_of, tainted)
            if not verdict.ok:
                self.say(f"commit {str(commit.id)[:12]} refused: {'; '.join(verdict.reasons)}")
        return records, tainted, source_of, chain.source

    def _process_plugins(self, log, head, mirror, pr_head, names, tainted, source_of, state, record, epoch):
        to_verify: list[tuple[PluginSnapshot, Any]] = []
        for name in names:
            if not is_valid_name(name):
                record.rejected.append({"name": name, "reason": "invalid plugin directory name"})
                continue
            snap = mirror.plugin(pr_head, name)
            if snap is None:
                if name in state.values:
                    state.delete(name)
                    record.removed.append({"name": name, "reason": "deleted from the PR"})
                    self.changes[layout.binding_path(name)] = None
                self._write_result(name, epoch, "removed", "deleted from the PR", None, {}, None)
                self.say(f"  {name}: removed (deleted from the PR)")
                continue
            previous = self._previous_result(log, head, name)
            reason = tainted.get(name)
            if reason is None and name not in source_of and previous and previous.get("taint"):
                reason = previous["taint"]
            if reason is not None:
                self._reject(state, record, epoch, name, reason, snap, {}, source=None, taint=reason)
                continue
            source = source_of.get(name) or (previous or {}).get("commit")
            if source is None:
                source = last_touching_commit(mirror, pr_head, name)
            if snap.problem:
                self._reject(state, record, epoch, name, snap.problem, snap, {}, source)
                continue
            try:
                manifest = parse_plugin_manifest(snap.files, name)
            except FormatError as exc:
                self._reject(state, record, epoch, name, f"malformed manifest: {exc}", snap, {}, source)
                continue
            except (ValueError, RecursionError) as exc:  # a parser letting its own error escape: this plugin only
                self._reject(state, record, epoch, name, f"malformed manifest: {type(exc).__name__}: {str(exc)[:300]}",
                             snap, {}, source)
                continue
            problems = check_pluglets(manifest, snap.files)
            if problems:
                self._reject(state, record, epoch, name, "; ".join(problems), snap, {}, source)
                continue
            to_verify.append((snap, manifest, source))

        results = verification.run_all(self.config, [(s, m) for s, m, _ in to_verify],
                                       require_cached=self.options.require_cached, progress=self.say,
                                       steps=self.options.steps)
        formula = self.config.acceptance_formula()
        for snap, manifest, source in to_verify:
            outcome = results[snap.name]
            truth = {v: r.status == "pass" for v, r in outcome.items()}
            if formula.evaluate(truth):
                binding = Binding.create(
                    snap.name, manifest.path, sha256_hex(snap.files[manifest.path]),
                    {p: sha256_hex(snap.files[p]) for p in manifest.pluglets}, source,
                    [v for v, ok in truth.items() if ok])
                self._accept(state, record, epoch, snap, manifest, binding, outcome)
            else:
                failing = [f"{v}: {r.status}: {r.reason}" for v, r in sorted(outcome.items()) if r.status != "pass"]
                self._reject(state, record, epoch, snap.name, "not accepted (" + "; ".join(failing) + ")",
                             snap, outcome, source)

    def _previous_result(self, log, head, name) -> dict | None:
        if head is None:
            return None
        data = log.read(head, layout.result_path(name))
        return json.loads(data) if data else None

    def _accept(self, state, record, epoch, snap, manifest, binding, outcome) -> None:
        name = snap.name
        value = binding.value()
        old = state.values.get(name)
        if old != value:
            (record.updated if old is not None else record.added).append(name)
            state.set(name, value)
            self.changes[layout.binding_path(name)] = binding.encode()
        for path in (*manifest.files, *manifest.pluglets):
            data = snap.files[path]
            self.changes[layout.blob_path("bytecode", sha256_hex(data))] = data
        self._write_result(name, epoch, "accepted", "", binding.source, outcome, snap, value)
        self.say(f"  {name}: accepted ({', '.join(binding.properties)})")

    def _reject(self, state, record, epoch, name, reason, snap, outcome, source, taint=None) -> None:
        record.rejected.append({"name": name, "reason": reason})
        if name in state.values:
            state.delete(name)
            record.removed.append({"name": name, "reason": reason})
            self.changes[layout.binding_path(name)] = None
        self._write_result(name, epoch, "rejected", reason, source, outcome, snap, taint=taint)
        self.say(f"  {name}: rejected: {reason}")

    def _write_result(self, name, epoch, status, reason, source, outcome, snap, value=None, taint=None) -> None:
        verifiers = {}
        for vname, res in sorted(outcome.items()):
            obj = res.to_obj()
            log_text = obj.pop("log", "") or ""
            log_bytes = log_text.encode("utf-8", "replace")
            digest = sha256_hex(log_bytes)
            self.changes[layout.blob_path("logs", digest)] = log_bytes
            obj["log_sha256"] = digest
            verifiers[vname] = obj
        doc = {
            "v": 1, "name": name, "epoch": epoch, "status": status, "reason": reason,
            "commit": source, "files_sha256": plugin_files_digest(snap.files) if snap else None,
            "binding_value": value.hex() if value else None, "verifiers": verifiers, "taint": taint,
        }
        self.changes[layout.result_path(name)] = canonical_json(doc) + b"\n"


def last_touching_commit(mirror: PrMirror, head: pygit2.Commit, name: str) -> str:
    """The newest commit at or before `head` that changed plugins/<name> (first-parent walk)."""
    commit = head
    while True:
        if mirror.touched_plugins(commit) & {name}:
            return str(commit.id)
        if not commit.parents:
            return str(commit.id)
        commit = commit.parents[0]


# ---------------------------------------------------------------------- after the commit
def publish_pushes(config: PvConfig, summary: EpochSummary) -> dict[str, str]:
    """Push the STR + failure report to the PR area and the log to its mirrors.

    Failures are reported, never raised: the epoch is committed, and the next epoch pushes
    everything that is still missing."""
    from .pushes import push_mirrors, push_pr_area

    results: dict[str, str] = {}
    if config.report_to_pr:
        results["pr"] = push_pr_area(config)
    results.update(push_mirrors(config))
    return results


def run_epoch(config: PvConfig, options: EpochOptions | None = None) -> EpochSummary:
    return EpochJob(config, options or EpochOptions()).run()

