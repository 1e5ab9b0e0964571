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
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pygit2

from pds_log.core import log_layout as layout
from pds_log.core import note as notes
from pds_log.core.binding import Binding, plugin_files_digest, sha256_hex
from pds_log.core.errors import PdsError
from pds_log.core.names import is_valid_name
from pds_log.core.records import ResultRecord, VerifierOutcome
from pds_log.core.signed_root import ZERO_HASH, TreeHead
from pds_log.core.strs import SignedStr, TreeHeadV2, head_version, open_any, record_of, sign_any, v2_head
from pds_log.core.tiles import TilePosition
from pds_log.infra.files import atomic_write_bytes, clear_stale_git_locks, exclusive_lock, sync_new_loose_objects
from pds_log.infra.resources import template

from . import authority, epochlog, verification
from .config import PvConfig
from .logrepo import LogRepo, RaceLost
from .plan import DELETED, Decision, EpochPlan, PreviousResult, PreviousState, PrSnapshot, plan_epoch
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
    str_version: int = 1
    witnesses: dict[str, str] = field(default_factory=dict)  # witness name -> cosigned, or why not
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


def load_tree_state(log: LogRepo, head: pygit2.Commit | None, prev: SignedStr | None,
                    state_dir: Path) -> TreeState:
    """The tree after the last epoch: its signed root, loaded from the log's tiles on demand
    (pv/treestate.py), and in full from the cache or the bindings when it must be."""
    if head is None or prev is None:
        return TreeState.from_values({})
    log_layout = log.layout(head)
    root = prev.head.root

    def fetch_tile(level: int, tile_hash: bytes, key: bytes) -> bytes:
        return log.tile(head, level, tile_hash, log_layout, key)

    def full_load() -> dict[str, bytes]:
        cached = TreeState.load_values(state_dir / TREE_CACHE, str(head.id), root)
        if cached is not None:
            return cached
        values = {b.name: b.value() for b in log.bindings(head)}
        rebuilt = TreeState.from_values(values).tree.root()
        if rebuilt != root:
            raise PdsError(
                f"log repo {log.path}: the bindings of epoch {prev.head.epoch} hash to "
                f"{rebuilt.hex()}, but its STR signed {root.hex()}; refusing to continue")
        return values

    return TreeState.partial(root, prev.head.size, fetch_tile, full_load)


# ---------------------------------------------------------------------- the job
@dataclass
class EpochContext:
    """Everything one epoch works on, loaded once: the log at its head, the PR mirror, the tree
    state, and what the epoch writes (the record and the changes to the log's tree)."""

    config: PvConfig
    log: LogRepo
    head: pygit2.Commit | None
    prev: SignedStr | None
    state: TreeState
    mirror: PrMirror
    say: Callable[[str], None]
    head_layout: int = layout.LATEST_LAYOUT  # the log layout of `head` (a new log: the latest)
    log_layout: int = layout.LATEST_LAYOUT  # the layout this epoch writes (pv.yaml log_layout)
    pr_head: pygit2.Commit | None = None
    now: int = 0
    record: layout.EpochRecord | None = None
    changes: dict[str, bytes | pygit2.Oid | None] = field(default_factory=dict)

    @property
    def epoch(self) -> int:
        return self.prev.head.epoch + 1 if self.prev else 1

    @property
    def migrating_tiles(self) -> bool:
        """This epoch moves the log to a layout that stores tiles by position."""
        return self.head is not None and layout.rewrites_tiles(self.head_layout, self.log_layout)

    @property
    def last_pr(self) -> str | None:
        return self.prev.head.pr if self.prev else None

    def previous_result(self, name: str) -> ResultRecord | None:
        if self.head is None:
            return None
        path = layout.result_path(name, self.head_layout)
        data = self.log.read(self.head, path)
        return ResultRecord.decode(data, path) if data else None


