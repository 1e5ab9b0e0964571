"""A progress bar on stderr for long epochs and publishes, only where a person watches.

Shown only when stderr is a terminal, never under CI (`CI` set, as every CI service does) or
on a dumb terminal, and never with --json (the caller disables it): logs and machine-readable
output stay free of carriage returns and escape codes. Where no bar is shown, `line` and
`step` are None, so the library does not even format its progress lines.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # click exports the bar's class only from a private module
    from click._termui_impl import ProgressBar


def wanted(stream=None) -> bool:
    stream = stream or sys.stderr
    return (hasattr(stream, "isatty") and stream.isatty() and not os.environ.get("CI")
            and os.environ.get("TERM", "") != "dumb")


class TerminalProgress:
    """A click progress bar made on the first step (the total is known only then), with the
    library's progress lines printed above it."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._bar: ProgressBar[int] | None = None
        self._total = 0

    def line(self, text: str) -> None:
        if self._bar is not None:
            click.echo("\r\x1b[K", file=sys.stderr, nl=False)  # clear the bar, print the line, redraw the bar
        click.echo(text, file=sys.stderr)
        if self._bar is not None:
            self._bar._last_line = None  # click skips redrawing an unchanged bar; the line just erased it
            self._bar.render_progress()

    def step(self, done: int, total: int) -> None:
        if self._bar is None or total != self._total:
            self.close()
            self._total = total
            self._bar = click.progressbar(length=total, label=self.label, file=sys.stderr, show_pos=True,
                                          show_eta=True)
            self._bar.__enter__()
        self._bar.update(done - self._bar.pos)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.render_finish()
            self._bar = None


class _Quiet:
    line: Callable[[str], None] | None = None
    step: Callable[[int, int], None] | None = None


@contextlib.contextmanager
def terminal_progress(*, enabled: bool, label: str) -> Iterator[TerminalProgress | _Quiet]:
    """A bar and line printer for a terminal; a silent stand-in everywhere else."""
    if not (enabled and wanted()):
        yield _Quiet()
        return
    bar = TerminalProgress(label)
    try:
        yield bar
    finally:
        bar.close()
