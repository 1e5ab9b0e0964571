"""`pds dev build`: compile every pluglet a manifest names with the pinned recipe.

Runs the compiler (no shell) in the plugin directory, one invocation per pluglet, exactly as
the PV's reproducible-build verifier will; a failed compile stops with the compiler's output.
"""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

from pds_log.core.errors import PdsError
from pds_log.core.manifest import parse_plugin_manifest
from pds_log.core.recipe import BuildRecipe


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


def build_plugin(directory: str | Path, recipe: BuildRecipe | None = None, flags: list[str] | None = None,
                 name: str | None = None) -> list[str]:
    """Build the pluglets of the plugin in `directory`; returns the objects written."""
    directory = Path(directory).resolve()
    recipe = recipe or BuildRecipe()
    if flags is not None:
        recipe = replace(recipe, flags=tuple(flags))
    name = name or directory.name
    manifest = parse_plugin_manifest(read_plugin_dir(directory), name)
    built = []
    for pluglet in manifest.pluglets:
        source = recipe.source_for(pluglet)
        if not (directory / source).is_file():
            raise PdsError(f"{directory / source}: missing source of {pluglet}")
        argv = recipe.argv(pluglet)
        try:
            result = subprocess.run(argv, cwd=directory, capture_output=True, text=True, timeout=300)
        except FileNotFoundError:
            raise PdsError(f"compiler {recipe.compiler!r} not found (install clang)") from None
        if result.returncode != 0:
            raise PdsError(f"{name}: building {pluglet} failed:\n{result.stderr.strip()}")
        built.append(pluglet)
    return built
