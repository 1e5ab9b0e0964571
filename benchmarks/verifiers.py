"""Benchmark: each verifier on each example plugin (built by clang first).

    python benchmarks/verifiers.py [--runs 3]

Prints a table of wall time per (example, verifier) -- the median of `runs` runs, caching
off -- and each verifier's mean over the examples.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import verifier_runners as vr  # noqa: E402
from pds_log.pv.setup import DEFAULT_VERIFIERS  # noqa: E402
from tests.support import build_example, example_names, plugin_input  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    verifiers = vr.build_verifiers(DEFAULT_VERIFIERS)
    work = Path(tempfile.mkdtemp(prefix="pds-bench-verifiers-"))
    try:
        per_verifier: dict[str, list[float]] = {v: [] for v in verifiers}
        names = list(verifiers)
        print(f"{'example':18} " + " ".join(f"{v:>13}" for v in names) + "   (median of "
              f"{args.runs} runs, ms; verdict letter)")
        for example in example_names():
            plugin = plugin_input(build_example(example, work))
            cells = []
            for vname, verifier in verifiers.items():
                times, status = [], "?"
                for _ in range(args.runs):
                    result = vr.run_verifier(verifier, plugin)
                    times.append(result.duration_s * 1000)
                    status = result.status
                median = statistics.median(times)
                per_verifier[vname].append(median)
                cells.append(f"{median:11.1f} {status[0]}")
            print(f"{example.split('.')[-1]:18} " + " ".join(cells))
        print(f"{'mean':18} " + " ".join(f"{statistics.mean(per_verifier[v]):13.1f}" for v in names))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
