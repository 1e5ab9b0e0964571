"""The plugin as the peer holds it, and whether it is the bytecode a binding names.

Only the files a binding or the manifest names are read from the peer's directory, never
through a symlink; nothing here raises for a mismatch: the problem is returned as text.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Mapping
from pathlib import Path

from pds_log.core.binding import Binding
from pds_log.core.errors import FormatError, PdsError


class BytecodeDir:
    """The plugin's files as the peer holds them; only the files a binding or the manifest
    names are read, never through a symlink."""

    MAX_FILE_BYTES = 64 << 20

    def __init__(self, directory: str | Path) -> None:
        self.root = Path(directory)
        if not self.root.is_dir():
            raise PdsError(f"{directory}: not a directory")
        self._data: dict[str, bytes | None] = {}

    def read(self, rel: str) -> bytes | None:
        """The bytes of `rel` inside the directory, None if missing; PdsError if unsafe."""
        if rel not in self._data:
            self._data[rel] = self._read(rel)
        return self._data[rel]

    def sha256(self, rel: str) -> str | None:
        """SHA-256 hex of `rel`, None if missing."""
        data = self.read(rel)
        return None if data is None else hashlib.sha256(data).hexdigest()

    def _read(self, rel: str) -> bytes | None:
        path = self.root
        parts = rel.split("/")
        if any(p in ("", ".", "..") for p in parts) or rel.startswith("/"):
            raise PdsError(f"unsafe bytecode path {rel!r}")
        mode = 0
        for i, part in enumerate(parts):
            path = path / part
            try:
                mode = os.lstat(path).st_mode
            except (FileNotFoundError, NotADirectoryError):
                return None
            if stat.S_ISLNK(mode):
                raise PdsError(f"{path}: is a symlink; refusing to follow it")
            if i < len(parts) - 1 and not stat.S_ISDIR(mode):
                return None
        if not stat.S_ISREG(mode):
            return None
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise PdsError(f"{path}: is a symlink; refusing to follow it") from None
            raise PdsError(f"{path}: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(self.MAX_FILE_BYTES + 1)
        if len(data) > self.MAX_FILE_BYTES:
            raise PdsError(f"{path}: larger than {self.MAX_FILE_BYTES} bytes")
        return data


class _HeldFiles(Mapping):
    """A read-only mapping view of a BytecodeDir for the manifest parsers, which only look
    files up by path (`in`, `[]`): it lists nothing, so only the files the manifest names are
    ever read from the peer's directory."""

    def __init__(self, held: BytecodeDir) -> None:
        self.held = held

    def __getitem__(self, rel: str) -> bytes:
        data = self.held.read(rel)
        if data is None:
            raise KeyError(rel)
        return data

    def __contains__(self, rel: object) -> bool:
        return isinstance(rel, str) and self.held.read(rel) is not None

    def __iter__(self):
        return iter(())

    def __len__(self) -> int:
        return 0


def binding_files(binding: Binding) -> dict[str, str]:
    """Every file a binding names (manifest and pluglets) with its SHA-256 hex."""
    return {binding.manifest_path: binding.manifest_sha256, **binding.pluglets}


def bytecode_problem(binding: Binding, held: BytecodeDir | Mapping[str, bytes]) -> str | None:
    """Why the bytecode a peer holds is not the binding's, or None when every file matches."""
    for path, digest in sorted(binding_files(binding).items()):
        if isinstance(held, BytecodeDir):
            actual = held.sha256(path)
        else:
            actual = hashlib.sha256(held[path]).hexdigest() if path in held else None
        if actual is None:
            return f"{path} is missing from the bytecode directory"
        if actual != digest:
            return f"{path} hashes to {actual[:16]}..., the binding says {digest[:16]}..."
    return None


def manifest_check(binding: Binding, held: BytecodeDir) -> tuple[str | None, list[str]]:
    """(problem, warnings) about the manifest as the peer would load it, once the binding's
    files match: every object it loads must be covered by the binding; an included PQUIC
    fragment the binding does not cover is a warning (its content is not attested)."""
    from pds_log.core.manifest import parse_manifest_at

    files = _HeldFiles(held)
    try:
        manifest = parse_manifest_at(files, binding.manifest_path, binding.name)
    except (FormatError, KeyError) as exc:
        return f"the manifest as held does not parse: {exc}", []
    except PdsError as exc:
        return str(exc), []
    unbound = [p for p in manifest.pluglets if p not in binding.pluglets]
    if unbound:
        return f"the manifest loads {', '.join(unbound)}, which the binding does not cover", []
    covered = set(binding_files(binding))
    return None, [f"{f} (included by the manifest) is not covered by the binding: its content is not attested"
                  for f in manifest.fragments if f not in covered]


def held_bytecode_check(binding: Binding, held: BytecodeDir | Mapping[str, bytes]) -> tuple[str | None, list[str]]:
    """bytecode_problem, then (for a directory) manifest_check; never raises PdsError."""
    try:
        problem = bytecode_problem(binding, held)
        if problem is None and isinstance(held, BytecodeDir):
            return manifest_check(binding, held)
    except PdsError as exc:  # a symlink or an oversized file in the peer's own directory
        problem = str(exc)
    return problem, []
