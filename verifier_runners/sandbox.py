"""Running external tools on hostile plugins: a bubblewrap sandbox, rlimits, a timeout, no shell.

Every tool a verifier runs (clang, llc, opt, cppcheck, external verifiers) sees a fresh mount
namespace built by bubblewrap (Debian's `bwrap`):

    /usr (read-only; /bin, /lib, /lib64, /sbin as the usual symlinks into it)
    the toolchain's own prefix, read-only, when the tool lives outside /usr
    <workdir>   the plugin's own temp dir, read-write, at the same path as outside
    /tmp        an empty tmpfs;  /proc of a new pid namespace;  a minimal /dev

and nothing else: no /etc, no /home, no /root, no PV directory, key, state dir, log repo or CI
workspace. Paths the caller names as protected (the PV's directory, keys, state, log) are also
covered by an empty tmpfs wherever they fall under a visible tree. Network, IPC, UTS, pid and
user namespaces are new (`--unshare-all`), the environment is cleared, the tool dies with its
parent, and the whole namespace dies when the wall-clock timeout kills bwrap. rlimits (CPU
time, address space, file size, open files, processes) are set by `prlimit` around bwrap, so
they bind every process inside.

Fail closed: where bwrap is missing or cannot build a namespace (no user namespaces, a seccomp
profile that forbids them), the run is refused with `sandbox` set to the reason, and the
verifier reports `error` with it. Nothing ever runs unconfined.

Why hand-written around bwrap rather than a library: the set of visible paths is the security
control (measured attack: `#include "<pv>/keys/note.key"` made clang quote the PV's private
key into a published log), so it is spelled out here, in one place, and tested.

Tool output is captured in files outside the sandbox (bounded by the file-size limit) and at
most MAX_OUTPUT bytes of each stream are read back: a tool that prints gigabytes costs disk up
to the limit, never memory.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

DEFAULT_MEMORY = 4 << 30  # address space; clang maps a lot but uses little
DEFAULT_FILE_SIZE = 256 << 20
DEFAULT_NOFILE = 1024
DEFAULT_NPROC = 256  # enforced by the kernel for non-root users; the pid namespace bounds root
MAX_OUTPUT = 1 << 20  # bytes of stdout and of stderr read back from a tool

# What of the host a tool sees. /usr holds the Debian toolchain and system headers.
VISIBLE_TREES = ("/usr",)
USR_SYMLINKS = {"/bin": "usr/bin", "/lib": "usr/lib", "/lib64": "usr/lib64", "/sbin": "usr/sbin",
                "/lib32": "usr/lib32", "/libx32": "usr/libx32"}


@dataclass
class ToolRun:
    argv: list[str]
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool = False
    missing: str | None = None  # the program that could not be found
    sandbox: str | None = None  # why the sandbox could not be set up (nothing ran)

    @property
    def output(self) -> str:
        return self.stdout + ("\n" if self.stdout and self.stderr else "") + self.stderr

    @property
    def ran(self) -> bool:
        """False when the tool never ran (missing, or refused by the sandbox)."""
        return not (self.missing or self.sandbox)

    def describe(self) -> str:
        if self.sandbox:
            return f"sandbox unavailable: {self.sandbox}"
        if self.missing:
            return f"tool not found: {self.missing}"
        if self.timed_out:
            return f"timed out: {self.argv[0]} was killed"
        if self.returncode is not None and self.returncode < 0:
            return f"{self.argv[0]} died of signal {-self.returncode}"
        if self.returncode is not None and 128 < self.returncode <= 128 + 64:
            # bwrap exits with 128 + N when the tool inside died of signal N
            return f"{self.argv[0]} died of signal {self.returncode - 128} (exit {self.returncode})"
        return f"{self.argv[0]} exited with {self.returncode}"


@functools.lru_cache(maxsize=None)
def sandbox_problem() -> str | None:
    """None when bwrap can build the sandbox here, else why not (probed once per process)."""
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return "bwrap (Debian package bubblewrap) is not installed"
    probe = Path(tempfile.mkdtemp(prefix="pds-sandbox-probe-"))
    try:
        argv = [bwrap, *_namespace_args(probe, (), "/usr/bin/true"), "/usr/bin/true"]
        run = subprocess.run(argv, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap did not start ({exc})"
    finally:
        shutil.rmtree(probe, ignore_errors=True)
    if run.returncode != 0:
        why = run.stderr.decode("utf-8", "replace").strip().splitlines()
        return f"bwrap cannot create namespaces here: {why[-1] if why else f'exit {run.returncode}'}"
    return None


def _under(path: str, tree: str) -> bool:
    return path == tree or path.startswith(tree.rstrip("/") + "/")


def _tool_tree(program: str) -> str | None:
    """The read-only tree to show for a tool outside /usr: its prefix (parent of bin/)."""
    real = os.path.realpath(program)
    if any(_under(real, tree) for tree in VISIBLE_TREES):
        return None
    parent = os.path.dirname(real)
    return os.path.dirname(parent) if os.path.basename(parent) == "bin" else parent


def _namespace_args(workdir: Path, protected: Iterable[str], program: str,
                    readonly: Iterable[str] = ()) -> list[str]:
    args = ["--unshare-all", "--die-with-parent", "--new-session", "--clearenv"]
    for tree in VISIBLE_TREES:
        args += ["--ro-bind", tree, tree]
    for link, target in USR_SYMLINKS.items():
        if os.path.islink(link) or not os.path.exists(link):
            if os.path.exists(os.path.join("/", target)):
                args += ["--symlink", target, link]
        else:  # a non-merged-/usr system: show the real directory, read-only
            args += ["--ro-bind", link, link]
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    extra = _tool_tree(program)  # after /tmp's tmpfs, which would cover a tree under /tmp
    if extra:
        args += ["--ro-bind", extra, extra]
    for path in readonly:
        args += ["--ro-bind", path, path]
    work = os.path.realpath(workdir)
    args += ["--bind", work, work, "--chdir", work]
    # Protected paths that fall under a visible tree are covered by an empty tmpfs (mounted
    # after the trees, so it wins); the workdir itself is never inside one (checked by run_tool).
    shown = [*VISIBLE_TREES, *([extra] if extra else []), *readonly]
    for path in sorted({os.path.realpath(p) for p in protected}):
        if any(_under(path, tree) for tree in shown) and os.path.isdir(path):
            args += ["--tmpfs", path]
    args += ["--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "LANG", "C.UTF-8",
             "--setenv", "HOME", work, "--setenv", "TMPDIR", "/tmp"]
    return args


def run_tool(argv: Sequence[str], cwd: Path, timeout: float, *, memory: int = DEFAULT_MEMORY,
             file_size: int = DEFAULT_FILE_SIZE, protected: Iterable[str | os.PathLike] = (),
             readonly: Iterable[str | os.PathLike] = (), env: dict[str, str] | None = None) -> ToolRun:
    """Run `argv` in the sandbox with `cwd` (the plugin's temp dir) as its only writable place.

    `protected`: paths that must stay invisible even if they sit under a visible tree (the
    PV's directory, keys, state, log repo). `readonly`: more directories to show read-only (the
    shipped helper scripts). `env` adds variables to the cleared environment."""
    argv = [str(a) for a in argv]
    program = shutil.which(argv[0]) if "/" not in argv[0] else (argv[0] if os.access(argv[0], os.X_OK) else None)
    if program is None:
        return ToolRun(argv, None, "", "", missing=argv[0])
    problem = sandbox_problem()
    hidden = [os.path.realpath(p) for p in protected]
    shown_ro = [os.path.realpath(p) for p in readonly]
    work = os.path.realpath(cwd)
    if problem is None:
        inside = [p for p in hidden if _under(work, p)]
        if inside:
            problem = f"the tool's work directory {work} lies inside the protected {inside[0]}"
        tree = _tool_tree(program)
        for shown in [*([tree] if tree else []), *shown_ro]:
            # a protected path inside a shown tree is covered by a tmpfs; a shown tree inside
            # a protected directory cannot be shown without showing part of it
            if any(_under(shown, p) for p in hidden):
                problem = f"{shown} (shown to the tool) lies inside a protected directory"
    if problem is not None:
        return ToolRun(argv, None, "", "", sandbox=problem)
    # Inside, only the shown trees exist: a tool reached through a link from elsewhere (a venv's
    # python, /etc/alternatives) is run by its real path; one inside /usr keeps its name (clang
    # reads its driver mode from it).
    if not (any(_under(program, t) for t in VISIBLE_TREES) and _tool_tree(program) is None):
        program = os.path.realpath(program)
    cpu = max(1, int(timeout) + 5)
    prefix = [shutil.which("prlimit") or "prlimit", f"--as={memory}", f"--fsize={file_size}", f"--cpu={cpu}",
              f"--nofile={DEFAULT_NOFILE}", f"--nproc={DEFAULT_NPROC}", "--core=0", "--"]
    bwrap = [shutil.which("bwrap") or "bwrap", *_namespace_args(cwd, hidden, program, shown_ro)]
    for key, value in (env or {}).items():
        bwrap += ["--setenv", key, value]
    # The output files live beside the workdir, outside what the tool can see or reopen.
    with tempfile.TemporaryFile(dir=Path(work).parent) as out_file, \
            tempfile.TemporaryFile(dir=Path(work).parent) as err_file:
        try:
            proc = subprocess.Popen([*prefix, *bwrap, program, *argv[1:]], cwd=work, stdin=subprocess.DEVNULL,
                                    stdout=out_file, stderr=err_file, env={"PATH": "/usr/bin:/bin"},
                                    start_new_session=True)
        except OSError as exc:
            return ToolRun(argv, None, "", "", missing=f"{argv[0]} ({exc.strerror})")
        try:
            proc.wait(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.wait()
            timed_out = True
        return ToolRun(argv, proc.returncode, _read_capped(out_file), _read_capped(err_file), timed_out)


def _read_capped(handle) -> str:
    handle.seek(0)
    data = handle.read(MAX_OUTPUT + 1)
    text = data[:MAX_OUTPUT].decode("utf-8", "replace")
    return text + ("\n[output truncated]\n" if len(data) > MAX_OUTPUT else "")


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


@functools.lru_cache(maxsize=None)
def tool_version(program: str, flag: str = "--version") -> str:
    """First line of `program --version` ('missing' if it is not installed). Runs the PV's own
    pinned toolchain on no plugin input, so outside the sandbox."""
    path = shutil.which(program)
    if not path:
        return "missing"
    try:
        out = subprocess.run([path, flag], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else "unknown"
