"""The CI templates' step sequence, run for real with `pds` on a throw-away PR and PV: each
"runner" starts from pv.yaml and the keys only (plus, when said, the previous runner's cache),
exactly as the GitHub and GitLab jobs do:

    pds_ci.py restore-log -> pds pv epoch --json -> pds_ci.py check-pushes -> pds pv publish
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import PDS, ROOT

pytestmark = pytest.mark.slow  # the CI flow on a real PR and PV

CI = ROOT / "ci" / "pds_ci.py"
ORIGIN = "pv9.ci.test"


def pds(*args, cwd=None, check=True) -> subprocess.CompletedProcess:
    result = subprocess.run([*PDS, *map(str, args)], cwd=cwd, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"pds {' '.join(map(str, args))}: {result.stdout}{result.stderr}")
    return result


def ci(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CI), *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A PR, a primary mirror, and a PV whose first epoch was run by hand (as the README says)."""
    tmp = tmp_path_factory.mktemp("flow")
    pds("dev", "keygen", "--out", tmp / "admin")
    pds("pr", "init", tmp / "pr.git", "--admin-key", tmp / "admin")
    subprocess.run(["git", "init", "-q", "--bare", str(tmp / "primary.git")], check=True)
    pds("pv", "init", tmp / "op", "--origin", ORIGIN, "--pr", tmp / "pr.git", "--mirror", tmp / "primary.git",
        "--acceptance", "safety")
    pds("pr", "add-pv", "--repo", tmp / "pr.git", "--admin-key", tmp / "admin", "--origin", ORIGIN,
        "--key", tmp / "op" / "keys" / "ssh_ed25519.pub")
    first = json.loads(pds("pv", "epoch", "--config", tmp / "op" / "pv.yaml", "--json").stdout)
    assert first["epoch"] == 1 and set(first["pushes"].values()) == {"ok"}
    return tmp


def runner(tmp: Path, name: str, cache_from: Path | None = None) -> Path:
    """A fresh runner: the PV repository (pv.yaml), the keys from secrets, maybe a cache."""
    work = tmp / name
    if cache_from is not None:
        shutil.copytree(cache_from, work, symlinks=True)
        shutil.rmtree(work / "keys")
    else:
        work.mkdir()
    shutil.copy(tmp / "op" / "pv.yaml", work / "pv.yaml")
    shutil.copytree(tmp / "op" / "keys", work / "keys")
    return work


def job(work: Path) -> list[str]:
    """The steps of pv-epoch.yml / .gitlab-ci.yml; returns the names of the steps that passed."""
    done = []
    r = ci("restore-log", "--config", work / "pv.yaml")
    if r.returncode != 0:
        return done + [f"refused: {r.stderr.strip()}"]
    done.append("restore-log")
    epoch = pds("pv", "epoch", "--config", work / "pv.yaml", "--json", check=False)
    if epoch.returncode != 0:
        return done + [f"epoch failed: {epoch.stderr.strip()}"]
    (work / "epoch.json").write_text(epoch.stdout)
    done.append("epoch")
    if ci("check-pushes", "--config", work / "pv.yaml", work / "epoch.json").returncode != 0:
        return done
    done.append("check-pushes")
    pds("pv", "publish", "--config", work / "pv.yaml", "--out", work / "public")
    done.append("publish")
    return done


def primary_epoch(tmp: Path) -> int:
    note = subprocess.run(["git", "--git-dir", str(tmp / "primary.git"), "show", "main:latest.note"],
                          capture_output=True, text=True, check=True).stdout
    return int(note.splitlines()[1])


def test_ci_flow_on_real_pds(setup):
    tmp = setup
    # a fresh runner continues the log from its primary mirror
    r1 = runner(tmp, "r1")
    assert job(r1) == ["restore-log", "epoch", "check-pushes", "publish"]
    assert primary_epoch(tmp) == 2 and (r1 / "public" / "latest.note").exists()
    # check-pushes finds the primary by its URL: pds names pushes by the URLs of pv.yaml
    assert str(tmp / "primary.git") in json.loads((r1 / "epoch.json").read_text())["pushes"]

    # the primary mirror refuses the log branch after the epoch was reserved and signed: the
    # epoch fails (exit 1, never 0) and the job stops before publishing; the next runner, from
    # this runner's cache, pushes the epoch it could not
    hook = tmp / "primary.git" / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\nwhile read old new ref; do\n  if [ \"$ref\" = refs/heads/main ]; then "
                    "echo mirror down >&2; exit 1; fi\ndone\nexit 0\n")
    hook.chmod(0o755)
    r2 = runner(tmp, "r2", cache_from=r1)
    steps = job(r2)
    assert steps[0] == "restore-log" and steps[1].startswith("epoch failed") and "not published" in steps[1], steps
    assert primary_epoch(tmp) == 2
    hook.unlink()
    r3 = runner(tmp, "r3", cache_from=r2)
    assert job(r3) == ["restore-log", "epoch", "check-pushes", "publish"]
    assert primary_epoch(tmp) == 4

    # lost cache and a primary that went back to an old epoch (restored backup, wrong mirror):
    # the PV's own PR area shows a newer STR, so nothing is signed
    old = subprocess.run(["git", "--git-dir", str(tmp / "primary.git"), "rev-parse", "main~2"],
                         capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run(["git", "--git-dir", str(tmp / "primary.git"), "update-ref", "refs/heads/main", old], check=True)
    r4 = runner(tmp, "r4")
    steps = job(r4)
    assert len(steps) == 1 and "PR area holds the PV's STR for epoch 4, but the log only reaches epoch 2" in steps[0]
    assert not (r4 / "state" / "pending.json").exists() and primary_epoch(tmp) == 2

