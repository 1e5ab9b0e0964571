"""Requirement formulas over PV approvals, e.g. ``pv1 & (pv2 | pv3.termination)``.

Atoms are a PV name (``pv1``: the plugin is in pv1's tree at a fresh, verified STR) or a PV
name and a property (``pv1.termination``: it is, and its binding lists that property).
Operators: ``&``/``and``, ``|``/``or`` and parentheses, parsed by boolean.py.

Formulas come from outside (trust.yaml, pv.yaml, an audited log's pv.json), and boolean.py
fails on crafted text with whatever its internals raise (measured: ``a + ( | b)x`` raises
AssertionError, deep parentheses RecursionError), so every exception of the library while
parsing or checking becomes a FormatError naming the formula, and the text is size-limited.

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
MAX_FORMULA_CHARS = 4096  # real formulas are a few dozen characters; bounds the library's work


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
        if len(text) > MAX_FORMULA_CHARS:
            raise FormatError(f"formula {text[:40]!r}...: {len(text)} characters (at most {MAX_FORMULA_CHARS})")
        try:
            expr = _ALGEBRA.parse(text)
            _check_monotone(expr, text)
            symbols = sorted(expr.get_symbols(), key=str)
        except FormatError:
            raise
        except boolean.ParseError as exc:
            raise FormatError(f"formula {text!r}: {_describe_parse_error(exc)}") from None
        except Exception as exc:  # noqa: BLE001 - any failure of the library on hostile text is a format error
            raise FormatError(f"formula {text!r}: not a valid formula ({type(exc).__name__})") from None
        atoms = []
        for symbol in symbols:
            match = _ATOM.fullmatch(str(symbol.obj))
            if not match:
                raise FormatError(f"formula {text!r}: bad atom {symbol.obj!r} (expected pv or pv.property)")
            atoms.append(Atom(match.group(1), match.group(2)))
        if known_pvs is not None:
            known = set(known_pvs)
            unknown = sorted({a.pv for a in atoms} - known)
            if unknown:
                raise FormatError(
                    f"formula {text!r}: unknown PV(s) {', '.join(unknown)} "
                    f"(known: {', '.join(sorted(known)) or 'none'})")
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
        return bool(result == _ALGEBRA.TRUE)

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
    pending = [expr]  # iterative: a parsed formula can be as deep as its text is long
    while pending:
        node = pending.pop()
        if isinstance(node, boolean.boolean._TRUE) or isinstance(node, boolean.boolean._FALSE):
            raise FormatError(f"formula {text!r}: constants (true/false/1/0) are not allowed")
        if isinstance(node, boolean.NOT):
            raise FormatError(
                f"formula {text!r}: negation is not allowed (an unreachable PV would then count for acceptance)")
        pending.extend(getattr(node, "args", ()))


def _describe_parse_error(exc: boolean.ParseError) -> str:
    try:
        msg = str(exc)
    except Exception:  # noqa: BLE001 - the library formats its own messages; never let that fail
        return "syntax error"
    msg = msg.encode("utf-8", "backslashreplace").decode("utf-8")  # it quotes the hostile token
    return msg[0].lower() + msg[1:] if msg else "syntax error"
