"""One signer per PV (issue 13), for real: two copies of one PV (same keys) run epochs
alternately and concurrently. Never two different signed STRs for one epoch anywhere -- in any
git object (loose or packed, reachable or not) of the log repos, the primary mirror, the PR and
the PV state dirs, in the published sites or in a pending record; the copy that is behind
refuses (exit 1) with a message that says what to do; a push that fails after signing is an
error and the next run publishes it.

Each copy signs with its own `--now`, so two STRs one of them signed for one epoch would differ."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from pds_log.core import note as notes
from pds_log.core.signed_root import TreeHead
from tests.support import PDS, ROOT, World, run

pytestmark = pytest.mark.slow  # real epochs racing on one log

ORIGIN = "pv1.example"
FAST = {"safety": {"runner": "bytecode_safety"}}
CI = ROOT / "ci" / "pds_ci.py"
ROUNDS = 20


def start_epoch(config: Path, now: int) -> subprocess.Popen:
    return subprocess.Popen([*PDS, "pv", "epoch", "--config", str(config), "--json", "--now", str(now)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def epoch_once(config: Path, now: int) -> tuple[int, str, str]:
    return finish(start_epoch(config, now))


def git_objects(git_dir: Path) -> list[bytes]:
    """Every blob in `git_dir`: loose and packed, reachable or not."""
    listing = subprocess.run(["git", "--git-dir", str(git_dir), "cat-file", "--batch-all-objects",
                              "--batch-check=%(objectname) %(objecttype)"], capture_output=True, text=True,
                             check=True).stdout.split("\n")
    blobs = [line.split()[0] for line in listing if line.endswith(" blob")]
    if not blobs:
        return []
    data = subprocess.run(["git", "--git-dir", str(git_dir), "cat-file", "--batch"],
                          input=("\n".join(blobs) + "\n").encode(), capture_output=True, check=True).stdout
    out, pos = [], 0
    while pos < len(data):
        end = data.index(b"\n", pos)
        size = int(data[pos:end].split()[2])
        out.append(data[end + 1:end + 1 + size])
        pos = end + 2 + size
    return out


def signed_strs(root: Path) -> dict[int, set[bytes]]:
    """epoch -> every distinct signed STR of ORIGIN found under `root`."""
    found: dict[int, set[bytes]] = defaultdict(set)
    candidates: list[bytes] = []
    for head in root.rglob("HEAD"):
        git_dir = head.parent
        if (git_dir / "objects").is_dir():
            candidates += git_objects(git_dir)
    for path in root.rglob("*"):
        if path.is_file() and path.suffix == ".note":
            candidates.append(path.read_bytes())
        elif path.name == "pending.json":
            note = json.loads(path.read_text()).get("note")
            candidates += [note.encode()] if note else []
    for data in candidates:
        if not data.startswith(ORIGIN.encode() + b"\n") or b"\n\n\xe2\x80\x94 " not in data:
            continue
        head = TreeHead.parse_text(notes.parse(data).text)
        found[head.epoch].add(data)
    return found


def assert_one_str_per_epoch(root: Path) -> int:
    strs = signed_strs(root)
    two = {e: len(s) for e, s in strs.items() if len(s) > 1}
    assert not two, f"two different signed STRs for epochs {two}"
    return max(strs, default=0)


@pytest.fixture
def world(tmp_path):
    world = World(tmp_path)
    return world


def restore_log(config: Path) -> None:
    """Move the signer here, as deployment.md says: bring the log up to date from the primary."""
    restore = subprocess.run([sys.executable, str(CI), "restore-log", "--config", str(config)],
                             capture_output=True, text=True)
    assert restore.returncode == 0, restore.stderr


def test_copies_of_one_pv_never_sign_two_strs_for_one_epoch(world, tmp_path):
    """A, B = `cp -r` of A's directory, and C = a second directory on A's log repo, all with the
    same keys, one primary log mirror and the PR area; 20 rounds, alternately and concurrently."""
    primary = tmp_path / "primary.git"
    subprocess.run(["git", "init", "-q", "--bare", str(primary)], check=True)
    a = world.add_pv(ORIGIN, verifiers=FAST, acceptance="safety", mirrors=[str(primary)])
    code, _, err = epoch_once(a, 1_000_000)
    assert code == 0, err
    shutil.copytree(a.parent, tmp_path / "copy", symlinks=True)
    (tmp_path / "second").mkdir()
    shutil.copytree(a.parent / "keys", tmp_path / "second" / "keys")
    c = tmp_path / "second" / "pv.yaml"
    c.write_text(a.read_text().replace("log_repo: log.git", f"log_repo: {a.parent / 'log.git'}"))
    assert str(a.parent / "log.git") in c.read_text()
    hosts = {"A": a, "B": tmp_path / "copy" / "pv.yaml", "C": c}
    group = {"A": "AC", "B": "B", "C": "AC"}  # A and C share a log repo
    now, behind, wins, last = 1_000_000, [], defaultdict(int), "AC"
    for round_ in range(ROUNDS):
        now += 10
        if round_ % 4 == 0:  # move the signer: the place that is behind catches up and signs
            newcomer = "B" if last == "AC" else "A"
            restore_log(hosts[newcomer])
            code, _, err = epoch_once(hosts[newcomer], now - 5)
            assert code == 0, err
            wins[newcomer] += 1
            last = group[newcomer]
        if round_ % 2 == 0:  # concurrently
            procs = {name: start_epoch(config, now + i) for i, (name, config) in enumerate(hosts.items())}
            results = {name: finish(proc) for name, proc in procs.items()}
        else:  # alternately
            results = {name: epoch_once(config, now + i) for i, (name, config) in enumerate(hosts.items())}
        for name, (code, _, err) in results.items():
            assert code in (0, 1) and (code == 0 or "pds: error:" in err), err  # refused or lost, never a crash
            wins[name] += code == 0
            last = group[name] if code == 0 else last
            if code == 1 and "ahead of this log" in err:
                behind.append(err)
        assert any(code == 0 for code, _, _ in results.values()), results  # someone signed this round
        assert_one_str_per_epoch(tmp_path)
    assert behind and all("restore-log" in m and "One place signs" in m for m in behind), behind[:2]
    assert wins["B"] and (wins["A"] or wins["C"]), wins  # the signer really moved
    for name, config in hosts.items():
        run(*PDS, "pv", "publish", "--config", config, "--out", tmp_path / f"site-{name}", check=False)
    assert assert_one_str_per_epoch(tmp_path) >= ROUNDS + 1


def test_two_directories_on_one_log_repo_race_on_the_pr_area(world, tmp_path):
    """No mirror: the PR area is the authority, and its compare-and-swap decides the race."""
    a = world.add_pv(ORIGIN, verifiers=FAST, acceptance="safety")
    (tmp_path / "second").mkdir()
    shutil.copytree(a.parent / "keys", tmp_path / "second" / "keys")
    b = tmp_path / "second" / "pv.yaml"
    b.write_text(a.read_text().replace("log_repo: log.git", f"log_repo: {a.parent / 'log.git'}"))
    now = 2_000_000
    for _ in range(3):
        now += 10
        results = [finish(p) for p in [start_epoch(config, now + i) for i, config in enumerate((a, b))]]
        assert any(code == 0 for code, _, _ in results) and all(code in (0, 1) for code, _, _ in results), results
        assert_one_str_per_epoch(tmp_path)
    assert assert_one_str_per_epoch(tmp_path) >= 3


def test_a_failed_push_after_signing_is_an_error_and_the_next_run_publishes_it(world, tmp_path):
    primary = tmp_path / "primary.git"
    subprocess.run(["git", "init", "-q", "--bare", str(primary)], check=True)
    a = world.add_pv(ORIGIN, verifiers=FAST, acceptance="safety", mirrors=[str(primary)])
    assert epoch_once(a, 3_000_000)[0] == 0
    hook = primary / "hooks" / "pre-receive"
    hook.write_text('#!/bin/sh\nwhile read old new ref; do\n  if [ "$ref" = refs/heads/main ]; then '
                    'echo mirror down >&2; exit 1; fi\ndone\nexit 0\n')
    hook.chmod(0o755)
    code, out, err = epoch_once(a, 3_000_010)
    assert code == 1 and "not published" in err, err
    assert json.loads(out)["epoch"] == 2  # the summary still says what was signed
    hook.unlink()
    code, out, err = epoch_once(a, 3_000_020)
    assert code == 0, err
    assert json.loads(out)["epoch"] == 3 and set(json.loads(out)["pushes"].values()) == {"ok"}
    tip = subprocess.run(["git", "--git-dir", str(primary), "show", "main:latest.note"], capture_output=True,
                         text=True, check=True).stdout
    assert tip.splitlines()[1] == "3"
    assert_one_str_per_epoch(tmp_path)


def test_an_unreachable_primary_refuses_before_signing(world, tmp_path):
    a = world.add_pv(ORIGIN, verifiers=FAST, acceptance="safety", mirrors=[str(tmp_path / "gone.git")])
    code, _, err = epoch_once(a, 4_000_000)
    assert code == 1 and "cannot reach the primary log mirror" in err and "nothing was signed" in err
    assert assert_one_str_per_epoch(tmp_path) == 0
