import pytest

from pds_log.core.errors import FormatError
from pds_log.core.formula import Atom, Formula


def test_parse_and_evaluate():
    f = Formula.parse("pv1 & (pv2 | pv3)", known_pvs=["pv1", "pv2", "pv3"])
    assert f.pvs == ("pv1", "pv2", "pv3")
    assert f.evaluate({"pv1": True, "pv2": False, "pv3": True})
    assert not f.evaluate({"pv1": True})
    assert not f.evaluate({"pv2": True, "pv3": True})


def test_properties():
    f = Formula.parse("pv1.termination and (pv2 or pv3.side_effects)")
    assert Atom("pv1", "termination") in f.atoms
    assert f.evaluate_with({"pv1": True, "pv3": True}, {"pv1": ["termination"], "pv3": ["side_effects"]})
    assert not f.evaluate_with({"pv1": True, "pv3": True}, {"pv1": ["termination"], "pv3": []})
    assert not f.evaluate_with({"pv1": False, "pv2": True}, {"pv1": ["termination"]})


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("pv1 &", "invalid expression"),
    ("(pv1", "invalid expression"),
    ("pv1 pv2", "invalid symbols sequence"),
    ("pv1 ^ pv2", "unknown token"),
    ("~pv1", "negation is not allowed"),
    ("pv1 & not pv2", "negation is not allowed"),
    ("true", "constants"),
    ("pv1 | 1", "constants"),
    ("pv1.a.b", "bad atom"),
    ("pv9 & pv1", "unknown PV\\(s\\) pv9"),
])
def test_errors(text, message):
    with pytest.raises(FormatError, match=message):
        Formula.parse(text, known_pvs=["pv1", "pv2"])
