"""Verifier runners for Plugin Validators.

    from verifier_runners import build_verifiers, run_verifier, ResultCache, PluginInput

    verifiers = build_verifiers({"safety": {"runner": "bytecode_safety"}}, base_dir=Path("."))
    result = run_verifier(verifiers["safety"], PluginInput(name, commit, files, manifest))
    result = run_verifier_bounded(...)   # the same in a worker process, wall-clock and memory limits
    with WorkerPool(verifiers, jobs) as pool: pool.run(tasks)   # many plugins on `jobs` workers
    result.status in ("pass", "fail", "error"); result.reason; result.log; result.tool_versions

Each configured instance has a name (the property a PV attests, e.g. `termination`) and a
runner (the implementation). Runners: reproducible, bytecode_safety, termination,
bounded, side_effects, static_analysis, external, always_pass, always_fail.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from pds_log.core.errors import FormatError

from .base import ERROR, FAIL, PASS, PluginInput, ResultCache, Verifier, VerifierResult, run_verifier
from .builtin import AlwaysFail, AlwaysPass, BytecodeSafety, Reproducible, SideEffects, StaticAnalysis, Termination
from .external import External
from .termination import Bounded
from .worker import Task, WorkerPool, run_plugin_bounded, run_verifier_bounded

RUNNERS: dict[str, type[Verifier]] = {
    cls.runner: cls
    for cls in (Reproducible, BytecodeSafety, Termination, Bounded, SideEffects, StaticAnalysis, External,
                AlwaysPass, AlwaysFail)
}

__all__ = ["ERROR", "FAIL", "PASS", "PluginInput", "ResultCache", "RUNNERS", "Verifier", "VerifierResult",
           "Task", "WorkerPool", "build_verifiers", "run_plugin_bounded", "run_verifier", "run_verifier_bounded"]


def build_verifiers(config: Mapping[str, Mapping[str, Any]], base_dir: Path | None = None,
                    protected: Sequence[str | os.PathLike] = ()) -> dict[str, Verifier]:
    """Verifier instances from a PV's `verifiers:` mapping (name -> {runner: ..., options}).
    `protected`: paths no sandboxed tool may see (the PV's directory, keys, state, log)."""
    out: dict[str, Verifier] = {}
    for name, conf in config.items():
        if not isinstance(conf, Mapping) or "runner" not in conf:
            raise FormatError(f"verifier {name}: needs a 'runner'")
        conf = _with_build_recipe(conf, config)
        cls = RUNNERS.get(conf["runner"])
        if cls is None:
            raise FormatError(f"verifier {name}: unknown runner {conf['runner']!r} "
                              f"(known: {', '.join(sorted(RUNNERS))})")
        out[name] = cls(name, conf, base_dir, protected)
    return out


def _with_build_recipe(conf: Mapping[str, Any], config: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Any]:
    """A loop verifier (termination, bounded) without its own `recipe` analyses the IR of the
    recipe the PV's reproducible verifier builds with: the IR its pluglets are really compiled
    from."""
    if conf["runner"] not in ("termination", "bounded") or "recipe" in conf:
        return conf
    recipes = [c["recipe"] for c in config.values()
               if isinstance(c, Mapping) and c.get("runner") == "reproducible" and c.get("recipe") is not None]
    if not recipes:
        return conf  # the default recipe
    if any(r != recipes[0] for r in recipes[1:]):
        raise FormatError("several reproducible verifiers with different recipes: give each termination/bounded "
                          "verifier its own 'recipe'")
    return {**conf, "recipe": recipes[0]}