def open_context(config: PvConfig, say: Callable[[str], None]) -> EpochContext:
    """The log at its head (the STR checked with the PV's key) and the PR mirror, not fetched."""
    log = LogRepo(config.log_repo)
    head = log.head()
    prev = open_any(log.read_required(head, layout.LATEST_STR), config.signer().verifier()) if head else None
    state = load_tree_state(log, head, prev, config.state_dir)
    mirror = PrMirror(config.state_dir / "pr.git", config.pr_url, config.pr_branch, config.ssh_key,
                      config.known_hosts)
    head_layout = log.layout(head) if head is not None else config.log_layout
    if head_layout > config.log_layout:
        raise PdsError(f"{config.path}: log_layout is {config.log_layout}, but the log {log.path} has layout "
                       f"{head_layout} since an earlier epoch; a log never goes back. Set 'log_layout: "
                       f"{head_layout}'; nothing was signed")
    return EpochContext(config, log, head, prev, state, mirror, say, head_layout, config.log_layout)


def select_pr_head(ctx: EpochContext, fetched: pygit2.Commit, pinned: str | None) -> pygit2.Commit:
    """The PR head to process (`pinned`, or the fetched one), checked to extend the last one."""
    pr_head = ctx.mirror.commit(pinned) if pinned else fetched
    ctx.mirror.check_descends(pr_head, ctx.last_pr)
    if pinned:
        ctx.mirror.check_descends(fetched, str(pr_head.id))
    return pr_head


class _Lazy(Mapping[str, Any]):
    """A read-on-demand mapping for the planner (which stays free of git)."""

    def __init__(self, read: Callable[[str], Any], keys: Callable[[], set[str]] = set) -> None:
        self._read, self._keys = read, keys
        self._seen: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._seen:
            self._seen[name] = self._read(name)
        if self._seen[name] is None:
            raise KeyError(name)
        return self._seen[name]

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except KeyError:
            return default

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())


def _previous_of(ctx: EpochContext, name: str) -> PreviousResult | None:
    record = ctx.previous_result(name)
    return PreviousResult(record.commit, record.taint) if record else None


def plan_for(ctx: EpochContext, checks: CommitChecks) -> EpochPlan:
    """The planner's view of this epoch: the log's state and the judged PR snapshot."""
    assert ctx.pr_head is not None
    pr_head, last = ctx.pr_head, ctx.last_pr
    previous = PreviousState(ctx.state.names(), ctx.prev.head.policy if ctx.prev else None,
                             _Lazy(lambda n: _previous_of(ctx, n)))
    snapshot = PrSnapshot(
        str(pr_head.id), frozenset(ctx.mirror.changed_plugins(ctx.mirror.commit(last) if last else None, pr_head)),
        _LazyNames(lambda: ctx.mirror.plugin_names(pr_head)), _Lazy(lambda n: ctx.mirror.plugin(pr_head, n)),
        checks.tainted, checks.source_of)
    return plan_epoch(previous, snapshot, ctx.config.policy_hash())


class _LazyNames(Collection[str]):
    """Every plugin name at the PR head, listed only when the planner asks (a policy change)."""

    def __init__(self, read: Callable[[], Any]) -> None:
        self._read = read
        self._names: set[str] | None = None

    def _all(self) -> set[str]:
        if self._names is None:
            self._names = set(self._read())
        return self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __contains__(self, name: object) -> bool:
        return name in self._all()


@dataclass
class CommitChecks:
    """The verdicts of the new PR commits: records, taints, sources, and the policy in effect after."""

    records: list[dict[str, Any]]
    tainted: dict[str, str]
    source_of: dict[str, str]
    policy_source: str | None


def policy_source(ctx: EpochContext) -> str | None:
    """The PR commit whose policy was in effect after the last epoch (None before the first)."""
    if ctx.head is None or ctx.prev is None:
        return None
    path = layout.epoch_record_path(ctx.prev.head.epoch)
    data = ctx.log.read(ctx.head, path)
    if data is None:
        raise PdsError(f"log repo {ctx.log.path}: no record of epoch {ctx.prev.head.epoch}; refusing to continue")
    record = layout.EpochRecord.decode(data, path)
    if record.pr_policy:
        return record.pr_policy
    # Records older than pr_policy: the policy at the last PR head, or where that one does
    # not parse (a planted commit processed by an older PV), the newest one before it.
    from pds_log.infra.commit_check import usable_policy

    try:
        return usable_policy(ctx.mirror.repo, ctx.mirror.commit(ctx.prev.head.pr), LEGACY_POLICY_DEPTH)[1]
    except PdsError:
        return ctx.prev.head.pr  # its commits are refused with the reason


