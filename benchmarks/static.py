"""Benchmark: the static-analysis verifier on the real PQUIC corpus, options side by side.

    python benchmarks/static.py PQUIC_TREE [--xbgp XBGP_TREE --libxbgp LIBXBGP] [--options a,b,...]
                                [--only SUBSTRING] [--timeout S] [--work DIR] [--json]

PQUIC_TREE is a checkout of p-quic/pquic, XBGP_TREE of pluginized-protocols/xbgp_plugins and
LIBXBGP of pluginized-protocols/libxbgp (none is part of this repository; PQUIC_TREE may be `-`).
Every top-level manifest is imported with `pds dev import` (as benchmarks/corpus.py does, with
libxbgp's include/ for xBGP; nothing is built: the verifier reads sources only), then each
plugin goes through every option in turn, so a noisy shared machine slows all options alike.
Each run is the real verifier (`run_verifier`, tools in the sandbox). Prints, per corpus and
option: median, p90 and worst wall seconds per plugin, the same for CPU seconds (the tools'
from /proc, plus the verifier's own in-process CPU), the verdicts, the findings at or above the
severity (in code the pluglets reach / listed apart as unreached), the TU cache's hits, then
every plugin that does not pass. Load averages are printed: wall times on a loaded machine
are not the machine's.

Options (names for --options):
  before         the v1 command: every category, every configuration (cppcheck's 12), no
                 defines, every finding fails every plugin
  all-categories one configuration (the plugin's defines, --max-configs=1), every category
  one-call       the v2 default: one cppcheck call over all the plugin's sources with -j2
  chosen         the default: cppcheck on each TU alone, two at a time, no cache
  chosen-j1      the same, one tool at a time
  vf-iter1       chosen with --valueflow-max-iterations=1 (cppcheck's default is 4)
  cache-cold     chosen with a TU cache that is empty for every plugin (the key's cost)
  cache-epoch1   chosen with one TU cache, empty before the first plugin and shared by all
                 (a PV's first epoch: variants share their unchanged TUs)
  cache-warm     chosen with that same cache, run right after cache-epoch1 on each plugin
                 (a plugin whose TUs the PV has analysed before)
  build-dir      one-call with a fresh --cppcheck-build-dir in the plugin's workdir
  clang          clang --analyze (default checkers), two at a time
"""

from __future__ import annotations

import argparse
import collections
import hashlib
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
from verifier_runners.sandbox import tool_version  # noqa: E402
from verifier_runners.static import _CPPCHECK_LINE, _SEVERITY_RANK, StaticAnalysis, _cppcheck_findings

OPTIONS: dict[str, dict | None] = {
    "before": None,  # BeforeStatic below
    "all-categories": {"extra_args": ["--enable=warning,style,performance,portability"], "cache": False},
    "one-call": {"cache": False},  # OneCallStatic below
    "chosen": {"cache": False},
    "chosen-j1": {"jobs": 1, "cache": False},
    "vf-iter1": {"extra_args": ["--valueflow-max-iterations=1"], "cache": False},
    "cache-cold": {},
    "cache-epoch1": {},
    "cache-warm": {},
    "build-dir": {"build_dir": True, "cache": False},  # OneCallStatic
    "clang": {"tool": "clang-analyzer", "cache": False},
}
ONE_CALL = ("one-call", "build-dir")


class OneCallStatic(StaticAnalysis):
    """The v2 verifier's cppcheck step, for comparison: one call over every source, -jN."""

    def _cppcheck(self, plugin, sources, defines, workdir, log):
        argv = self._cppcheck_argv(defines)
        if self.config["build_dir"]:
            (workdir / ".pds-cppcheck").mkdir(exist_ok=True)
        argv = [*argv, *([f"-j{self.config['jobs']}"] if self.config["jobs"] > 1 else []), *sources]
        run = self.run_tool(argv, workdir)
        log.append("$ " + " ".join(argv) + "\n" + run.output)
        versions = {"cppcheck": tool_version("cppcheck")}
        if not run.ran or run.timed_out or run.returncode not in (0, None):
            return [], f"cppcheck could not run: {run.describe()}", versions
        return _cppcheck_findings(run.stderr, workdir), None, versions


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

    own = 0.0  # this sampler thread's own CPU, to take out of the process's

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.wait(self.interval):
            self.own = time.thread_time()
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


