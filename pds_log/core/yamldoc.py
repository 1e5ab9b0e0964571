"""Strict YAML mappings (policy.yaml, pv.yaml, trust.yaml, verifier configs): one place for the
errors every configuration file reports the same way, naming the file."""

from __future__ import annotations

from typing import Any, Iterable

import yaml

from .errors import FormatError


def parse_mapping(text: str | bytes, where: str, allowed: Iterable[str] | None = None) -> dict[str, Any]:
    """A YAML document that must be a mapping (and, with `allowed`, use only those keys)."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        place = f"{where}:{mark.line + 1}:{mark.column + 1}" if mark is not None else where
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise FormatError(f"{place}: invalid YAML ({problem})") from None
    if not isinstance(doc, dict):
        raise FormatError(f"{where}: must be a mapping")
    if allowed is not None:
        extra = set(doc) - set(allowed)
        if extra:
            raise FormatError(f"{where}: unknown key(s) {', '.join(sorted(map(str, extra)))}")
    return doc
