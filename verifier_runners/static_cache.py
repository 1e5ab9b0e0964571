"""A content-addressed cache of cppcheck's result on one translation unit (TU).

cppcheck run on one source file with a fixed command line is deterministic in what it reads:
its own binary and configuration files (cfg/, platforms/), the command line, and the bytes and
paths of the files its preprocessor opens. The key of an entry is SHA-256 over all of these:

* the tool: `cppcheck --version`, and SHA-256 of its binary, of a `cppcheck.cfg` beside it and
  of every file under its data directory (`<prefix>/lib/<arch>/cppcheck`, `<prefix>/share/cppcheck`);
  (a `std.cfg` in the plugin, which cppcheck would load first, is refused by the verifier);
* the exact argv (relative paths: the TU's source path is in it);
* the TU's include closure: every path the preprocessor could open for any `#include` in the
  source or in a file it includes (each candidate of the search: the including file's
  directory, then each -I directory), with the SHA-256 of its bytes, or "absent", or "dir".

The closure is read from the plugin's own bytes by `include_closure`, over-approximately:
comments are blanked (keeping newlines), every line that starts with `#` (or `%:`) and names
`include`/`include_next`/`import` is an include whatever `#if` surrounds it, and both search
orders are tried for both `"..."` and `<...>`. A TU whose includes cannot be read that way (an
`#include MACRO`, `__has_include`, a path that is absolute or leaves the plugin directory, a
lone CR, a trigraph) is never cached: it is run every time. So two TUs with one key read the
same bytes at the same paths with the same tool, and get the same output.

An entry stores the tool's exit status and its two output streams, and the SHA-256 of them: the
verifier builds its verdict and log from those exactly as from a fresh run, so a hit gives the
same verdict and the same log bytes. An entry that does not parse, names another key or fails
its checksum is ignored (the TU is run again and the entry rewritten). Only runs that finished
with exit 0 are stored. Entries are written atomically (a temp file renamed), in-process, by
the verifier; no sandboxed tool can see the directory.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import posixpath
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

from pds_log.core.binding import canonical_json

CACHE_FORMAT = 1
MAX_ENTRY_BYTES = 4 << 20  # an entry larger than this is not read (two capped streams fit)

_COMMENT_OR_LITERAL = re.compile(rb'//[^\n]*|/\*.*?\*/|"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'', re.S)
_DIRECTIVE = re.compile(rb"^[ \t\f\v]*(?:#|%:)[ \t\f\v]*(?P<name>[A-Za-z_]\w*)(?P<rest>[^\n]*)$", re.M)
_INCLUDE_ARG = re.compile(rb'^[ \t\f\v]*(?:"(?P<q>[^"\n]+)"|<(?P<a>[^>\n]+)>)[ \t\f\v]*$')
_INCLUDE_NAMES = {b"include", b"include_next", b"import"}


class Uncacheable(Exception):
    """The TU's includes cannot be read well enough to key it: run it, do not cache it."""


def _blank(match: re.Match[bytes]) -> bytes:
    """A comment becomes spaces and its newlines (line numbers kept); a literal stays."""
    text = match.group(0)
    if text.startswith((b"//", b"/*")):
        return re.sub(rb"[^\n]", b" ", text)
    return text


