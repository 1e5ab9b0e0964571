"""The fast-set guard (tests/fast_set_guard.py), run by pytest itself on a tiny test file."""

import pytest

from tests.fast_set_guard import excludes_slow
from tests.support import ROOT

TINY_SUITE = """
import time
import pytest

@pytest.fixture(scope="module")
def costly():
    time.sleep(0.3)

def test_quick():
    pass

def test_dawdles():
    time.sleep(0.3)

def test_pays_for_the_fixture(costly):
    pass

@pytest.mark.slow
def test_marked():
    time.sleep(0.3)
"""


@pytest.fixture
def tiny(pytester):
    pytester.makeini("[pytest]\nmarkers =\n    slow: slow\nfast_set_max_seconds = 0.15\n")
    pytester.makepyfile(test_tiny=TINY_SUITE)
    return pytester


def test_lists_unmarked_tests_over_the_limit_without_failing(tiny):
    result = tiny.runpytest("-p", "tests.fast_set_guard", "-m", "not slow")
    result.assert_outcomes(passed=3, deselected=1)
    result.stdout.fnmatch_lines(["WARNING: 2 test(s) not marked slow took more than 0.15 s*"])
    warned = [line for line in result.outlines if line.startswith("  ") and " s  " in line]
    assert sorted(line.split()[-1] for line in warned) == ["test_tiny.py::test_dawdles",
                                                           "test_tiny.py::test_pays_for_the_fixture"]


def test_silent_in_a_run_that_includes_slow_tests(tiny):
    result = tiny.runpytest("-p", "tests.fast_set_guard")
    result.assert_outcomes(passed=4)
    assert "not marked slow" not in result.stdout.str()


def test_silent_when_every_test_is_under_the_limit(tiny):
    result = tiny.runpytest("-p", "tests.fast_set_guard", "-m", "not slow", "-k", "quick")
    result.assert_outcomes(passed=1, deselected=3)
    assert "not marked slow" not in result.stdout.str()


@pytest.mark.parametrize(("markexpr", "excludes"), [
    ("not slow", True), ("not slow and not net", True), ("(not  slow)", True), ("net", True),
    ("slow", False), ("slow or net", False), ("", False),
])
def test_which_marker_expressions_exclude_slow_tests(markexpr, excludes):
    assert excludes_slow(markexpr) is excludes


@pytest.mark.slow  # starts two worker interpreters: seconds
def test_lists_them_under_xdist_too(tiny, monkeypatch):
    """Under pytest-xdist the controller sees only reports; the mark travels on them."""
    pytest.importorskip("xdist")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the workers are new interpreters: they import tests.fast_set_guard
    result = tiny.runpytest("-p", "tests.fast_set_guard", "-m", "not slow", "-n", "2")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["WARNING: 2 test(s) not marked slow took more than 0.15 s*"])
