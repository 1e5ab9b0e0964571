"""Benchmark: what one epoch, one push and one change cost as the number of plugins N grows.

    python benchmarks/scale.py --sizes 1000,10000,100000 --changed 10     # a table
    python benchmarks/scale.py --sizes 1000,100000 --changed 10 --json    # one JSON object per size
    python benchmarks/scale.py --sizes 1000000                            # 1M: several minutes, GBs
    python benchmarks/scale.py --jobs-check                               # verification, jobs 1 vs 2
    python benchmarks/scale.py --sizes 1000,10000 --variants L1,L2p       # PR layout before / after

Per size and PR variant (`--variants`, measured side by side in one run: L1 = PR layout 1, the
flat plugins/<name>/, with git's default unpack limits, i.e. before issue 15; L2 = layout 2,
plugins/<label>/.../+/; L2p = layout 2 and the PR and the PV's mirror keep what they receive
packed, receive.unpackLimit / fetch.unpackLimit 1, as `pds pr init` and the PV now set them),
on real repositories made by `pds` (not timed as the result):
- a PR (`pds pr init`, developer alice for org.bench.*) whose main branch gets commits signed
  by alice adding N plugins, written straight into the bare repository with pygit2
  (benchmarks/epoch.py's generator; the PV re-checks every commit anyway); names are
  org.bench.g<i // fanout>.p<i> (`--fanout`, 0: all in org.bench); for layout 2 the PR is then
  moved with `pds pr migrate-layout`'s function, one admin commit through the real hook;
- a PV (`pds pv init`) with one `always_pass` verifier, so that verification cost does not hide
  the O(N) costs, and a first epoch accepting all N;
- `changed` pushes through the PR's real hook, one plugin each, made the way `pds dev submit`
  makes them (fetch main into the developer's repository, `update_tree`, `signed_commit`,
  `push`), from a developer repository that borrows the PR's objects (git alternates), so the
  setup does not clone N plugins `changed` times.
Then the measured second epoch. Figures (bytes are file sizes in the object stores: loose objects
zlib'd, packs as received, i.e. about what git transferred):
  epoch_s                wall time of the second epoch (phases in `phases`)
  fetch_bytes / objects  growth of the PV's PR mirror during that epoch
  pr_bytes_per_push      growth of the PR repository's object store per push
  log_bytes_per_change   growth of the log repository in that epoch, per changed plugin
  tree_load_s            the epoch with its tree cache deleted (tree rebuilt from the log)
  fetch_cli_s / fetch_pygit2_s / fetch_pygit2_bytes
                         the same fetch (the pushes) into two copies of the PV's mirror, by the
                         git CLI (what the PV runs) and by pygit2 (libgit2), side by side

--jobs-check: `pds_log.pv.verification.run_all` over 100 plugins (example rtt_monitor, renamed)
with a CPU-bound verifier set (bytecode_safety + termination, no external tools), cache
off, with jobs=1 and jobs=2 side by side, and the load average while it ran.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import pygit2  # noqa: E402
from epoch import ELF, commit_plugins  # noqa: E402

from pds_log.core.binding import plugin_files_digest  # noqa: E402
from pds_log.core.pr_layout import plugin_dir  # noqa: E402
from pds_log.infra.gitremote import fetch_branch, push  # noqa: E402
from pds_log.infra.gitsign import signed_commit  # noqa: E402
from pds_log.infra.gittree import update_tree  # noqa: E402
from pds_log.pr.repo import migrate_layout  # noqa: E402
from pds_log.pv import verification  # noqa: E402
from pds_log.pv.config import load_config  # noqa: E402
from pds_log.pv.epoch import EpochOptions, run_epoch  # noqa: E402
from pds_log.pv.setup import init_pv  # noqa: E402
from tests.support import World  # noqa: E402


def store_stats(git_dir: Path) -> tuple[int, int]:
    """(objects, bytes) of a repository's object store, loose and packed: the object count is
    git's own (count-objects), the bytes are the files' sizes (count-objects reports disk
    blocks, which round every small loose object up to 4 KiB)."""
    out = subprocess.run(["git", "--git-dir", str(git_dir), "count-objects", "-v"], capture_output=True,
                         text=True, check=True).stdout
    fields = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    size = 0
    for root, _, files in os.walk(git_dir / "objects"):
        for name in files:
            if len(name) == 38 or name.endswith((".pack", ".idx")):
                size += os.stat(os.path.join(root, name)).st_size
    return int(fields["count"]) + int(fields["in-pack"]), size


class Developer:
    """alice's repository for pushes: it borrows the PR's objects (alternates), so it starts
    with the N plugins without copying them, and pushes what `pds dev submit` would push."""

    def __init__(self, world: World, path: Path, layout: int) -> None:
        self.world = world
        self.path = path
        self.layout = layout
        pygit2.init_repository(str(path), bare=True)
        (path / "objects" / "info" / "alternates").write_text(str(world.pr / "objects") + "\n")

    def submit(self, name: str, files: dict[str, bytes], message: str) -> str:
        repo, tip = fetch_branch(str(self.world.pr), self.path, "main")
        base = plugin_dir(name, self.layout)
        tree = update_tree(repo, tip.tree, {f"{base}/{p}": d for p, d in files.items()})
        commit = signed_commit(self.path, tree, [str(tip.id)], message, self.world.key("alice"), "alice")
        push(self.path, str(self.world.pr), str(commit), "refs/heads/main")
        return str(commit)


def plugin_files(world: World, name: str, tag: bytes, layout: int) -> dict[str, bytes]:
    """The files of `name` as the bulk generator wrote them, with `tag` appended to the manifest."""
    repo = pygit2.Repository(str(world.pr))
    entry = repo.revparse_single("main").tree[plugin_dir(name, layout)]
    files = {e.name: repo[e.id].data for e in repo[entry.id]}
    files["p.plugin"] += tag
    return files


BULK_PLUGINS_PER_COMMIT = 3000  # 3 files each: under commit_check.MAX_COMMIT_FILES (10,000)


def prefill_results(config, names: list[str]) -> None:
    """Store the first epoch's `always_pass` verdicts in the PV's results cache, as a CI fan-out
    (`pds pv run-one`) would: the first epoch then costs its O(N) bookkeeping, not N worker
    processes (~40 ms each). The plugins' files are benchmarks/epoch.py's."""
    verifier = verification.build(config)["always"]
    cache = verification.cache_for(config)
    result = verifier.result("pass", "always passes (test runner)")
    encoded = json.dumps(result.to_obj())
    rows = [(verifier.config_digest(), plugin_files_digest(
        {"p.plugin": f"{name}\nupdate_rtt post a.o\n".encode(), "a.o": ELF, "a.c": b"int x;\n"}), encoded)
        for name in names]
    db = cache._db()
    db.execute("BEGIN")
    db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?)", rows)
    db.execute("COMMIT")


VARIANTS = {"L1": (1, False), "L2": (2, False), "L2p": (2, True)}  # name -> (PR layout, packed)


def bench_names(n: int, fanout: int) -> list[str]:
    if fanout <= 0:
        return [f"org.bench.p{i:07d}" for i in range(n)]
    return [f"org.bench.g{i // fanout:04d}.p{i:07d}" for i in range(n)]


def git_config(repo: Path, key: str, value: str | None) -> None:
    args = [key, value] if value is not None else ["--unset-all", key]
    subprocess.run(["git", "--git-dir", str(repo), "config", *args], check=value is not None,
                   capture_output=True)


def fetch_both(config, work: Path) -> dict:
    """The epoch's fetch (everything pushed since the last epoch), done into two copies of the
    PV's mirror: by the git CLI, as PrMirror.fetch runs it, and by pygit2 (libgit2)."""
    mirror = config.state_dir / "pr.git"
    refspecs = [f"+refs/heads/{config.pr_branch}:refs/remotes/pr/{config.pr_branch}",
                "+refs/heads/pvs/*:refs/remotes/pr/pvs/*"]
    out: dict = {}
    for tool in ("cli", "pygit2"):
        copy = work / f"mirror-{tool}.git"
        shutil.copytree(mirror, copy, symlinks=True)
        before = store_stats(copy)
        t = time.perf_counter()
        if tool == "cli":
            subprocess.run(["git", "--git-dir", str(copy), "fetch", "--quiet", "--no-tags", "--no-write-fetch-head",
                            config.pr_url, *refspecs], check=True, capture_output=True)
        else:
            pygit2.Repository(str(copy)).remotes.create_anonymous(config.pr_url).fetch(refspecs)
        out[f"fetch_{tool}_s"] = round(time.perf_counter() - t, 3)
        after = store_stats(copy)
        out[f"fetch_{tool}_bytes"], out[f"fetch_{tool}_objects"] = after[1] - before[1], after[0] - before[0]
        shutil.rmtree(copy, ignore_errors=True)
    return out


