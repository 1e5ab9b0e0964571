"""What the readers of LLVM IR text (termination.py, ranking.py) share: the shape of an IR
name, and the positions of a separator outside brackets."""

from __future__ import annotations

from collections.abc import Iterator

# An LLVM name as printed by printAsOperand: bare, or quoted with \XX escapes (never a newline).
NAME = r'(?:"(?:[^"\\\n]|\\[0-9A-Fa-f]{2}|\\\\)*"|[-A-Za-z0-9$._]+)'


def top_level(text: str, sep: str) -> Iterator[int]:
    """The positions of `sep` in `text` outside any bracket (IR types nest {}, [], (), <>)."""
    depth = 0
    for i, ch in enumerate(text):
        if ch in "{[(<":
            depth += 1
        elif ch in "}])>":
            depth -= 1
        elif ch == sep and depth == 0:
            yield i
