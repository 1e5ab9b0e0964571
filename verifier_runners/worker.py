"""Verifiers in worker processes: a pool of `jobs` long-lived workers, each one bounded.

The in-process verifiers (ELF reading, CFG, dataflow, spec checks) read hostile bytes. Their
passes are linear, but a bound that does not depend on every line of them being right is a
process: every verifier runs in a worker process with an address-space limit (`RLIMIT_AS`,
soft, so the sandboxed tools it starts can still be given theirs by prlimit), and the parent
kills the worker at the verifier's wall-clock limit. A plugin that exceeds either fails alone
with `error: ... exceeded ...`, and so does one whose verifier kills its worker (a SIGKILL, the
OOM killer): the parent starts a new worker for the rest of the work; the epoch goes on.

A task is one plugin and the verifiers it still needs: a worker runs them one after the other
(so the per-plugin work -- rebuilds, IR, every analysis -- happens in the workers, and `jobs`
plugins are verified at once) and sends each result back as soon as it has it. The parent only
hands out tasks, enforces the limits and collects results; callers put them in a deterministic
order (pds_log.pv.verification), so what an epoch writes does not depend on `jobs`.

Workers are started once per pool, not once per verifier run: `python -I worker_entry.py` (a
fresh interpreter: nothing of the parent's memory, no inherited file descriptor but the two
pipe ends, a minimal environment, and not the parent's main script), so the probes and tool
versions a verifier caches (sandbox_problem, tool_version) are paid once per worker. A worker
that ran out of memory or recursion is replaced before it sees another plugin.

Messages: parent -> worker are length-prefixed pickles (the parent is trusted); worker -> parent
are length-prefixed JSON objects of at most MAX_FRAME bytes (a worker has read hostile input; the
PV never unpickles what it says). Each worker is a child subreaper: the sandbox's processes,
which bubblewrap leaves to the nearest reaper, are reaped by it, so the CPU time of the tools
is counted in the per-plugin `cpu_s` the worker reports.
"""

from __future__ import annotations

import collections
import ctypes
import json
import math
import os
import pickle
import resource
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, Mapping

from pds_log.core.errors import FormatError

from .base import ERROR, PluginInput, Verifier, VerifierResult, run_verifier_checked

DEFAULT_MEMORY = 2 << 30  # address space of one worker (Python itself maps ~200 MiB)
WALL_MARGIN_S = 30.0
MAX_FRAME = 4 << 20  # bytes of one message from a worker (a result's log is capped at 200k chars)
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
ENTRY = Path(__file__).with_name("worker_entry.py")
PASSED_ENV = ("PATH", "TMPDIR", "TEMP", "TMP", "LANG", "LC_ALL", "LC_CTYPE")


def wall_limit(verifier: Verifier, plugin: PluginInput) -> float:
    """The wall-clock budget of one verifier on one plugin: its tool timeout once per pluglet
    (the tools run per pluglet) plus once, plus a margin for the in-process work."""
    return verifier.timeout * (len(plugin.manifest.pluglets) + 1) + WALL_MARGIN_S


def default_jobs() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# ------------------------------------------------------------------------------ the worker side
def _prctl(option: int, value: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(option, value)
    except (OSError, AttributeError):  # not Linux: the wall-clock limit still ends every run
        pass


def _cpu_seconds() -> float:
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def _reap() -> None:
    """Reap what the sandbox left to this subreaper (the tools have all been waited for by then)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _write_frame(fd: int, data: bytes) -> None:
    view = memoryview(len(data).to_bytes(8, "big") + data)
    while view:
        view = view[os.write(fd, view):]


def _read_frame(fd: int) -> bytes | None:
    from .worker_entry import _read_exact

    try:
        size = int.from_bytes(_read_exact(fd, 8), "big")
        return _read_exact(fd, size)
    except EOFError:
        return None


def serve(rfd: int, wfd: int, parent: int, init: dict[str, Any]) -> None:
    """The worker's loop: tasks in, one JSON result per verifier out, until the parent closes."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # die with the PV (and so does the sandbox inside)
    if os.getppid() != parent:
        os._exit(0)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    verifiers: dict[str, Verifier] = pickle.loads(init["verifiers"])
    memory = int(init["memory"])
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (memory if hard == resource.RLIM_INFINITY else min(memory, hard), hard))
    while True:
        frame = _read_frame(rfd)
        if frame is None:
            return
        plugin, names = pickle.loads(frame)
        for name in names:
            before = _cpu_seconds()
            result, exhausted = run_verifier_checked(verifiers[name], plugin, memory_limit=memory)
            _reap()
            message = {"result": result.to_obj(), "cpu_s": round(_cpu_seconds() - before, 4), "exiting": exhausted}
            _write_frame(wfd, json.dumps(message).encode())
            if exhausted:  # a process that ran out once is not trusted with the next plugin
                return


