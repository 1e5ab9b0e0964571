"""Benchmark: what one epoch, one push and one change cost as the number of plugins N grows.

    python benchmarks/scale.py --sizes 1000,10000,100000 --changed 10     # a table
    python benchmarks/scale.py --sizes 1000,100000 --changed 10 --json    # one JSON object per size
    python benchmarks/scale.py --sizes 1000000 --no-tree-load             # 1M: ~30 min, ~15 GB (the log's first epoch)
    python benchmarks/scale.py --sizes 1000,100000,1000000 --synthetic-first --no-tree-load   # 1k-1M in one run
    python benchmarks/scale.py --jobs-check                               # verification, jobs 1 vs 2
    python benchmarks/scale.py --sizes 1000,10000 --variants L1,L2p       # PR layout before / after

Per size and PR variant (`--variants`, measured side by side in one run: L1 = PR layout 1, the
flat plugins/<name>/, with git's default unpack limits, i.e. before issue 15; L2 = layout 2,
plugins/<label>/.../+/; L2p = layout 2 and the PR and the PV's mirror keep what they receive
packed, receive.unpackLimit / fetch.unpackLimit 1, as `pds pr init` and the PV now set them),
on real repositories made by `pds` (not timed as the result):
- a PR (`pds pr init --layout` 1 or 2, developer alice for org.bench.*) whose main branch
  gets the N plugins (benchmarks/epoch.py's files) from `git fast-import`, in commits of 3,000
  plugins (under the commit checks' file limit), each re-made as a commit signed by alice
  (`bulk_pr`): one pack, seconds even at 1M, and the PV's first epoch checks every one of those
  commits as it checks any push;
- a PV (`pds pv init`) with one `always_pass` verifier, so that verification cost does not hide
  the O(N) costs, and a first epoch accepting all N (its verdicts prefilled in the results
  cache, as a CI fan-out of `pds pv run-one` would leave them; everything else is the real
  epoch: commit checks, plan, tree, log commit);
- `changed` pushes through the PR's real hook, one plugin each, made the way `pds dev submit`
  makes them (fetch main into the developer's repository, `update_tree`, `signed_commit`,
  `push`), from a developer repository that borrows the PR's objects (git alternates), so the
  setup does not clone N plugins `changed` times.
Then one epoch with nothing new (`settle_epoch_s`: the epoch after the first reads the first
epoch's record, which names all N plugins) and the measured epoch. No repository the benchmark
makes runs `git gc --auto` (gc.auto 0, set before its first push or fetch): git runs it after
every push into the PR and every fetch, and a repack there would move bytes between the counts.

Names have the same shape at every N (`bench_names`): org.bench.g<d1>.....g<dk>.p<i>, a
balanced tree of label directories below org.bench with at most `--fanout` (32) entries each:
max(2, ceil(log32 N)) levels of equal width (1k: 2 levels of 32; 100k: 4 of 18; 1M: 4 of 32).
A push in layout 2 rewrites one tree per label on its plugin's path, each as large as that
directory's width, so the cost per push and per fetched change is what it is for any namespace
tree of bounded width: growing N adds levels (O(log N)), never width. The changed plugins are
spread evenly, each in its own top-level group org.bench.g<d1> (asserted), so at every N they
share no directory below plugins/org/bench/ and the fetch carries `changed` disjoint paths.
(Before, names were org.bench.g<i // 1000>.p<i>: 1,000 plugins per namespace, and the changes
fell into 1 namespace tree at 1k but 10 at 10k, so fetch bytes grew 7x by that alone.)
`--fanout 0` puts all N in org.bench: one directory of width N on every path, the case a
directory's width grows with N.

Figures (store bytes are file sizes in the object stores: loose objects zlib'd, packs and their
.idx as kept; wire bytes are the packs git sent):
  epoch_s                wall time of the measured epoch (phases in `phases`)
  fetch_bytes / objects  growth of the PV's PR mirror during that epoch; with
                         fetch.unpackLimit 1 index-pack --fix-thin appends to the kept pack
                         every delta base the thin pack referred to (a full copy of each old
                         tree on the changed paths)
  fetch_wire_bytes       the pack that fetch received (GIT_TRACE_PACKFILE), thin: deltas
                         against the trees the mirror already has
  pr_bytes_per_push      growth of the PR repository's object store per push (same --fix-thin)
  pr_wire_bytes_per_push the pack that push sends (send-pack's own pack-objects --thin call)
  log_bytes_per_change   growth of the log repository in that epoch, per changed plugin: the
                         loose objects the epoch writes (git keeps them until gc)
  log_wire_bytes_per_change  the thin pack of that epoch (`pack-objects --revs --thin`, what a
                         mirror or auditor fetches), per changed plugin
  log_packed_bytes_per_change  growth of the log once packed (`git repack -a -d` before and after
                         the epoch, as `git gc` leaves it), per changed plugin
  commit_checks_s        the epoch's commit checks phase (signatures, namespaces, rules)
  tree_load_s            the epoch with its tree cache deleted (tree rebuilt from the log)
  fetch_pds_s / fetch_cli_s / fetch_pygit2_s (and _bytes)
                         the same fetch (the pushes) into copies of the PV's mirror, by
                         PrMirror.fetch (git fetch-pack + sparse check), by `git fetch` and by
                         pygit2 (libgit2), side by side
  load                   the 1-minute load average when the size was done (2 cores, shared)

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
from epoch import ELF  # noqa: E402

from pds_log.core.binding import plugin_files_digest  # noqa: E402
from pds_log.core.pr_layout import plugin_dir  # noqa: E402
from pds_log.infra.gitremote import fetch_branch, push  # noqa: E402
from pds_log.infra.gitsign import signed_commit  # noqa: E402
from pds_log.infra.gittree import update_tree  # noqa: E402
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


def repack_all(git_dir: Path) -> None:
    """What `git gc` does to the object store: one pack, deltas found across every object. No
    reachability bitmap: with one, pack-objects skips the search for deltas against what the
    receiver has (it only reuses deltas already on disk), and epoch_pack_bytes would measure that."""
    subprocess.run(["git", "--git-dir", str(git_dir), "-c", "repack.writeBitmaps=false", "repack", "-a", "-d", "-q"],
                   check=True)


def epoch_pack_bytes(git_dir: Path) -> int:
    """The pack a mirror or auditor that holds the previous epoch fetches for the latest one:
    its objects, thin (deltas against what the previous epoch's commit holds), as git sends it."""
    out = subprocess.run(["git", "--git-dir", str(git_dir), "-c", "pack.useBitmaps=false", "pack-objects", "--revs",
                          "--thin", "--stdout", "-q"],
                         input=b"HEAD\n^HEAD~1\n", capture_output=True, check=True).stdout
    return len(out)


class Developer:
    """alice's repository for pushes: it borrows the PR's objects (alternates), so it starts
    with the N plugins without copying them, and pushes what `pds dev submit` would push."""

    def __init__(self, world: World, path: Path, layout: int) -> None:
        self.world = world
        self.path = path
        self.layout = layout
        self.wire_bytes: list[int] = []
        pygit2.init_repository(str(path), bare=True)
        (path / "objects" / "info" / "alternates").write_text(str(world.pr / "objects") + "\n")
        git_config(path, "gc.auto", "0")  # its fetches would otherwise run gc --auto here

    def submit(self, name: str, files: dict[str, bytes], message: str) -> str:
        repo, tip = fetch_branch(str(self.world.pr), self.path, "main")
        base = plugin_dir(name, self.layout)
        tree = update_tree(repo, tip.tree, {f"{base}/{p}": d for p, d in files.items()})
        commit = signed_commit(self.path, tree, [str(tip.id)], message, self.world.key("alice"), "alice")
        self.wire_bytes.append(push_pack_bytes(self.path, str(commit), str(tip.id)))
        push(self.path, str(self.world.pr), str(commit), "refs/heads/main")
        return str(commit)


def push_pack_bytes(git_dir: Path, new: str, old: str) -> int:
    """The size of the pack `git push` sends for `old..new`: send-pack's own pack-objects call
    (--revs --thin --delta-base-offset: deltas may use objects of `old` the PR has as bases)."""
    out = subprocess.run(["git", "--git-dir", str(git_dir), "pack-objects", "--revs", "--thin", "--stdout", "-q",
                          "--delta-base-offset"], input=f"{new}\n^{old}\n".encode(), capture_output=True,
                         check=True).stdout
    return len(out)


def plugin_files(world: World, name: str, tag: bytes, layout: int) -> dict[str, bytes]:
    """The files of `name` as the bulk generator wrote them, with `tag` appended to the manifest."""
    repo = pygit2.Repository(str(world.pr))
    entry = repo.revparse_single("main").tree[plugin_dir(name, layout)]
    files = {e.name: repo[e.id].data for e in repo[entry.id]}
    files["p.plugin"] += tag
    return files


def prefill_results(config, names: list[str]) -> None:
    """Store the first epoch's `always_pass` verdicts in the PV's results cache, as a CI fan-out
    (`pds pv run-one`) would: the first epoch then costs its O(N) bookkeeping, not N worker
    processes (~40 ms each). The plugins' files are benchmarks/epoch.py's."""
    verifier = verification.build(config)["always"]
    cache = verification.cache_for(config)
    result = verifier.result("pass", "always passes (test runner)")
    encoded = json.dumps(result.to_obj())
    rows = [(verifier.config_digest(), plugin_files_digest(
        {"p.plugin": MANIFEST.format(name=name).encode(), "a.o": ELF, "a.c": SOURCE}), encoded)
        for name in names]
    db = cache._db()
    db.execute("BEGIN")
    db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?)", rows)
    db.execute("COMMIT")


