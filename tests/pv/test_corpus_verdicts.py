"""benchmarks/corpus_e2e.py's refusal table: each failure item of a rejected plugin is judged by
corpus_verdicts' rules, and a rejection is a plugin property only when a decisive item is one;
an item no rule knows leaves the rejection unclassified (the table must show it)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import corpus_e2e  # noqa: E402
import corpus_verdicts  # noqa: E402


def test_failure_items_are_the_failing_lines_of_each_verifier_log():
    log = ("a.o: 2 back edge(s) in the bytecode\n"
           "a.o: f, loop %3 (line 9): pass: terminates after 4 backedges [backedge-taken count 4; max 4]\n"
           "a.o: f, loop %7 (line 20): fail: ScalarEvolution cannot count its iterations [...]\n")
    assert corpus_verdicts.failure_items("termination", "unproven loop ...", log) == [log.splitlines()[2]]
    assert corpus_verdicts.failure_items("safety", "r", "a.o: #4: local call without a relocation (x)\nok") == [
        "a.o: #4: local call without a relocation (x)"]
    # a verifier whose log names no failure is judged by its reason
    assert corpus_verdicts.failure_items("reproducible", "differs", "") == ["differs"]


def row(*items: tuple[str, bool, str]) -> dict:
    failed: dict = {}
    for verifier, decisive, item in items:
        entry = failed.setdefault(verifier, {"decisive": decisive, "reason": item, "items": []})
        entry["items"] += corpus_e2e.judged(verifier, [item])
    return {"plugin": "org.pds.tests.x", "failed": failed}


def test_a_rejection_is_the_plugins_when_a_decisive_item_is_a_plugin_property(monkeypatch):
    # a limitation rule of this test's own (the corpus has none left at the moment)
    monkeypatch.setattr(corpus_verdicts, "RULES", corpus_verdicts.RULES + (corpus_verdicts.Rule(
        "termination", r"set_next_wake_time, loop %\d+ \(line 251\)", corpus_verdicts.LIMITATION, "a test's"),))
    local_call = "x.o: #12: local call without a relocation (the VM would misread it as a helper id 5)"
    assert corpus_verdicts.classify("safety", local_call)[0] == corpus_verdicts.PLUGIN
    assert corpus_e2e.row_class(row(("safety", True, local_call))) == "plugin"
    # a non-decisive verifier (not in the acceptance) does not decide the class
    assert corpus_e2e.row_class(row(("static", False, local_call), ("safety", True, "something new"))) == \
        "unclassified (1 item(s))"
    limited = "m.o: set_next_wake_time, loop %4 (line 251): fail: ScalarEvolution cannot count its iterations"
    assert corpus_e2e.row_class(row(("termination", True, limited))) == corpus_verdicts.LIMITATION
    assert corpus_e2e.row_class(row(("safety", True, local_call), ("termination", True, limited))) == \
        "plugin (+1 item(s) a verifier limitation)"


def test_an_item_no_rule_knows_is_unclassified():
    assert corpus_verdicts.classify("termination", "z.o: g, loop %1 (line 3): fail: new") == (
        corpus_verdicts.UNCLASSIFIED, "")
    # a rule is for its verifier only
    assert corpus_verdicts.classify("static", "x.o: #1: local call without a relocation")[0] == \
        corpus_verdicts.UNCLASSIFIED