# ------------------------------------------------------------------------------ the parent side
@dataclass
class Task:
    """One plugin and the verifiers (names, in order) it needs; `key` is the caller's."""

    key: Any
    plugin: PluginInput
    verifiers: list[str]
    cpu_s: float = 0.0  # filled in: CPU seconds of the worker and its tools on this task


@dataclass
class _Job:
    task: Task
    todo: collections.deque[str]


@dataclass
class _Worker:
    proc: subprocess.Popen
    rfd: int
    wfd: int
    stderr: IO[bytes]
    buf: bytearray = field(default_factory=bytearray)
    job: _Job | None = None
    deadline: float = 0.0
    started: float = 0.0
    served: int = 0  # results received from it
    last_words: str = ""  # the end of its stderr, read when it is stopped


class WorkerPool:
    """Up to `jobs` worker processes running `verifiers` on tasks, every run bounded.

        with WorkerPool(verifiers, jobs) as pool:
            for task, result in pool.run(tasks):   # in completion order
                ...

    `wall` overrides every run's wall-clock limit (else `wall_limit`); `memory` is each worker's
    address-space limit. A run that exceeds its limit, or whose worker dies, is an `error`
    result for that plugin and verifier; the plugin's remaining verifiers go to a new worker."""

    def __init__(self, verifiers: Mapping[str, Verifier], jobs: int = 0, *, memory: int = DEFAULT_MEMORY,
                 wall: float | None = None) -> None:
        self.verifiers = dict(verifiers)
        self.jobs = max(1, jobs or default_jobs())
        self.memory = memory
        self.wall = wall
        self.started = 0  # workers started (for the benchmarks and tests)
        self._workers: list[_Worker] = []
        self._selector = selectors.DefaultSelector()
        self._init = pickle.dumps({"sys_path": list(sys.path), "memory": memory,
                                   "verifiers": pickle.dumps(self.verifiers)})

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for worker in list(self._workers):
            self._stop(worker)
        self._selector.close()

    def run(self, tasks: Iterable[Task]) -> Iterator[tuple[Task, VerifierResult]]:
        queue = collections.deque(_Job(t, collections.deque(t.verifiers)) for t in tasks if t.verifiers)
        while queue or any(w.job for w in self._workers):
            while queue:
                worker = self._idle_worker()
                if worker is None:
                    break
                job = queue.popleft()
                yield from self._assign(worker, job, queue)
            yield from self._wait(queue)

    # -- workers
    def _idle_worker(self) -> _Worker | None:
        for worker in self._workers:
            if worker.job is None:
                return worker
        if len(self._workers) >= self.jobs:
            return None
        return self._start()

    def _start(self) -> _Worker:
        to_worker_r, to_worker_w = os.pipe()
        from_worker_r, from_worker_w = os.pipe()
        env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
        stderr = tempfile.TemporaryFile()
        try:
            proc = subprocess.Popen([sys.executable, "-I", str(ENTRY), str(to_worker_r), str(from_worker_w),
                                     str(os.getpid())], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=stderr, env=env, pass_fds=(to_worker_r, from_worker_w),
                                    start_new_session=True)
        finally:
            os.close(to_worker_r)
            os.close(from_worker_w)
        worker = _Worker(proc, from_worker_r, to_worker_w, stderr)
        self._workers.append(worker)
        self._selector.register(from_worker_r, selectors.EVENT_READ, worker)
        self.started += 1
        try:
            _write_frame(worker.wfd, self._init)
        except OSError:  # died at once: its first task says so, with its last words
            pass
        return worker

    def _stop(self, worker: _Worker) -> int | None:
        """Kill (if needed) and reap one worker; its exit status."""
        if worker.proc.poll() is None:
            worker.proc.kill()
        try:
            code = worker.proc.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL not delivered
            code = None
        self._selector.unregister(worker.rfd)
        os.close(worker.rfd)
        os.close(worker.wfd)
        worker.stderr.seek(0, os.SEEK_END)
        worker.stderr.seek(max(0, worker.stderr.tell() - 400))
        lines = [line for line in worker.stderr.read().decode("utf-8", "replace").splitlines() if line.strip()]
        worker.last_words = lines[-1].strip()[:200] if lines else ""
        worker.stderr.close()
        self._workers.remove(worker)
        return code

    # -- jobs
    def _assign(self, worker: _Worker, job: _Job, queue: collections.deque[_Job]
                ) -> Iterator[tuple[Task, VerifierResult]]:
        worker.job = job
        self._arm(worker)
        try:
            _write_frame(worker.wfd, pickle.dumps((job.task.plugin, list(job.todo))))
        except OSError:
            if worker.served:  # it died while idle: nothing of this job ran, so it goes to another
                self._stop(worker)
                queue.appendleft(job)
            else:  # a worker that cannot even start: the run is an error that says why
                yield from self._fail(worker, queue, None)

    def _arm(self, worker: _Worker) -> None:
        assert worker.job is not None
        verifier = self.verifiers[worker.job.todo[0]]
        worker.started = time.perf_counter()
        worker.deadline = worker.started + (self.wall if self.wall is not None
                                            else wall_limit(verifier, worker.job.task.plugin))

    def _wait(self, queue: collections.deque[_Job]) -> Iterator[tuple[Task, VerifierResult]]:
        busy = [w for w in self._workers if w.job is not None]
        if not busy:
            return
        timeout = max(0.0, min(w.deadline for w in busy) - time.perf_counter())
        for key, _ in self._selector.select(timeout):
            worker = key.data
            if worker in self._workers:
                yield from self._receive(worker, queue)
        now = time.perf_counter()
        for worker in [w for w in self._workers if w.job is not None and w.deadline <= now]:
            yield from self._fail(worker, queue, "timeout")

    def _receive(self, worker: _Worker, queue: collections.deque[_Job]) -> Iterator[tuple[Task, VerifierResult]]:
        try:
            data = os.read(worker.rfd, 1 << 20)
        except OSError:
            data = b""
        if not data:  # EOF: the worker is gone
            if worker.job is None:
                self._stop(worker)
            else:
                yield from self._fail(worker, queue, None)
            return
        worker.buf += data
        while len(worker.buf) >= 8:
            size = int.from_bytes(worker.buf[:8], "big")
            if worker.job is None:  # talking out of turn
                self._stop(worker)
                return
            if size > MAX_FRAME:
                yield from self._fail(worker, queue, "garbled")
                return
            if len(worker.buf) < 8 + size:
                return
            frame, worker.buf = bytes(worker.buf[8:8 + size]), worker.buf[8 + size:]
            message = _parse_message(frame)
            if message is None:
                yield from self._fail(worker, queue, "garbled")
                return
            yield self._accept(worker, message, queue)
            if worker not in self._workers:
                return

    def _accept(self, worker: _Worker, message: tuple[VerifierResult, float, bool],
                queue: collections.deque[_Job]) -> tuple[Task, VerifierResult]:
        result, cpu_s, exiting = message
        job = worker.job
        assert job is not None
        name = job.todo.popleft()
        result.verifier = name
        result.duration_s = time.perf_counter() - worker.started
        job.task.cpu_s += cpu_s
        worker.served += 1
        if exiting:  # the worker ran out of memory or recursion and ends: the rest goes to a new one
            self._stop(worker)
            if job.todo:
                queue.appendleft(job)
        elif job.todo:
            self._arm(worker)
        else:
            worker.job = None
        return job.task, result

    def _fail(self, worker: _Worker, queue: collections.deque[_Job], why: str | None
              ) -> Iterator[tuple[Task, VerifierResult]]:
        """The run in progress on `worker` ends in `error`; the worker is stopped and the rest of
        its job goes back to the front of the queue."""
        job = worker.job
        assert job is not None
        name = job.todo.popleft()
        verifier, plugin = self.verifiers[name], job.task.plugin
        elapsed = time.perf_counter() - worker.started
        code = self._stop(worker)
        if why == "timeout":
            limit = worker.deadline - worker.started
            reason = f"{verifier.runner} exceeded the wall-clock limit of {limit:g} s on {plugin.name} (killed)"
        elif why == "garbled":
            reason = f"{verifier.runner} worker sent a malformed or oversized message on {plugin.name} (killed)"
        else:
            how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            words = f"; last words: {worker.last_words}" if worker.last_words and code and code > 0 else ""
            reason = (f"{verifier.runner} worker died on {plugin.name} ({how}; "
                      f"memory limit {self.memory >> 20} MiB{words})")
        result = verifier.result(ERROR, reason)
        result.duration_s = elapsed
        if job.todo:
            queue.appendleft(job)
        yield job.task, result


