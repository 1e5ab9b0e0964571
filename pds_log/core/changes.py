"""The PR's commit rules, apart from git: what a commit may change, judged from plain data.

pds_log.infra.commit_check extracts a commit's changes from git (sizes from object headers,
a touched plugin's files read only when asked for) and calls `judge_changes` (the plugin
branch) or `judge_pv_area_changes` (``refs/heads/pvs/<origin>``); the PR's hook, every PV and
the auditor reach the same verdicts through it. Tests call these functions directly with
in-memory changes.

The rules (the module docstring of pds_log.infra.commit_check says why each exists):

* the signer's key must be in the policy, unrevoked and valid at `when` (`usable_signer`);
* a root commit must be signed by an admin of its own policy;
* every changed path is safe; a plugin's files (``plugins/<name>/...`` in layout 1,
  ``plugins/<label>/.../+/...`` in layout 2: pds_log.core.pr_layout) need a developer key
  whose namespaces cover <name>; any other path under ``plugins/`` is refused; ``pds/...``
  and anything else outside ``plugins/`` needs an admin; ``pvs/...`` never belongs on the
  plugin branch;
* a commit that changes the layout (``layout:`` in the policy, so an admin's) moves every
  plugin unchanged: the same names with the same directory tree ids before and after
  (`Relayout`), and touches no plugin;
* every changed entry is a regular file of at most the policy's ``max_blob_bytes``
  (`file_problem`, the one rule shared with the PV areas);
* a changed ``pds/policy.yaml`` must parse;
* every touched plugin still has a well-formed manifest whose pluglets are eBPF objects (or
  is gone entirely).

Refusals that are a property of one plugin are also kept per plugin (`CommitVerdict.
plugin_reasons`), so that a refusal of a multi-plugin push can name the plugin to split off.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .commit_signature import SignatureProblem, signer_key
from .errors import FormatError
from .manifest import check_pluglets, parse_plugin_manifest, validate_relative_path
from .policy import POLICY_PATH, PV_AREA_DIR, Policy, short_key
from .pr_layout import plugin_dir, plugin_of

# git tree entry modes (the values libgit2 reports)
MODE_TREE = 0o040000
MODE_FILE = 0o100644
MODE_EXECUTABLE = 0o100755
MODE_SYMLINK = 0o120000
MODE_SUBMODULE = 0o160000
REGULAR_MODES = (MODE_FILE, MODE_EXECUTABLE)


@dataclass
class CommitVerdict:
    commit: str
    ok: bool = True
    signer: str | None = None  # the policy name of the signing key
    key: str | None = None
    reasons: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    # Refused because no key of the policy signed it (unsigned, bad or unverifiable signature,
    # unknown key): the PR's hook refuses that whenever it runs, so such a commit on the PR's
    # branch means the hook was bypassed (a PR-integrity alarm for the PVs).
    unverifiable: bool = False
    over_limit: bool = False  # refused for changing more files than allowed (not looked at further)
    plugins: list[str] = field(default_factory=list)  # the plugins the commit touches, sorted
    plugin_reasons: dict[str, list[str]] = field(default_factory=dict)  # those of `reasons` due to one plugin

    def refuse(self, reason: str, plugin: str | None = None) -> None:
        self.ok = False
        if reason not in self.reasons:
            self.reasons.append(reason)
        if plugin is not None and reason not in self.plugin_reasons.setdefault(plugin, []):
            self.plugin_reasons[plugin].append(reason)

    def line(self) -> str:
        """One line per refused commit: `refused <id>: <reason>; <reason>...`."""
        return f"refused {self.commit[:12]}: {'; '.join(self.reasons)}"

    def refused_alone(self) -> tuple[list[str], list[str]] | None:
        """(bad plugins, good plugins) when every reason is due to some of the touched plugins
        and others are fine, so that the commit without the bad ones would pass; else None."""
        if self.ok or self.over_limit or not self.plugin_reasons:
            return None
        per_plugin = {r for reasons in self.plugin_reasons.values() for r in reasons}
        if any(r not in per_plugin for r in self.reasons):
            return None
        bad = sorted(self.plugin_reasons)
        good = [p for p in self.plugins if p not in self.plugin_reasons]
        return (bad, good) if good else None


@dataclass(frozen=True)
class FileChange:
    """One entry a commit adds, modifies, deletes or retypes (against its first parent)."""

    path: str
    mode: int | None  # None = deleted
    size: int = 0  # of a regular file, from its object header


@dataclass(frozen=True)
class PluginContent:
    """A touched plugin's directory as the commit leaves it: its files, or why they are
    unusable (not a directory, a symlink inside, over the size limits), or gone (deleted)."""

    files: Mapping[str, bytes] | None = None
    problem: str | None = None
    deleted: bool = False


@dataclass(frozen=True)
class Relayout:
    """For a commit that changes the PR layout: every plugin before it (read in the old
    layout) and after it (in the new one), name -> the object id of its directory's tree.
    `stray` lists paths under ``plugins/`` after it that are no plugin's files."""

    before: Mapping[str, str]
    after: Mapping[str, str]
    stray: Sequence[str] = ()