def import_xbgp(tree: Path, libxbgp: Path | None, work: Path) -> list[tuple[str, Path]]:
    """(plugin name, imported directory) of every xBGP `.plugin` JSON, as benchmarks/corpus.py
    imports them (libxbgp's include/ as -I)."""
    names: collections.Counter = collections.Counter()
    out = []
    for manifest in sorted(tree.rglob("*.plugin")):
        try:
            original = f"org.xbgp.{json.loads(manifest.read_text())['name']}"
        except (ValueError, KeyError, TypeError) as exc:
            print(f"skipped {manifest}: {exc}", file=sys.stderr)
            continue
        names[original] += 1
        name = original if names[original] == 1 else f"{original}.v{names[original]}"
        dest = work / str(manifest.relative_to(tree)).replace("/", "__")
        if not dest.exists():
            try:
                import_plugin(manifest, dest, name=name, include_dirs=[str(libxbgp / "include")] if libxbgp else None)
            except PdsError as exc:
                print(f"skipped {manifest}: {exc}", file=sys.stderr)
                continue
        out.append((name, dest))
    return out


def make_verifier(option: str, timeout: float, cache_root: Path) -> Verifier:
    if option == "before":
        return BeforeStatic("static", {"timeout": timeout})
    cls = OneCallStatic if option in ONE_CALL else StaticAnalysis
    verifier = cls("static", {"runner": "static_analysis", "timeout": timeout, **(OPTIONS[option] or {})})
    if option.startswith("cache-"):
        verifier.use_cache_dir(cache_root / ("shared" if option in ("cache-epoch1", "cache-warm") else "cold-0"))
    return verifier


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def run_one(verifier: Verifier, plugin: "vr.PluginInput", sampler: CpuSampler) -> dict:
    hits_before = dict(getattr(verifier, "cache_stats", {}))
    cpu_before, own_before, sampler_before, start = sampler.total(), time.process_time(), sampler.own, \
        time.perf_counter()
    result = vr.run_verifier(verifier, plugin)
    seconds = time.perf_counter() - start
    own = time.process_time() - own_before
    time.sleep(sampler.interval * 2)  # not a barrier: lets the last sample land
    cpu = sampler.total() - cpu_before + max(0.0, own - (sampler.own - sampler_before))
    lines = result.log.splitlines()
    stats = getattr(verifier, "cache_stats", {})
    return {"plugin": plugin.name, "pluglets": len(plugin.manifest.pluglets), "seconds": round(seconds, 2),
            "cpu": round(cpu, 2), "status": result.status, "reason": result.reason[:300],
            "against": sum(ln.startswith("finding ") for ln in lines),
            "apart": sum(ln.startswith("apart: ") for ln in lines),
            "hits": stats.get("hit", 0) - hits_before.get("hit", 0),
            "tus": sum(stats.get(k, 0) - hits_before.get(k, 0) for k in ("hit", "miss", "uncached")),
            "log_sha256": hashlib.sha256(result.log.encode()).hexdigest(),
            # the findings themselves, to compare options (the log's command lines differ)
            "findings_sha256": hashlib.sha256("\n".join(sorted(
                ln for ln in lines if ln.startswith(("finding ", "apart: ")))).encode()).hexdigest()}