def push_changes(world: World, names: list[str], changed: int, layout: int,
                 work: Path) -> tuple[list[str], float, tuple[int, int], tuple[int, int]]:
    """`changed` of `names`, evenly spread, each pushed by a developer through the hook:
    (the names, seconds per push, the PR's store stats before and after)."""
    targets = names[:: max(1, len(names) // changed)][:changed]
    dev = Developer(world, work / "alice.git", layout)
    pr_before = store_stats(world.pr)
    t = time.perf_counter()
    for name in targets:
        dev.submit(name, plugin_files(world, name, b"\n", layout), f"update {name}")
    push_s = (time.perf_counter() - t) / max(1, len(targets))
    return targets, push_s, pr_before, store_stats(world.pr)


def measure(n: int, changed: int, work: Path, tree_load: bool = True, variant: str = "L2p",
            fanout: int = 1000, fetch_only: bool = False) -> dict:
    layout, packed = VARIANTS[variant]
    t = time.perf_counter()
    world = World(work, developers={"alice": ["org.bench.*"]})
    if not packed:  # git's defaults: a push of < 100 objects is stored as loose objects
        git_config(world.pr, "receive.unpackLimit", None)
    names = bench_names(n, fanout)
    for start in range(0, n, BULK_PLUGINS_PER_COMMIT):  # a commit changes <= MAX_COMMIT_FILES files
        chunk = names[start:start + BULK_PLUGINS_PER_COMMIT]
        commit_plugins(world, chunk, b"", f"{len(chunk)} plugins")
    migrate_s = None
    if layout != 1:  # the real migration: one admin commit through the hook
        t_m = time.perf_counter()
        migrate_layout(str(world.pr), world.admin, layout)
        migrate_s = round(time.perf_counter() - t_m, 2)
    cfg = init_pv(work / "pv", "bench.pv", str(world.pr), verifiers={"always": {"runner": "always_pass"}},
                  acceptance="always")
    config = load_config(cfg)
    config.report_to_pr = False  # the PR then grows by the pushes alone
    if not fetch_only:
        prefill_results(config, names)
    for repo in (world.pr, config.state_dir / "pr.git"):  # no auto-gc repacking between the counts
        subprocess.run(["git", "--git-dir", str(repo), "config", "gc.auto", "0"], check=True)
    git_config(config.state_dir / "pr.git", "fetch.unpackLimit", "1" if packed else None)
    setup_s = time.perf_counter() - t
    if fetch_only:
        return measure_fetch(world, config, names, changed, layout, work) | {
            "variant": variant, "layout": layout, "fanout": fanout, "setup_s": round(setup_s, 1),
            "migrate_s": migrate_s}
    t = time.perf_counter()
    first = run_epoch(config, EpochOptions(push=False))
    first_s = time.perf_counter() - t
    assert len(first.added) == n, f"first epoch accepted {len(first.added)} of {n}"

    targets, push_s, pr_before, pr_after = push_changes(world, names, changed, layout, work)
    fetches = fetch_both(config, work)

    mirror = config.state_dir / "pr.git"
    mirror_before, log_before = store_stats(mirror), store_stats(config.log_repo)
    t = time.perf_counter()
    second = run_epoch(config, EpochOptions(push=False))
    epoch_s = time.perf_counter() - t
    mirror_after, log_after = store_stats(mirror), store_stats(config.log_repo)
    assert len(second.updated) == len(targets), f"second epoch updated {len(second.updated)} of {len(targets)}"

    row = {
        "n": n, "changed": len(targets), "variant": variant, "layout": layout, "fanout": fanout,
        "epoch_s": round(epoch_s, 3),
        "fetch_bytes": mirror_after[1] - mirror_before[1],
        "pr_bytes_per_push": (pr_after[1] - pr_before[1]) // max(1, len(targets)),
        "log_bytes_per_change": (log_after[1] - log_before[1]) // max(1, len(targets)),
        "fetch_objects": mirror_after[0] - mirror_before[0],
        "pr_objects_per_push": (pr_after[0] - pr_before[0]) / max(1, len(targets)),
        "log_kib_per_epoch": round((log_after[1] - log_before[1]) / 1024, 1),
        "log_objects_per_epoch": log_after[0] - log_before[0],
        "phases": second.seconds,
        "fetch_s": second.seconds.get("fetch"), "commit_checks_s": second.seconds.get("commit_checks"),
        "push_s": round(push_s, 3),
        "setup_s": round(setup_s, 1), "first_epoch_s": round(first_s, 2), "migrate_s": migrate_s,
        **fetches,
    }
    if tree_load:
        t = time.perf_counter()
        run_epoch(config, EpochOptions(push=False))
        row["idle_epoch_s"] = round(time.perf_counter() - t, 3)
        (config.state_dir / "tree.cache").unlink(missing_ok=True)
        t = time.perf_counter()
        run_epoch(config, EpochOptions(push=False))
        row["tree_load_s"] = round(time.perf_counter() - t, 3)
    return row


def measure_fetch(world: World, config, names: list[str], changed: int, layout: int, work: Path) -> dict:
    """--fetch-only: the PR side without epochs: the PV's mirror fetched as the first epoch
    fetches it, `changed` pushes through the hook, then the next epoch's fetch (git CLI, as
    PrMirror.fetch) and its change detection (PrMirror.changed_plugins), timed."""
    from pds_log.pv.prsource import PrMirror

    mirror = PrMirror(config.state_dir / "pr.git", config.pr_url, config.pr_branch)
    old = mirror.fetch()
    targets, push_s, pr_before, pr_after = push_changes(world, names, changed, layout, work)
    fetches = fetch_both(config, work)
    before = store_stats(mirror.path)
    t = time.perf_counter()
    new = mirror.fetch()
    fetch_s = time.perf_counter() - t
    after = store_stats(mirror.path)
    t = time.perf_counter()
    found = mirror.changed_plugins(old, new)
    detect_s = time.perf_counter() - t
    assert found == set(targets), (sorted(found)[:5], targets[:5])
    return {"n": len(names), "changed": len(targets), "fetch_s": round(fetch_s, 3), "detect_s": round(detect_s, 4),
            "fetch_bytes": after[1] - before[1], "fetch_objects": after[0] - before[0],
            "pr_bytes_per_push": (pr_after[1] - pr_before[1]) // max(1, len(targets)),
            "pr_objects_per_push": (pr_after[0] - pr_before[0]) / max(1, len(targets)),
            "push_s": round(push_s, 3), **fetches}


TABLE = [("n", "N", "{:>9,}"), ("variant", "PR", "{:>4}"), ("changed", "chg", "{:>4}"),
         ("epoch_s", "epoch s", "{:>8.2f}"),
         ("fetch_s", "fetch s", "{:>8.2f}"), ("detect_s", "detect s", "{:>9.4f}"),
         ("commit_checks_s", "checks s", "{:>9.2f}"),
         ("fetch_bytes", "fetch KiB", "{:>10,.0f}", 1024), ("fetch_objects", "objs", "{:>6}"),
         ("pr_bytes_per_push", "PR KiB/push", "{:>12,.1f}", 1024),
         ("log_bytes_per_change", "log KiB/chg", "{:>12,.1f}", 1024),
         ("log_kib_per_epoch", "log KiB/ep", "{:>11,.1f}"), ("idle_epoch_s", "idle s", "{:>7.2f}"),
         ("tree_load_s", "no-cache s", "{:>11.2f}"), ("push_s", "push s", "{:>7.2f}"),
         ("fetch_cli_s", "cli s", "{:>6.2f}"), ("fetch_pygit2_s", "pygit2 s", "{:>9.2f}"),
         ("fetch_pygit2_bytes", "pygit2 KiB", "{:>11,.0f}", 1024)]


def print_table(rows: list[dict]) -> None:
    print(" ".join(f"{title:>{int(fmt[3:].rstrip('}').split(',')[0].split('.')[0])}}" for _, title, fmt, *_ in TABLE))
    for row in rows:
        cells = []
        for key, _, fmt, *scale in TABLE:
            value = row.get(key)
            cells.append(fmt.format(value / scale[0] if scale else value) if value is not None else "-")
        print(" ".join(cells))


# ------------------------------------------------------------------------ verification, jobs 1 vs 2
CPU_VERIFIERS = {"safety": {"runner": "bytecode_safety"}, "termination": {"runner": "termination"}}


def _burn(n: int) -> int:
    total = 0
    for i in range(n):
        total += i
    return total


def cpu_ceiling(n: int = 2_000_000) -> float:
    """The speed-up this machine gives right now to pure CPU work in 2 processes vs 1 (other
    users' load shares the cores): the best jobs=2 can reach, measured beside it."""
    import multiprocessing

    t = time.perf_counter()
    _burn(n), _burn(n)
    serial = time.perf_counter() - t
    with multiprocessing.get_context("forkserver").Pool(2) as pool:
        pool.map(_burn, [10, 10])
        t = time.perf_counter()
        pool.map(_burn, [n, n], chunksize=1)
        parallel = time.perf_counter() - t
    return serial / parallel


def jobs_check(plugins: int, work: Path, jobs_list: list[int]) -> dict:
    """run_all over `plugins` copies of the example rtt_monitor with each jobs value, cache off."""
    from pds_log.core.manifest import parse_plugin_manifest
    from pds_log.developer.build import read_plugin_dir
    from pds_log.pv import verification
    from pds_log.pv.prsource import PluginSnapshot
    from tests.support import build_example

    built = build_example("org.pds.examples.rtt_monitor", work / "built")
    files = read_plugin_dir(built)
    manifest_name = next(p for p in files if p.endswith(".plugin"))
    snaps = []
    for i in range(plugins):
        name = f"org.bench.v{i:04d}"
        own = dict(files)
        _, rest = own[manifest_name].split(b"\n", 1)
        own[manifest_name] = name.encode() + b"\n" + rest
        snaps.append((PluginSnapshot(name, "0" * 40, own), parse_plugin_manifest(own, name)))
    world = World(work / "world", developers={"alice": ["org.bench.*"]})
    cfg = init_pv(work / "pv", "bench.pv", str(world.pr), verifiers=CPU_VERIFIERS, acceptance="safety & termination")
    config = load_config(cfg)
    out: dict = {"plugins": plugins, "runs": plugins * len(CPU_VERIFIERS), "cpus": os.cpu_count(),
                 "load_before": os.getloadavg()[0]}
    verification.run_all(config, snaps[:2])  # warm the forkserver and the imports
    out["cpu_ceiling_before"] = round(cpu_ceiling(), 2)
    for jobs in jobs_list:
        config.jobs = jobs
        shutil.rmtree(config.state_dir / "results-cache", ignore_errors=True)
        cpu0 = os.times()
        t = time.perf_counter()
        results = verification.run_all(config, snaps)
        elapsed = time.perf_counter() - t
        cpu1 = os.times()
        statuses = {r.status for per in results.values() for r in per.values()}
        out[f"jobs{jobs}_s"] = round(elapsed, 3)
        out[f"jobs{jobs}_parent_cpu_s"] = round(cpu1.user + cpu1.system - cpu0.user - cpu0.system, 3)
        out[f"jobs{jobs}_statuses"] = sorted(statuses)
    out["cpu_ceiling_after"] = round(cpu_ceiling(), 2)
    out["load_after"] = os.getloadavg()[0]
    if 1 in jobs_list and 2 in jobs_list:
        out["speedup_2_vs_1"] = round(out["jobs1_s"] / out["jobs2_s"], 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated plugin counts")
    parser.add_argument("--changed", type=int, default=10, help="plugins pushed (one push each) before the epoch")
    parser.add_argument("--variants", default="L2p", help=f"comma-separated PR variants ({', '.join(VARIANTS)})")
    parser.add_argument("--fanout", type=int, default=1000, help="plugins per namespace (0: one namespace)")
    parser.add_argument("--fetch-only", action="store_true",
                        help="the PR side only (pushes, the PV's fetch and change detection), no epochs")
    parser.add_argument("--json", action="store_true", help="one JSON object per size (or for --jobs-check)")
    parser.add_argument("--no-tree-load", action="store_true", help="skip the two extra epochs (idle, no cache)")
    parser.add_argument("--jobs-check", action="store_true", help="verification speed-up, jobs 1 vs 2, instead")
    parser.add_argument("--plugins", type=int, default=100, help="plugins for --jobs-check")
    args = parser.parse_args()
    if args.jobs_check:
        work = Path(tempfile.mkdtemp(prefix="pds-bench-jobs-"))
        try:
            row = jobs_check(args.plugins, work, [1, 2])
        finally:
            shutil.rmtree(work, ignore_errors=True)
        if args.json:
            print(json.dumps(row))
        else:
            for key, value in row.items():
                print(f"{key:24} {value}")
        return
    rows = []
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)} (known: {', '.join(VARIANTS)})")
    for n in [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]:
        for variant in variants:
            work = Path(tempfile.mkdtemp(prefix=f"pds-bench-scale-{n}-{variant}-"))
            try:
                row = measure(n, args.changed, work, tree_load=not args.no_tree_load, variant=variant,
                              fanout=args.fanout, fetch_only=args.fetch_only)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            rows.append(row)
            if args.json:
                print(json.dumps(row), flush=True)
    if not args.json:
        print_table(rows)


if __name__ == "__main__":
    main()
