"""`pds dev build`: compile every pluglet a manifest names with the pinned recipe.

Runs each stage of the recipe (no shell, no pipe; each stage checked) in the plugin directory,
one pluglet at a time, exactly as the PV's reproducible-build verifier will, with the defines
of the plugin's own build file (`pds-build.yaml`); a failed stage stops with its output. The
intermediate IR goes to a temporary directory, never into the plugin.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import replace
from pathlib import Path

from pds_log.core.errors import FormatError, PdsError
from pds_log.core.jsondoc import loads as load_json
from pds_log.core.manifest import parse_plugin_manifest
from pds_log.core.recipe import BuildRecipe, plugin_defines, recipe_of_verifiers
from pds_log.core.yamldoc import load as load_yaml

MAX_ERROR_LINES = 30  # of a failed stage's output (llc prints a whole stack dump)


def read_plugin_dir(directory: Path) -> dict[str, bytes]:
    """A plugin directory's regular files (relative POSIX paths); symlinks are refused."""
    files: dict[str, bytes] = {}
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory).as_posix()
        if any(part.startswith(".") for part in rel.split("/")):
            continue
        if path.is_symlink():
            raise PdsError(f"{path}: symlinks are not allowed in a plugin")
        if path.is_file():
            files[rel] = path.read_bytes()
    return files


def recipe_from_pv_file(path: str | Path) -> BuildRecipe:
    """The build recipe of a PV, from its pv.yaml or its published pv.json."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PdsError(f"{path}: cannot read ({exc.strerror})") from None
    doc = load_json(data, str(path)) if data.lstrip()[:1] == b"{" else load_yaml(data, str(path))
    if not isinstance(doc, dict):
        raise FormatError(f"{path}: not a PV configuration (pv.yaml) or descriptor (pv.json)")
    return recipe_of_verifiers(doc.get("verifiers"), str(path))


def build_plugin(directory: str | Path, recipe: BuildRecipe | None = None, flags: list[str] | None = None,
                 name: str | None = None) -> list[str]:
    """Build the pluglets of the plugin in `directory`; returns the objects written."""
    directory = Path(directory).resolve()
    recipe = recipe or BuildRecipe()
    if flags is not None:
        recipe = replace(recipe, flags=tuple(flags))
    name = name or directory.name
    files = read_plugin_dir(directory)
    manifest = parse_plugin_manifest(files, name)
    defines = plugin_defines(files)
    built = []
    with tempfile.TemporaryDirectory(prefix="pds-build-") as scratch:
        for pluglet in manifest.pluglets:
            source = recipe.source_for(pluglet)
            if not (directory / source).is_file():
                raise PdsError(f"{directory / source}: missing source of {pluglet}")
            ir = str(Path(scratch) / (pluglet.replace("/", "__") + ".bc"))
            for argv in recipe.stages(pluglet, defines=defines, ir=ir):
                try:
                    result = subprocess.run(argv, cwd=directory, capture_output=True, text=True, timeout=300)
                except FileNotFoundError:
                    raise PdsError(f"{argv[0]!r} not found (install clang and llvm)") from None
                except subprocess.TimeoutExpired:
                    raise PdsError(f"{name}: building {pluglet}: {argv[0]} timed out") from None
                if result.returncode != 0:
                    lines = result.stderr.strip().splitlines()
                    shown = "\n".join(lines[:MAX_ERROR_LINES]) + (
                        f"\n[{len(lines) - MAX_ERROR_LINES} more lines]" if len(lines) > MAX_ERROR_LINES else "")
                    raise PdsError(f"{name}: building {pluglet} failed at {argv[0]} (exit {result.returncode}):\n"
                                   f"{shown}")
            built.append(pluglet)
    return built
