"""Plugin names and their tree keys.

A plugin name is dot-separated labels of ``[A-Za-z0-9_-]``, at least two labels, at most 128
characters (DESIGN.md "Plugin formats"). Its key in the prefix tree is ``SHA-256(utf8(name))``.
Names are also used verbatim as path components (``plugins/<name>/``), which the label rule
keeps safe: no ``/``, no empty label, so never ``.`` or ``..``.
"""

from __future__ import annotations

import hashlib
import re

from .errors import FormatError

MAX_NAME_LENGTH = 128
_LABEL = r"[A-Za-z0-9_-]+"
_NAME_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")
# A namespace pattern is a name prefix ending in ".*" (or "*" alone for every name).
_NAMESPACE_RE = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*\.)?\*")


def validate_name(name: object) -> str:
    """Return `name` if it is a valid plugin name, else raise FormatError saying why."""
    if not isinstance(name, str):
        raise FormatError(f"plugin name must be a string, got {type(name).__name__}")
    if len(name) > MAX_NAME_LENGTH:
        raise FormatError(f"plugin name {name[:40]!r}... is {len(name)} characters (max {MAX_NAME_LENGTH})")
    if not _NAME_RE.fullmatch(name):
        raise FormatError(
            f"invalid plugin name {name!r}: need >= 2 dot-separated labels of [A-Za-z0-9_-]"
        )
    return name


def is_valid_name(name: object) -> bool:
    try:
        validate_name(name)
    except FormatError:
        return False
    return True


def name_key(name: str) -> bytes:
    """The 32-byte tree key of a plugin name: SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(name.encode("utf-8")).digest()


def validate_namespace(pattern: str) -> str:
    """A namespace pattern such as ``be.example.*`` (every name under ``be.example.``)."""
    if not isinstance(pattern, str) or not _NAMESPACE_RE.fullmatch(pattern):
        raise FormatError(f"invalid namespace pattern {pattern!r}: expected like 'be.example.*'")
    return pattern


def in_namespace(name: str, pattern: str) -> bool:
    """True when `name` falls under namespace `pattern` (``be.example.*`` matches
    ``be.example.foo`` and ``be.example.a.b`` but not ``be.example`` nor ``be.examplex.foo``)."""
    validate_namespace(pattern)
    prefix = pattern[:-1]  # keep the trailing dot: label boundaries matter
    return name.startswith(prefix) and len(name) > len(prefix)
