"""The epoch job under SIGKILL and under concurrency: the log is always at a complete epoch,
and no epoch ever gets two different STRs."""

import collections
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pygit2
import pytest

from pds_log.auditor.audit import audit
from pds_log.core.log_layout import LATEST_STR
from pds_log.core.strs import open_any
from pds_log.pv.config import load_config
from tests.pv.epoch_stages import NAMES as STAGE_NAMES
from tests.pv.test_str_v2 import set_config, witness_entry, witness_size
from tests.support import PDS, World, epoch, run
from tests.witness.conftest import WitnessProcess

pytestmark = pytest.mark.slow  # real epochs killed at every stage, concurrent jobs

STAGE_HOOK = Path(__file__).with_name("epoch_stages.py")

VERIFIERS = {"safety": {"runner": "bytecode_safety"}, "side_effects": {"runner": "side_effects"}}


def strs_in_object_store(log_path, origin: str) -> dict[int, set[bytes]]:
    """Every STR note in the log repo's objects, reachable or not, by epoch."""
    repo = pygit2.Repository(str(log_path))
    found: dict[int, set[bytes]] = collections.defaultdict(set)
    for oid in repo.odb:
        obj = repo[oid]
        if obj.type == pygit2.enums.ObjectType.BLOB and obj.data.startswith(origin.encode() + b"\n"):
            found[int(obj.data.split(b"\n")[1])].add(obj.data)
    return found


@pytest.fixture
def world(tmp_path):
    world = World(tmp_path)
    return world


# The branch update is the epoch's single commit point: killed before it, the log is at the
# previous epoch; killed after it, at the new one. Never anything in between.
COMMIT_POINT = STAGE_NAMES.index("advanced")


def log_epoch(log_path) -> int:
    """The epoch of the log branch's head (its latest STR), 0 while there is no log yet."""
    repo = pygit2.Repository(str(log_path))
    ref = repo.references.get("refs/heads/main")
    if ref is None:
        return 0
    note = repo[repo[ref.target].tree[LATEST_STR].id].data
    return int(note.split(b"\n")[1])


def pr_area_latest(pr_path, origin: str) -> bytes:
    repo = pygit2.Repository(str(pr_path))
    tip = repo[repo.references[f"refs/heads/pvs/{origin}"].target]
    return repo[tip.tree[f"pvs/{origin}/{LATEST_STR}"].id].data


