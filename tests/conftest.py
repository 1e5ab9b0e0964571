"""Shared test helpers."""

from __future__ import annotations

import subprocess
import sys

import pytest

# pytester: for the test of the fast-set guard; fast_set_guard: warns about slow unmarked tests in -m "not slow"
pytest_plugins = ["pytester", "tests.fast_set_guard"]


def run_pds(*args: str, input: bytes | None = None, cwd=None, env=None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real `pds` CLI in a subprocess (as a user would), capturing text output."""
    return subprocess.run([sys.executable, "-m", "pds_log", *map(str, args)], input=input, cwd=cwd, env=env,
                          capture_output=True, timeout=timeout)


@pytest.fixture
def pds():
    return run_pds
