"""The epoch planner: which plugins an epoch looks at, and what becomes of each before any
verifier runs. One planner for `pds pv epoch` (pds_log.pv.epoch) and the CI fan-out `plan`
(pds_log.pv.fanout), so the two cannot drift.

Pure: no git, no files, no clock. The callers read the PR and the log and hand over in-memory
snapshots; the mappings may read lazily (the epoch reads only the plugins it looks at).

    plan_epoch(previous, snapshot, policy) -> EpochPlan

Rules, in the order they apply to each plugin name looked at:
* looked at: the plugin directories changed since the last processed PR head; all of them
  (every plugin at the PR head and every plugin in the tree) when the acceptance policy changed;
* an invalid directory name is rejected;
* a directory gone from the PR is removed (it leaves the tree if it was in it);
* a plugin last touched by a refused commit is tainted (rejected, with the refusal as reason),
  and so stays one whose previous result is tainted until an accepted commit touches it;
* an unreadable directory, a malformed manifest, or pluglets that do not match it: rejected;
* anything else is verifiable (its verifiers run; the acceptance formula decides).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from pds_log.core.errors import FormatError
from pds_log.core.manifest import Manifest, check_pluglets, parse_plugin_manifest
from pds_log.core.names import is_valid_name

from .prsource import PluginSnapshot

INVALID_NAME = "invalid plugin directory name"
DELETED = "deleted from the PR"


@dataclass(frozen=True)
class PreviousResult:
    """What the last verification result of a plugin says that the planner needs."""

    commit: str | None = None  # the PR commit its files came from
    taint: str | None = None  # why it was tainted, if it was


@dataclass(frozen=True)
class PreviousState:
    """The PV's state after the last epoch."""

    names: Collection[str] = frozenset()  # plugins in the tree (iterated only on a policy change)
    policy: str | None = None  # the policy hash the last STR signed; None before the first epoch
    results: Mapping[str, PreviousResult] = field(default_factory=dict)  # name -> its last result


@dataclass(frozen=True)
class PrSnapshot:
    """The PR at the head this epoch processes, as the commit checks judged it."""

    head: str
    changed: frozenset[str]  # plugin directories changed since the last processed head
    names: Collection[str]  # every plugin directory at the head
    plugins: Mapping[str, PluginSnapshot | None]  # name -> its files at the head (None: no directory)
    tainted: Mapping[str, str] = field(default_factory=dict)  # name -> why (last touched by a refused commit)
    sources: Mapping[str, str] = field(default_factory=dict)  # name -> accepted commit that last touched it


@dataclass(frozen=True)
class Decision:
    """What happens to one plugin; kind is removed | tainted | rejected | verifiable."""

    name: str
    kind: str
    reason: str = ""
    snap: PluginSnapshot | None = None
    manifest: Manifest | None = None
    source: str | None = None  # the PR commit of its files (None: the caller finds the last touching one)


@dataclass(frozen=True)
class EpochPlan:
    decisions: tuple[Decision, ...]  # one per name looked at, in name order
    policy_changed: bool = False

    @property
    def changed(self) -> list[str]:
        return [d.name for d in self.decisions]

    def _of(self, kind: str) -> list[Decision]:
        return [d for d in self.decisions if d.kind == kind]

    @property
    def removed(self) -> list[Decision]:
        return self._of("removed")

    @property
    def tainted(self) -> dict[str, str]:
        return {d.name: d.reason for d in self._of("tainted")}

    @property
    def rejected(self) -> dict[str, str]:
        return {d.name: d.reason for d in self._of("rejected")}

    @property
    def verifiable(self) -> list[Decision]:
        return self._of("verifiable")


def names_to_look_at(previous: PreviousState, snapshot: PrSnapshot, policy: str) -> tuple[set[str], bool]:
    names = set(snapshot.changed)
    policy_changed = previous.policy is not None and previous.policy != policy
    if policy_changed:
        names |= set(snapshot.names) | set(previous.names)
    return names, policy_changed


def plan_epoch(previous: PreviousState, snapshot: PrSnapshot, policy: str) -> EpochPlan:
    names, policy_changed = names_to_look_at(previous, snapshot, policy)
    return EpochPlan(tuple(decide(name, previous, snapshot) for name in sorted(names)), policy_changed)


def decide(name: str, previous: PreviousState, snapshot: PrSnapshot) -> Decision:
    if not is_valid_name(name):
        return Decision(name, "rejected", INVALID_NAME)
    snap = snapshot.plugins.get(name)
    if snap is None:
        return Decision(name, "removed", DELETED)
    last = previous.results.get(name)
    taint = snapshot.tainted.get(name)
    if taint is None and name not in snapshot.sources and last is not None and last.taint:
        taint = last.taint  # still tainted: no accepted commit touched it since
    if taint is not None:
        return Decision(name, "tainted", taint, snap)
    source = snapshot.sources.get(name) or (last.commit if last else None)
    if snap.problem:
        return Decision(name, "rejected", snap.problem, snap, source=source)
    try:
        manifest = parse_plugin_manifest(snap.files, name)
    except FormatError as exc:
        return Decision(name, "rejected", f"malformed manifest: {exc}", snap, source=source)
    except (ValueError, RecursionError) as exc:  # a parser letting its own error escape: this plugin only
        return Decision(name, "rejected", f"malformed manifest: {type(exc).__name__}: {str(exc)[:300]}", snap,
                        source=source)
    problems = check_pluglets(manifest, snap.files)
    if problems:
        return Decision(name, "rejected", "; ".join(problems), snap, source=source)
    return Decision(name, "verifiable", "", snap, manifest, source)