def check_commits(ctx: EpochContext) -> CommitChecks:
    """Re-check every new commit against the policy in effect before it."""
    from pds_log.infra import commit_check

    assert ctx.pr_head is not None
    checks = CommitChecks([], {}, {}, None)
    chain = commit_check.PolicyChain(ctx.mirror.repo, policy_source(ctx))
    for commit in ctx.mirror.new_commits(ctx.pr_head, ctx.last_pr):
        touched = sorted(ctx.mirror.touched_plugins(commit))
        verdict, judged_by = chain.judge(commit, ctx.now)
        # "policy": the commit whose pds/policy.yaml judged this one (so an auditor can redo it)
        entry = {"id": str(commit.id), "signer": verdict.signer, "ok": verdict.ok,
                 "reasons": verdict.reasons, "plugins": touched, "policy": judged_by}
        if verdict.unverifiable:
            alarm = (f"PR integrity: commit {str(commit.id)[:12]} is on the PR's branch although no key "
                     f"of the PR's policy signed it ({'; '.join(verdict.reasons)}); the PR's hook was "
                     f"bypassed or the PR is compromised. Its changes are not adopted.")
            entry["alarm"] = alarm
            ctx.say(alarm)
        checks.records.append(entry)
        commit_check.follow_plugins(verdict, touched, checks.source_of, checks.tainted)
        if not verdict.ok:
            ctx.say(f"commit {str(commit.id)[:12]} refused: {'; '.join(verdict.reasons)}")
    checks.policy_source = chain.source
    return checks


def check_root(ctx: EpochContext) -> None:
    """On the first epoch, the PR's root commit must be the one pinned at init."""
    pinned = ctx.config.pr_root
    if not pinned or ctx.last_pr is not None:
        return
    assert ctx.pr_head is not None
    roots = [c for c in ctx.mirror.new_commits(ctx.pr_head, None) if not c.parents]
    if [str(c.id) for c in roots] != [pinned]:
        raise PdsError(f"the PR's root commit is {', '.join(str(c.id) for c in roots)}, "
                       f"not the pinned {pinned}: wrong or rewritten PR; refusing to sign anything")


