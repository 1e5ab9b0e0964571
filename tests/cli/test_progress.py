"""The progress bar of `pds pv epoch` and `pds pv publish`: drawn on stderr when it is a
terminal (a real pty here), never with --json, never under CI, never into a pipe."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import threading

import pytest

from tests.support import PDS, World, run

pytestmark = pytest.mark.slow  # a real epoch on a pseudo-terminal

FAST = {"safety": {"runner": "bytecode_safety"}, "side_effects": {"runner": "side_effects"}}


def on_a_terminal(*args, env=None) -> tuple[int, str, str]:
    """Run with stderr on a fresh pty (stdout a pipe): (exit code, stdout, what the terminal showed)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([str(a) for a in args], stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL,
                            env=env, text=True)
    os.close(slave)
    shown = bytearray()

    def drain():
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                return
            if not chunk:
                return
            shown.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    out, _ = proc.communicate(timeout=600)
    reader.join(timeout=60)
    os.close(master)
    return proc.returncode, out, shown.decode("utf-8", "replace")


@pytest.fixture
def pv(tmp_path):
    world = World(tmp_path)
    config = world.add_pv("pv1.example", verifiers=FAST, acceptance="safety & side_effects")
    world.push_plugins({"org.pds.demo.rtt": "org.pds.examples.rtt_monitor",
                        "org.pds.demo.state": "org.pds.examples.state_logger"})
    return world, config


def test_bar_on_a_terminal_only(pv, tmp_path):
    world, config = pv
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["TERM"] = "xterm"
    code, out, shown = on_a_terminal(*PDS, "pv", "epoch", "--config", config, env=env)
    assert code == 0, shown
    assert "verifying" in shown and "4/4" in shown and "\r" in shown, shown  # 2 plugins x 2 verifiers
    assert "epoch 1 of pv1.example" in out and "\r" not in out
    # under CI (a pty is no person watching): no bar, the summary still printed
    world.push_plugins({"org.pds.demo.rtt": "org.pds.examples.state_logger"}, message="v2")
    code, out, shown = on_a_terminal(*PDS, "pv", "epoch", "--config", config, env={**env, "CI": "true"})
    assert code == 0 and "verifying" not in shown and "\r" not in shown, shown
    # --json on a terminal: stdout is the JSON alone, no bar
    world.push_plugins({"org.pds.demo.rtt": "org.pds.examples.rtt_monitor"}, message="v3")
    code, out, shown = on_a_terminal(*PDS, "pv", "epoch", "--config", config, "--json", env=env)
    assert code == 0 and json.loads(out)["epoch"] == 3 and "verifying" not in shown, shown

    code, out, shown = on_a_terminal(*PDS, "pv", "publish", "--config", config, "--out", tmp_path / "site",
                                     "--no-site", env=env)
    assert code == 0 and "publishing epochs" in shown and "3/3" in shown, shown
    # into a pipe (a log): nothing but the summary
    piped = run(*PDS, "pv", "publish", "--config", config, "--out", tmp_path / "site2", "--no-site", env=env)
    assert "\r" not in piped.stderr and "publishing" not in piped.stderr and "published epochs 1..3" in piped.stdout
