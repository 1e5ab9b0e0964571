"""Benchmark: verification with `jobs` = 1 and 2 worker processes, side by side, A B A B.

    python benchmarks/jobs.py                    # 100 plugins, 2 rounds of jobs=1 then jobs=2
    python benchmarks/jobs.py --plugins 20 --rounds 1 --json

Setup (not timed): six of the project's examples (rtt_monitor, path_sum, cwin_total, sack_walk,
state_logger, overflow: passing and failing ones, loops and no loops) built once with clang
(`pds dev build`'s recipe); N plugins made from them, each renamed and its C sources given a
comment of its own, so every plugin has its own files digest and is verified for real (the
objects stay the clang-built ones: a comment does not change them, as the reproducible
verifier confirms). A PV (`pds pv init`) with the default verifier set: reproducible (clang +
llc rebuild), safety, termination (clang IR + opt), side_effects, static (cppcheck), every tool
in the bubblewrap sandbox. Then `pds_log.pv.verification.run_all` over the N plugins, cache
cleared before each run, with jobs=1 and jobs=2 alternating.

Per run: wall seconds; CPU seconds of this (parent) process; CPU seconds of the workers and the
tools they ran (each worker reaps its sandbox processes, so their CPU is counted), summed per
plugin; cores busy = all that CPU / wall; the 1-minute load average before the run. The machine
is shared, so a wall-clock speed-up is only as good as the cores the others leave: the critical-
path figures say what two free cores would give (the per-plugin CPU sum over 2, or the largest
plugin, whichever is longer, plus the parent's own CPU), and `ceiling` is what two processes of
pure Python get against one on this machine at that moment. The results of every run are
compared (duration_s aside): they must be identical whatever `jobs` is.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from pds_log.core.binding import canonical_json  # noqa: E402
from pds_log.core.manifest import parse_plugin_manifest  # noqa: E402
from pds_log.developer.build import read_plugin_dir  # noqa: E402
from pds_log.pv import verification  # noqa: E402
from pds_log.pv.config import load_config  # noqa: E402
from pds_log.pv.prsource import PluginSnapshot  # noqa: E402
from pds_log.pv.setup import DEFAULT_VERIFIERS, init_pv  # noqa: E402
from tests.support import World, build_example  # noqa: E402

BASES = ("rtt_monitor", "path_sum", "cwin_total", "sack_walk", "state_logger", "overflow")


def make_plugins(count: int, work: Path) -> list[tuple[PluginSnapshot, object]]:
    """`count` distinct plugins from the clang-built BASES (renamed, sources commented)."""
    built = []
    for base in BASES:
        name = f"org.bench.{base}"
        files = read_plugin_dir(build_example(f"org.pds.examples.{base}", work / "built", rename=name))
        built.append((name, files))
    plugins = []
    for i in range(count):
        base_name, files = built[i % len(built)]
        name = f"org.bench.j{i:04d}"
        own = {}
        for path, data in files.items():
            if path.endswith(".plugin") and data.split(b"\n", 1)[0].split()[:1] == [base_name.encode()]:
                data = name.encode() + data[len(base_name):]
            elif path.endswith(".c"):
                data += f"/* benchmark plugin {i} */\n".encode()
            own[path] = data
        plugins.append((PluginSnapshot(name, "0" * 40, own), parse_plugin_manifest(own, name)))
    return plugins


def _burn(n: int) -> int:
    total = 0
    for i in range(n):
        total += i
    return total


def ceiling(n: int = 3_000_000) -> float:
    """Speed-up of pure Python in 2 processes vs 1, right now on this machine."""
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(_burn, [10, 10])
        t = time.perf_counter()
        pool.map(_burn, [n], chunksize=1)
        pool.map(_burn, [n], chunksize=1)
        serial = time.perf_counter() - t
        t = time.perf_counter()
        pool.map(_burn, [n, n], chunksize=1)
        return serial / (time.perf_counter() - t)


def fingerprint(results: dict) -> str:
    """The results as written, duration_s aside, in the order run_all gives them."""
    return canonical_json([[name, [[v, {k: x for k, x in r.to_obj().items() if k != "duration_s"}]
                                   for v, r in per.items()]] for name, per in results.items()]).hex()


def one_run(config, plugins, jobs: int) -> dict:
    config.jobs = jobs
    shutil.rmtree(config.state_dir / "results-cache", ignore_errors=True)
    usage: dict[str, float] = {}
    load = os.getloadavg()[0]
    c0, t = os.times(), time.perf_counter()
    results = verification.run_all(config, plugins, usage=usage)
    wall, c1 = time.perf_counter() - t, os.times()
    parent = c1.user + c1.system - c0.user - c0.system
    worker = sum(usage.values())
    statuses: dict[str, int] = {}
    for per in results.values():
        for r in per.values():
            statuses[r.status] = statuses.get(r.status, 0) + 1
    return {"jobs": jobs, "wall_s": round(wall, 2), "parent_cpu_s": round(parent, 2),
            "worker_cpu_s": round(worker, 2), "max_plugin_cpu_s": round(max(usage.values(), default=0.0), 3),
            "cores_busy": round((parent + worker) / wall, 2), "load1": round(load, 2), "statuses": statuses,
            "fingerprint": fingerprint(results)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plugins", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of (jobs=1, jobs=2)")
    parser.add_argument("--json", action="store_true", help="one JSON object per run, then a summary object")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pds-bench-jobs-"))
    try:
        plugins = make_plugins(args.plugins, work)
        world = World(work / "world", developers={"alice": ["org.bench.*"]})
        config = load_config(init_pv(work / "pv", "bench.pv", str(world.pr), verifiers=DEFAULT_VERIFIERS))
        runs = []
        if not args.json:
            print(f"{args.plugins} plugins x {len(DEFAULT_VERIFIERS)} verifiers, {os.cpu_count()} CPUs")
            print(f"{'round':>5} {'jobs':>4} {'wall s':>8} {'parent cpu s':>12} {'worker cpu s':>12} "
                  f"{'cores busy':>10} {'load1':>6} {'ceiling':>7}")
        for rnd in range(1, args.rounds + 1):
            for jobs in (1, 2):
                row = {"round": rnd, **one_run(config, plugins, jobs), "ceiling": round(ceiling(), 2)}
                runs.append(row)
                if args.json:
                    print(json.dumps({k: v for k, v in row.items() if k != "fingerprint"}), flush=True)
                else:
                    print(f"{rnd:5} {jobs:4} {row['wall_s']:8.2f} {row['parent_cpu_s']:12.2f} "
                          f"{row['worker_cpu_s']:12.2f} {row['cores_busy']:10.2f} {row['load1']:6.2f} "
                          f"{row['ceiling']:7.2f}", flush=True)
        summary = summarize(runs)
        if args.json:
            print(json.dumps(summary))
        else:
            for key, value in summary.items():
                print(f"{key:34} {value}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def summarize(runs: list[dict]) -> dict:
    ones = [r for r in runs if r["jobs"] == 1]
    twos = [r for r in runs if r["jobs"] == 2]
    pairs = [round(a["wall_s"] / b["wall_s"], 2) for a, b in zip(ones, twos, strict=False)]
    cpu = statistics.median(r["worker_cpu_s"] for r in runs)
    parent = statistics.median(r["parent_cpu_s"] for r in twos)
    biggest = max(r["max_plugin_cpu_s"] for r in runs)
    ideal_2 = max(cpu / 2, biggest) + parent
    return {
        "wall speed-up per round (1 vs 2)": pairs,
        "statuses": ones[0]["statuses"] if ones else {},
        "results identical across runs": len({r["fingerprint"] for r in runs}) == 1,
        "per-plugin CPU sum, median s": round(cpu, 2),
        "largest plugin CPU s": biggest,
        "parent CPU s (jobs=2), median": round(parent, 2),
        "jobs=1 critical path s": round(cpu + statistics.median(r["parent_cpu_s"] for r in ones), 2),
        "jobs=2 critical path on 2 free cores s": round(ideal_2, 2),
        "achievable speed-up on 2 free cores": round((cpu + parent) / ideal_2, 2),
        "jobs=2 cores busy, median": statistics.median(r["cores_busy"] for r in twos) if twos else None,
    }


if __name__ == "__main__":
    main()
