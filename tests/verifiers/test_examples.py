"""Every example plugin, built by clang, gets the verdict its expect.yaml promises from each
verifier, and the failing ones fail for the reason they exist."""

import re

import pytest

import verifier_runners as vr
from pds_log.pv.setup import DEFAULT_VERIFIERS
from tests.support import EXAMPLES, HEADER, build_example, example_names, expectations, plugin_input

pytestmark = pytest.mark.slow  # clang builds of every example, then every verifier on each

# `bounded` is not a default verifier (a PV opts into it); the examples say what it makes of them
VERIFIERS = vr.build_verifiers({**DEFAULT_VERIFIERS, "bounded": {"runner": "bounded"}})


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("examples")
    return {name: build_example(name, root) for name in example_names()}


def cases():
    for name in example_names():
        for verifier, status in expectations(name)["expect"].items():
            yield pytest.param(name, verifier, status, id=f"{name.split('.')[-1]}-{verifier}")


@pytest.mark.parametrize("name, verifier, status", list(cases()))
def test_example_verdict(built, name, verifier, status):
    result = vr.run_verifier(VERIFIERS[verifier], plugin_input(built[name]))
    assert result.status == status, f"{name} x {verifier}: {result.status}: {result.reason}\n{result.log[-2000:]}"
    reason = (expectations(name).get("reasons") or {}).get(verifier)
    if reason:
        assert re.search(reason, result.reason), result.reason


def test_each_verifier_has_a_passing_and_a_failing_example():
    verdicts = {}
    for name in example_names():
        for verifier, status in expectations(name)["expect"].items():
            verdicts.setdefault(verifier, set()).add(status)
    for verifier in DEFAULT_VERIFIERS:  # (and `error` where a verifier cannot judge)
        assert verdicts.get(verifier, set()) >= {"pass", "fail"}, verifier
        assert verdicts[verifier] <= {"pass", "fail", "error"}, verifier


def test_vendored_headers_are_the_canonical_one():
    for path in EXAMPLES.glob("*/pquic.h"):
        assert path.read_bytes() == HEADER.read_bytes(), path


def test_bounded_loop_example_really_loops(built):
    """cwin_total must keep its loop in the bytecode (else termination passes trivially)."""
    from verifier_runners import ebpf

    obj = ebpf.load_object((built["org.pds.examples.cwin_total"] / "total_cwin.o").read_bytes())
    insns = obj.sections[0].insns
    assert ebpf.build_cfg(insns, 0).back_edges
    result = vr.run_verifier(VERIFIERS["termination"], plugin_input(built["org.pds.examples.cwin_total"]))
    assert "every loop terminates (1 loop(s))" in result.reason
    assert re.search(r"total_cwin.o: total_cwin, loop %\d+ \(line 1[34]\): pass: terminates after "
                     r"\(99 umin \(-1 \+ %\d+\)\) backedges", result.log), result.log


def test_loop_over_the_configured_maximum_fails(built):
    strict = vr.build_verifiers({"bounded": {"runner": "bounded", "max_trip_count": 10}})["bounded"]
    result = vr.run_verifier(strict, plugin_input(built["org.pds.examples.cwin_total"]))
    assert result.status == "fail" and "up to 100 iterations, over the maximum 10" in result.reason
    exact = vr.build_verifiers({"bounded": {"runner": "bounded", "max_trip_count": 100}})["bounded"]
    assert vr.run_verifier(exact, plugin_input(built["org.pds.examples.cwin_total"])).status == "pass"