def print_table(title: str, options: list[str], rows: dict[str, list[dict]]) -> None:
    print(f"### {title}\n")
    print("| option | wall s median / p90 / worst | CPU s median / p90 / worst / total | pass / fail / error "
          "| findings reached / apart | TU cache hits |")
    print("|---|---|---|---|---|---|")
    for option in options:
        if not rows[option]:
            continue
        seconds = [r["seconds"] for r in rows[option]]
        cpu = [r["cpu"] for r in rows[option]]
        worst = max(rows[option], key=lambda r: r["seconds"])
        statuses = collections.Counter(r["status"] for r in rows[option])
        tus = sum(r["tus"] for r in rows[option])
        hits = f"{sum(r['hits'] for r in rows[option])}/{tus}" if tus else "-"
        print(f"| {option} | {statistics.median(seconds):.1f} / {percentile(seconds, 0.9):.1f} / "
              f"{worst['seconds']:.1f} ({worst['dir'][:24]}) | {statistics.median(cpu):.1f} / "
              f"{percentile(cpu, 0.9):.1f} / {max(cpu):.1f} / {sum(cpu):.0f} | "
              f"{statuses[PASS]} / {statuses[FAIL]} / {statuses[ERROR]} | "
              f"{sum(r['against'] for r in rows[option])} / {sum(r['apart'] for r in rows[option])} | "
              f"{hits} |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pquic", help="PQUIC tree, or - for none")
    parser.add_argument("--xbgp", type=Path, help="xbgp_plugins tree")
    parser.add_argument("--libxbgp", type=Path, help="libxbgp tree (its include/ is the xBGP plugins' -I)")
    parser.add_argument("--options", default=",".join(OPTIONS), help="comma-separated, from: " + ", ".join(OPTIONS))
    parser.add_argument("--only", action="append", default=[], help="only plugins whose directory contains this")
    parser.add_argument("--timeout", type=float, default=120.0, help="the verifier's timeout per tool run (s)")
    parser.add_argument("--work", type=Path, help="scratch directory (default: a new temporary one)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    options = [o for o in args.options.split(",") if o]
    unknown = [o for o in options if o not in OPTIONS]
    if unknown:
        parser.error(f"unknown option(s) {', '.join(unknown)}")
    if "cache-warm" in options and "cache-epoch1" not in options:
        parser.error("cache-warm runs right after cache-epoch1: give both")
    work = args.work or Path(tempfile.mkdtemp(prefix="pds-static-"))
    cache_root = Path(tempfile.mkdtemp(prefix="pds-static-cache-"))
    corpora = {}
    if args.pquic != "-":
        corpora["PQUIC"] = import_corpus(Path(args.pquic), work / "pquic")
    if args.xbgp:
        corpora["xBGP"] = import_xbgp(args.xbgp, args.libxbgp, work / "xbgp")
    corpora = {k: [(n, d) for n, d in v if not args.only or any(s in d.name for s in args.only)]
               for k, v in corpora.items()}
    verifiers = {o: make_verifier(o, args.timeout, cache_root) for o in options}
    rows: dict[str, dict[str, list[dict]]] = {c: {o: [] for o in options} for c in corpora}
    load_start = os.getloadavg()
    sampler = CpuSampler()
    for corpus, plugins in corpora.items():
        for number, (name, directory) in enumerate(plugins):
            files = read_plugin_dir(directory)
            plugin = vr.PluginInput(name, "0" * 40, files, parse_plugin_manifest(files, name))
            if "cache-cold" in verifiers:  # an empty cache for every plugin
                verifiers["cache-cold"].cache_dir = cache_root / f"cold-{corpus}-{number}"
            for option, verifier in verifiers.items():
                row = {**run_one(verifier, plugin, sampler), "dir": directory.name}
                rows[corpus][option].append(row)
                print(f"{option:13} {directory.name[:56]:56} {row['pluglets']:3} pluglets {row['seconds']:6.1f} s "
                      f"{row['cpu']:6.1f} cpu-s {row['status']:5} {row['against']}/{row['apart']} "
                      f"hits {row['hits']}/{row['tus']}  {row['reason'][:100]}", file=sys.stderr, flush=True)
    load_end = os.getloadavg()
    sampler.stop()
    if args.json:
        print(json.dumps({"load": [load_start, load_end], "rows": rows}, indent=1))
        return
    print(f"static verifier; load average {load_start[0]:.1f} at the start, {load_end[0]:.1f} at the end "
          f"({os.cpu_count()} CPUs)\n")
    for corpus, by_option in rows.items():
        print_table(f"{corpus}: {len(corpora[corpus])} plugins", options, by_option)
    for corpus, by_option in rows.items():
        if "cache-epoch1" in by_option and "cache-warm" in by_option:
            same = sum(a["status"] == b["status"] and a["reason"] == b["reason"] and a["log_sha256"] == b["log_sha256"]
                       for a, b in zip(by_option["cache-epoch1"], by_option["cache-warm"], strict=True))
            print(f"{corpus}: cache-warm gave the same verdict, reason and log bytes as cache-epoch1 on "
                  f"{same}/{len(by_option['cache-warm'])} plugins")
        for option in options:
            if option != "chosen" and "chosen" in by_option and option != "before":
                same = sum(a["findings_sha256"] == b["findings_sha256"]
                           for a, b in zip(by_option["chosen"], by_option[option], strict=True))
                print(f"{corpus}: {option} reported the same findings as chosen on {same}/{len(by_option[option])} "
                      f"plugins")
        for option in options:
            for row in by_option[option]:
                if row["status"] != PASS:
                    reason = re.sub(r"\s+", " ", row["reason"])
                    print(f"- {corpus} {option}: {row['dir']}: {row['status']}: {reason}")


if __name__ == "__main__":
    main()
