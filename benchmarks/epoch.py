"""Benchmark: PV epoch overhead (verifiers excluded) with a large tree and a small change.

    python benchmarks/epoch.py                       # 100,000 plugins in the tree, 10 changed
    python benchmarks/epoch.py --plugins 20000

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
sys.path.insert(0, str(HERE.parent))

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plugins", type=int, default=100_000)
    parser.add_argument("--changed", type=int, default=10)
    args = parser.parse_args()
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
