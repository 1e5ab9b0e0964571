"""Bounded JSON for everything read from outside (proofs, bindings, manifests, bundles, status
files, log records): one place where malformed, deep, huge-number or non-UTF-8 input becomes a
`FormatError` naming the place, never another exception.

Hand-written on top of the standard `json` module because these bounds are a security control:
the stdlib raises `RecursionError` on deep nesting, `ValueError` on integers over 4,300 digits
and accepts `NaN`/`Infinity`; a caller that catches only `json.JSONDecodeError` lets all three
escape (measured: one 100k-deep proof file crashed the peer before it tried the next mirror).

    loads(data, where)  -> the parsed value, or FormatError("<where>: ...")

Limits: nesting depth <= MAX_DEPTH, integers of at most MAX_INT_DIGITS digits, floats finite,
no duplicate keys, at most `max_bytes` bytes when given, strict UTF-8 (also for what escapes
decode to: a lone surrogate such as ``"\\ud800"`` is refused, since no UTF-8 text holds one and
every later ``.encode()`` of it would raise `UnicodeEncodeError`).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Iterable

from .errors import FormatError

MAX_DEPTH = 64
MAX_INT_DIGITS = 40  # a 128-bit number has 39 digits; no PDS record needs more
_SURROGATE = re.compile("[\ud800-\udfff]")


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"integer of {len(text)} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _parse_float(text: str) -> float:
    if len(text) > 64:
        raise ValueError(f"number of {len(text)} characters")
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is not finite")
    return value


def _parse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate JSON key {key[:60]!r}")
        out[key] = value
    return out


def depth_of(value: Any, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of a parsed value (iterative: safe on any input); stops counting past `limit`."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[Any]
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


def lone_surrogate(value: Any) -> str | None:
    """A string (key or value) anywhere in `value` holding a lone surrogate, or None (iterative)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii() and _SURROGATE.search(item):
                return item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
    return None


def loads(data: bytes | str, where: str, *, max_bytes: int | None = None, max_depth: int = MAX_DEPTH) -> Any:
    """Parse untrusted JSON within the limits above, or raise FormatError naming `where`."""
    if max_bytes is not None and len(data) > max_bytes:
        raise FormatError(f"{where}: {len(data)} bytes, over the {max_bytes}-byte limit")
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FormatError(f"{where}: not UTF-8 (byte {exc.start})") from None
    else:
        text = data
    try:
        value = json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant,
                           object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise FormatError(f"{where}: JSON nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise FormatError(f"{where}:{exc.lineno}:{exc.colno}: invalid JSON ({exc.msg})") from None
    except (ValueError, TypeError) as exc:
        raise FormatError(f"{where}: invalid JSON ({exc})") from None
    if depth_of(value, max_depth) > max_depth:
        raise FormatError(f"{where}: JSON nested deeper than {max_depth} levels")
    if lone_surrogate(value) is not None:
        raise FormatError(f"{where}: a string holds a lone surrogate escape (not Unicode text)")
    return value