BULK_PLUGINS_PER_COMMIT = 3000  # 3 files each: under commit_check.MAX_COMMIT_FILES (10,000)
VARIANTS = {"L1": (1, False), "L2": (2, False), "L2p": (2, True)}  # name -> (PR layout, packed)


MANIFEST = "{name}\nupdate_rtt post a.o\n"  # benchmarks/epoch.py's plugin_tree, byte for byte
SOURCE = b"int x;\n"


def bench_names(n: int, fanout: int) -> list[str]:
    """N plugin names of one shape at every N: org.bench.g<d1>.....g<dk>.p<i>, where the label
    levels below org.bench form a balanced tree of at most `fanout` entries per directory: k + 1
    levels, k + 1 = max(2, ceil(log_fanout N)), each of width ceil(N ** (1 / (k + 1))). Growing N
    adds levels, never width (1k: 2 levels of 32; 100k: 4 of 18; 1M: 4 of 32), so any cost that
    follows a directory's width shows up as growth with N. fanout 0: all N in org.bench."""
    if fanout <= 0:
        return [f"org.bench.p{i:07d}" for i in range(n)]
    levels = 2
    while fanout ** levels < n:
        levels += 1
    width = 2
    while width ** levels < n:
        width += 1
    names = []
    for i in range(n):
        digits, rest = [], i // width
        for _ in range(levels - 1):
            digits.append(rest % width)
            rest //= width
        names.append(".".join(["org.bench", *(f"g{d:02d}" for d in reversed(digits)), f"p{i:07d}"]))
    return names