def _parse_message(frame: bytes) -> tuple[VerifierResult, float, bool] | None:
    """A worker's message, or None if it is not one (the parent does not trust the worker)."""
    try:
        obj = json.loads(frame)
        result = VerifierResult.from_obj(obj["result"])
        cpu_s = float(obj.get("cpu_s", 0.0))
        return result, cpu_s if math.isfinite(cpu_s) and cpu_s >= 0 else 0.0, bool(obj.get("exiting"))
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError, FormatError):
        return None


def run_plugin_bounded(verifiers: Mapping[str, Verifier], plugin: PluginInput, *, wall: float | None = None,
                       memory: int = DEFAULT_MEMORY) -> list[VerifierResult]:
    """Every verifier on one plugin in one worker (a new one after a run that ends it), in order."""
    task = Task(plugin.name, plugin, list(verifiers))
    with WorkerPool(verifiers, 1, memory=memory, wall=wall) as pool:
        results = {result.verifier: result for _, result in pool.run([task])}
    return [results[name] for name in verifiers]


def run_verifier_bounded(verifier: Verifier, plugin: PluginInput, *, wall: float | None = None,
                         memory: int = DEFAULT_MEMORY) -> VerifierResult:
    """`run_verifier` in a worker process; exceeding a limit or a dying worker is `error`."""
    return run_plugin_bounded({verifier.name: verifier}, plugin, wall=wall, memory=memory)[0]
