"""Fuzz campaign over every parser of outside input (the targets of tests/core/test_fuzz.py).

    python benchmarks/fuzz.py                  # 1,000 cases per parser
    python benchmarks/fuzz.py --cases 5000     # a bigger campaign
    python benchmarks/fuzz.py --only formula --only "proof JSON"

Each parser gets `--cases` inputs from its hypothesis strategy (random bytes and text, random
JSON/YAML trees, valid documents with one field replaced by a hostile value or with byte
edits, mutated notes). An input passes when the parser returns or raises a PdsError; any other
exception is counted as uncaught (the first one's type and input are shown). Prints one table
and exits 1 when anything was uncaught.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402

from tests.core.test_fuzz import TARGETS, Target, outcome  # noqa: E402


def campaign(target: Target, cases: int) -> tuple[int, int, BaseException | None, object, float]:
    """(inputs tried, uncaught exceptions, the first one, its input, seconds)."""
    tried = uncaught = 0
    first: list = [None, None]

    @settings(max_examples=cases, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(target.strategy)
    def run(value: object) -> None:
        nonlocal tried, uncaught
        tried += 1
        stray = outcome(target, value)
        if stray is not None:
            uncaught += 1
            if first[0] is None:
                first[:] = [stray, value]

    start = time.perf_counter()
    run()
    return tried, uncaught, first[0], first[1], time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=1000, help="inputs per parser (default 1000)")
    parser.add_argument("--only", action="append", help="run only this target (repeatable)")
    args = parser.parse_args()
    targets = [t for t in TARGETS if not args.only or t.name in args.only]
    rows = []
    width = max(len(t.name) for t in targets)
    print(f"{'parser':<{width}}  {'cases':>7}  {'uncaught':>8}  {'seconds':>7}  first uncaught exception")
    for target in targets:
        tried, uncaught, exc, value, seconds = campaign(target, args.cases)
        first = "" if exc is None else f"{type(exc).__name__}: {str(exc)[:80]!r} on {value!r:.120}"
        print(f"{target.name:<{width}}  {tried:>7}  {uncaught:>8}  {seconds:>7.1f}  {first}", flush=True)
        rows.append((tried, uncaught))
    total, bad = sum(r[0] for r in rows), sum(r[1] for r in rows)
    failing = sum(1 for r in rows if r[1])
    print(f"{'total':<{width}}  {total:>7}  {bad:>8}")
    print(f"cases: {total}, parsers: {len(rows)}, uncaught exceptions: {bad}"
          + (f" (in {failing} parsers)" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
