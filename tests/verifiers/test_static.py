"""The static-analysis verifier: findings belong to the pluglets that reach them, real tools in
the sandbox, and every way of not knowing is `fail` or `error`, never `pass`."""

import os
import shutil

import pytest

import verifier_runners as vr
from pds_log.core.errors import FormatError
from pds_log.core.manifest import parse_plugin_manifest
from tests.support import EXAMPLES, HEADER, build_example, plugin_input
from verifier_runners.static import CallGraph, Finding, enclosing_function


def static(**options):
    return vr.build_verifiers({"static": {"runner": "static_analysis", **options}})["static"]


def plugin_of(files: dict[str, str], name: str = "org.pds.tests.static"):
    """A plugin from sources alone (the static verifier reads no object)."""
    data = {path: text.encode() for path, text in files.items()}
    data.setdefault("pquic.h", HEADER.read_bytes())
    return vr.PluginInput(name, "0" * 40, data, parse_plugin_manifest(data, name))


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    root = tmp_path_factory.mktemp("static")
    return {name: plugin_input(build_example(name, root)) for name in
            ("org.pds.examples.helper_bug", "org.pds.examples.helper_unused", "org.pds.examples.overflow")}


def test_both_examples_share_the_same_header():
    assert (EXAMPLES / "org.pds.examples.helper_bug" / "helpers.h").read_bytes() == \
        (EXAMPLES / "org.pds.examples.helper_unused" / "helpers.h").read_bytes()


def test_the_pluglet_that_calls_the_buggy_helper_fails_the_plugin(examples):
    result = vr.run_verifier(static(), examples["org.pds.examples.helper_bug"])
    assert result.status == "fail", result.reason
    assert "helpers.h:22" in result.reason and "arrayIndexOutOfBounds" in result.reason
    assert "in rtt_history(); reached by record_history.o)" in result.reason
    assert "cap_state.o" not in result.reason  # the other pluglet does not reach it
    assert "cppcheck" in result.tool_versions


def test_a_plugin_that_never_calls_it_passes_with_the_finding_listed_apart(examples):
    result = vr.run_verifier(static(), examples["org.pds.examples.helper_unused"])
    assert result.status == "pass", result.reason
    assert "listed apart" in result.reason and "helpers.h:22" in result.reason
    assert any(line.startswith("apart: helpers.h:22:") and "rtt_history(), which no pluglet reaches" in line
               for line in result.log.splitlines()), result.log[-2000:]


def test_the_overflow_example_still_fails(examples):
    result = vr.run_verifier(static(), examples["org.pds.examples.overflow"])
    assert result.status == "fail" and "keep_history.c:10" in result.reason and "arrayIndexOutOfBounds" in result.reason


BUGGY = """#include "pquic.h"
static uint64_t {name}(uint64_t v)
{{
    uint64_t slots[2];
    slots[2] = v;
    return slots[0];
}}
"""


def test_reached_through_a_function_pointer_or_an_always_inline_call():
    """Reachability is not only direct calls: an address stored in a table, and a helper the
    compiler inlines even at -O0, both count."""
    through_table = BUGGY.format(name="via_table") + """
typedef uint64_t (*op_t)(uint64_t);
static const op_t ops[1] = { via_table };
protoop_arg_t entry(picoquic_cnx_t *cnx)
{
    return ops[0](get_cnx(cnx, AK_CNX_STATE, 0));
}
"""
    inlined = BUGGY.format(name="inlined").replace("static uint64_t", "static inline __attribute__((always_inline)) "
                                                                         "uint64_t") + """
protoop_arg_t entry(picoquic_cnx_t *cnx)
{
    return inlined(get_cnx(cnx, AK_CNX_STATE, 0));
}
"""
    for source, function in ((through_table, "via_table"), (inlined, "inlined")):
        plugin = plugin_of({"p.plugin": "org.pds.tests.static\nupdate_rtt post x.o\n", "x.c": source})
        result = vr.run_verifier(static(), plugin)
        assert result.status == "fail", (function, result.reason, result.log[-1500:])
        assert f"in {function}(); reached by x.o" in result.reason