def bulk_pr(world: World, names: list[str], layout: int) -> int:
    """The PR's N plugins, fast: `git fast-import` writes every blob and tree straight into one
    pack, as a chain of commits of BULK_PLUGINS_PER_COMMIT plugins (each under the commit
    checks' file limit); each of those commits is then re-made with its tree and signed by alice
    (fast-import in git 2.39 cannot sign), and main moved to the last one. The PV's first epoch
    checks every one of these commits as it checks any push. Returns the number of commits."""
    repo = pygit2.Repository(str(world.pr))
    head = str(repo.revparse_single("main").id)
    proc = subprocess.Popen(["git", "--git-dir", str(world.pr), "fast-import", "--quiet"],
                            stdin=subprocess.PIPE)
    assert proc.stdin is not None
    out = proc.stdin
    out.write(b"blob\nmark :1\ndata %d\n%s\nblob\nmark :2\ndata %d\n%s\n" % (len(ELF), ELF, len(SOURCE), SOURCE))
    commits = 0
    for start in range(0, len(names), BULK_PLUGINS_PER_COMMIT):
        chunk = names[start:start + BULK_PLUGINS_PER_COMMIT]
        message = f"{len(chunk)} plugins".encode()
        lines = [b"commit refs/heads/bulk\ncommitter alice <alice@pds.invalid> 0 +0000\n"
                 b"data %d\n%s\n" % (len(message), message)]
        if commits == 0:
            lines.append(b"from %s\n" % head.encode())
        for name in chunk:
            base = plugin_dir(name, layout).encode()
            manifest = MANIFEST.format(name=name).encode()
            lines.append(b"M 100644 :1 %s/a.o\nM 100644 :2 %s/a.c\nM 100644 inline %s/p.plugin\ndata %d\n%s\n"
                         % (base, base, base, len(manifest), manifest))
        out.write(b"".join(lines) + b"\n")
        commits += 1
    out.close()
    if proc.wait() != 0:
        raise RuntimeError("git fast-import failed")
    unsigned = subprocess.run(["git", "--git-dir", str(world.pr), "rev-list", "--reverse", "refs/heads/bulk",
                               f"^{head}"], capture_output=True, text=True, check=True).stdout.split()
    parent = head
    for commit_id in unsigned:
        commit = repo[commit_id]
        parent = str(signed_commit(world.pr, commit.tree_id, [parent], commit.message.strip(),
                                   world.key("alice"), "alice"))
    repo.references["refs/heads/main"].set_target(parent)
    repo.references.delete("refs/heads/bulk")
    return commits