MAX_NAMED = 5  # plugins named in one refusal


@dataclass(frozen=True)
class ChangeSet:
    """What one commit changes. `plugins` maps each touched plugin name to its content after
    the commit; the git side passes a lazy mapping, read only for the names asked for.
    `policy_text` is the new ``pds/policy.yaml`` when the commit changes it (`policy_problem`
    when it cannot even be read: not a regular file, too large)."""

    files: Sequence[FileChange]
    plugins: Mapping[str, PluginContent]
    root: bool = False
    policy_text: bytes | None = None
    policy_problem: str | None = None
    relayout: Relayout | None = None  # given when the commit changes the layout


def new_layout(changes: ChangeSet, policy: Policy) -> int:
    """The layout of the commit's tree: its new policy's when it changes one that parses,
    else that of the policy judging it."""
    if changes.policy_text is not None and changes.policy_problem is None:
        try:
            return Policy.parse(changes.policy_text).layout
        except FormatError:
            pass  # refused by _judge_policy_file; the tree is read as the judging policy says
    return policy.layout


def file_problem(change: FileChange, max_bytes: int) -> str | None:
    """The file rule, for the plugin branch and the PV areas alike: a regular file (no symlink,
    no submodule) of at most `max_bytes`; None when the change is fine (or a deletion)."""
    if change.mode is None:
        return None
    if change.mode == MODE_SYMLINK:
        return f"{change.path}: symlinks are not allowed"
    if change.mode == MODE_SUBMODULE:
        return f"{change.path}: submodules are not allowed"
    if change.mode not in REGULAR_MODES:
        return f"{change.path}: unsupported file mode {change.mode:o}"
    if change.size > max_bytes:
        return f"{change.path}: {change.size} bytes, over the {max_bytes}-byte limit"
    return None


def usable_signer(signature: bytes | None, payload: bytes | None, policy: Policy, when: int,
                  verdict: CommitVerdict) -> str | None:
    """The key that validly signed the commit if the policy knows it, unrevoked and valid at
    `when`; else None, with the refusal recorded in `verdict`."""
    try:
        key = signer_key(signature, payload)
    except SignatureProblem as exc:
        verdict.refuse(str(exc))
        verdict.unverifiable = True
        return None
    verdict.key, verdict.signer = key, policy.name_of(key)
    problem = policy.key_problem(key, when)
    if problem:
        verdict.refuse(problem)
        verdict.unverifiable = not policy.principals_for(key)
        return None
    return key


def judge_changes(changes: ChangeSet, signer: str, policy: Policy, when: int,
                  verdict: CommitVerdict | None = None) -> CommitVerdict:
    """Judge a plugin-branch commit signed by key `signer` (already verified by
    `usable_signer`) against `policy` at time `when`; refusals go into `verdict`."""
    verdict = verdict if verdict is not None else CommitVerdict("")
    if changes.root and not policy.is_admin(signer):
        verdict.refuse(f"root commit must be signed by an admin of its own policy, not {verdict.signer}")
    layouts = (policy.layout, new_layout(changes, policy))
    touched: set[str] = set()
    namespace_refusals: dict[tuple[str, str], list[str]] = {}
    for change in changes.files:
        _judge_path(change, signer, policy, when, verdict, touched, namespace_refusals, layouts)
    for (name, reason), paths in namespace_refusals.items():
        where = paths[0] if len(paths) == 1 else f"{plugin_dir(name, layouts[1])}/ ({len(paths)} files)"
        verdict.refuse(f"{where}: {reason}", plugin=name)
    if layouts[0] != layouts[1]:
        _judge_relayout(changes, layouts, verdict)
    if any(c.path == POLICY_PATH for c in changes.files):
        _judge_policy_file(changes, verdict)
    verdict.plugins = sorted(touched)
    for name in verdict.plugins:
        _judge_plugin(name, changes.plugins[name], verdict, layouts[1])
    return verdict