def _includes(data: bytes, where: str) -> list[str]:
    """The names every include directive of one file names, whatever `#if` surrounds it."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    data = data.replace(b"\r\n", b"\n")
    for pattern, what in ((rb"\r", "a lone CR"), (rb"\?\?[=/]", "a trigraph"), (rb"__has_include", "__has_include"),
                          (rb"\\[ \t\f\v]+\n", "a backslash and blanks before a newline"),
                          (rb"//[^\n]*\\\n", "a // comment continued on the next line")):
        if re.search(pattern, data):
            raise Uncacheable(f"{where}: {what}")
    text = data.replace(b"\\\n", b"")  # line splices, as the preprocessor does first
    text = _COMMENT_OR_LITERAL.sub(_blank, text)
    rest = _COMMENT_OR_LITERAL.sub(b"", text)
    if b"/*" in rest or b'"' in rest or b"'" in rest:
        raise Uncacheable(f"{where}: an unterminated comment or literal")
    out = []
    for m in _DIRECTIVE.finditer(text):
        if m.group("name") not in _INCLUDE_NAMES:
            continue
        arg = _INCLUDE_ARG.match(m.group("rest"))
        if arg is None:
            raise Uncacheable(f"{where}: an include this reader cannot resolve: {m.group(0)[:80]!r}")
        out.append((arg.group("q") or arg.group("a")).decode("utf-8", "surrogateescape"))
    return out


# What the sandbox shows besides the plugin's directory (verifier_runners.sandbox): a path in
# one of these trees is host content the key does not cover.
_SHOWN_TREES = ("/usr", "/bin", "/lib", "/lib32", "/lib64", "/libx32", "/sbin", "/proc", "/dev")


def _outside(candidate: str, workdir: str, files: Mapping[str, bytes], directories: set[str]) -> str:
    """What the sandboxed tool finds at a candidate path that leaves the plugin directory: the
    sandbox's tree is /usr (and its links), /proc, /dev, an empty /tmp, and the plugin's directory
    at its real path (so the directories above it exist and hold only it)."""
    path = posixpath.normpath(posixpath.join(workdir, candidate))
    if path == workdir or path.startswith(workdir + "/"):
        inner = posixpath.relpath(path, workdir)
        return _status(inner, files, directories)
    if any(path == tree or path.startswith(tree + "/") for tree in _SHOWN_TREES):
        raise Uncacheable(f"include path {candidate!r} reaches {path}, outside the plugin")
    if path == "/" or workdir.startswith(path.rstrip("/") + "/") or path == "/tmp":
        return "dir"
    return "absent"


def _status(path: str, files: Mapping[str, bytes], directories: set[str]) -> str:
    if path in files:
        return hashlib.sha256(files[path]).hexdigest()
    return "dir" if path in directories else "absent"


def include_closure(files: Mapping[str, bytes], source: str, workdir: str,
                    include_dirs: Sequence[str] = (".",)) -> list[tuple[str, str]]:
    """(path, sha256 | "absent" | "dir") of every path the preprocessor could open for the TU
    `source` run in `workdir` (the plugin's files, at their real path), sorted; raises
    Uncacheable when the includes cannot be read."""
    workdir = os.path.realpath(workdir)
    directories = {""}
    for path in files:
        while path:
            path = posixpath.dirname(path)
            directories.add(path)
    seen: dict[str, str] = {}
    todo = [source]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        if current == ".." or current.startswith("../"):
            seen[current] = _outside(current, workdir, files, directories)
            inner = posixpath.relpath(posixpath.normpath(posixpath.join(workdir, current)), workdir)
            if not inner.startswith(".."):  # back into the plugin directory: read what it includes
                todo.append(inner)
            continue
        seen[current] = _status(current, files, directories)
        if current not in files:
            continue
        for name in _includes(files[current], current):
            if name.startswith("/") or "\\" in name:
                raise Uncacheable(f"{current}: include {name!r} is absolute or has a backslash")
            for base in (posixpath.dirname(current), *include_dirs):
                candidate = posixpath.normpath(posixpath.join(base, name))
                todo.append(candidate)
    return sorted(seen.items())


@functools.lru_cache(maxsize=None)
def tool_identity(program: str, version: str) -> str | None:
    """SHA-256 of the tool's version line, binary and data files; None if it is not installed."""
    path = shutil.which(program)
    if path is None:
        return None
    real = Path(os.path.realpath(path))
    digest = hashlib.sha256(canonical_json({"program": program, "version": version}))
    digest.update(hashlib.sha256(real.read_bytes()).digest())
    beside = real.parent / f"{program}.cfg"  # cppcheck reads a cppcheck.cfg beside its binary
    if beside.is_file():
        digest.update(hashlib.sha256(beside.read_bytes()).digest())
    prefix = real.parent.parent
    for data_dir in sorted([*prefix.glob(f"lib/*/{program}"), prefix / "lib" / program, prefix / "share" / program]):
        if not data_dir.is_dir():
            continue
        for root, dirs, names in os.walk(data_dir):
            dirs.sort()
            for name in sorted(names):
                file = Path(root) / name
                if file.is_file():
                    digest.update(str(file).encode() + b"\0" + hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def tu_key(identity: str, argv: Sequence[str], closure: list[tuple[str, str]]) -> str:
    return hashlib.sha256(canonical_json({"v": CACHE_FORMAT, "tool": identity, "argv": list(argv),
                                          "closure": [list(item) for item in closure]})).hexdigest()


def _payload_digest(returncode: int, stdout: str, stderr: str) -> str:
    return hashlib.sha256(canonical_json({"returncode": returncode, "stdout": stdout, "stderr": stderr})).hexdigest()


class TuCache:
    """Entries under `directory`, one JSON file each, named by key."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> tuple[int, str, str] | None:
        """(returncode, stdout, stderr) of the stored run, or None (missing or corrupt)."""
        path = self._path(key)
        try:
            if path.stat().st_size > MAX_ENTRY_BYTES:
                return None
            doc: Any = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return None
        if not isinstance(doc, dict) or doc.get("v") != CACHE_FORMAT or doc.get("key") != key:
            return None
        returncode, stdout, stderr = doc.get("returncode"), doc.get("stdout"), doc.get("stderr")
        if not (isinstance(returncode, int) and isinstance(stdout, str) and isinstance(stderr, str)):
            return None
        if doc.get("sha256") != _payload_digest(returncode, stdout, stderr):
            return None
        return returncode, stdout, stderr

    def put(self, key: str, returncode: int, stdout: str, stderr: str) -> None:
        path = self._path(key)
        data = canonical_json({"v": CACHE_FORMAT, "key": key, "returncode": returncode, "stdout": stdout,
                               "stderr": stderr, "sha256": _payload_digest(returncode, stdout, stderr)})
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except OSError:  # a cache that cannot be written costs only time
            return