def git_config(repo: Path, key: str, value: str | None) -> None:
    args = [key, value] if value is not None else ["--unset-all", key]
    subprocess.run(["git", "--git-dir", str(repo), "config", *args], check=value is not None,
                   capture_output=True)


def fetch_both(config, work: Path) -> dict:
    """The epoch's fetch (everything pushed since the last epoch), done into copies of the PV's
    mirror: by PrMirror.fetch (git fetch-pack and the sparse completeness check: what the PV
    runs), by plain `git fetch` (what it ran before; its connectivity check walks the whole new
    tree) and by pygit2 (libgit2)."""
    from pds_log.pv.prsource import PrMirror

    mirror = config.state_dir / "pr.git"
    refspecs = [f"+refs/heads/{config.pr_branch}:refs/remotes/pr/{config.pr_branch}",
                "+refs/heads/pvs/*:refs/remotes/pr/pvs/*"]
    out: dict = {}
    for tool in ("pds", "cli", "pygit2"):
        copy = work / f"mirror-{tool}.git"
        shutil.copytree(mirror, copy, symlinks=True)
        before = store_stats(copy)
        t = time.perf_counter()
        if tool == "pds":
            PrMirror(copy, config.pr_url, config.pr_branch).fetch()
        elif tool == "cli":
            subprocess.run(["git", "--git-dir", str(copy), "fetch", "--quiet", "--no-tags", "--no-write-fetch-head",
                            config.pr_url, *refspecs], check=True, capture_output=True)
        else:
            pygit2.Repository(str(copy)).remotes.create_anonymous(config.pr_url).fetch(refspecs)
        out[f"fetch_{tool}_s"] = round(time.perf_counter() - t, 3)
        after = store_stats(copy)
        out[f"fetch_{tool}_bytes"], out[f"fetch_{tool}_objects"] = after[1] - before[1], after[0] - before[0]
        shutil.rmtree(copy, ignore_errors=True)
    return out


