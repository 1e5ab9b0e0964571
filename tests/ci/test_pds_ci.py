"""ci/pds_ci.py, the CI safety steps, against real git repositories: restoring the log from its
primary mirror and the CI cache, the PR-area guard against signing from a lost or old log, the
push check, and the plan splitting for GitHub matrices and GitLab `parallel`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pds_log.core.note import NoteSigner
from pds_log.core.signed_root import ZERO_HASH, TreeHead, sign_str
from tests.support import ROOT

SCRIPT = ROOT / "ci" / "pds_ci.py"
ORIGIN = "pv1.example"
GIT_ID = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example", "GIT_COMMITTER_NAME": "t",
          "GIT_COMMITTER_EMAIL": "t@example", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def git(*args, cwd=None):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ID}).stdout.strip()


def run_ci(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **GIT_ID})


class World:
    """A PV directory (pv.yaml, no keys needed), its primary log mirror and a PR with a PV area."""

    def __init__(self, tmp: Path, report_to_pr: bool = True) -> None:
        self.tmp = tmp
        self.signer = NoteSigner.generate(ORIGIN)
        self.pv = tmp / "pv"
        self.pv.mkdir()
        self.primary = tmp / "primary.git"
        self.pr = tmp / "pr.git"
        git("init", "--bare", "-q", str(self.primary))
        git("init", "--bare", "-q", str(self.pr))
        self.work = tmp / "work"  # builds the epochs of the "true" log
        git("init", "-q", "-b", "main", str(self.work))
        self.notes: dict[int, bytes] = {}
        (self.pv / "pv.yaml").write_text(
            "version: 1\n"
            f"origin: {ORIGIN}\n"
            f"pr: {{url: {self.pr}, branch: main}}\n"
            "keys: {note: keys/note.key, ssh: keys/ssh_ed25519}\n"
            "log_repo: log.git\nstate_dir: state\n"
            "verifiers: {reproducible: {runner: reproducible}}\n"
            "acceptance: reproducible\n"
            f"mirrors: [{self.primary}, {tmp / 'other.git'}]\n"
            f"report_to_pr: {'true' if report_to_pr else 'false'}\n")
        self.config = self.pv / "pv.yaml"
        self.log = self.pv / "log.git"

    def note(self, epoch: int, time: int = 1767225600) -> bytes:
        prev = ZERO_HASH if epoch == 1 else __import__("hashlib").sha256(self.notes[epoch - 1]).digest()
        head = TreeHead(ORIGIN, epoch, bytes(32), prev, time + epoch, "ab" * 20, 0, "00" * 32)
        return sign_str(head, self.signer).note

    def epoch(self, epoch: int, work: Path | None = None, time: int = 1767225600) -> str:
        """Commit epoch `epoch` in `work` (default: the true log) and return its commit id."""
        work = work or self.work
        note = self.note(epoch, time)
        if work == self.work:
            self.notes[epoch] = note
        (work / "epochs" / "0").mkdir(parents=True, exist_ok=True)
        (work / "epochs" / "0" / f"{epoch}.note").write_bytes(note)
        (work / "latest.note").write_bytes(note)
        git("add", "-A", cwd=work)
        git("commit", "-q", "-m", f"epoch {epoch}", cwd=work)
        return git("rev-parse", "HEAD", cwd=work)

    def push_primary(self) -> None:
        git("push", "-q", "-f", str(self.primary), "main:main", cwd=self.work)

    def publish_area(self, note: bytes) -> None:
        area = self.tmp / "area"
        if not area.exists():
            git("init", "-q", "-b", f"pvs/{ORIGIN}", str(area))
        d = area / "pvs" / ORIGIN
        d.mkdir(parents=True, exist_ok=True)
        (d / "latest.note").write_bytes(note)
        git("add", "-A", cwd=area)
        git("commit", "-q", "-m", "area", cwd=area)
        git("push", "-q", str(self.pr), f"pvs/{ORIGIN}:refs/heads/pvs/{ORIGIN}", cwd=area)

    def log_head(self) -> str | None:
        result = subprocess.run(["git", "--git-dir", str(self.log), "rev-parse", "-q", "--verify", "refs/heads/main"],
                                capture_output=True, text=True)
        return result.stdout.strip() or None

    def restore(self, *extra) -> subprocess.CompletedProcess:
        return run_ci("restore-log", "--config", self.config, *extra)


@pytest.fixture
def world(tmp_path):
    return World(tmp_path)


@pytest.mark.slow
def test_clones_the_primary_when_there_is_no_cached_log(world):
    world.epoch(1)
    head = world.epoch(2)
    world.push_primary()
    world.publish_area(world.notes[2])
    result = world.restore()
    assert result.returncode == 0, result.stderr
    assert world.log_head() == head
    assert "consistent" in result.stderr


@pytest.mark.slow
def test_refuses_to_start_a_new_log_from_an_empty_or_unreachable_primary(world, tmp_path):
    result = world.restore()
    assert result.returncode == 1 and "refusing to start a new log" in result.stderr
    assert not world.log.exists()
    assert world.restore("--allow-first-epoch").returncode == 0  # the very first epoch, on purpose
    cfg = world.config.read_text().replace(str(world.primary), str(tmp_path / "nowhere.git"))
    world.config.write_text(cfg)
    result = world.restore()
    assert result.returncode == 1 and "cannot reach" in result.stderr


@pytest.mark.slow
def test_a_stale_cache_is_fast_forwarded(world):
    world.epoch(1)
    world.push_primary()
    assert world.restore().returncode == 0
    head = world.epoch(2)
    world.push_primary()
    result = world.restore()
    assert result.returncode == 0, result.stderr
    assert world.log_head() == head and "fast-forwarded" in result.stderr


@pytest.mark.slow
def test_a_cache_ahead_of_the_primary_is_kept(world):
    world.epoch(1)
    world.push_primary()
    assert world.restore().returncode == 0
    # an earlier run signed epoch 2 and pushed it to the PR area, but not to the primary
    ahead = world.epoch(2)
    git("--git-dir", str(world.log), "fetch", "-q", str(world.work), "+main:refs/heads/main")
    world.publish_area(world.notes[2])
    result = world.restore()
    assert result.returncode == 0, result.stderr
    assert world.log_head() == ahead and "ahead" in result.stderr


@pytest.mark.slow
def test_diverged_histories_are_refused(world, tmp_path):
    world.epoch(1)
    world.push_primary()
    assert world.restore().returncode == 0
    other = tmp_path / "other-work"
    git("clone", "-q", str(world.work), str(other))
    git("--git-dir", str(world.log), "fetch", "-q", str(other), "+main:refs/heads/main")
    world.epoch(2, work=other, time=1)  # a second, different epoch 2 in the cache
    git("--git-dir", str(world.log), "fetch", "-q", str(other), "+main:refs/heads/main")
    world.epoch(2)
    world.push_primary()
    before = world.log_head()
    result = world.restore()
    assert result.returncode == 1 and "diverged" in result.stderr
    assert world.log_head() == before


@pytest.mark.slow
def test_an_old_primary_is_caught_by_the_pr_area(world):
    """Cache lost, and the primary is behind what the PV already published on the PR: signing
    epoch 3 from this log would be a second STR for epoch 3."""
    world.epoch(1)
    world.epoch(2)
    world.push_primary()
    world.epoch(3)
    world.publish_area(world.notes[3])
    result = world.restore()
    assert result.returncode == 1
    assert "PR area holds the PV's STR for epoch 3, but the log only reaches epoch 2" in result.stderr


@pytest.mark.slow
def test_a_different_str_on_the_pr_area_is_refused(world):
    world.epoch(1)
    world.push_primary()
    world.publish_area(world.note(1, time=5))  # same epoch, other bytes
    result = world.restore()
    assert result.returncode == 1 and "differs from the log's" in result.stderr


@pytest.mark.slow
def test_the_pr_area_check_needs_the_pr(world, tmp_path):
    world.epoch(1)
    world.push_primary()
    world.config.write_text(world.config.read_text().replace(f"url: {world.pr}", f"url: {tmp_path / 'gone.git'}"))
    result = world.restore()
    assert result.returncode == 1 and "cannot reach" in result.stderr
    assert world.restore("--no-pr-check").returncode == 0


def test_no_pr_check_when_the_pv_does_not_report_to_the_pr(tmp_path):
    world = World(tmp_path, report_to_pr=False)
    world.epoch(1)
    world.push_primary()
    result = world.restore()
    assert result.returncode == 0 and "not checked" in result.stderr


def test_no_mirror_no_ci(world):
    world.config.write_text("\n".join(ln for ln in world.config.read_text().splitlines()
                                      if not ln.startswith("mirrors")) + "\n")
    result = world.restore()
    assert result.returncode == 1 and "no `mirrors:`" in result.stderr


@pytest.mark.slow
def test_check_pushes(world, tmp_path):
    summary = tmp_path / "epoch.json"

    def check(pushes):
        summary.write_text(json.dumps({"epoch": 7, "origin": ORIGIN, "root": "00" * 32, "pushes": pushes}))
        return run_ci("check-pushes", "--config", world.config, summary)

    ok = check({"pr": "ok", str(world.primary): "ok", str(tmp_path / "other.git"): "failed: timeout"})
    assert ok.returncode == 0 and "warning: push to" in ok.stderr
    bad = check({"pr": "ok", str(world.primary): "failed: connection refused"})
    assert bad.returncode == 1 and "did not reach its primary mirror" in bad.stderr
    assert check({}).returncode == 1  # --no-push, or an old pds: not durable either
    summary.write_text("not json")
    assert run_ci("check-pushes", "--config", world.config, summary).returncode == 1


def plan_file(tmp_path, n):
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"v": 1, "items": [{"id": f"{i:04d}", "plugin": f"a.p{i}", "verifier": "safety"}
                                                  for i in range(n)]}))
    return path


@pytest.mark.parametrize("n", [0, 1, 3, 256, 600])
def test_github_matrix_covers_every_item_once_within_256_jobs(tmp_path, n):
    out = run_ci("github-matrix", plan_file(tmp_path, n))
    assert out.returncode == 0, out.stderr
    lines = dict(line.split("=", 1) for line in out.stdout.splitlines())
    batches = json.loads(lines["batches"])
    assert int(lines["count"]) == n and len(batches) == min(n, 256)
    ids = [i for b in batches for i in b.split()]
    assert sorted(ids) == [f"{i:04d}" for i in range(n)]


@pytest.mark.parametrize("n,total", [(0, 4), (3, 4), (10, 4), (9, 1)])
def test_parallel_slices_partition_the_plan(tmp_path, n, total):
    plan = plan_file(tmp_path, n)
    seen = []
    for index in range(1, total + 1):
        out = run_ci("items", plan, "--index", index, "--total", total)
        assert out.returncode == 0, out.stderr
        seen += out.stdout.split()
    assert sorted(seen) == [f"{i:04d}" for i in range(n)]
    assert run_ci("items", plan, "--index", 0, "--total", total).returncode != 0
