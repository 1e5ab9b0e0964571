"""Benchmark: PV epoch overhead (verifiers excluded) with a large tree and a small change.

    python benchmarks/epoch.py                       # 100,000 plugins in the tree, 10 changed
    python benchmarks/epoch.py --plugins 20000
    python benchmarks/epoch.py --compare 2e2d533 --sizes 1000,100000 --changed 10 [--json]
    python benchmarks/epoch.py --compare 2e2d533 --sizes 1000,100000,1000000 --synthetic --json

--compare REV: the log side of issue 15, before and after, side by side in one run. Per size N:
a PR of N plugins (the generator below, in commits of 3,000), a PV (`init_pv`, `always_pass`,
its results cache prefilled for the N plugins and their K changed versions, as a CI fan-out
would, so no verifier runs), and a first epoch run by the code at REV (a git worktree: log
layout 1, tree cache written). The PV directory is then copied twice. Copy "after": the current
code runs an epoch with nothing new (the one-time migration to log layout 2: `migrate_s`). Then
K plugins change in one signed commit, and each copy runs the same epoch: "before" by the code
at REV (layout 1, tree from its cache), "after" by the current code (layout 2, tree loaded
from the tiles on the changed paths). Each epoch runs in its own process with only that code
on sys.path; `epoch_s` is run_epoch's wall time in it, `log_kib_per_change` the growth of the
log's object store (file sizes) over K; each side runs `--rounds` epochs (the same K plugins
change again each round, the two sides alternating who goes first) and reports the median
round, and the min. The log repos get gc.auto 0: the reservation push into the log would
otherwise start a background `gc --auto` that repacks while epochs are timed.

--synthetic: epoch 1 is not run but written by git fast-import (`synthetic_first_epoch`), and
the PR holds only the K plugins the measured epochs change: a 1M-plugin PR in the flat PR
layout 1 takes this generator hours, and the log side reads only the changed plugins. With a
1M PR of layout 2 (benchmarks/scale.py), call synthetic_first_epoch with its head as source.

Setup (not timed as the result): a real PR (`pds pr init`, a developer in the policy) whose
main branch gets one commit, signed by that developer, adding N plugins (written straight into
the bare repository with pygit2: the PV re-checks every commit anyway); a PV with a single
`always_pass` verifier, so only the epoch's own work is measured; a first epoch accepting all.
Then one signed commit changes K plugins and the next epoch is timed, phase by phase, with the
number of objects and bytes it added to the log repository.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# PDS_BENCH_CODE: the checkout whose pds_log this process runs (--compare's "before" code)
CODE = Path(os.environ.get("PDS_BENCH_CODE") or HERE.parent)
sys.path.insert(0, str(CODE))

import pygit2  # noqa: E402

from pds_log.infra.gitsign import signed_commit  # noqa: E402
from pds_log.pv.config import load_config  # noqa: E402
from pds_log.pv.epoch import EpochOptions, run_epoch  # noqa: E402
from pds_log.pv.setup import init_pv  # noqa: E402
from tests.support import World  # noqa: E402

ELF = b"\x7fELF\x02\x01\x01" + bytes(9) + (1).to_bytes(2, "little") + (247).to_bytes(2, "little") + bytes(44)


def object_stats(repo_path: Path) -> tuple[int, int]:
    """(loose objects, bytes on disk) of a git repository."""
    count = size = 0
    for root, _, files in os.walk(repo_path / "objects"):
        for name in files:
            if len(name) == 38:
                count += 1
                size += (Path(root) / name).stat().st_size
    return count, size


def plugin_tree(repo, name: str, obj, src, tag: bytes = b"") -> pygit2.Oid:
    tb = repo.TreeBuilder()
    tb.insert("p.plugin", repo.create_blob(f"{name}\nupdate_rtt post a.o\n".encode() + tag), pygit2.GIT_FILEMODE_BLOB)
    tb.insert("a.o", obj, pygit2.GIT_FILEMODE_BLOB)
    tb.insert("a.c", src, pygit2.GIT_FILEMODE_BLOB)
    return tb.write()


def commit_plugins(world: World, names: list[str], tag: bytes, message: str) -> None:
    repo = pygit2.Repository(str(world.pr))
    head = repo.revparse_single("main")
    obj, src = repo.create_blob(ELF), repo.create_blob(b"int x;\n")
    base = repo[head.tree["plugins"].id] if "plugins" in head.tree else None
    plugins = repo.TreeBuilder(base) if base is not None else repo.TreeBuilder()
    for name in names:
        plugins.insert(name, plugin_tree(repo, name, obj, src, tag), pygit2.GIT_FILEMODE_TREE)
    root = repo.TreeBuilder(head.tree)
    root.insert("plugins", plugins.write(), pygit2.GIT_FILEMODE_TREE)
    commit = signed_commit(world.pr, root.write(), [str(head.id)], message, world.key("alice"), "alice")
    repo.references["refs/heads/main"].set_target(commit)


BULK_PLUGINS_PER_COMMIT = 3000  # 3 files each: under commit_check.MAX_COMMIT_FILES (10,000)
CHANGE_TAG = b"\n"


def plugin_bytes(name: str, tag: bytes = b"") -> dict[str, bytes]:
    """The files `plugin_tree` writes for `name`."""
    return {"p.plugin": f"{name}\nupdate_rtt post a.o\n".encode() + tag, "a.o": ELF, "a.c": b"int x;\n"}


def prefill_results(config, names: list[str], tag: bytes = b"") -> None:
    """Store `always_pass` verdicts for these plugins' files in the PV's results cache, as a CI
    fan-out (`pds pv run-one`) would: an epoch then costs its bookkeeping, not one verifier
    process per plugin."""
    import json

    from pds_log.core.binding import plugin_files_digest
    from pds_log.pv import verification

    verifier = verification.build(config)["always"]
    cache = verification.cache_for(config)
    encoded = json.dumps(verifier.result("pass", "always passes (test runner)").to_obj())
    rows = [(verifier.config_digest(), plugin_files_digest(plugin_bytes(n, tag)), encoded) for n in names]
    db = cache._db()
    db.execute("BEGIN")
    db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?)", rows)
    db.execute("COMMIT")


def store_stats(git_dir: Path) -> tuple[int, int]:
    """(objects, bytes) of a git object store, loose and packed (file sizes)."""
    count = size = 0
    for root, _, files in os.walk(git_dir / "objects"):
        for name in files:
            if len(name) == 38 or name.endswith((".pack", ".idx")):
                size += os.stat(os.path.join(root, name)).st_size
                count += len(name) == 38
    return count, size


def run_one_epoch(pv_yaml: Path) -> dict:
    """One epoch of the PV at `pv_yaml` by the code on sys.path, timed in this process."""
    import pds_log

    config = load_config(pv_yaml)
    before = store_stats(config.log_repo)
    t = time.perf_counter()
    summary = run_epoch(config, EpochOptions(push=False))
    epoch_s = time.perf_counter() - t
    after = store_stats(config.log_repo)
    return {"epoch_s": round(epoch_s, 3), "log_bytes": after[1] - before[1], "log_objects": after[0] - before[0],
            "updated": len(summary.updated), "added": len(summary.added), "size": summary.size,
            "phases": summary.seconds, "code": str(Path(pds_log.__file__).resolve().parent.parent)}


def epoch_in(code: Path, pv_yaml: Path) -> dict:
    """run_one_epoch in a fresh process that runs only `code`'s pds_log."""
    import json
    import subprocess

    env = {**os.environ, "PDS_BENCH_CODE": str(code), "PYTHONPATH": str(code)}
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--run-epoch", str(pv_yaml)], env=env,
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"epoch by {code} failed:\n{out.stderr[-3000:]}")
    row = json.loads(out.stdout.strip().splitlines()[-1])
    if Path(row["code"]) != code.resolve():
        raise SystemExit(f"the epoch ran {row['code']}, not {code}")
    return row


