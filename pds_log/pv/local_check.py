"""`pds pv check`: a developer runs a PV's verifiers on a local plugin directory before pushing.

The verifier set comes from the PV's own pv.yaml or from the pv.json it publishes (so anyone
can run exactly the set a PV runs, with the same runners and options), or is the default set.
Verifiers run as in an epoch: in a worker process, each bounded, its tools sandboxed
(verifier_runners.run_plugin_bounded).
"""

from __future__ import annotations

from pathlib import Path

import verifier_runners as vr
from pds_log.core.errors import PdsError
from pds_log.core.manifest import check_pluglets, parse_plugin_manifest
from pds_log.core.records import PvDescriptor
from pds_log.developer.build import read_plugin_dir

from . import verification
from .config import load_config
from .setup import DEFAULT_VERIFIERS

NO_COMMIT = "0" * 40  # a local directory has no PR commit


def is_descriptor(data: bytes) -> bool:
    """pv.json (JSON) rather than pv.yaml (YAML)."""
    return data.lstrip()[:1] == b"{"


def load_verifiers(pv_file: str | Path | None) -> dict[str, vr.Verifier]:
    """The verifiers of a PV's pv.yaml or published pv.json, or the default set (None). A bad
    file raises FormatError/PdsError naming it."""
    if pv_file is None:
        return vr.build_verifiers(DEFAULT_VERIFIERS)
    path = Path(pv_file).resolve()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PdsError(f"{path}: cannot read ({exc.strerror})") from None
    if not is_descriptor(data):
        return verification.build(load_config(path))
    desc = PvDescriptor.decode(data, str(path))
    return vr.build_verifiers(desc.verifiers, base_dir=path.parent)


def check_plugin_dir(directory: str | Path, verifiers: dict[str, vr.Verifier],
                     name: str | None = None) -> tuple[str, list[vr.VerifierResult]]:
    """Run `verifiers` on the built plugin in `directory`; returns its name and the results."""
    directory = Path(directory).resolve()
    name = name or directory.name
    files = read_plugin_dir(directory)
    manifest = parse_plugin_manifest(files, name)
    problems = check_pluglets(manifest, files)
    if problems:
        raise PdsError(f"{name}: " + "; ".join(problems) + " (run `pds dev build` first?)")
    plugin = vr.PluginInput(name, NO_COMMIT, files, manifest)
    return name, vr.run_plugin_bounded(verifiers, plugin)
