"""Test hook: run the real `pds` CLI with the epoch job made to stop at one named stage.

    python tests/pv/epoch_stages.py pause STAGE MARKER -- pv epoch --config pv.yaml
    python tests/pv/epoch_stages.py trace TRACE -- pv epoch --config pv.yaml

`pause`: when the job reaches STAGE it writes MARKER (the handshake the test waits for) and
stops there for good, so that the test can SIGKILL it at exactly that point.
`trace`: the job runs to its end; every stage it passes is appended to TRACE, in order, so that
a test can check that the stages below are all reached, once each, in this order.

A stage is "just before" or "just after" one call the epoch job makes. The wrapped callables
still run unchanged: nothing of the job is replaced, it is only stopped. If the job's code is
refactored so that a name below no longer exists, this script fails at start (AttributeError),
and the test that uses it fails with it: update STAGES then.
"""

from __future__ import annotations

import functools
import sys
import threading
from pathlib import Path

# (stage, module, attribute path, "before" | "after" the call), in the order an epoch passes them
STAGES: list[tuple[str, str, str, str]] = [
    ("locked", "pds_log.pv.epoch", "recover_pending", "before"),  # epoch lock held, nothing read yet
    ("fetched", "pds_log.pv.prsource", "PrMirror.fetch", "after"),  # PR mirror fetched
    ("checked", "pds_log.pv.epoch", "check_commits", "after"),  # new PR commits judged
    ("verified", "pds_log.pv.epoch", "PluginOutcomes.apply", "after"),  # verifiers ran, results in memory
    ("body-pending", "pds_log.pv.authority", "reserve", "before"),  # STR body in state/pending.json
    ("reserved", "pds_log.pv.authority", "reserve", "after"),  # epoch reserved on the authority
    ("signed", "pds_log.pv.epoch", "sign_any", "after"),  # STR signed, signature not yet persisted
    ("note-pending", "pds_log.pv.logrepo", "LogRepo.write_epoch_commit", "before"),  # signed STR persisted
    ("objects", "pds_log.pv.logrepo", "LogRepo.write_epoch_commit", "after"),  # epoch commit written, unsynced
    ("commit-pending", "pds_log.pv.logrepo", "LogRepo.advance", "before"),  # commit id in pending.json
    ("advanced", "pds_log.pv.logrepo", "LogRepo.advance", "after"),  # log branch moved: the commit point
    ("cached", "pds_log.pv.treestate", "TreeState.save", "after"),  # tree cache saved
    ("pushed", "pds_log.pv.epoch", "publish_pushes", "after"),  # STR pushed to the PR area
]
NAMES = [s[0] for s in STAGES]


def _reached(stage: str, mode: str, target: str, seen: set[str]) -> None:
    if stage in seen:  # a stage counts once: the first time the job gets there
        return
    seen.add(stage)
    if mode == "trace":
        with open(target, "a") as f:
            f.write(stage + "\n")
        return
    if stage == mode:
        Path(target).write_text(stage)
        threading.Event().wait()  # stopped here until SIGKILL


def install(mode: str, target: str) -> None:
    """Wrap each stage's call: `mode` is "trace", or the stage to stop at (then `target` is the marker)."""
    import importlib

    if mode != "trace" and mode not in NAMES:
        raise SystemExit(f"unknown stage {mode!r}; stages: {', '.join(NAMES)}")
    seen: set[str] = set()
    wrapped: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for stage, module, attr, when in STAGES:
        wrapped.setdefault((module, attr), []).append((stage, when))
    for (module, attr), stages in wrapped.items():
        owner = importlib.import_module(module)
        *path, name = attr.split(".")
        for part in path:
            owner = getattr(owner, part)
        original = getattr(owner, name)  # AttributeError: the job changed, update STAGES
        before = [s for s, w in stages if w == "before"]
        after = [s for s, w in stages if w == "after"]

        def wrapper(*args, _original=original, _before=before, _after=after, **kwargs):
            for stage in _before:
                _reached(stage, mode, target, seen)
            result = _original(*args, **kwargs)
            for stage in _after:
                _reached(stage, mode, target, seen)
            return result

        functools.update_wrapper(wrapper, original)
        setattr(owner, name, wrapper)


def main() -> None:
    argv = sys.argv[1:]
    split = argv.index("--")
    head, cli_args = argv[:split], argv[split + 1:]
    if head[0] == "pause":
        install(head[1], head[2])
    elif head[0] == "trace":
        install("trace", head[1])
    else:
        raise SystemExit(__doc__)
    from pds_log.cli import main as pds_main

    sys.argv = ["pds", *cli_args]
    pds_main()


if __name__ == "__main__":
    main()
