"""Keeps the fast set fast: in a run that deselects `slow` tests (`pytest -m "not slow"`), list at
the end every test not marked slow that took longer than `fast_set_max_seconds` (setup, call and
teardown together, so an expensive fixture counts against the test that first pays for it).

A warning, not a failure: a loaded machine can push a fast test over the line, and the fix (mark
it slow, or make it cheaper) is a judgement the author makes, not the run.
"""

from __future__ import annotations

import pytest

DEFAULT_MAX_SECONDS = 2.0
# the warning names this many tests at most, slowest first; the count says how many there were
MAX_LISTED = 30


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("fast_set_max_seconds", f"in a run that excludes slow tests, warn about unmarked tests "
                  f"slower than this (default {DEFAULT_MAX_SECONDS})", default=str(DEFAULT_MAX_SECONDS))


def excludes_slow(markexpr: str) -> bool:
    """Whether the `-m` expression deselects a test that carries only the `slow` marker."""
    if not markexpr:
        return False
    try:
        # pytest's own evaluator, so `not slow and not net` or `(not slow)` count as well
        from _pytest.mark.expression import Expression

        def carries(name: str, /, **kwargs: object) -> bool:
            return name == "slow" and not kwargs
        return not Expression.compile(markexpr).evaluate(carries)
    except Exception:  # a private API: if it moves, fall back on the spelling this project documents
        return "not slow" in " ".join(markexpr.split())


class FastSetGuard:
    def __init__(self, max_seconds: float) -> None:
        self.max_seconds = max_seconds
        self.seconds: dict[str, float] = {}

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]):
        report = yield
        # on the report, not in a set of node ids: under pytest-xdist the workers know the items
        # and the controller only sees reports, whose attributes travel with them
        report.fast_set_member = item.get_closest_marker("slow") is None
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if getattr(report, "fast_set_member", False):
            self.seconds[report.nodeid] = self.seconds.get(report.nodeid, 0.0) + report.duration

    def too_slow(self) -> list[tuple[float, str]]:
        return sorted(((s, nodeid) for nodeid, s in self.seconds.items() if s > self.max_seconds), reverse=True)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        slow = self.too_slow()
        if not slow:
            return
        terminalreporter.write_line(
            f"WARNING: {len(slow)} test(s) not marked slow took more than {self.max_seconds:g} s; "
            f"mark them @pytest.mark.slow or make them cheaper:", yellow=True, bold=True)
        for seconds, nodeid in slow[:MAX_LISTED]:
            terminalreporter.write_line(f"  {seconds:6.2f} s  {nodeid}", yellow=True)
        if len(slow) > MAX_LISTED:
            terminalreporter.write_line(f"  … and {len(slow) - MAX_LISTED} more", yellow=True)


def pytest_configure(config: pytest.Config) -> None:
    if excludes_slow(config.getoption("markexpr", "") or ""):
        max_seconds = float(config.getini("fast_set_max_seconds"))
        config.pluginmanager.register(FastSetGuard(max_seconds), "fast_set_guard")
