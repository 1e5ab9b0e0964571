"""Strict YAML mappings (policy.yaml, pv.yaml, trust.yaml, verifier configs): one place for the
errors every configuration file reports the same way, naming the file.

Every one of these files can come from outside (policy.yaml from the PR, pv.yaml and trust.yaml
from an operator's copy), so the loader is bounded like `jsondoc`: strict UTF-8, a size limit,
no aliases (an alias bomb expands to billions of nodes for whoever walks it), nesting depth and
integer size limited, and every failure of the YAML library (including the `ValueError` of a
5,000-digit int and the `RecursionError` of deep nesting) becomes a `FormatError` naming the file.
"""

from __future__ import annotations

from typing import Any, Iterable

import yaml

from .errors import FormatError
from .jsondoc import MAX_DEPTH, depth_of, lone_surrogate

MAX_YAML_BYTES = 1 << 20
MAX_INT_BITS = 128


class _NoAliasLoader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no type hints
    """PyYAML's safe loader, refusing aliases (anchors alone are harmless)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed", event.start_mark)
        return super().compose_node(parent, index)

    def construct_yaml_int(self, node: Any) -> int:
        # int() of a 5,000-digit scalar raises ValueError deep in PyYAML; refuse it by length
        # first (an int of MAX_INT_BITS bits has at most ~40 digits; underscores may pad it)
        text = self.construct_scalar(node)
        if len(text) > 4 * MAX_INT_BITS:
            raise yaml.constructor.ConstructorError(None, None, f"integer of {len(text)} characters",
                                                    node.start_mark)
        value: int = super().construct_yaml_int(node)
        return value


_NoAliasLoader.add_constructor("tag:yaml.org,2002:int", _NoAliasLoader.construct_yaml_int)


_OPEN = (yaml.FlowSequenceStartToken, yaml.FlowMappingStartToken, yaml.BlockSequenceStartToken,
         yaml.BlockMappingStartToken)
_CLOSE = (yaml.FlowSequenceEndToken, yaml.FlowMappingEndToken, yaml.BlockEndToken)


class _TooDeep(Exception):
    pass


def _check_depth(text: str) -> None:
    """Refuse deep nesting from the token stream, before PyYAML builds anything: its parser and
    composer recurse per level and get slower with depth (measured: 2,000 nested ``[`` cost 3.5 s
    before the RecursionError), so the bound must hold before them, not after."""
    depth = 0
    for token in yaml.scan(text, Loader=_NoAliasLoader):
        if isinstance(token, _OPEN):
            depth += 1
            if depth > MAX_DEPTH:
                raise _TooDeep
        elif isinstance(token, _CLOSE):
            depth -= 1


def _big_int(value: Any) -> int | None:
    """An int anywhere in `value` that is over MAX_INT_BITS bits, or None (iterative walk)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, bool):
            continue
        if isinstance(item, int):
            if item.bit_length() > MAX_INT_BITS:
                return item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set)):
            stack.extend(item)
    return None


def load(text: str | bytes, where: str) -> Any:
    """Any bounded YAML document (None when empty), or FormatError naming `where`."""
    if len(text) > MAX_YAML_BYTES:
        raise FormatError(f"{where}: {len(text)} bytes, over the {MAX_YAML_BYTES}-byte limit")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FormatError(f"{where}: not UTF-8 (byte {exc.start})") from None
    try:
        _check_depth(text)
        doc = yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except _TooDeep:
        raise FormatError(f"{where}: YAML nested deeper than {MAX_DEPTH} levels") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        place = f"{where}:{mark.line + 1}:{mark.column + 1}" if mark is not None else where
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise FormatError(f"{place}: invalid YAML ({problem})") from None
    except RecursionError:
        raise FormatError(f"{where}: invalid YAML (nested too deeply)") from None
    except (ValueError, TypeError, OverflowError, IndexError, KeyError, AttributeError) as exc:
        # PyYAML's constructors raise these on values they cannot build (e.g. int('9' * 5000))
        raise FormatError(f"{where}: invalid YAML ({type(exc).__name__}: {str(exc)[:120]})") from None
    if depth_of(doc, MAX_DEPTH) > MAX_DEPTH:
        raise FormatError(f"{where}: YAML nested deeper than {MAX_DEPTH} levels")
    if _big_int(doc) is not None:
        raise FormatError(f"{where}: an integer over {MAX_INT_BITS} bits")
    if lone_surrogate(doc) is not None:
        raise FormatError(f"{where}: a string holds a lone surrogate escape (not Unicode text)")
    return doc


def parse_mapping(text: str | bytes, where: str, allowed: Iterable[str] | None = None) -> dict[str, Any]:
    """A YAML document that must be a mapping (and, with `allowed`, use only those keys)."""
    doc = load(text, where)
    if not isinstance(doc, dict):
        raise FormatError(f"{where}: must be a mapping")
    if allowed is not None:
        extra = set(doc) - set(allowed)
        if extra:
            raise FormatError(f"{where}: unknown key(s) {', '.join(sorted(map(str, extra)))}")
    return doc
