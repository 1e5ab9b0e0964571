"""The verifier sandbox and the worker limits, tried for real: bubblewrap, rlimits, processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import build_example, plugin_input
from tests.verifiers.hostile_runners import Hog, Quick, Spin
from verifier_runners.sandbox import run_tool, sandbox_problem
from verifier_runners.worker import run_verifier_bounded


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return plugin_input(build_example("org.pds.examples.rtt_monitor", tmp_path_factory.mktemp("good")))


def sh(script: str, cwd: Path, **kw):
    return run_tool(["sh", "-c", script], cwd, 20, **kw)


def test_the_sandbox_is_available_here():
    assert sandbox_problem() is None, sandbox_problem()


def test_a_tool_sees_only_usr_and_its_workdir(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "beside.txt").write_text("next to the workdir")
    run = sh("for p in /etc/passwd /root /home /work " f"{tmp_path}/beside.txt; do "
             "if [ -e $p ]; then echo VISIBLE $p; fi; done; "
             "test -r /usr/include/stdint.h && echo HEADERS; echo hi > mine && echo WROTE; "
             "echo x > /usr/pds-probe 2>/dev/null || echo USR-READ-ONLY; id -u; echo $HOME", work)
    assert run.returncode == 0, run.output
    assert "VISIBLE" not in run.stdout, run.stdout
    assert "HEADERS" in run.stdout and "WROTE" in run.stdout and "USR-READ-ONLY" in run.stdout
    assert (work / "mine").read_text() == "hi\n"
    assert not Path("/usr/pds-probe").exists()


def test_protected_paths_under_a_shown_tree_are_hidden(tmp_path):
    """A toolchain outside /usr is shown read-only; a protected directory inside it is not."""
    prefix = tmp_path / "toolchain"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "keys").mkdir()
    (prefix / "keys" / "note.key").write_text("PRIVATE+KEY+secret")
    tool = prefix / "bin" / "peek"
    tool.write_text(f"#!/bin/sh\ncat {prefix}/keys/note.key 2>&1; echo done\n")
    tool.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    shown = run_tool([str(tool)], work, 20)
    assert "PRIVATE+KEY+secret" in shown.stdout  # control: the tree is really shown
    hidden = run_tool([str(tool)], work, 20, protected=[prefix / "keys"])
    assert hidden.returncode == 0 and "done" in hidden.stdout, hidden.output
    assert "PRIVATE+KEY+secret" not in hidden.output


def test_a_workdir_inside_a_protected_directory_is_refused(tmp_path):
    run = sh("true", tmp_path, protected=[tmp_path.parent])
    assert not run.ran and "protected" in run.describe()


def test_no_network_inside(tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3); print('CONNECTED')"
        run = run_tool(["python3", "-c", probe], tmp_path, 20)
        assert "CONNECTED" not in run.stdout and run.returncode != 0, run.output
    finally:
        server.close()


@pytest.mark.slow
def test_timeout_kills_everything_the_tool_started(tmp_path):
    marker = f"sleep {300 + os.getpid() % 1000}.{time.monotonic_ns() % 1000}"  # this run's processes only
    start = time.monotonic()
    run = run_tool(["sh", "-c", f"({marker} &) ; {marker}"], tmp_path, 3)
    assert run.timed_out and time.monotonic() - start < 60

    def leftover() -> list[str]:
        return subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split()

    # the kernel tears the pid namespace down asynchronously after the kill: poll, bounded
    deadline = time.monotonic() + 10
    while leftover() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not leftover(), f"processes outlived the sandbox: {leftover()}"


def test_huge_output_is_capped_in_memory_and_on_disk(tmp_path):
    run = run_tool(["sh", "-c", "yes 0123456789abcdef"], tmp_path, 5, file_size=8 << 20)
    assert len(run.stdout) < 2 << 20 and "[output truncated]" in run.stdout


@pytest.mark.slow
def test_without_bwrap_every_tool_verifier_is_an_error(tmp_path):
    """Fail closed: a PATH with the toolchain but no bwrap; nothing runs unconfined, nothing passes."""
    plugin = build_example("org.pds.examples.rtt_monitor", tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("clang", "opt", "llc", "cppcheck", "prlimit", "git"):
        path = subprocess.run(["which", tool], capture_output=True, text=True).stdout.strip()
        if path:
            os.symlink(path, bin_dir / tool)
    env = {**os.environ, "PATH": str(bin_dir)}
    out = subprocess.run([sys.executable, "-m", "pds_log", "pv", "check", str(plugin), "--json"],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 1, out.stderr
    import json

    results = {r["verifier"]: r for r in json.loads(out.stdout)}
    for name in ("reproducible", "static"):
        assert results[name]["status"] == "error", results[name]
        assert "sandbox unavailable" in results[name]["reason"] and "bwrap" in results[name]["reason"]


@pytest.mark.slow
def test_worker_memory_limit(good):
    result = run_verifier_bounded(Hog("hog", {"runner": "test_hog"}), good, memory=768 << 20, wall=60)
    assert result.status == "error" and "exceeded the memory limit" in result.reason, result.reason


@pytest.mark.slow
def test_worker_wall_clock_limit(good):
    start = time.monotonic()
    result = run_verifier_bounded(Spin("spin", {"runner": "test_spin"}), good, wall=2)
    assert time.monotonic() - start < 30
    assert result.status == "error" and "exceeded the wall-clock limit of 2 s" in result.reason, result.reason


def test_worker_passes_results_back(good):
    result = run_verifier_bounded(Quick("quick", {"runner": "test_quick"}), good)
    assert result.status == "pass" and result.verifier == "quick" and "worker" in result.reason
