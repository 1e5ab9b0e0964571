"""The runner interface shared by every verifier.

Input: a plugin's files at a PR commit (read from git blobs by the caller, so never a followed
symlink) and its parsed manifest. Output: pass | fail | error, a one-line reason, a log, the
tool versions. A verifier that cannot run (tool missing, crash, timeout, exception) is
`error` with the reason: never `pass`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

from pds_log.core.binding import canonical_json
from pds_log.core.errors import FormatError
from pds_log.core.manifest import Manifest, validate_relative_path

from .sandbox import ToolRun, run_tool

PASS, FAIL, ERROR = "pass", "fail", "error"
STATUSES = (PASS, FAIL, ERROR)
MAX_LOG = 200_000


@dataclass
class PluginInput:
    name: str
    commit: str
    files: Mapping[str, bytes]
    manifest: Manifest


@dataclass
class VerifierResult:
    verifier: str
    status: str
    reason: str
    log: str = ""
    tool_versions: dict[str, str] = field(default_factory=dict)
    duration_s: float = 0.0

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"bad verifier status {self.status!r}")
        self.reason = " ".join(str(self.reason).split())[:500] or self.status
        if len(self.log) > MAX_LOG:
            self.log = self.log[:MAX_LOG] + "\n[log truncated]\n"

    def to_obj(self) -> dict[str, Any]:
        return {"verifier": self.verifier, "status": self.status, "reason": self.reason, "log": self.log,
                "tool_versions": dict(sorted(self.tool_versions.items())), "duration_s": round(self.duration_s, 4)}

    @classmethod
    def from_obj(cls, obj: Mapping[str, Any]) -> "VerifierResult":
        try:
            return cls(str(obj["verifier"]), str(obj["status"]), str(obj["reason"]), str(obj.get("log", "")),
                       {str(k): str(v) for k, v in (obj.get("tool_versions") or {}).items()},
                       float(obj.get("duration_s", 0.0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"verifier result: bad field {exc}") from None


class Verifier:
    """Base class: subclasses set `runner`, `version` and implement `check`."""

    runner: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    options: ClassVar[dict[str, Any]] = {}  # option name -> default
    default_timeout: ClassVar[float] = 120.0
    # Verifiers that only read the bytes they are given skip writing the files to disk.
    needs_files: ClassVar[bool] = True

    def __init__(self, name: str, config: Mapping[str, Any], base_dir: Path | None = None,
                 protected: Sequence[str | os.PathLike] = ()) -> None:
        self.name = name
        # Paths no tool may see, even where they fall under a tree the sandbox shows (the PV's
        # directory, keys, state, log repo): see verifier_runners.sandbox.
        self.protected = tuple(str(p) for p in protected)
        extra = set(config) - {"runner", "timeout", *self.options}
        if extra:
            raise FormatError(f"verifier {name} ({self.runner}): unknown option(s) {', '.join(sorted(extra))}")
        self.config = {k: config.get(k, v) for k, v in self.options.items()}
        self.timeout = float(config.get("timeout", self.default_timeout))
        self.base_dir = base_dir or Path.cwd()
        self.setup()

    def setup(self) -> None:
        """Validate/prepare configuration (raise FormatError on bad config)."""

    def config_digest(self) -> str:
        """Changes whenever the verdict could: runner, its version, its configuration."""
        if getattr(self, "_digest", None) is None:
            self._digest = self._compute_digest()
        return self._digest

    def _compute_digest(self) -> str:
        return hashlib.sha256(canonical_json({"runner": self.runner, "version": self.version,
                                              "config": self.digest_material(), "timeout": self.timeout})).hexdigest()

    def digest_material(self) -> Any:
        return self.config

    def check(self, plugin: PluginInput, workdir: Path) -> VerifierResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def run_tool(self, argv: Sequence[str], workdir: Path, **limits: Any) -> ToolRun:
        """Run an external tool on this plugin in the sandbox, with this verifier's timeout."""
        return run_tool(argv, workdir, self.timeout, protected=self.protected, **limits)

    def result(self, status: str, reason: str, log: str = "", **versions: str) -> VerifierResult:
        return VerifierResult(self.name, status, reason, log, dict(versions))


