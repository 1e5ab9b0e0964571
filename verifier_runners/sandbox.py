"""Running external tools: no shell, a timeout, resource limits, no network where possible.

Thread-safe (the PV runs verifiers from a thread pool, so no `preexec_fn`): limits are set by
`prlimit` (util-linux) and the network is cut by `unshare -n` (as root) or `unshare -rn` (an
unprivileged user namespace) when the kernel allows it, both exec'ing the tool in place. The
tool runs in its own session; on timeout the whole process group is killed.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

DEFAULT_MEMORY = 4 << 30  # address space; clang maps a lot but uses little
DEFAULT_FILE_SIZE = 256 << 20
DEFAULT_NOFILE = 1024


@dataclass
class ToolRun:
    argv: list[str]
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool = False
    missing: str | None = None  # the program that could not be found

    @property
    def output(self) -> str:
        return self.stdout + ("\n" if self.stdout and self.stderr else "") + self.stderr

    def describe(self) -> str:
        if self.missing:
            return f"tool not found: {self.missing}"
        if self.timed_out:
            return f"timed out: {self.argv[0]} was killed"
        if self.returncode is not None and self.returncode < 0:
            return f"{self.argv[0]} died of signal {-self.returncode}"
        return f"{self.argv[0]} exited with {self.returncode}"


@functools.lru_cache(maxsize=None)
def network_isolation() -> tuple[str, ...]:
    """The argv prefix that runs a command without network, or () if the OS does not allow it."""
    unshare = shutil.which("unshare")
    if not unshare:
        return ()
    for flags in (("-n",), ("-rn",)):
        try:
            if subprocess.run([unshare, *flags, "true"], capture_output=True, timeout=10).returncode == 0:
                return (unshare, *flags)
        except (OSError, subprocess.TimeoutExpired):
            continue
    return ()


def run_tool(argv: Sequence[str], cwd: Path, timeout: float, *, memory: int = DEFAULT_MEMORY,
             file_size: int = DEFAULT_FILE_SIZE, network: bool = False, env: dict[str, str] | None = None) -> ToolRun:
    argv = [str(a) for a in argv]
    program = shutil.which(argv[0]) if "/" not in argv[0] else (argv[0] if os.access(argv[0], os.X_OK) else None)
    if program is None:
        return ToolRun(argv, None, "", "", missing=argv[0])
    prefix: list[str] = []
    prlimit = shutil.which("prlimit")
    if prlimit:
        cpu = max(1, int(timeout) + 5)
        prefix += [prlimit, f"--as={memory}", f"--fsize={file_size}", f"--cpu={cpu}", f"--nofile={DEFAULT_NOFILE}",
                   "--core=0", "--"]
    if not network:
        prefix += list(network_isolation())
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": str(cwd),
                "TMPDIR": str(cwd)}
    if env:
        full_env.update(env)
    try:
        proc = subprocess.Popen([*prefix, program, *argv[1:]], cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env,
                                start_new_session=True)
    except OSError as exc:
        return ToolRun(argv, None, "", str(exc), missing=f"{argv[0]} ({exc.strerror})")
    try:
        out, err = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        timed_out = True
    return ToolRun(argv, proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), timed_out)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


@functools.lru_cache(maxsize=None)
def tool_version(program: str, flag: str = "--version") -> str:
    """First line of `program --version` ('missing' if it is not installed)."""
    path = shutil.which(program)
    if not path:
        return "missing"
    try:
        out = subprocess.run([path, flag], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else "unknown"