def compare_size(n: int, changed: int, before_code: Path, work: Path, rounds: int = 1,
                 synthetic: bool = False) -> dict:
    t = time.perf_counter()
    world = World(work, developers={"alice": ["org.bench.*"]})
    names = [f"org.bench.p{i:07d}" for i in range(n)]
    targets = names[:: max(1, n // changed)][:changed]
    for start in range(0, len(targets) if synthetic else n, BULK_PLUGINS_PER_COMMIT):
        chunk = (targets if synthetic else names)[start:start + BULK_PLUGINS_PER_COMMIT]
        commit_plugins(world, chunk, b"", f"{len(chunk)} plugins")
    cfg = init_pv(work / "pv", "bench.pv", str(world.pr), verifiers={"always": {"runner": "always_pass"}},
                  acceptance="always")
    with open(cfg, "a") as f:
        f.write("report_to_pr: false\n")
    config = load_config(cfg)
    import subprocess

    for key, value in (("gc.auto", "0"), ("receive.autogc", "false")):
        # no background `gc --auto` (the reservation push into the log starts one) repacking the
        # log while an epoch is timed, or between the object counts
        subprocess.run(["git", "--git-dir", str(config.log_repo), "config", key, value], check=True)
    prefill_results(config, targets if synthetic else names)
    for r in range(rounds):
        prefill_results(config, targets, CHANGE_TAG * (r + 1))
    if synthetic:
        source = str(pygit2.Repository(str(world.pr)).revparse_single("main").id)
        synthetic_first_epoch(config, names, source)
        first = {"epoch_s": None}
    else:
        first = epoch_in(before_code, cfg)
        assert first["added"] == n, first
    setup_s = time.perf_counter() - t
    copies = {}
    for label in ("before", "after"):
        copies[label] = work / f"pv-{label}"
        shutil.copytree(work / "pv", copies[label], symlinks=True)
    migration = epoch_in(HERE.parent, copies["after"] / "pv.yaml")
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    for r in range(rounds):  # the same K plugins change again each round; both copies run each
        commit_plugins(world, targets, CHANGE_TAG * (r + 1), f"change {len(targets)} plugins (round {r + 1})")
        order = (("before", before_code), ("after", HERE.parent))
        for label, code in (order if r % 2 == 0 else order[::-1]):
            run = epoch_in(code, copies[label] / "pv.yaml")
            assert run["updated"] == len(targets), run
            runs[label].append(run)
    # the round with the median wall time stands for each side
    rows = {label: sorted(rs, key=lambda x: x["epoch_s"])[len(rs) // 2] for label, rs in runs.items()}
    return {"n": n, "changed": len(targets), "rounds": rounds, "synthetic": synthetic,
            **{f"{label}_epoch_s_all": [x["epoch_s"] for x in rs] for label, rs in runs.items()},
            **{f"{label}_epoch_s_min": min(x["epoch_s"] for x in rs) for label, rs in runs.items()},
            "setup_s": round(setup_s, 1), "first_epoch_s": first["epoch_s"],
            "migrate_s": migration["epoch_s"], "migrate_kib": round(migration["log_bytes"] / 1024, 1),
            **{f"{label}_epoch_s": r["epoch_s"] for label, r in rows.items()},
            **{f"{label}_log_kib_per_change": round(r["log_bytes"] / 1024 / len(targets), 1)
               for label, r in rows.items()},
            **{f"{label}_log_objects": r["log_objects"] for label, r in rows.items()},
            **{f"{label}_load_s": r["phases"].get("load") for label, r in rows.items()},
            **{f"{label}_tree_s": r["phases"].get("tree") for label, r in rows.items()},
            **{f"{label}_commit_s": r["phases"].get("commit") for label, r in rows.items()},
            "phases": {label: r["phases"] for label, r in rows.items()}}


def synthetic_first_epoch(config, names: list[str], source: str) -> None:
    """Write epoch 1 of the PV straight into its (empty) log repo with git fast-import, as the
    code before issue 15 writes it (log layout 1): every plugin of `names` accepted with
    `plugin_bytes`' files from PR commit `source`, its binding, results record, manifest and
    object, every tile of the tree, the signed STR and the epoch record, and the tree cache.
    For sizes whose PR the bulk generator cannot make in time (1M plugins in a flat PR tree):
    the PR then holds only the plugins the measured epochs change, which is all they read."""
    import subprocess

    from pds_log.core.binding import Binding, plugin_files_digest, sha256_hex
    from pds_log.core.log_layout import EpochRecord
    from pds_log.core.names import name_key
    from pds_log.core.records import ResultRecord, VerifierOutcome
    from pds_log.core.signed_root import ZERO_HASH, TreeHead, sign_str
    from pds_log.core.tiles import all_tiles
    from pds_log.core.tree import PrefixTree
    from pds_log.infra.resources import template
    from pds_log.pv import verification
    from pds_log.pv.treestate import TreeState

    def v1(kind: str, hex_hash: str) -> str:
        return f"{kind}/{hex_hash[:2]}/{hex_hash}"

    def shard(name: str) -> str:
        k = name_key(name).hex()
        return f"{k[:2]}/{k[2:4]}"

    result = verification.build(config)["always"].result("pass", "always passes (test runner)")
    log_bytes = (result.log or "").encode()
    log_sha = sha256_hex(log_bytes)
    outcome = {"always": VerifierOutcome.of(result, log_sha)}
    obj_sha = sha256_hex(ELF)
    now = int(time.time())
    proc = subprocess.Popen(["git", "--git-dir", str(config.log_repo), "fast-import", "--quiet", "--done"],
                            stdin=subprocess.PIPE)
    out = proc.stdin
    assert out is not None
    out.write(f"commit refs/heads/main\ncommitter {config.origin} <{config.origin}@pds.invalid> {now} +0000\n".encode())
    values: dict[str, bytes] = {}
    files: list[tuple[str, bytes]] = []

    def put(path: str, data: bytes) -> None:
        files.append((path, data))

    put(v1("bytecode", obj_sha), ELF)
    put(v1("logs", log_sha), log_bytes)
    for name in names:
        plugin = plugin_bytes(name)
        manifest_sha = sha256_hex(plugin["p.plugin"])
        binding = Binding.create(name, "p.plugin", manifest_sha, {"a.o": obj_sha}, source, ["always"])
        value = binding.value()
        values[name] = value
        put(f"bindings/{shard(name)}/{name}.json", binding.encode())
        put(f"results/{shard(name)}/{name}.json", ResultRecord(
            name, 1, "accepted", "", source, plugin_files_digest(plugin), value.hex(), outcome, None).encode())
        put(v1("bytecode", manifest_sha), plugin["p.plugin"])
    tree = PrefixTree.from_items({name_key(n): v for n, v in values.items()})
    for h, tile in all_tiles(tree):
        put(f"tiles/{tile.level}/{h.hex()[:2]}/{h.hex()}", tile.encode())
    head = TreeHead(config.origin, 1, tree.root(), ZERO_HASH, now, source, len(tree), config.policy_hash())
    note = sign_str(head, config.signer()).note
    record = EpochRecord(epoch=1, origin=config.origin, pr_from=None, pr_to=source, time=now, root=tree.root().hex(),
                         size=len(tree), added=list(names), commits=[], policy=config.policy_hash())
    put("latest.note", note)
    put("epochs/0/1.note", note)
    put("epochs/0/1.json", record.encode())
    put("pv.json", __import__("json").dumps(config.descriptor(), indent=1, sort_keys=True).encode() + b"\n")
    put("README.md", template("log", "README.md").read_bytes())
    message = f"epoch 1\n\nroot {tree.root().hex()}\npr {source}\nsize {len(tree)}\n".encode()
    out.write(b"data %d\n%s\n" % (len(message), message))
    for path, data in files:
        out.write(b"M 100644 inline %s\ndata %d\n%s\n" % (path.encode(), len(data), data))
    out.write(b"\ndone\n")
    out.close()
    if proc.wait() != 0:
        raise SystemExit("git fast-import failed")
    commit = subprocess.run(["git", "--git-dir", str(config.log_repo), "rev-parse", "refs/heads/main"],
                            capture_output=True, text=True, check=True).stdout.strip()
    config.state_dir.mkdir(parents=True, exist_ok=True)
    TreeState.from_values(values).save(config.state_dir / "tree.cache", commit)


def compare(args) -> None:
    import json
    import subprocess

    work = Path(tempfile.mkdtemp(prefix="pds-bench-logside-"))
    before_code = work / "before-code"
    subprocess.run(["git", "-C", str(HERE.parent), "worktree", "add", "--detach", "-q", str(before_code), args.compare],
                   check=True)
    rows = []
    try:
        for n in [int(x) for x in args.sizes.split(",")]:
            load0 = os.getloadavg()[0]
            row = compare_size(n, args.changed, before_code, work / f"n{n}", args.rounds, args.synthetic)
            row["load_avg_1m"] = [round(load0, 2), round(os.getloadavg()[0], 2)]
            rows.append(row)
            print(json.dumps(row) if args.json else
                  f"N={n:>9,}  epoch s before {row['before_epoch_s']:>7.3f} after {row['after_epoch_s']:>7.3f}  "
                  f"log KiB/change before {row['before_log_kib_per_change']:>7.1f} after "
                  f"{row['after_log_kib_per_change']:>6.1f}  load s {row['before_load_s']} / {row['after_load_s']}  "
                  f"migration {row['migrate_s']:.2f} s  (setup {row['setup_s']} s, load avg {row['load_avg_1m']})",
                  flush=True)
            shutil.rmtree(work / f"n{n}", ignore_errors=True)
    finally:
        subprocess.run(["git", "-C", str(HERE.parent), "worktree", "remove", "--force", str(before_code)])
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plugins", type=int, default=100_000)
    parser.add_argument("--changed", type=int, default=10)
    parser.add_argument("--compare", metavar="REV", help="before/after the log side of issue 15 (see above)")
    parser.add_argument("--sizes", default="1000,100000", help="with --compare: the numbers of plugins")
    parser.add_argument("--json", action="store_true", help="with --compare: one JSON object per size")
    parser.add_argument("--synthetic", action="store_true",
                        help="with --compare: epoch 1 written by git fast-import (synthetic_first_epoch), for 1M")
    parser.add_argument("--rounds", type=int, default=3, help="with --compare: measured epochs per side (median)")
    parser.add_argument("--run-epoch", metavar="PV_YAML", help=argparse.SUPPRESS)  # compare's child process
    args = parser.parse_args()
    if args.run_epoch:
        import json

        print(json.dumps(run_one_epoch(Path(args.run_epoch))))
        return
    if args.compare:
        compare(args)
        return
    work = Path(tempfile.mkdtemp(prefix="pds-bench-epoch-"))
    try:
        t = time.perf_counter()
        world = World(work, developers={"alice": ["org.bench.*"]})
        names = [f"org.bench.p{i:06d}" for i in range(args.plugins)]
        commit_plugins(world, names, b"", f"{args.plugins} plugins")
        cfg = init_pv(work / "pv", "bench.pv", str(world.pr), verifiers={"always": {"runner": "always_pass"}},
                      acceptance="always")
        config = load_config(cfg)
        config.report_to_pr = False
        print(f"setup: PR with {args.plugins:,} plugins in {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        first = run_epoch(config, EpochOptions(push=False))
        print(f"first epoch: {len(first.added):,} plugins accepted in {time.perf_counter() - t:.1f} s "
              f"(phases: {', '.join(f'{k} {v:.1f}s' for k, v in first.seconds.items())})")

        changed = names[:: max(1, args.plugins // args.changed)][: args.changed]
        commit_plugins(world, changed, b"\n", f"change {len(changed)} plugins")
        before = object_stats(config.log_repo)
        t = time.perf_counter()
        second = run_epoch(config, EpochOptions(push=False))
        elapsed = time.perf_counter() - t
        after = object_stats(config.log_repo)
        print(f"epoch {second.epoch}: {len(second.updated)} updated, {second.size:,} plugins in the tree")
        print(f"  wall time                  {elapsed:.2f} s (target <= 10 s)")
        for phase, secs in second.seconds.items():
            print(f"    {phase:24} {secs:.3f} s")
        new_objects, new_bytes = after[0] - before[0], after[1] - before[1]
        print(f"  new log objects            {new_objects} ({new_bytes / 1024:.1f} KiB on disk, "
              f"{new_bytes / 1024 / max(1, len(changed)):.1f} KiB per changed plugin)")
        t = time.perf_counter()
        third = run_epoch(config, EpochOptions(push=False))
        print(f"  next epoch, nothing changed: {time.perf_counter() - t:.2f} s (epoch {third.epoch}, "
              f"{object_stats(config.log_repo)[0] - after[0]} new objects)")
        (config.state_dir / "tree.cache").unlink()
        t = time.perf_counter()
        run_epoch(config, EpochOptions(push=False))
        print(f"  an epoch without the tree cache (rebuilt from the log's bindings): "
              f"{time.perf_counter() - t:.2f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