def test_an_unreached_static_function_in_the_pluglet_source_is_listed_apart():
    source = BUGGY.format(name="never_called") + """
protoop_arg_t entry(picoquic_cnx_t *cnx)
{
    return get_cnx(cnx, AK_CNX_STATE, 0);
}
"""
    plugin = plugin_of({"p.plugin": "org.pds.tests.static\nupdate_rtt post x.o\n", "x.c": source})
    result = vr.run_verifier(static(), plugin)
    assert result.status == "pass" and "listed apart: x.c:5" in result.reason, result.reason


def test_a_pluglet_with_no_entry_we_can_name_reaches_everything():
    """Fail closed: a source that defines only static functions has no root; the loader runs
    something, so every finding in it counts."""
    source = BUGGY.format(name="only_static")
    plugin = plugin_of({"p.plugin": "org.pds.tests.static\nupdate_rtt post x.o\n", "x.c": source})
    result = vr.run_verifier(static(), plugin)
    assert result.status == "fail" and "reached by x.o" in result.reason, result.reason


def test_a_finding_in_no_single_function_counts_against_every_pluglet():
    graph = CallGraph(extents={("h.h", "f"): (10, 20), ("h.h", "g"): (30, 40)}, reached={("h.h", "f")}, roots=["e"])
    other = CallGraph(extents={("h.h", "g2"): (35, 45)}, roots=["e2"])
    assert enclosing_function(Finding("h.h", 15, "error", "x", "m"), [graph]) == ("h.h", "f")
    assert enclosing_function(Finding("h.h", 25, "error", "x", "m"), [graph]) is None  # between functions
    assert enclosing_function(Finding("h.h", 38, "error", "x", "m"), [graph, other]) is None  # ambiguous
    assert enclosing_function(Finding("other.h", 15, "error", "x", "m"), [graph]) is None


def test_missing_cppcheck_is_an_error(examples, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("clang", "bwrap", "prlimit"):  # everything but cppcheck
        os.symlink(shutil.which(tool), bin_dir / tool)
    monkeypatch.setenv("PATH", str(bin_dir))
    result = vr.run_verifier(static(), examples["org.pds.examples.helper_unused"])
    assert result.status == "error" and "tool not found: cppcheck" in result.reason, result.reason


def test_no_ir_for_reachability_is_an_error(examples):
    """A finding whose reach cannot be computed is never waved through."""
    verifier = static(recipe={"compiler": "pds-no-such-clang", "llc": "llc"})
    result = vr.run_verifier(verifier, examples["org.pds.examples.helper_unused"])
    assert result.status == "error" and "cannot produce the IR for reachability" in result.reason, result.reason
    assert "tool not found: pds-no-such-clang" in result.reason


def test_a_timed_out_tool_is_an_error(examples):
    # 1 ms: no sandboxed cppcheck starts and finishes in it (0.05 s was enough for one small TU
    # once cppcheck ran per TU, so the test passed or failed with the machine's speed)
    result = vr.run_verifier(static(timeout=0.001), examples["org.pds.examples.helper_bug"])
    assert result.status == "error" and "timed out" in result.reason, result.reason


def test_clang_analyzer_findings_are_attributed_too():
    source = """#include "pquic.h"
static int divide(int a)
{
    int zero = 0;
    return a / zero;
}
protoop_arg_t entry(picoquic_cnx_t *cnx)
{
    return get_cnx(cnx, AK_CNX_STATE, 0);
}
"""
    plugin = plugin_of({"p.plugin": "org.pds.tests.static\nupdate_rtt post x.o\n", "x.c": source})
    result = vr.run_verifier(static(tool="clang-analyzer"), plugin)
    assert result.status == "pass" and "listed apart: x.c:5" in result.reason and "Division by zero" in result.reason, \
        result.reason
    called = plugin_of({"p.plugin": "org.pds.tests.static\nupdate_rtt post x.o\n",
                        "x.c": source.replace("get_cnx(cnx, AK_CNX_STATE, 0)", "divide(1)")})
    result = vr.run_verifier(static(tool="clang-analyzer"), called)
    assert result.status == "fail" and "in divide(); reached by x.o" in result.reason, result.reason


def test_bad_configuration_is_refused():
    for options, message in (({"severity": "loud"}, "severity"), ({"tool": "lint"}, "tool"),
                             ({"jobs": 0}, "jobs"), ({"max_configs": "all"}, "max_configs"),
                             ({"extra_args": "--force"}, "extra_args"), ({"build_dir": "yes"}, "build_dir")):
        with pytest.raises(FormatError, match=message):
            static(**options)
