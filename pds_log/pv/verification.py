"""Running a PV's verifiers over the plugins of an epoch: cached, in parallel, never fatal.

Results are cached by (verifier config digest, content hash of the plugin's files): unchanged
bytes are never verified twice, and a CI fan-out (`pds pv run-one`) fills the same cache that
`pds pv seal` then reads. A verifier that raises is an `error` result, never a crash of the
epoch and never a pass. The plugins are verified `jobs` at a time, each in a worker process
(verifier_runners.worker) where every verifier runs under a wall-clock and a memory limit, its
external tools in the sandbox.
"""

from __future__ import annotations

from typing import Callable, Iterable

import verifier_runners as vr
from pds_log.core.binding import plugin_files_digest
from pds_log.core.errors import PdsError
from pds_log.core.manifest import Manifest
from verifier_runners.static import StaticAnalysis

from .config import PvConfig
from .prsource import PluginSnapshot


class MissingResult(PdsError):
    """A sealed epoch needs a verifier result that no fan-out job produced."""


def protected_paths(config: PvConfig) -> list[str]:
    """What no sandboxed tool may see: the PV's directory, keys, state and log repo. (The sandbox
    shows only /usr, the toolchain and the plugin's temp dir in the first place; these are named
    so that they stay hidden even where an operator put them under one of those.)"""
    paths = [config.base, config.note_key.parent, config.state_dir, config.log_repo]
    if config.ssh_key is not None:
        paths.append(config.ssh_key.parent)
    return sorted({str(p) for p in paths})


def build(config: PvConfig) -> dict:
    verifiers = vr.build_verifiers(config.verifiers, base_dir=config.base, protected=protected_paths(config))
    for verifier in verifiers.values():
        if isinstance(verifier, StaticAnalysis):  # per-TU cppcheck results, in the PV's state
            verifier.use_cache_dir(config.state_dir / "static-cache")
    return verifiers


def cache_for(config: PvConfig) -> "vr.ResultCache":
    return vr.ResultCache(config.state_dir / "results-cache")


def plugin_input(snap: PluginSnapshot, manifest: Manifest) -> "vr.PluginInput":
    return vr.PluginInput(name=snap.name, commit=snap.commit, files=snap.files, manifest=manifest)


def run_all(config: PvConfig, plugins: Iterable[tuple[PluginSnapshot, Manifest]], *, require_cached: bool = False,
            progress: Callable[[str], None] | None = None, steps: Callable[[int, int], None] | None = None,
            usage: dict[str, float] | None = None,
            spent: dict[str, float] | None = None) -> dict[str, dict[str, "vr.VerifierResult"]]:
    """name -> verifier name -> result, for every plugin and every configured verifier, in the
    order of `plugins` and of the configuration whatever `jobs` is (the workers finish in any order).

    Each plugin's missing results are one task of a worker pool of `config.jobs` processes (0:
    one per core): the build and every verifier run in the worker; this process only hands out
    the plugins, stores each result in the cache as it comes and puts them in order.
    progress gets one line per finished run; steps gets (runs done, runs to do), cache hits
    excluded; usage (if given) gets name -> CPU seconds the workers and their tools spent on it;
    spent (if given) gets each verifier's seconds summed over the runs done (cache hits excluded;
    runs in parallel jobs add up, so the sum may exceed the wall time)."""
    verifiers = build(config)
    cache = cache_for(config)
    plugins = list(plugins)
    found: dict[tuple[str, str], vr.VerifierResult] = {}
    tasks = _missing_runs(plugins, verifiers, cache, found, require_cached)
    runs = sum(len(t.verifiers) for t in tasks)
    if steps and runs:
        steps(0, runs)
    with vr.WorkerPool(verifiers, config.jobs) as pool:
        for done, (task, result) in enumerate(pool.run(tasks), start=1):
            name, digest = task.key
            cache.put(verifiers[result.verifier], digest, result)
            found[name, result.verifier] = result
            if spent is not None:
                spent[result.verifier] = spent.get(result.verifier, 0.0) + result.duration_s
            if progress:
                progress(f"    {name} x {result.verifier}: {result.status} {result.reason}")
            if steps:
                steps(done, runs)
    if usage is not None:
        for task in tasks:
            usage[task.key[0]] = usage.get(task.key[0], 0.0) + task.cpu_s
    return {snap.name: {vname: found[snap.name, vname] for vname in verifiers} for snap, _ in plugins}


def _missing_runs(plugins: list[tuple[PluginSnapshot, Manifest]], verifiers: dict, cache: "vr.ResultCache",
                  found: dict[tuple[str, str], "vr.VerifierResult"], require_cached: bool) -> list["vr.Task"]:
    """One task per plugin with the verifiers the cache has no result for; hits go into `found`."""
    tasks: list[vr.Task] = []
    for snap, manifest in plugins:
        digest = plugin_files_digest(snap.files)
        todo = []
        for vname, verifier in verifiers.items():
            hit = cache.get(verifier, digest)
            if hit is not None:
                found[snap.name, vname] = hit
            elif require_cached:
                raise MissingResult(f"no result for {snap.name} x {vname} (files {digest[:12]}): "
                                    f"run `pds pv run-one` for it before sealing")
            else:
                todo.append(vname)
        if todo:
            tasks.append(vr.Task((snap.name, digest), plugin_input(snap, manifest), todo))
    return tasks


def run_one(verifier, snap: PluginSnapshot, manifest: Manifest) -> "vr.VerifierResult":
    return vr.run_verifier_bounded(verifier, plugin_input(snap, manifest))


def result_from_obj(obj: dict) -> "vr.VerifierResult":
    return vr.VerifierResult.from_obj(obj)