def change_targets(names: list[str], changed: int, fanout: int) -> list[str]:
    """`changed` of `names`, evenly spread: with label levels (bench_names), each in its own
    top-level group org.bench.g<d1>, so at every N the changes share no directory below
    plugins/org/bench/ and each push rewrites the same number of trees."""
    targets = names[:: max(1, len(names) // changed)][:changed]
    if fanout > 0:
        groups = {t.split(".")[2] for t in targets}
        assert len(groups) == len(targets), f"{len(targets)} changes in {len(groups)} top-level groups"
    return targets


def push_changes(world: World, targets: list[str], layout: int,
                 work: Path) -> tuple[float, tuple[int, int], tuple[int, int], int]:
    """Each of `targets` pushed by a developer through the hook: (seconds per push, the PR's
    store stats before and after, bytes per push as sent on the wire)."""
    dev = Developer(world, work / "alice.git", layout)
    pr_before = store_stats(world.pr)
    t = time.perf_counter()
    for name in targets:
        dev.submit(name, plugin_files(world, name, b"\n", layout), f"update {name}")
    push_s = (time.perf_counter() - t) / max(1, len(targets))
    return push_s, pr_before, store_stats(world.pr), sum(dev.wire_bytes) // max(1, len(targets))


def make_world(n: int, work: Path, variant: str, fanout: int) -> tuple:
    """The PR (layout and unpack limits of `variant`) with the N bulk plugins, and the PV with
    its first epoch's verdicts prefilled: (world, config, names, layout, setup facts)."""
    layout, packed = VARIANTS[variant]
    world = World(work, developers={"alice": ["org.bench.*"]}, layout=layout)
    # gc --auto runs after every push into the PR (receive.autogc) and after every fetch into
    # the PV's mirror and alice's repository: a repack there during the setup or between two
    # counts would move bytes between loose objects and packs, and rewrite the packs whose sizes
    # are counted. So no repository the benchmark makes runs it.
    git_config(world.pr, "gc.auto", "0")
    if not packed:  # git's defaults: a push of < 100 objects is stored as loose objects
        git_config(world.pr, "receive.unpackLimit", None)
    names = bench_names(n, fanout)
    t = time.perf_counter()
    commits = bulk_pr(world, names, layout)
    bulk_s = time.perf_counter() - t
    cfg = init_pv(work / "pv", "bench.pv", str(world.pr), verifiers={"always": {"runner": "always_pass"}},
                  acceptance="always")
    config = load_config(cfg)
    config.report_to_pr = False  # the PR then grows by the pushes alone
    for repo in (config.state_dir / "pr.git", config.log_repo):
        git_config(repo, "gc.auto", "0")
    git_config(config.state_dir / "pr.git", "fetch.unpackLimit", "1" if packed else None)
    return world, config, names, layout, {"bulk_commits": commits, "bulk_s": round(bulk_s, 1)}


def measure(n: int, changed: int, work: Path, tree_load: bool = True, variant: str = "L2p",
            fanout: int = 32, fetch_only: bool = False, synthetic_first: bool = False) -> dict:
    t = time.perf_counter()
    world, config, names, layout, facts = make_world(n, work, variant, fanout)
    targets = change_targets(names, changed, fanout)
    if fetch_only:
        return measure_fetch(world, config, targets, layout, work) | {
            "n": n, "variant": variant, "layout": layout, "fanout": fanout,
            "setup_s": round(time.perf_counter() - t, 1), **facts}
    if synthetic_first:
        # epoch 1 written by git fast-import as a real first epoch over this PR writes it (log
        # layout 1, benchmarks/epoch.py): at 1M the real one takes over 10 minutes; the next
        # epoch, a real one, migrates the log to layout 2 and is not measured
        from epoch import synthetic_first_epoch

        setup_s = time.perf_counter() - t
        t = time.perf_counter()
        synthetic_first_epoch(config, names, str(pygit2.Repository(str(world.pr)).revparse_single("main").id))
        first_s = time.perf_counter() - t
    else:
        prefill_results(config, names)
        setup_s = time.perf_counter() - t
        t = time.perf_counter()
        first = run_epoch(config, EpochOptions(push=False))
        first_s = time.perf_counter() - t
        assert len(first.added) == n, f"first epoch accepted {len(first.added)} of {n}"
    # One epoch with nothing new, so the measured epoch follows a steady-state one: an epoch
    # reads its predecessor's record (the policy in effect), which after the first epoch lists
    # all N plugins, and that read is O(size of the previous epoch), not O(N).
    t = time.perf_counter()
    run_epoch(config, EpochOptions(push=False))
    settle_s = time.perf_counter() - t

    push_s, pr_before, pr_after, push_wire = push_changes(world, targets, layout, work)
    fetches = fetch_both(config, work)

    mirror = config.state_dir / "pr.git"
    # The log packed as `git gc` leaves it (a full repack; loose objects and earlier packs go),
    # so that the growth once packed can be measured after the epoch, against the same base
    repack_all(config.log_repo)
    mirror_before, log_before = store_stats(mirror), store_stats(config.log_repo)
    trace = work / "fetched.pack"
    # The setup's writes (GBs at 1M: the bulk PR, the first epoch, the migration) are flushed
    # before the clock starts: the epoch's one os.sync() would otherwise wait for them, and
    # time the benchmark's own setup instead of the epoch (after a real epoch, only that
    # epoch's writes are dirty)
    os.sync()
    t = time.perf_counter()
    with traced_packs(trace):
        second = run_epoch(config, EpochOptions(push=False))
    epoch_s = time.perf_counter() - t
    mirror_after, log_after = store_stats(mirror), store_stats(config.log_repo)
    assert len(second.updated) == len(targets), f"second epoch updated {len(second.updated)} of {len(targets)}"
    log_wire = epoch_pack_bytes(config.log_repo)
    repack_all(config.log_repo)
    log_packed = store_stats(config.log_repo)

    row = {
        "n": n, "changed": len(targets), "variant": variant, "layout": layout, "fanout": fanout,
        "epoch_s": round(epoch_s, 3),
        "fetch_bytes": mirror_after[1] - mirror_before[1],
        "fetch_wire_bytes": trace.stat().st_size if trace.exists() else 0,
        "pr_bytes_per_push": (pr_after[1] - pr_before[1]) // max(1, len(targets)),
        "pr_wire_bytes_per_push": push_wire,
        "log_bytes_per_change": (log_after[1] - log_before[1]) // max(1, len(targets)),
        "log_wire_bytes_per_change": log_wire // max(1, len(targets)),
        "log_packed_bytes_per_change": (log_packed[1] - log_before[1]) // max(1, len(targets)),
        "fetch_objects": mirror_after[0] - mirror_before[0],
        "pr_objects_per_push": (pr_after[0] - pr_before[0]) / max(1, len(targets)),
        "log_kib_per_epoch": round((log_after[1] - log_before[1]) / 1024, 1),
        "log_objects_per_epoch": log_after[0] - log_before[0],
        "phases": second.seconds,
        "fetch_s": second.seconds.get("fetch"), "commit_checks_s": second.seconds.get("commit_checks"),
        "push_s": round(push_s, 3),
        "setup_s": round(setup_s, 1), "first_epoch_s": round(first_s, 2),
        "settle_epoch_s": round(settle_s, 2), **facts,
        "load": round(os.getloadavg()[0], 2),
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


class traced_packs:
    """While active, every pack git fetches is also written to `path` (GIT_TRACE_PACKFILE):
    the bytes on the wire, before index-pack --fix-thin appends any delta bases to the copy it
    keeps."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        self.path.unlink(missing_ok=True)
        os.environ["GIT_TRACE_PACKFILE"] = str(self.path)

    def __exit__(self, *exc: object) -> None:
        os.environ.pop("GIT_TRACE_PACKFILE", None)


def measure_fetch(world: World, config, targets: list[str], layout: int, work: Path) -> dict:
    """--fetch-only: the PR side without epochs: the PV's mirror fetched as the first epoch
    fetches it, `changed` pushes through the hook, then the next epoch's fetch (git CLI, as
    PrMirror.fetch) and its change detection (PrMirror.changed_plugins), timed."""
    from pds_log.pv.prsource import PrMirror

    mirror = PrMirror(config.state_dir / "pr.git", config.pr_url, config.pr_branch)
    old = mirror.fetch()
    push_s, pr_before, pr_after, push_wire = push_changes(world, targets, layout, work)
    fetches = fetch_both(config, work)
    before = store_stats(mirror.path)
    trace = work / "fetched.pack"
    # The setup's writes (GBs at 1M: the bulk PR, the first epoch, the migration) are flushed
    # before the clock starts: the epoch's one os.sync() would otherwise wait for them, and
    # time the benchmark's own setup instead of the epoch (after a real epoch, only that
    # epoch's writes are dirty)
    os.sync()
    t = time.perf_counter()
    with traced_packs(trace):
        new = mirror.fetch()
    fetch_s = time.perf_counter() - t
    after = store_stats(mirror.path)
    t = time.perf_counter()
    found = mirror.changed_plugins(old, new)
    detect_s = time.perf_counter() - t
    assert found == set(targets), (sorted(found)[:5], targets[:5])
    return {"changed": len(targets), "fetch_s": round(fetch_s, 3), "detect_s": round(detect_s, 4),
            "fetch_bytes": after[1] - before[1], "fetch_objects": after[0] - before[0],
            "fetch_wire_bytes": trace.stat().st_size if trace.exists() else 0,
            "pr_bytes_per_push": (pr_after[1] - pr_before[1]) // max(1, len(targets)),
            "pr_wire_bytes_per_push": push_wire,
            "pr_objects_per_push": (pr_after[0] - pr_before[0]) / max(1, len(targets)),
            "push_s": round(push_s, 3), "load": round(os.getloadavg()[0], 2), **fetches}


TABLE = [("n", "N", "{:>9,}"), ("variant", "PR", "{:>4}"), ("changed", "chg", "{:>4}"),
         ("epoch_s", "epoch s", "{:>8.2f}"),
         ("fetch_s", "fetch s", "{:>8.2f}"), ("detect_s", "detect s", "{:>9.4f}"),
         ("commit_checks_s", "checks s", "{:>9.2f}"),
         ("fetch_bytes", "fetch KiB", "{:>10,.1f}", 1024), ("fetch_wire_bytes", "wire KiB", "{:>9,.1f}", 1024),
         ("fetch_objects", "objs", "{:>6}"),
         ("pr_bytes_per_push", "PR KiB/push", "{:>12,.1f}", 1024),
         ("pr_wire_bytes_per_push", "wire KiB/push", "{:>14,.1f}", 1024),
         ("log_bytes_per_change", "log KiB/chg", "{:>12,.1f}", 1024),
         ("log_wire_bytes_per_change", "log wire/chg", "{:>13,.1f}", 1024),
         ("log_packed_bytes_per_change", "log packed/chg", "{:>15,.1f}", 1024),
         ("log_kib_per_epoch", "log KiB/ep", "{:>11,.1f}"), ("idle_epoch_s", "idle s", "{:>7.2f}"),
         ("tree_load_s", "no-cache s", "{:>11.2f}"), ("push_s", "push s", "{:>7.2f}"),
         ("fetch_pds_s", "pds s", "{:>6.2f}"), ("fetch_cli_s", "cli s", "{:>6.2f}"),
         ("fetch_pygit2_s", "pygit2 s", "{:>9.2f}"),
         ("fetch_pygit2_bytes", "pygit2 KiB", "{:>11,.0f}", 1024), ("load", "load", "{:>5.2f}")]


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
    parser.add_argument("--fanout", type=int, default=32,
                        help="most entries per label directory below org.bench (0: all plugins in org.bench)")
    parser.add_argument("--fetch-only", action="store_true",
                        help="the PR side only (pushes, the PV's fetch and change detection), no epochs")
    parser.add_argument("--json", action="store_true", help="one JSON object per size (or for --jobs-check)")
    parser.add_argument("--no-tree-load", action="store_true", help="skip the two extra epochs (idle, no cache)")
    parser.add_argument("--synthetic-first", action="store_true",
                        help="write the PV's first epoch with git fast-import (for 1M; the next epochs are real)")
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
                              fanout=args.fanout, fetch_only=args.fetch_only, synthetic_first=args.synthetic_first)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            rows.append(row)
            if args.json:
                print(json.dumps(row), flush=True)
    if not args.json:
        print_table(rows)


if __name__ == "__main__":
    main()