class EpochJob:
    def __init__(self, config: PvConfig, options: EpochOptions) -> None:
        self.config = config
        self.options = options
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
        # libgit2 writes objects without an fsync each; before the branch moves, the epoch syncs
        # the loose objects it wrote (one os.sync() past thousands: infra.files), and git fsyncs
        # the ref update.
        pygit2.settings.enable_fsync_gitdir(False)
        config.state_dir.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(config.state_dir / "epoch.lock", wait=self.options.wait_lock):
            summary = self._run_locked()
            if self.options.push:
                started = time.perf_counter()
                summary.pushes = publish_pushes(config, summary)
                self._tick("push", started)  # summary.seconds is this very dict
            if config.witnesses and summary.str_version == 2:
                summary.witnesses = collect_cosignatures(config, self.say)
        failed = {target: status for target, status in summary.pushes.items() if status != "ok"}
        if failed:
            raise EpochNotPublished(summary, failed)
        return summary

    def _run_locked(self) -> EpochSummary:
        t0 = time.perf_counter()
        clear_stale_git_locks(self.config.log_repo)  # left by a killed run; we hold the epoch lock
        recovered, replay = recover_pending(LogRepo(self.config.log_repo), self.config.state_dir)
        if recovered:
            self.say(f"recovered epoch {recovered} from an interrupted run")
        ctx = open_context(self.config, self.say)
        t = self._tick("load", t0)
        standing, replay = self._fetch(ctx, replay)
        t = self._tick("fetch", t)
        checks = check_commits(ctx)
        t = self._tick("commit_checks", t)
        plan = plan_for(ctx, checks)
        assert ctx.pr_head is not None  # set by _fetch
        if plan.policy_changed:
            self.say("acceptance policy changed: re-verifying every plugin")
        ctx.record = layout.EpochRecord(
            epoch=ctx.epoch, origin=self.config.origin, pr_from=ctx.last_pr, pr_to=str(ctx.pr_head.id),
            time=ctx.now, root="", size=0, commits=checks.records, policy=self.config.policy_hash(),
            pr_policy=checks.policy_source or "")
        changed = [n for n in plan.changed if is_valid_name(n)]
        old_tiles = ctx.state.tiles_on_paths(changed)
        spent: dict[str, float] = {}
        PluginOutcomes(ctx, self.options).apply(plan, spent)
        t = self._tick("verify", t)
        for vname, seconds in sorted(spent.items()):  # summed over parallel jobs: may exceed "verify"
            self.timings[f"verifier {vname} (sum)"] = round(seconds, 4)
        head_str = self._update_tree(ctx, changed, old_tiles)
        self.say(ctx.state.fallback or (f"tree: {ctx.state.tiles_loaded} tiles loaded from the log"
                                        if ctx.state.is_partial else "tree: loaded in full"))
        t = self._tick("tree", t)
        signed = self._sign(ctx, standing, replay, head_str)
        t = self._tick("reserve and sign", t)
        self._commit(ctx, signed)
        self._tick("commit", t)
        return self._summary(ctx, signed, bool(recovered))

    # ------------------------------------------------------------------ steps
    def _fetch(self, ctx: EpochContext, replay: Replay | None) -> tuple[authority.Standing, Replay | None]:
        """Fetch the PR, prove the log extends the PV's authoritative history, fix the PR head and time."""
        fetched = ctx.mirror.fetch()
        standing = authority.check_standing(self.config, ctx.log, ctx.epoch - 1, ctx.mirror.repo)
        for line in standing.notes:
            self.say(line)
        replay = self._replay_of(replay, standing.replay)
        want_now, want_pr = (replay.time, replay.pr) if replay is not None else (self.options.now,
                                                                                 self.options.pr_head)
        ctx.pr_head = select_pr_head(ctx, fetched, want_pr)
        check_root(ctx)
        ctx.now = want_now if want_now is not None else int(time.time())
        return standing, replay

    def _replay_of(self, local: Replay | None, reserved: authority.Reservation | None) -> Replay | None:
        """The STR this run must reproduce: an interrupted run's here, or the authority's
        reserved-but-unpublished one (which wins over an unsigned local one: it was reserved)."""
        if reserved is not None and (local is None or (local.head != reserved.head and not local.signed)):
            head = reserved.tree_head()
            local = Replay(reserved.epoch, reserved.head, head.time, head.pr)
        if local is not None:
            self.say(f"replaying epoch {local.epoch}: its STR was reserved or signed by an earlier run")
        return local

    def _update_tree(self, ctx: EpochContext, changed: list[str], old_tiles: dict[TilePosition, Any]) -> TreeHead:
        """The tiles the plan changed, and the new STR body."""
        if ctx.migrating_tiles:
            # every tile of the new tree is written at its position, and every old one goes
            # (_migrate_layout): no tile change of this epoch's own to add
            for (level, prefix), (h, tile) in ctx.state.all_tiles().items():
                ctx.changes[layout.tile_path(level, h, ctx.log_layout, prefix)] = tile.encode()
        else:
            self._tile_changes(ctx, old_tiles, ctx.state.tiles_on_paths(changed))
        root = ctx.state.tree.root()
        assert ctx.record is not None and ctx.pr_head is not None
        ctx.record.root, ctx.record.size = root.hex(), len(ctx.state.tree)
        return TreeHead(self.config.origin, ctx.epoch, root, ctx.prev.hash if ctx.prev else ZERO_HASH, ctx.now,
                        str(ctx.pr_head.id), len(ctx.state.tree), self.config.policy_hash())

    def _versioned(self, ctx: EpochContext, head_str: TreeHead) -> TreeHead | TreeHeadV2:
        """The STR body of the configured version (pv.yaml `str_version`). For v2, the epoch's
        record is appended to the epoch log (the log's tlog/ files join the epoch's changes); a
        log already at v2 never goes back to v1."""
        prev_version = head_version(ctx.prev.head) if ctx.prev else 1
        if self.config.str_version == 1:
            if prev_version == 2:
                raise authority.SigningRefused(
                    f"{self.config.path}: str_version is 1, but the log signs STR v2 since an earlier epoch (epoch "
                    f"{ctx.epoch - 1} is v2); a log never goes back to v1. Set 'str_version: 2'; nothing was signed")
            return head_str
        appended = epochlog.append(ctx.log, ctx.head, ctx.prev, self.config.signer().verifier(), record_of(head_str))
        if appended.migrated:
            self.say(f"STR v2 from epoch {ctx.epoch}: epoch log rebuilt from the {appended.migrated} earlier STRs")
        ctx.changes.update(appended.changes)
        return v2_head(self.config.origin, head_str, appended.log_root)

    def _sign(self, ctx: EpochContext, standing: authority.Standing, replay: Replay | None,
              head_v1: TreeHead) -> SignedStr:
        """Reserve the epoch for this STR body, then sign it; persisted at each step."""
        pending = self.config.state_dir / PENDING
        head_str = self._versioned(ctx, head_v1)
        if replay is not None and (replay.epoch != ctx.epoch or replay.head != head_str.text()):
            raise authority.SigningRefused(
                f"epoch {replay.epoch} is reserved for an STR (by an interrupted run, see {pending}, or by another "
                f"signer) that this run cannot reproduce; refusing to sign a second, different STR for that epoch. "
                f"{authority.HOW_TO_MOVE}")
        # The body is persisted before the reservation and the signature before anything can
        # publish it: a run that dies from here on is completed or replayed with this very STR.
        self.pending_doc: dict[str, Any] = {
            "epoch": ctx.epoch, "parent": str(ctx.head.id) if ctx.head else None, "head": head_str.text(),
            "note": None, "time": ctx.now, "pr": head_str.pr, "commit": None}
        atomic_write_bytes(pending, json.dumps(self.pending_doc).encode())
        authority.reserve(standing, authority.Reservation(ctx.epoch, head_str.text()))
        signed = sign_any(head_str, self.config.signer())
        self.pending_doc["note"] = signed.note.decode()
        atomic_write_bytes(pending, json.dumps(self.pending_doc).encode())
        return signed

    def _commit(self, ctx: EpochContext, signed: SignedStr) -> None:
        """Write the epoch as one commit, then move the log branch to it (compare-and-swap)."""
        record, epoch, head = ctx.record, ctx.epoch, ctx.head
        assert record is not None
        ctx.changes[layout.LATEST_STR] = signed.note
        ctx.changes[layout.str_path(epoch)] = signed.note
        ctx.changes[layout.epoch_record_path(epoch)] = record.encode()
        descriptor = json.dumps(self.config.descriptor(), indent=1, sort_keys=True).encode() + b"\n"
        if head is None or ctx.log.read(head, layout.PV_DESCRIPTOR) != descriptor:
            ctx.changes[layout.PV_DESCRIPTOR] = descriptor
        if head is None:
            ctx.changes["README.md"] = template("log", "README.md").read_bytes()
        self._migrate_layout(ctx)
        message = (f"epoch {epoch}\n\nroot {record.root}\npr {record.pr_to}\nsize {record.size}\n"
                   f"added {len(record.added)} updated {len(record.updated)} removed {len(record.removed)} "
                   f"rejected {len(record.rejected)}\n")
        written_since = time.time_ns()
        commit_id = ctx.log.write_epoch_commit(head, ctx.changes, epoch, self.config.origin, ctx.now, message)
        # every object of the epoch is on disk before anything points at it
        sync_new_loose_objects(ctx.log.path, written_since)
        pending = self.config.state_dir / PENDING
        self.pending_doc["commit"] = str(commit_id)
        atomic_write_bytes(pending, json.dumps(self.pending_doc).encode())
        try:
            ctx.log.advance(head.id if head else None, commit_id, epoch)
        except RaceLost:
            pending.unlink(missing_ok=True)
            raise
        pending.unlink(missing_ok=True)
        ctx.state.save(self.config.state_dir / TREE_CACHE, str(commit_id))

    @staticmethod
    def _tile_changes(ctx: EpochContext, old: dict[TilePosition, Any], new: dict[TilePosition, Any]) -> None:
        """The log changes from the tiles `old` to the tiles `new` on the changed paths: by
        position from layout 3 on (a tile's file is rewritten in place), else by hash (a new
        tile is a new file, an old one goes)."""
        if ctx.log_layout >= layout.TILES_BY_POSITION:
            for (level, prefix), (h, _) in old.items():
                if (level, prefix) not in new:
                    ctx.changes[layout.tile_path(level, h, ctx.log_layout, prefix)] = None
            for (level, prefix), (h, tile) in new.items():
                if old.get((level, prefix), (None,))[0] != h:
                    ctx.changes[layout.tile_path(level, h, ctx.log_layout, prefix)] = tile.encode()
            return
        old_by_hash = dict(old.values())
        new_by_hash = dict(new.values())
        for h, tile in old_by_hash.items():
            if h not in new_by_hash:
                ctx.changes[layout.tile_path(tile.level, h, ctx.log_layout)] = None
        for h, tile in new_by_hash.items():
            if h not in old_by_hash:
                ctx.changes[layout.tile_path(tile.level, h, ctx.log_layout)] = tile.encode()

    def _migrate_layout(self, ctx: EpochContext) -> None:
        """A log of an older layout moves to the configured one inside this epoch's commit: every
        file under bindings/, results/, tiles/, bytecode/ and logs/ keeps its blob and moves to its new path (what this
        epoch itself writes or removes there, in the new layout, wins), and layout.json says so."""
        if ctx.head is not None and ctx.head_layout != ctx.log_layout:
            moves = ctx.log.reshard(ctx.head, ctx.head_layout, ctx.log_layout)
            for path, value in moves.items():
                ctx.changes.setdefault(path, value)
            moved = sum(1 for v in moves.values() if v is not None)
            self.say(f"log layout {ctx.head_layout} -> {ctx.log_layout}: {moved} files moved to their new shards"
                     + (", every tile rewritten at its position" if ctx.migrating_tiles else "")
                     + f" in epoch {ctx.epoch}")
        if ctx.log_layout >= 2 and (ctx.head is None or ctx.head_layout != ctx.log_layout):
            ctx.changes[layout.LAYOUT_FILE] = layout.layout_file(ctx.log_layout)

    def _summary(self, ctx: EpochContext, signed: SignedStr, recovered: bool) -> EpochSummary:
        record = ctx.record
        assert record is not None
        return EpochSummary(
            epoch=ctx.epoch, origin=self.config.origin, root=record.root, size=record.size,
            str_sha256=signed.hash.hex(), pr_from=record.pr_from, pr_to=record.pr_to, added=sorted(record.added),
            updated=sorted(record.updated), removed=record.to_obj()["removed"], rejected=record.to_obj()["rejected"],
            alarms=[c["alarm"] for c in record.commits if c.get("alarm")], recovered=recovered,
            seconds=self.timings, str_version=signed.version)


