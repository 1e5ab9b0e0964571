"""benchmarks/scale.py runs end to end at a tiny size and prints one valid JSON object per size
(the figures themselves are the benchmark's business, not a test's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_scale_prints_one_json_object_per_size():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "scale.py"), "--sizes", "20,30",
                             "--changed", "2", "--json", "--no-tree-load"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["n"], r["changed"]) for r in rows] == [(20, 2), (30, 2)]
    for row in rows:
        for key in ("epoch_s", "fetch_bytes", "pr_bytes_per_push", "log_bytes_per_change"):
            assert isinstance(row[key], (int, float)) and row[key] > 0, (key, row)