def materialize(files: Mapping[str, bytes], root: Path) -> None:
    """Write a plugin's files under `root` as regular files (paths validated first)."""
    for path, data in files.items():
        validate_relative_path(path, path)
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "xb") as handle:  # never follows or overwrites anything
            handle.write(data)


def run_verifier(verifier: Verifier, plugin: PluginInput, *, memory_limit: int | None = None) -> VerifierResult:
    """Run one verifier (in its own temp dir when it reads files from disk); any failure to
    run is an `error` result. (`verifier_runners.worker` runs this in worker processes under
    wall-clock and memory limits; `memory_limit` names the limit in the message when the worker
    runs out.)"""
    return run_verifier_checked(verifier, plugin, memory_limit=memory_limit)[0]


def run_verifier_checked(verifier: Verifier, plugin: PluginInput, *,
                         memory_limit: int | None = None) -> tuple[VerifierResult, bool]:
    """`run_verifier`, and whether the run exhausted the process (memory, recursion): a worker
    that saw that is replaced before it verifies another plugin."""
    start = time.perf_counter()
    exhausted = False
    workdir = Path(tempfile.mkdtemp(prefix=f"pds-{verifier.name}-")) if verifier.needs_files else None
    try:
        if workdir is not None:
            (workdir / "plugin").mkdir()
            materialize(plugin.files, workdir / "plugin")
        result = verifier.check(plugin, workdir / "plugin" if workdir else Path("/nonexistent"))
        if not isinstance(result, VerifierResult):  # pragma: no cover - programming error
            result = verifier.result(ERROR, f"{verifier.runner} returned no result")
    except MemoryError:
        exhausted = True
        limit = f" of {memory_limit >> 20} MiB" if memory_limit else ""
        result = verifier.result(ERROR, f"{verifier.runner} exceeded the memory limit{limit} on {plugin.name}")
    except RecursionError:
        exhausted = True
        result = verifier.result(ERROR, f"{verifier.runner} exceeded the recursion limit on {plugin.name}")
    except Exception as exc:  # the verdict of a crashed verifier is `error`
        result = verifier.result(ERROR, f"{verifier.runner} crashed: {type(exc).__name__}: {exc}",
                                 traceback.format_exc())
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    result.verifier = verifier.name
    result.duration_s = time.perf_counter() - start
    return result, exhausted


class ResultCache:
    """Verifier results by (verifier config digest, plugin files digest), in one SQLite file.

    A cache: losing it only costs re-verification, so writes are not fsynced one by one. It is
    safe to share between the threads of one process (one connection per thread) and between
    processes (SQLite locking)."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self.path = self.directory / "results.sqlite"
        self._local = threading.local()

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("CREATE TABLE IF NOT EXISTS results (config TEXT, files TEXT, result TEXT, "
                       "PRIMARY KEY (config, files))")
            self._local.db = db
        return db

    def get(self, verifier: Verifier, files_digest: str) -> VerifierResult | None:
        row = self._db().execute("SELECT result FROM results WHERE config = ? AND files = ?",
                                 (verifier.config_digest(), files_digest)).fetchone()
        if row is None:
            return None
        try:
            result = VerifierResult.from_obj(json.loads(row[0]))
        except (ValueError, FormatError):
            return None
        result.verifier = verifier.name
        return result

    def put(self, verifier: Verifier, files_digest: str, result: VerifierResult) -> None:
        """Store a verdict. `error` results are not stored: they say the verifier could not run
        (missing tool, timeout), which the next epoch must retry rather than remember."""
        if result.status == ERROR:
            return
        self._db().execute("INSERT OR REPLACE INTO results VALUES (?, ?, ?)",
                           (verifier.config_digest(), files_digest, json.dumps(result.to_obj())))