class PluginOutcomes:
    """Carries out an epoch plan on the tree: verifies what is verifiable, and writes each
    plugin's result record, binding and bytecode into the epoch's changes."""

    def __init__(self, ctx: EpochContext, options: EpochOptions) -> None:
        self.ctx = ctx
        self.options = options
        assert ctx.record is not None and ctx.pr_head is not None
        self.record = ctx.record

    def apply(self, plan: EpochPlan, spent: dict[str, float] | None = None) -> None:
        to_verify: list[tuple[PluginSnapshot, Any, str]] = []
        for d in plan.decisions:
            if d.kind == "rejected" and d.snap is None:  # an invalid name: no result record
                self.record.rejected.append({"name": d.name, "reason": d.reason})
            elif d.kind == "removed":
                self._remove(d.name)
            elif d.kind == "tainted":
                self._reject(d.name, d.reason, d.snap, {}, None, taint=d.reason)
            elif d.kind == "rejected":
                self._reject(d.name, d.reason, d.snap, {}, self._source(d))
            else:
                assert d.snap is not None and d.manifest is not None  # the planner gives every verifiable plugin both
                to_verify.append((d.snap, d.manifest, self._source(d)))
        results = verification.run_all(self.ctx.config, [(s, m) for s, m, _ in to_verify],
                                       require_cached=self.options.require_cached, progress=self.ctx.say,
                                       steps=self.options.steps, spent=spent)
        formula = self.ctx.config.acceptance_formula()
        for snap, manifest, source in to_verify:
            outcome = results[snap.name]
            truth = {v: r.status == "pass" for v, r in outcome.items()}
            if formula.evaluate(truth):
                binding = Binding.create(
                    snap.name, manifest.path, sha256_hex(snap.files[manifest.path]),
                    {p: sha256_hex(snap.files[p]) for p in manifest.pluglets}, source,
                    [v for v, ok in truth.items() if ok])
                self._accept(snap, manifest, binding, outcome)
            else:
                failing = [f"{v}: {r.status}: {r.reason}" for v, r in sorted(outcome.items()) if r.status != "pass"]
                self._reject(snap.name, "not accepted (" + "; ".join(failing) + ")", snap, outcome, source)

    def _source(self, d: Decision) -> str:
        assert self.ctx.pr_head is not None
        return d.source or last_touching_commit(self.ctx.mirror, self.ctx.pr_head, d.name)

    def _remove(self, name: str) -> None:
        if name in self.ctx.state:
            self.ctx.state.delete(name)
            self.record.removed.append({"name": name, "reason": DELETED})
            self.ctx.changes[layout.binding_path(name, self.ctx.log_layout)] = None
        self._write_result(name, "removed", DELETED, None, {}, None)
        self.ctx.say(f"  {name}: removed ({DELETED})")

    def _accept(self, snap: PluginSnapshot, manifest: Any, binding: Binding, outcome: dict[str, Any]) -> None:
        name, state = snap.name, self.ctx.state
        value = binding.value()
        old = state.get(name)
        if old != value:
            (self.record.updated if old is not None else self.record.added).append(name)
            state.set(name, value)
            self.ctx.changes[layout.binding_path(name, self.ctx.log_layout)] = binding.encode()
        for path in (*manifest.files, *manifest.pluglets):
            data = snap.files[path]
            self.ctx.changes[layout.blob_path("bytecode", sha256_hex(data), self.ctx.log_layout)] = data
        self._write_result(name, "accepted", "", binding.source, outcome, snap, value)
        self.ctx.say(f"  {name}: accepted ({', '.join(binding.properties)})")

    def _reject(self, name: str, reason: str, snap: PluginSnapshot | None, outcome: dict[str, Any],
                source: str | None, taint: str | None = None) -> None:
        self.record.rejected.append({"name": name, "reason": reason})
        if name in self.ctx.state:
            self.ctx.state.delete(name)
            self.record.removed.append({"name": name, "reason": reason})
            self.ctx.changes[layout.binding_path(name, self.ctx.log_layout)] = None
        self._write_result(name, "rejected", reason, source, outcome, snap, taint=taint)
        self.ctx.say(f"  {name}: rejected: {reason}")

    def _write_result(self, name: str, status: str, reason: str, source: str | None, outcome: dict[str, Any],
                      snap: PluginSnapshot | None, value: bytes | None = None, taint: str | None = None) -> None:
        verifiers = {}
        for vname, res in sorted(outcome.items()):
            log_bytes = (res.log or "").encode("utf-8", "replace")
            self.ctx.changes[layout.blob_path("logs", sha256_hex(log_bytes), self.ctx.log_layout)] = log_bytes
            verifiers[vname] = VerifierOutcome.of(res, sha256_hex(log_bytes))
        self.ctx.changes[layout.result_path(name, self.ctx.log_layout)] = ResultRecord(
            name, self.ctx.epoch, status, reason, source, plugin_files_digest(snap.files) if snap else None,
            value.hex() if value else None, verifiers, taint).encode()


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

    Failures are reported here, not raised: every target is tried; the job then fails the run
    (EpochNotPublished), and the next epoch pushes everything that is still missing."""
    from .pushes import push_mirrors, push_pr_area

    results: dict[str, str] = {}
    if config.report_to_pr:
        results["pr"] = push_pr_area(config)
    results.update(push_mirrors(config))
    return results


def collect_cosignatures(config: PvConfig, say: Callable[[str], None]) -> dict[str, str]:
    """Witness cosignatures of the new head (pds_log.pv.cosign): never raises, never blocks
    longer than the witness timeout; what each witness did is in the result."""
    from .cosign import collect_latest

    try:
        report = collect_latest(config)
    except PdsError as exc:
        return {w.name: f"not submitted ({exc})" for w in config.witnesses}
    say(report.summary_line())
    return report.status


def run_epoch(config: PvConfig, options: EpochOptions | None = None) -> EpochSummary:
    return EpochJob(config, options or EpochOptions()).run()