def stopped_at(stage: str, config_path, marker: Path, timeout: float = 120) -> subprocess.Popen:
    """`pds pv epoch` started and stopped at `stage` (its marker file is the handshake)."""
    errors = marker.with_suffix(".stderr")
    with errors.open("w") as err:  # a file, not a pipe: a full pipe would stop the job short of the stage
        proc = subprocess.Popen([sys.executable, str(STAGE_HOOK), "pause", stage, str(marker), "--",
                                 "pv", "epoch", "--config", str(config_path), "--json"],
                                stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            pytest.fail(f"the epoch ended (exit {proc.returncode}) without reaching stage {stage}: "
                        f"{errors.read_text()}")
        assert time.monotonic() < deadline, f"the epoch did not reach stage {stage} in {timeout} s"
        time.sleep(0.01)  # polling the handshake file, not a barrier
    return proc


@pytest.mark.parametrize("str_version", [1, 2])
def test_sigkill_at_every_stage(world, tmp_path, str_version):
    """Kill the epoch job at each stage it passes (known to be reached: the first epoch traces
    them) and check, for each, that the log is at the previous or the next epoch -- which one
    the stage decides -- and that the next run completes an epoch that extends it, with the
    very STR the killed run had persisted, if any, and one STR per epoch.

    STR v2 runs the same stages with a real witness: the epoch log under tlog/ is part of the
    epoch commit (the auditor recomputes it after every kill), and a kill between the commit
    point and the cosignature leaves the witness behind, which the next epoch catches up."""
    config_path = world.add_pv("pv1.example", verifiers=VERIFIERS, acceptance="safety & side_effects")
    config = load_config(config_path)
    origin = "pv1.example"
    witness = None
    if str_version == 2:
        witness = WitnessProcess(tmp_path / "w1", "witness.example/w1", [str(config.signer().verifier())]).start()
        set_config(config_path, str_version=2, witnesses=[witness_entry(witness)], witness_timeout=10)
    try:
        _kill_at_every_stage(world, tmp_path, config_path, origin, str_version, witness)
    finally:
        if witness is not None:
            witness.kill()


def _kill_at_every_stage(world, tmp_path, config_path, origin, str_version, witness) -> None:
    config = load_config(config_path)
    world.push_plugins({"org.pds.k.p0": "org.pds.examples.rtt_monitor"}, message="first")
    trace = tmp_path / "trace"
    run(sys.executable, STAGE_HOOK, "trace", trace, "--", "pv", "epoch", "--config", config_path, "--json")
    assert trace.read_text().split() == STAGE_NAMES  # every stage below is reached, once, in order
    examples = ["org.pds.examples.cwin_total", "org.pds.examples.local_call", "org.pds.examples.state_logger"]
    pending_path = config.state_dir / "pending.json"
    for i, stage in enumerate(STAGE_NAMES):
        world.push_plugins({f"org.pds.k.p{i + 1}": examples[i % len(examples)]}, message=f"before {stage}")
        before = log_epoch(config.log_repo)
        proc = stopped_at(stage, config_path, tmp_path / f"at-{stage}")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        pending = json.loads(pending_path.read_text()) if pending_path.exists() else None
        # the log is at the previous epoch before the commit point, at the next one from it on
        assert log_epoch(config.log_repo) == (before + 1 if i >= COMMIT_POINT else before), stage
        report = audit(config.log_repo)  # and it is a complete epoch
        assert report.ok, (stage, [str(f) for f in report.findings])

        summary = epoch(config_path)  # the next run recovers and completes an epoch
        assert "error" not in summary, (stage, summary)
        interrupted_commit = pending is not None and pending["commit"] and i < COMMIT_POINT
        # an epoch committed but not on the branch is moved into place, then the run makes the next
        assert summary["recovered"] == bool(interrupted_commit), stage
        assert summary["epoch"] == (before + 2 if i >= COMMIT_POINT or interrupted_commit else before + 1), stage
        assert log_epoch(config.log_repo) == summary["epoch"], stage
        notes = strs_in_object_store(config.log_repo, origin)
        assert {e: len(v) for e, v in notes.items()} == {e: 1 for e in range(1, summary["epoch"] + 1)}, stage
        if pending is not None and pending["epoch"] == before + 1:
            # an STR body persisted before the kill is the one published for that epoch, and so
            # is its signature, if the killed run had persisted it
            (published,) = notes[before + 1]
            assert published.startswith(pending["head"].encode()), stage
            if pending["note"]:
                assert published == pending["note"].encode(), stage
        (latest,) = notes[summary["epoch"]]
        assert pr_area_latest(world.pr, origin) == latest, stage  # and pushed to the PR area
        assert not pending_path.exists(), stage
        assert open_any(latest, config.signer().verifier()).version == str_version, stage
        if witness is not None:  # caught up to the new head, whatever the killed run had sent
            assert summary["witnesses"] == {witness.name: "cosigned"}, (stage, summary)
            assert witness_size(witness, origin) == summary["epoch"], stage
    report = audit(config.log_repo, pr_path=world.pr)
    assert report.ok, [str(f) for f in report.findings]


def test_two_jobs_at_once_make_exactly_one_str(world):
    config_path = world.add_pv("pv1.example", verifiers=VERIFIERS, acceptance="safety & side_effects")
    world.push_plugins({f"org.pds.c.p{i}": "org.pds.examples.rtt_monitor" for i in range(4)})
    procs = [subprocess.Popen([*PDS, "pv", "epoch", "--config", str(config_path), "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate() for p in procs]
    config = load_config(config_path)
    notes = strs_in_object_store(config.log_repo, "pv1.example")
    winners = [json.loads(out) for (out, _), p in zip(outs, procs, strict=True) if p.returncode == 0]
    losers = [err for (_, err), p in zip(outs, procs, strict=True) if p.returncode != 0]
    # either the second job found the lock held and signed nothing, or it ran after the first
    # and made the next epoch: never two STRs for one epoch
    assert all("locked by another process" in err for err in losers), losers
    assert sorted(w["epoch"] for w in winners) == list(range(1, len(winners) + 1))
    assert {e: len(v) for e, v in notes.items()} == {e: 1 for e in range(1, len(winners) + 1)}


def _wait_until_blocked_on_flock(proc: subprocess.Popen, timeout: float = 120) -> None:
    """Until the kernel lists `proc` as a waiter on a flock (/proc/locks: '-> FLOCK ... <pid>')."""
    deadline = time.monotonic() + timeout
    while True:
        waiters = [ln.split() for ln in Path("/proc/locks").read_text().splitlines() if "->" in ln]
        if any(len(f) > 5 and f[2] == "FLOCK" and f[5] == str(proc.pid) for f in waiters):
            return
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the job never blocked on the lock"
        time.sleep(0.01)


def test_held_lock_refuses_at_once_or_waits(world):
    from pds_log.infra.files import exclusive_lock

    config_path = world.add_pv("pv1.example", verifiers=VERIFIERS, acceptance="safety & side_effects")
    config = load_config(config_path)
    with exclusive_lock(config.state_dir / "epoch.lock"):
        refused = run(*PDS, "pv", "epoch", "--config", config_path, check=False)
        assert refused.returncode == 1 and "locked by another process" in refused.stderr
        waiting = subprocess.Popen([*PDS, "pv", "epoch", "--config", str(config_path), "--wait", "--json"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _wait_until_blocked_on_flock(waiting)  # a handshake with the kernel, not a sleep
        assert waiting.poll() is None  # still waiting for the lock
    out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, err
    assert json.loads(out)["epoch"] == 1
    assert {e: len(v) for e, v in strs_in_object_store(config.log_repo, "pv1.example").items()} == {1: 1}


def test_two_machines_racing_on_one_log_lose_cleanly(world, tmp_path):
    """Two epoch jobs with separate state (two CI runners) and the same log repo: the branch's
    compare-and-swap lets one commit epoch 1; the other commits nothing."""
    config_path = world.add_pv("pv1.example", verifiers=VERIFIERS, acceptance="safety & side_effects")
    world.push_plugins({f"org.pds.r.p{i}": "org.pds.examples.rtt_monitor" for i in range(3)})
    text = config_path.read_text().replace("state_dir: state", f"state_dir: {tmp_path / 'state2'}")
    second = config_path.parent / "pv-runner2.yaml"
    second.write_text(text)
    barrier = config_path.parent / "go"
    code = ("import sys, time, os\n"
            "from pds_log.pv.config import load_config\n"
            "from pds_log.pv import logrepo\n"
            "from pds_log.pv.epoch import run_epoch, EpochOptions\n"
            "orig = logrepo.LogRepo.advance\n"
            "def slow(self, old, new, epoch):\n"
            f"    open({str(barrier)!r} + '.' + str(os.getpid()), 'w').close()  # at the commit point\n"
            f"    while not os.path.exists({str(barrier)!r}): time.sleep(0.01)\n"
            "    return orig(self, old, new, epoch)\n"
            "logrepo.LogRepo.advance = slow\n"
            "try:\n"
            "    s = run_epoch(load_config(sys.argv[1]), EpochOptions(push=False))\n"
            "    print('won', s.epoch)\n"
            "except Exception as e:\n"
            "    print('lost', type(e).__name__, e); sys.exit(3)\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(p)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for p in (config_path, second)]
    # a handshake, not a sleep: each job is at the commit point (its marker file) or has ended
    deadline = time.monotonic() + 120
    while not all(Path(f"{barrier}.{p.pid}").exists() or p.poll() is not None for p in procs):
        assert time.monotonic() < deadline, "the jobs did not reach the commit point"
        time.sleep(0.01)
    barrier.write_text("go")
    outs = [p.communicate(timeout=120) for p in procs]
    results = sorted(out[0].split()[0] for out in outs)
    assert results == ["lost", "won"], outs
    # the loser loses at the epoch's reservation (before it signs: issue 13), or, when both
    # computed the very same STR, at the branch's compare-and-swap
    assert any(("RaceLost" in out[0] and "committed nothing" in out[0])
               or ("SigningRefused" in out[0] and "nothing was signed" in out[0]) for out in outs), outs
    config = load_config(config_path)
    repo = pygit2.Repository(str(config.log_repo))
    assert [c.message.split("\n")[0] for c in repo.walk(repo.references["refs/heads/main"].target)] == ["epoch 1"]
    assert audit(config.log_repo).ok