def _judge_relayout(changes: ChangeSet, layouts: tuple[int, int], verdict: CommitVerdict) -> None:
    """A layout change moves every plugin, unchanged, and nothing else under plugins/."""
    moved = changes.relayout
    if moved is None:
        verdict.refuse(f"the commit changes the PR layout from {layouts[0]} to {layouts[1]} but its plugins "
                       f"were not compared")
        return
    differ = sorted(n for n in moved.before.keys() | moved.after.keys() if moved.before.get(n) != moved.after.get(n))
    for name in differ[:MAX_NAMED]:
        what = ("gone" if name not in moved.after else "new" if name not in moved.before else "files differ")
        verdict.refuse(f"{plugin_dir(name, layouts[1])}: a commit changing the PR layout (from {layouts[0]} to "
                       f"{layouts[1]}) must move every plugin unchanged ({what}); change plugins in another commit")
    if len(differ) > MAX_NAMED:
        verdict.refuse(f"... and {len(differ) - MAX_NAMED} more plugins differ across the layout change")
    for path in moved.stray[:MAX_NAMED]:
        verdict.refuse(plugin_of(path, layouts[1])[1] or f"{path}: not a plugin's file in layout {layouts[1]}")


def _judge_path(change: FileChange, signer: str, policy: Policy, when: int, verdict: CommitVerdict,
                touched: set[str], namespace_refusals: dict[tuple[str, str], list[str]],
                layouts: tuple[int, int]) -> None:
    path = change.path
    parts = path.split("/")
    # a deletion is read in the layout before the commit, anything else in the one after it
    plugin, misplaced = plugin_of(path, layouts[0] if change.mode is None else layouts[1])
    try:
        validate_relative_path(path, path)
    except FormatError as exc:
        verdict.refuse(str(exc), plugin=plugin)
        return
    problem = file_problem(change, policy.max_blob_bytes)
    if problem:
        verdict.refuse(problem, plugin=plugin)
    if plugin is not None:
        reason = policy.may_write_plugin(signer, plugin, when)
        if reason:
            namespace_refusals.setdefault((plugin, reason), []).append(path)
        touched.add(plugin)
    elif misplaced is not None:
        verdict.refuse(misplaced)
    elif parts[0] == PV_AREA_DIR:
        verdict.refuse(f"{path}: PV areas live on refs/heads/pvs/<origin>, not on the plugin branch")
    elif not policy.is_admin(signer):
        what = "the policy" if path.startswith("pds/") else "files outside plugins/"
        who = verdict.signer or short_key(signer)
        verdict.refuse(f"{path}: signer {who} is not an admin and may not change {what}")


def _judge_policy_file(changes: ChangeSet, verdict: CommitVerdict) -> None:
    if changes.policy_problem is not None:
        verdict.refuse(changes.policy_problem)
    elif changes.policy_text is None:
        verdict.refuse(f"{POLICY_PATH}: deleted (a PR always has a policy)")
    else:
        try:
            Policy.parse(changes.policy_text, f"{POLICY_PATH}@{verdict.commit[:12]}")
        except FormatError as exc:
            verdict.refuse(str(exc))


def _judge_plugin(name: str, content: PluginContent, verdict: CommitVerdict, layout: int) -> None:
    base = plugin_dir(name, layout)
    if content.deleted:
        return
    if content.problem or content.files is None:
        verdict.refuse(content.problem or f"{base}: unreadable", plugin=name)
        return
    try:
        manifest = parse_plugin_manifest(content.files, name)
    except FormatError as exc:
        verdict.refuse(f"{base}: malformed manifest: {exc}", plugin=name)
        return
    except (ValueError, RecursionError) as exc:  # a parser that let its own error escape
        verdict.refuse(f"{base}: malformed manifest: {type(exc).__name__}: {str(exc)[:200]}", plugin=name)
        return
    for problem in check_pluglets(manifest, content.files, prefix=base + "/"):
        verdict.refuse(problem, plugin=name)


def judge_pv_area_changes(changes: ChangeSet, signer: str, origin: str, policy: Policy,
                          verdict: CommitVerdict | None = None) -> CommitVerdict:
    """Judge a commit on ``refs/heads/pvs/<origin>`` signed by key `signer`: only that PV's key,
    only under ``pvs/<origin>/``, and the same file rule as the plugin branch."""
    verdict = verdict if verdict is not None else CommitVerdict("")
    if origin not in policy.pv_origin(signer):
        who = verdict.signer or short_key(signer)
        verdict.refuse(f"only the key of PV {origin} may write its area (signer: {who})")
    prefix = f"{PV_AREA_DIR}/{origin}/"
    for change in changes.files:
        if not change.path.startswith(prefix):
            verdict.refuse(f"{change.path}: PV {origin} may write only under {prefix}")
            continue
        problem = file_problem(change, policy.max_blob_bytes)
        if problem:
            verdict.refuse(problem)
    return verdict
