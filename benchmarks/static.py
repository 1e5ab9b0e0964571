"""Benchmark: the static-analysis verifier on the real PQUIC corpus, options side by side.

    python benchmarks/static.py PQUIC_TREE [--options a,b,...] [--only SUBSTRING] [--timeout S]
                                [--work DIR] [--json]

PQUIC_TREE is a checkout of p-quic/pquic (not part of this repository). Every top-level
manifest is imported with `pds dev import` (as benchmarks/corpus.py does; nothing is built:
the verifier reads sources only), then each plugin goes through every option in turn, so a
noisy shared machine slows all options alike. Each run is the real verifier
(`run_verifier`, tools in the sandbox). Prints, per option: median, worst and total wall
seconds per plugin, the verdicts, and the findings at or above the severity (in code the
pluglets reach / listed apart as unreached), then the worst plugins.

Options (names for --options):
  before         the v1 command: every category, every configuration (cppcheck's 12), no
                 defines, every finding fails every plugin
  all-categories one configuration (the plugin's defines, --max-configs=1), every category
  chosen-j1      one configuration, only the categories that can fail, one tool at a time
  chosen         the default: the same with cppcheck -j2 and two IR builds at a time
  build-dir      chosen with a fresh --cppcheck-build-dir in the plugin's workdir
  clang          clang --analyze (default checkers), two at a time
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from corpus import top_level_pquic_manifests  # noqa: E402

import verifier_runners as vr  # noqa: E402
from pds_log.core.errors import PdsError  # noqa: E402
from pds_log.core.manifest import parse_plugin_manifest  # noqa: E402
from pds_log.developer.build import read_plugin_dir  # noqa: E402
from pds_log.developer.importer import import_plugin  # noqa: E402
from verifier_runners.base import ERROR, FAIL, PASS, Verifier  # noqa: E402
from verifier_runners.static import _CPPCHECK_LINE, _SEVERITY_RANK  # noqa: E402

OPTIONS = {
    "before": None,  # BeforeStatic below
    "all-categories": {"extra_args": ["--enable=warning,style,performance,portability"]},
    "chosen-j1": {"jobs": 1},
    "chosen": {},
    "build-dir": {"jobs": 2, "build_dir": True},
    "clang": {"tool": "clang-analyzer", "jobs": 2},
}


class BeforeStatic(Verifier):
    """The v1 verifier's command and verdict, for comparison: every finding fails."""

    runner = "static_analysis_v1"
    default_timeout = 300.0

    def check(self, plugin, workdir):
        sources = sorted(p for p in plugin.files if p.endswith(".c"))
        argv = ["cppcheck", "--enable=warning,style,performance,portability", "--inline-suppr", "--quiet",
                "--language=c", "--std=c11", "-I", ".", "--error-exitcode=0",
                "--template={file}:{line}:{column}:{severity}:{id}:{message}", *sources]
        run = self.run_tool(argv, workdir)
        if not run.ran or run.timed_out or run.returncode not in (0, None):
            return self.result(ERROR, f"cppcheck could not run: {run.describe()}")
        findings = [m for m in map(_CPPCHECK_LINE.match, map(str.strip, run.stderr.splitlines()))
                    if m and m.group("id") not in ("missingIncludeSystem", "missingInclude", "checkersReport")
                    and _SEVERITY_RANK.get(m.group("sev"), 0) >= _SEVERITY_RANK["warning"]]
        log = "\n".join(f"finding {m.group('file')}:{m.group('line')}" for m in findings)
        return self.result(FAIL if findings else PASS, f"{len(findings)} finding(s)", log)


