"""The core (pds_log/core: tree, proofs, notes, bindings, manifests, policy, formulas and every
wire record) does no I/O: everything it decides can be tested with bytes in memory, and a role
package cannot smuggle a network or disk effect into a check. This test reads every core
module's imports and calls and fails on any I/O module, any import of a role or infra package,
or a call to open()."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pds_log.core

CORE = Path(pds_log.core.__file__).parent
IO_MODULES = {"os", "sys", "io", "pathlib", "shutil", "tempfile", "subprocess", "socket", "select", "signal",
              "http", "urllib", "requests", "pygit2", "sqlite3", "threading", "multiprocessing", "asyncio",
              "fcntl", "glob", "mmap", "ssl", "time", "logging", "importlib"}
ALLOWED_PDS = "pds_log.core"


def _imports(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: only within the core itself
                if node.level > 1:
                    yield node.lineno, "." * node.level + (node.module or "")
                continue
            yield node.lineno, node.module or ""


def test_core_modules_import_no_io_and_no_outer_layer():
    problems = []
    modules = sorted(CORE.rglob("*.py"))
    assert len(modules) > 10
    for path in modules:
        tree = ast.parse(path.read_text(), str(path))
        for lineno, name in _imports(tree):
            top = name.split(".")[0]
            if top in IO_MODULES or name.startswith(".."):
                problems.append(f"{path.name}:{lineno}: imports {name}")
            if top == "pds_log" and not name.startswith(ALLOWED_PDS):
                problems.append(f"{path.name}:{lineno}: imports {name} (outside the core)")
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in {"open", "input",
                                                                                                   "print", "exec"}:
                problems.append(f"{path.name}:{node.lineno}: calls {node.func.id}()")
    assert problems == []


def test_importing_the_core_loads_no_git_or_network_library():
    code = ("import sys, pkgutil, importlib, pds_log.core as c\n"
            "for m in pkgutil.iter_modules(c.__path__): importlib.import_module('pds_log.core.' + m.name)\n"
            "print(' '.join(sorted(m for m in ('pygit2', 'requests', 'http.client', 'socket', 'sqlite3', "
            "'subprocess', 'urllib.request', 'pds_log.infra', 'pds_log.pv', 'pds_log.peer') if m in sys.modules)))\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == ""
