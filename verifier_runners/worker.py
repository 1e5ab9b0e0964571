"""One verifier on one plugin in a worker process, under a wall-clock and a memory limit.

The in-process verifiers (ELF reading, CFG, dataflow, spec checks) read hostile bytes. Their
passes are linear, but a bound that does not depend on every line of them being right is a
process: the worker gets an address-space limit (`RLIMIT_AS`, soft, so the sandboxed tools it
starts can still be given theirs by prlimit) and is killed at the wall-clock limit. A plugin
that exceeds either fails alone with `error: ... exceeded ...`; the epoch goes on.

Workers are forked from a forkserver that has the verifiers imported already, so a task costs
a fork, not an interpreter start; the forkserver is also safe to use from the PV's thread pool
(a plain fork of a threaded process is not).
"""

from __future__ import annotations

import ctypes
import io
import multiprocessing
import os
import resource
import signal
import time
from multiprocessing import forkserver, popen_forkserver, reduction, spawn, util
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerProcess, set_spawning_popen
from typing import Any

from .base import ERROR, PluginInput, Verifier, VerifierResult, run_verifier

DEFAULT_MEMORY = 2 << 30  # address space of one worker (Python itself maps ~200 MiB)
WALL_MARGIN_S = 30.0
PR_SET_PDEATHSIG = 1

_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["verifier_runners"])


class _WorkerPopen(popen_forkserver.Popen):
    """The forkserver's launch without the parent's `__main__`: multiprocessing re-runs the
    parent's main script in every child (so that pickled functions of `__main__` resolve), which
    for a PV run from a script (a benchmark, an operator's wrapper) re-imports all it imports on
    each task -- about a second per verifier run, in series with it. The worker's target lives
    in this module, so the children need nothing from `__main__`."""

    def _launch(self, process_obj):  # popen_forkserver.Popen._launch (3.11-3.13), main dropped
        prep_data = spawn.get_preparation_data(process_obj._name)
        prep_data.pop("init_main_from_path", None)
        prep_data.pop("init_main_from_name", None)
        buf = io.BytesIO()
        set_spawning_popen(self)
        try:
            reduction.dump(prep_data, buf)
            reduction.dump(process_obj, buf)
        finally:
            set_spawning_popen(None)
        self.sentinel, w = forkserver.connect_to_new_process(self._fds)
        _parent_w = os.dup(w)
        self.finalizer = util.Finalize(self, util.close_fds, (_parent_w, self.sentinel))
        with open(w, "wb", closefd=True) as f:
            f.write(buf.getbuffer())
        self.pid = forkserver.read_signed(self.sentinel)


class _WorkerProcess(ForkServerProcess):
    @staticmethod
    def _Popen(process_obj):
        return _WorkerPopen(process_obj)


def wall_limit(verifier: Verifier, plugin: PluginInput) -> float:
    """The wall-clock budget of one verifier on one plugin: its tool timeout once per pluglet
    (the tools run per pluglet) plus once, plus a margin for the in-process work."""
    return verifier.timeout * (len(plugin.manifest.pluglets) + 1) + WALL_MARGIN_S


def _die_with_parent() -> None:
    """Linux: SIGKILL this worker when its parent (the forkserver, which exits with the PV
    process) dies, so a killed epoch leaves no verifier running."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the wall-clock limit still ends the run
        pass


def _work(conn: Connection, verifier: Verifier, plugin: PluginInput, memory: int) -> None:
    _die_with_parent()
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (memory if hard == resource.RLIM_INFINITY else min(memory, hard), hard))
    result = run_verifier(verifier, plugin, memory_limit=memory)
    conn.send(result.to_obj())
    conn.close()


def run_verifier_bounded(verifier: Verifier, plugin: PluginInput, *, wall: float | None = None,
                         memory: int = DEFAULT_MEMORY) -> VerifierResult:
    """`run_verifier` in a worker process; exceeding a limit or a dying worker is `error`."""
    wall = wall_limit(verifier, plugin) if wall is None else wall
    start = time.perf_counter()
    receiver, sender = _CONTEXT.Pipe(duplex=False)
    worker = _WorkerProcess(target=_work, args=(sender, verifier, plugin, memory), daemon=True,
                              name=f"pds-verify-{verifier.name}")
    obj: Any = None
    try:
        worker.start()
        sender.close()
        if receiver.poll(wall):
            try:
                obj = receiver.recv()
            except (EOFError, OSError):
                obj = None
        else:
            obj = "timeout"
    finally:
        if worker.is_alive():
            worker.kill()
        worker.join(10)
        receiver.close()
    elapsed = time.perf_counter() - start
    if obj == "timeout":
        result = verifier.result(ERROR, f"{verifier.runner} exceeded the wall-clock limit of {wall:g} s on "
                                        f"{plugin.name} (killed)")
    elif obj is None:
        code = worker.exitcode
        why = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        result = verifier.result(ERROR, f"{verifier.runner} worker died on {plugin.name} ({why}; memory limit "
                                        f"{memory >> 20} MiB)")
    else:
        result = VerifierResult.from_obj(obj)
    result.verifier = verifier.name
    result.duration_s = elapsed
    return result
