"""benchmarks/jobs.py runs end to end at a tiny size: one JSON object per run, then a summary that
finds the results identical whatever `jobs` is (the figures are the benchmark's business)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_jobs_benchmark_prints_its_runs_and_a_summary():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "jobs.py"), "--plugins", "3", "--rounds", "1",
                             "--json"], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    *runs, summary = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["jobs"] for r in runs] == [1, 2]
    for run in runs:
        assert run["wall_s"] > 0 and run["worker_cpu_s"] > 0 and sum(run["statuses"].values()) == 15, run
    assert summary["results identical across runs"] is True, summary
    assert summary["achievable speed-up on 2 free cores"] > 0
