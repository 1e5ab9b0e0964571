"""Requirement formulas over PV approvals, e.g. ``pv1 & (pv2 | pv3.termination)``.

Atoms are a PV name (``pv1``: the plugin is in pv1's tree at a fresh, verified STR) or a PV
name and a property (``pv1.termination``: it is, and its binding lists that property).
Operators: ``&``/``and``, ``|``/``or`` and parentheses, parsed by boolean.py.

Formulas are monotone on purpose: negation and constants are refused. A PV that cannot be
reached counts as false, so with ``~pv2`` an attacker who blocks pv2 would turn a rejection
into an acceptance; and ``1`` would accept anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Mapping

import boolean

from .errors import FormatError

_ATOM = re.compile(r"([A-Za-z][A-Za-z0-9_]*)(?:\.([A-Za-z0-9_]+))?")
_ALGEBRA = boolean.BooleanAlgebra()


@dataclass(frozen=True)
class Atom:
    pv: str
    prop: str | None = None

    def __str__(self) -> str:
        return self.pv if self.prop is None else f"{self.pv}.{self.prop}"


class Formula:
    """A parsed, checked requirement formula."""

    def __init__(self, text: str, expr: boolean.Expression, atoms: tuple[Atom, ...]) -> None:
        self.text = text
        self._expr = expr
        self.atoms = atoms

    @classmethod
    def parse(cls, text: str, known_pvs: Iterable[str] | None = None) -> "Formula":
        """Parse `text`; with `known_pvs`, every atom must name one of them."""
        if not isinstance(text, str) or not text.strip():
            raise FormatError("formula is empty")
        try:
            expr = _ALGEBRA.parse(text)
        except boolean.ParseError as exc:
            raise FormatError(f"formula {text!r}: {_describe_parse_error(exc)}") from None
        _check_monotone(expr, text)
        atoms = []
        for symbol in sorted(expr.get_symbols(), key=str):
            match = _ATOM.fullmatch(str(symbol.obj))
            if not match:
                raise FormatError(f"formula {text!r}: bad atom {symbol.obj!r} (expected pv or pv.property)")
            atoms.append(Atom(match.group(1), match.group(2)))
        if known_pvs is not None:
            known = set(known_pvs)
            unknown = sorted({a.pv for a in atoms} - known)
            if unknown:
                raise FormatError(
                    f"formula {text!r}: unknown PV(s) {', '.join(unknown)} (known: {', '.join(sorted(known)) or 'none'})")
        return cls(text, expr, tuple(dict.fromkeys(atoms)))

    @property
    def pvs(self) -> tuple[str, ...]:
        return tuple(sorted({a.pv for a in self.atoms}))

    def evaluate(self, truth: Mapping[str, bool] | Mapping[Atom, bool]) -> bool:
        """Evaluate with a truth value per atom (keyed by Atom or its string); missing = false."""
        values = {str(k): bool(v) for k, v in truth.items()}
        subs = {
            _ALGEBRA.Symbol(str(a)): (_ALGEBRA.TRUE if values.get(str(a), False) else _ALGEBRA.FALSE)
            for a in self.atoms
        }
        result = self._expr.subs(subs, simplify=True)
        return result == _ALGEBRA.TRUE

    def evaluate_with(self, approved: Mapping[str, bool], properties: Mapping[str, Iterable[str]]) -> bool:
        """Evaluate from per-PV approval and per-PV attested properties."""
        truth = {}
        for atom in self.atoms:
            ok = bool(approved.get(atom.pv, False))
            if atom.prop is not None:
                ok = ok and atom.prop in set(properties.get(atom.pv, ()))
            truth[str(atom)] = ok
        return self.evaluate(truth)

    def __str__(self) -> str:
        return self.text


def _check_monotone(expr: boolean.Expression, text: str) -> None:
    if isinstance(expr, boolean.boolean._TRUE) or isinstance(expr, boolean.boolean._FALSE):
        raise FormatError(f"formula {text!r}: constants (true/false/1/0) are not allowed")
    if isinstance(expr, boolean.NOT):
        raise FormatError(f"formula {text!r}: negation is not allowed (an unreachable PV would then count for acceptance)")
    for arg in getattr(expr, "args", ()):
        _check_monotone(arg, text)


def _describe_parse_error(exc: boolean.ParseError) -> str:
    msg = str(exc)
    return msg[0].lower() + msg[1:] if msg else "syntax error"
