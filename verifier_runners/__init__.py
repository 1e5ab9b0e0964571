"""Verifier runners for Plugin Validators.

    from verifier_runners import build_verifiers, run_verifier, ResultCache, PluginInput

    verifiers = build_verifiers({"safety": {"runner": "bytecode_safety"}}, base_dir=Path("."))
    result = run_verifier(verifiers["safety"], PluginInput(name, commit, files, manifest))
    result = run_verifier_bounded(...)   # the same in a worker process, wall-clock and memory limits
    result.status in ("pass", "fail", "error"); result.reason; result.log; result.tool_versions

Each configured instance has a name (the property a PV attests, e.g. `termination`) and a
runner (the implementation). Runners: reproducible, bytecode_safety, termination,
side_effects, static_analysis, external, always_pass, always_fail.
"""

from __future__ import annotations

from pathlib import Path
import os
from typing import Any, Mapping, Sequence

from pds_log.core.errors import FormatError

from .base import ERROR, FAIL, PASS, PluginInput, ResultCache, Verifier, VerifierResult, run_verifier
from .builtin import AlwaysFail, AlwaysPass, BytecodeSafety, Reproducible, SideEffects, StaticAnalysis, Termination
from .external import External
from .worker import run_verifier_bounded

RUNNERS: dict[str, type[Verifier]] = {
    cls.runner: cls
    for cls in (Reproducible, BytecodeSafety, Termination, SideEffects, StaticAnalysis, External, AlwaysPass,
                AlwaysFail)
}

__all__ = ["ERROR", "FAIL", "PASS", "PluginInput", "ResultCache", "RUNNERS", "Verifier", "VerifierResult",
           "build_verifiers", "run_verifier", "run_verifier_bounded"]


def build_verifiers(config: Mapping[str, Mapping[str, Any]], base_dir: Path | None = None,
                    protected: Sequence[str | os.PathLike] = ()) -> dict[str, Verifier]:
    """Verifier instances from a PV's `verifiers:` mapping (name -> {runner: ..., options}).
    `protected`: paths no sandboxed tool may see (the PV's directory, keys, state, log)."""
    out: dict[str, Verifier] = {}
    for name, conf in config.items():
        if not isinstance(conf, Mapping) or "runner" not in conf:
            raise FormatError(f"verifier {name}: needs a 'runner'")
        cls = RUNNERS.get(conf["runner"])
        if cls is None:
            raise FormatError(f"verifier {name}: unknown runner {conf['runner']!r} "
                              f"(known: {', '.join(sorted(RUNNERS))})")
        out[name] = cls(name, conf, base_dir, protected)
    return out