class CpuSampler:
    """CPU seconds of this process's descendants, sampled from /proc every `interval` s. The
    sandbox hides them from getrusage (bwrap exits without reaping the namespace's init), so
    they are read while they run: a process's last sample counts (at most `interval` lost)."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.ticks = os.sysconf("SC_CLK_TCK")
        self.last: dict[tuple[int, int], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.wait(self.interval):
            stats = {}
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                try:
                    with open(f"/proc/{entry}/stat") as handle:
                        fields = handle.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                # after the command: state ppid ... utime(12) stime(13) ... starttime(20)
                stats[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / self.ticks,
                                     int(fields[19]))
            for pid, (ppid, cpu, started) in stats.items():
                parent, depth = ppid, 0
                while parent not in (me, 0, 1) and parent in stats and depth < 64:
                    parent, depth = stats[parent][0], depth + 1
                if parent == me and pid != me:
                    self.last[(pid, started)] = cpu

    def total(self) -> float:
        return sum(self.last.values())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def import_corpus(tree: Path, work: Path) -> list[tuple[str, Path]]:
    """(plugin name, imported directory) of every top-level PQUIC manifest; variants renamed."""
    names: collections.Counter = collections.Counter()
    out = []
    for manifest in top_level_pquic_manifests(tree):
        content = [ln for ln in manifest.read_text(errors="replace").splitlines()
                   if ln.strip() and not ln.lstrip().startswith("#")]
        original = content[0].split()[0]
        names[original] += 1
        name = original if names[original] == 1 else f"{original}.v{names[original]}"
        dest = work / str(manifest.relative_to(tree)).replace("/", "__")
        if not dest.exists():
            try:
                import_plugin(manifest, dest, name=name if name != original else None)
            except PdsError as exc:
                print(f"skipped {manifest}: {exc}", file=sys.stderr)
                continue
        out.append((name, dest))
    return out


def make_verifier(option: str, timeout: float) -> Verifier:
    if option == "before":
        return BeforeStatic("static", {"timeout": timeout})
    return vr.build_verifiers({"static": {"runner": "static_analysis", "timeout": timeout,
                                          **OPTIONS[option]}})["static"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pquic", type=Path)
    parser.add_argument("--options", default=",".join(OPTIONS), help="comma-separated, from: " + ", ".join(OPTIONS))
    parser.add_argument("--only", action="append", default=[], help="only plugins whose directory contains this")
    parser.add_argument("--timeout", type=float, default=120.0, help="the verifier's timeout per plugin (s)")
    parser.add_argument("--work", type=Path, help="scratch directory (default: a new temporary one)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    options = [o for o in args.options.split(",") if o]
    unknown = [o for o in options if o not in OPTIONS]
    if unknown:
        parser.error(f"unknown option(s) {', '.join(unknown)}")
    work = args.work or Path(tempfile.mkdtemp(prefix="pds-static-"))
    plugins = [(n, d) for n, d in import_corpus(args.pquic, work / "pquic")
               if not args.only or any(s in d.name for s in args.only)]
    verifiers = {o: make_verifier(o, args.timeout) for o in options}
    rows: dict[str, list[dict]] = {o: [] for o in options}
    load_start = os.getloadavg()
    sampler = CpuSampler()
    for name, directory in plugins:
        files = read_plugin_dir(directory)
        plugin = vr.PluginInput(name, "0" * 40, files, parse_plugin_manifest(files, name))
        for option, verifier in verifiers.items():
            cpu_before, start = sampler.total(), time.perf_counter()
            result = vr.run_verifier(verifier, plugin)
            seconds = time.perf_counter() - start
            time.sleep(sampler.interval * 2)  # not a barrier: lets the last sample land
            cpu = sampler.total() - cpu_before
            lines = result.log.splitlines()
            row = {"plugin": name, "dir": directory.name, "pluglets": len(plugin.manifest.pluglets),
                   "seconds": round(seconds, 2), "cpu": round(cpu, 2), "status": result.status,
                   "reason": result.reason[:200],
                   "against": sum(ln.startswith("finding ") for ln in lines),
                   "apart": sum(ln.startswith("apart: ") for ln in lines)}
            rows[option].append(row)
            print(f"{option:15} {directory.name[:60]:60} {row['pluglets']:3} pluglets {seconds:7.1f} s "
                  f"{cpu:6.1f} cpu-s {result.status:5} {row['against']}/{row['apart']}  {result.reason[:110]}",
                  file=sys.stderr,
                  flush=True)
    load_end = os.getloadavg()
    sampler.stop()
    if args.json:
        print(json.dumps({"load": [load_start, load_end], "rows": rows}, indent=1))
        return
    print(f"static verifier on {len(plugins)} PQUIC plugins; load average {load_start[0]:.1f} at the start, "
          f"{load_end[0]:.1f} at the end ({os.cpu_count()} CPUs)\n")
    print("| option | median s | worst s | total s | CPU s median / worst / total | pass / fail / error "
          "| findings reached | findings apart |")
    print("|---|---|---|---|---|---|---|---|")
    for option in options:
        seconds = [r["seconds"] for r in rows[option]]
        if not seconds:
            continue
        statuses = collections.Counter(r["status"] for r in rows[option])
        worst = max(rows[option], key=lambda r: r["seconds"])
        cpu = [r["cpu"] for r in rows[option]]
        print(f"| {option} | {statistics.median(seconds):.1f} | {worst['seconds']:.1f} ({worst['dir'][:30]}) | "
              f"{sum(seconds):.0f} | {statistics.median(cpu):.1f} / {max(cpu):.1f} / {sum(cpu):.0f} | "
              f"{statuses[PASS]} / {statuses[FAIL]} / {statuses[ERROR]} | "
              f"{sum(r['against'] for r in rows[option])} | {sum(r['apart'] for r in rows[option])} |")
    print()
    for option in options:
        for row in rows[option]:
            if row["status"] != PASS:
                reason = re.sub(r"\s+", " ", row["reason"])
                print(f"- {option}: {row['dir']}: {row['status']}: {reason}")


if __name__ == "__main__":
    main()
