"""Helpers shared by the tests and benchmarks: example plugins, built for real with clang."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml

from pds_log.core.manifest import parse_plugin_manifest
from pds_log.developer.build import build_plugin, read_plugin_dir

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
HEADER = ROOT / "pds_log" / "data" / "pquic" / "pquic.h"


def example_names() -> list[str]:
    return sorted(p.name for p in EXAMPLES.iterdir() if (p / "expect.yaml").exists())


def expectations(name: str) -> dict:
    return yaml.safe_load((EXAMPLES / name / "expect.yaml").read_text())


def build_example(name: str, dest: Path, rename: str | None = None) -> Path:
    """Copy example `name` to dest/<rename or name>, build it the way its expect.yaml says
    (the pinned recipe unless it overrides the flags) and return the directory."""
    target = dest / (rename or name)
    shutil.copytree(EXAMPLES / name, target)
    if rename:
        for manifest in target.glob("*.plugin"):
            text = manifest.read_text()
            if text.split("\n", 1)[0].split()[:1] == [name]:
                manifest.write_text(re.sub(rf"^{re.escape(name)}", rename, text, count=1))
    flags = (expectations(name).get("build") or {}).get("flags")
    build_plugin(target, flags=flags, name=rename or name)
    return target


def plugin_input(directory: Path, name: str | None = None):
    import verifier_runners as vr

    name = name or directory.name
    files = read_plugin_dir(directory)
    return vr.PluginInput(name, "0" * 40, files, parse_plugin_manifest(files, name))
