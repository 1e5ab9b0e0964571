"""Hostile plugins pushed through a real PR to a real PV (issue 11): the key-theft include, a
stalling object and a compressed-section bomb each fail alone, and nothing the PV must keep
secret reaches the log repo, the PR area or the published site."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pds_log.pv.config import load_config
from tests.hostile_objects import compressed_bomb, self_jumps
from tests.support import World, epoch, run

pytestmark = pytest.mark.slow


def secret_of(note_key: Path) -> str:
    """The private part of a note key file: PRIVATE+KEY+<origin>+<hex id>+<base64 seed> (the
    base64 may itself hold '+')."""
    text = note_key.read_text().strip()
    assert text.startswith("PRIVATE+KEY+"), text[:20]
    secret = text.split("+", 4)[4]
    assert len(secret) >= 40, "the seed's base64 is 44 characters"
    return secret


def all_objects(repo: Path) -> bytes:
    """Every object of a git repo, reachable or not, loose or packed, uncompressed."""
    return subprocess.run(["git", "--git-dir", str(repo), "cat-file", "--batch-all-objects", "--batch"],
                          capture_output=True, check=True).stdout


def everything_published(world: World, config, site: Path) -> str:
    """Every byte an outsider can read: every object of the log repo and of the PR (which holds
    the PV area), the log's history as text, and every file of the published site."""
    parts = [all_objects(config.log_repo).decode("utf-8", "replace"), all_objects(world.pr).decode("utf-8", "replace"),
             run("git", "-C", config.log_repo, "log", "-p", "--all").stdout]
    for path in sorted(site.rglob("*")):
        if path.is_file():
            parts.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(parts)


def add_plugin_with_source(world: World, name: str, source: str) -> None:
    """A copy of the rtt_monitor example (its real object) whose C source is replaced."""
    plugin = world.ws.path / "plugins" / name
    shutil.copytree(world.example("org.pds.examples.rtt_monitor", name), plugin,
                    ignore=shutil.ignore_patterns("expect.yaml"))
    (plugin / "record_progress.c").write_text(source)


@pytest.fixture(scope="module")
def theft(tmp_path_factory):
    world = World(tmp_path_factory.mktemp("theft"))
    config_path = world.add_pv("pv1.example")  # the default verifiers: clang, opt, cppcheck all run
    config = load_config(config_path)
    world.ws.reset_to_remote()
    add_plugin_with_source(world, "org.pds.evil.key", f'#include "{config.note_key}"\n')
    add_plugin_with_source(world, "org.pds.evil.passwd", '#include "/etc/passwd"\n')
    add_plugin_with_source(world, "org.pds.evil.relative", '#include "../../../../../../../../etc/passwd"\n')
    world.ws.add_plugin(world.example("org.pds.examples.rtt_monitor", "org.pds.good.rtt"), "org.pds.good.rtt")
    world.ws.commit("three include attacks and a good plugin", world.key("alice"))
    assert world.ws.push().returncode == 0
    summary = epoch(config_path)
    site = world.root / "site"
    run(sys.executable, "-m", "pds_log", "pv", "publish", "--config", config_path, "--out", site)
    return world, config, summary, site


def test_the_attack_is_real_without_the_sandbox(theft):
    """Control: clang run directly on the key-theft source quotes the key, so the next test
    would catch a sandbox that does not hide it."""
    world, config, _, _ = theft
    src = world.root / "control.c"
    src.write_text(f'#include "{config.note_key}"\n')
    out = subprocess.run(["clang", "-target", "bpf", "-c", str(src), "-o", str(world.root / "control.o")],
                         capture_output=True, text=True)
    assert secret_of(config.note_key) in out.stderr


def test_no_byte_of_the_key_or_passwd_is_published(theft):
    world, config, summary, site = theft
    published = everything_published(world, config, site)
    assert secret_of(config.note_key) in config.note_key.read_text()
    assert secret_of(config.note_key) not in published
    for line in Path("/etc/passwd").read_text().splitlines():
        if len(line) >= 20:  # whole lines (user:x:uid:gid:...): no accidental match in binary data
            assert line not in published, f"/etc/passwd line published: {line!r}"


def test_include_attacks_are_rejected_with_a_reason_and_the_good_plugin_accepted(theft):
    _, _, summary, _ = theft
    assert summary["added"] == ["org.pds.good.rtt"]
    rejected = {r["name"]: r["reason"] for r in summary["rejected"]}
    assert set(rejected) == {"org.pds.evil.key", "org.pds.evil.passwd", "org.pds.evil.relative"}
    for name, reason in rejected.items():
        assert "reproducible" in reason and "rebuild failed" in reason, (name, reason)


def test_the_compiler_saw_no_such_file(theft):
    """The verifier log says why: the file does not exist inside the sandbox."""
    world, config, _, _ = theft
    log = run("git", "-C", config.log_repo, "log", "-p", "--all").stdout
    assert re.search(r"note\.key'? file not found", log), "expected clang's 'file not found' in the logs"
    assert re.search(r"/etc/passwd'? file not found", log)


def test_stalling_and_inflating_objects_fail_alone(tmp_path):
    world = World(tmp_path)
    config_path = world.add_pv("pv1.example", verifiers={
        "safety": {"runner": "bytecode_safety"}, "termination": {"runner": "termination"},
        "side_effects": {"runner": "side_effects"}}, acceptance="safety & termination & side_effects")
    world.ws.reset_to_remote()
    add_plugin_with_source(world, "org.pds.evil.jumps", "int record_progress(void) { for (;;) ; }\n")
    (world.ws.path / "plugins/org.pds.evil.jumps/record_progress.o").write_bytes(self_jumps(130_000))
    add_plugin_with_source(world, "org.pds.evil.bomb", "int record_progress(void) { return 0; }\n")
    (world.ws.path / "plugins/org.pds.evil.bomb/record_progress.o").write_bytes(compressed_bomb(32 << 20))
    world.ws.add_plugin(world.example("org.pds.examples.rtt_monitor", "org.pds.good.rtt"), "org.pds.good.rtt")
    world.ws.commit("a 1 MiB object of self-jumps, a 33 KB compressed bomb, a good plugin", world.key("alice"))
    assert world.ws.push().returncode == 0
    wrapper = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")
    out = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-m", "pds_log", "pv", "epoch",
                          "--config", str(config_path), "--json"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    import json

    summary_text, peak_kib = out.stdout.rsplit("\n", 2)[0], int(out.stdout.split()[-1])
    summary = json.loads(summary_text)
    assert summary["added"] == ["org.pds.good.rtt"]
    rejected = {r["name"]: r["reason"] for r in summary["rejected"]}
    assert "compressed" in rejected["org.pds.evil.bomb"], rejected
    assert "instructions, over the limit" in rejected["org.pds.evil.jumps"], rejected
    # the epoch process never inflated the 32 MiB (the measured attack reached 3.1 GB)
    assert peak_kib < 600 * 1024, f"epoch peak RSS {peak_kib} KiB"
