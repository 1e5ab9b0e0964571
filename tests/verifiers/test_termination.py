"""`termination` and `bounded` on plugins written for these tests, and the ScalarEvolution
parser on the output forms of the LLVM versions it reads."""

import re
import shutil

import pytest

import verifier_runners as vr
from pds_log.core.errors import FormatError
from pds_log.core.recipe import BuildRecipe
from pds_log.developer.build import build_plugin
from tests.support import EXAMPLES, build_example, plugin_input
from verifier_runners.termination import IrIndex, parse_scalar_evolution

LOOPS = vr.build_verifiers({"termination": {"runner": "termination"}, "bounded": {"runner": "bounded"}})


def plugin_with_source(tmp_path, source: str, name: str = "org.pds.tests.loops"):
    """A one-pluglet PQUIC plugin (attached to set_next_wake_time) with this C source, built."""
    directory = tmp_path / name
    directory.mkdir()
    shutil.copy(EXAMPLES / "org.pds.examples.cwin_total" / "pquic.h", directory)
    (directory / "loops.plugin").write_text(f"{name}\nset_next_wake_time replace pluglet.o\n")
    (directory / "pluglet.c").write_text(source)
    build_plugin(directory)
    return directory


def verdicts(directory):
    plugin = plugin_input(directory)
    return {name: vr.run_verifier(v, plugin) for name, v in LOOPS.items()}


def test_loop_bounded_by_an_argument_terminates_but_is_not_bounded(tmp_path):
    directory = build_example("org.pds.examples.path_sum", tmp_path)
    got = verdicts(directory)
    assert got["termination"].status == "pass", got["termination"].reason
    assert re.search(r"sum_paths, loop %\d+ \(line 1[01]\): terminates after \(-1 \+ %\d+\) backedges",
                     got["termination"].reason)
    assert got["bounded"].status == "fail"
    assert re.search(r"^unproven loop at sum_paths, loop %\d+ \(line 1[01]\) in sum_paths.o: its count "
                     r"\(-1 \+ %\d+\) is symbolic", got["bounded"].reason), got["bounded"].reason
    # the log carries every loop's verdict, with the counts ScalarEvolution gave
    assert re.search(r"sum_paths.o: sum_paths, loop %\d+ \(line 1[01]\): fail: .*\[backedge-taken count "
                     r"\(-1 \+ %\d+\); max -2\]", got["bounded"].log)


def test_constant_loop_terminates_and_is_bounded(tmp_path):
    got = verdicts(build_example("org.pds.examples.cwin_total", tmp_path))
    assert got["termination"].status == "pass" and got["bounded"].status == "pass", got
    assert re.search(r"total_cwin, loop %\d+ \(line 1[34]\): at most 100 iterations \(limit 100000\)",
                     got["bounded"].reason)


@pytest.mark.parametrize("example, line", [("org.pds.examples.sack_walk", "1[23]"),
                                           ("org.pds.examples.spin_wait", "9")])
def test_loop_without_a_count_fails_both_with_its_reason(tmp_path, example, line):
    got = verdicts(build_example(example, tmp_path))
    for name, result in got.items():
        assert result.status == "fail", (name, result.reason)
        # termination tried a ranking function too, and says why none was found
        ranking = r" and no ranking function found: [^\[]+" if name == "termination" else ""
        assert re.search(rf"^unproven loop at \w+, loop %\d+ \(line {line}\) in \w+\.o: ScalarEvolution cannot "
                         rf"count its iterations{ranking} \[backedge-taken count unpredictable; max unpredictable\]",
                         result.reason), (name, result.reason)


def test_nested_loop_counted_by_the_outer_index_terminates(tmp_path):
    """The inner loop's count is the outer loop's index: fixed when the inner loop is entered."""
    directory = plugin_with_source(tmp_path, """#include "pquic.h"
protoop_arg_t pluglet(picoquic_cnx_t *cnx)
{
    uint64_t n = get_cnx(cnx, AK_CNX_NB_PATHS, 0);
    uint64_t total = 0;
    for (uint64_t i = 0; i < n; i++)
        for (uint64_t j = 0; j < i; j++)
            total += get_cnx(cnx, AK_CNX_PATH, (uint16_t) j);
    set_cnx(cnx, AK_CNX_OUTPUT, 0, total);
    return 0;
}
""")
    got = verdicts(directory)
    assert got["termination"].status == "pass", got["termination"].reason
    loop_lines = [ln for ln in got["termination"].log.splitlines() if ": pass: " in ln]
    assert len(loop_lines) == 2, got["termination"].log
    assert any(re.search(r"terminates after \(-1 \+ \{\d+,\+,1\}<\S*%\d+>\) backedges", ln)
               or re.search(r"terminates after \{-?\d+,\+,1\}<\S*%\d+> backedges", ln) for ln in loop_lines), loop_lines
    assert got["bounded"].status == "fail" and "(+1 more)" in got["bounded"].reason


def test_loop_free_plugin_passes_both_without_compiling(tmp_path):
    got = verdicts(build_example("org.pds.examples.rtt_monitor", tmp_path))
    for result in got.values():
        assert result.status == "pass" and result.reason == "no loops in any pluglet"
        assert "$ " not in result.log  # no IR was built


def test_ir_that_cannot_be_produced_is_an_error_never_a_fail(tmp_path):
    """The object loops, but its source no longer compiles: no IR, no verdict."""
    directory = build_example("org.pds.examples.path_sum", tmp_path)
    (directory / "sum_paths.c").write_text('#include "pquic.h"\nprotoop_arg_t sum_paths(picoquic_cnx_t *cnx) {'
                                           ' return undeclared_variable; }\n')
    for name, result in verdicts(directory).items():
        assert result.status == "error", (name, result.reason)
        assert result.reason.startswith("cannot judge at sum_paths in sum_paths.o: cannot produce the IR the recipe "
                                        "compiles: clang exited with 1"), result.reason
        assert "undeclared_variable" in result.log


def test_missing_source_fails(tmp_path):
    directory = build_example("org.pds.examples.path_sum", tmp_path)
    (directory / "sum_paths.c").unlink()
    result = verdicts(directory)["termination"]
    assert result.status == "fail" and "no source sum_paths.c to analyse" in result.reason


def test_the_ir_is_the_recipes_own(tmp_path):
    """Both verifiers analyse the IR of the recipe the PV rebuilds with: host-target IR for the
    default two-stage recipe, the recipe of the PV's reproducible verifier when it sets one."""
    directory = build_example("org.pds.examples.path_sum", tmp_path)
    result = vr.run_verifier(LOOPS["termination"], plugin_input(directory))
    argv = BuildRecipe().ir_argv("sum_paths.o", "sum_paths.o.ll")
    assert "$ " + " ".join(argv) in result.log
    assert "-target" not in " ".join(argv) and "-g" in argv and "-S" in argv
    one_stage = {"compiler": "clang", "flags": ["-target", "bpf", "-O2", "-I", "."]}
    built = vr.build_verifiers({"reproducible": {"runner": "reproducible", "recipe": one_stage},
                                "termination": {"runner": "termination"}, "bounded": {"runner": "bounded"},
                                "own": {"runner": "termination", "recipe": None}})
    for name in ("termination", "bounded"):
        assert built[name].recipe == BuildRecipe.from_obj(one_stage)
        result = vr.run_verifier(built[name], plugin_input(directory))
        assert "$ clang -target bpf -O2 -I . -g -emit-llvm -S -c sum_paths.c" in result.log
    assert built["own"].recipe == BuildRecipe()
    with pytest.raises(FormatError, match="different recipes"):
        vr.build_verifiers({"r1": {"runner": "reproducible", "recipe": one_stage},
                            "r2": {"runner": "reproducible"}, "r3": {"runner": "reproducible", "recipe": {}},
                            "termination": {"runner": "termination"}})


def test_options():
    with pytest.raises(FormatError, match="max_trip_count is an option of the `bounded` runner now"):
        vr.build_verifiers({"t": {"runner": "termination", "max_trip_count": 10}})
    with pytest.raises(FormatError, match="unknown option"):
        vr.build_verifiers({"t": {"runner": "termination", "bound": 10}})
    for bad in (0, -1, "10", True, 1.5):
        with pytest.raises(FormatError, match="max_trip_count must be a positive integer"):
            vr.build_verifiers({"b": {"runner": "bounded", "max_trip_count": bad}})
    assert vr.build_verifiers({"b": {"runner": "bounded", "max_trip_count": 7}})["b"].config["max_trip_count"] == 7


# ---------------------------------------------------------------------- the parser
LLVM14 = """Printing analysis 'Scalar Evolution Analysis' for function 'f':
Classifying expressions for: @f
  %5 = phi i64 [ %9, %4 ], [ 0, %1 ]
  -->  {0,+,1}<nuw><%4> U: [0,-1) S: [0,-1)\t\tExits: (-1 + %0)\t\tLoopDispositions: { %4: Computable }
Determining loop execution counts for: @f
Loop %4: backedge-taken count is (-1 + %0)
Loop %4: max backedge-taken count is -2
Loop %4: Predicated backedge-taken count is (-1 + %0)
 Predicates:

Loop %4: Trip multiple is 1
Determining loop execution counts for: @"g.with odd\\22name"
Loop %for.body: <multiple exits> Unpredictable backedge-taken count.
  exit count for for.body: 7
  exit count for if.end: ***COULDNOTCOMPUTE***
Loop %for.body: max backedge-taken count is 7
Loop %for.body: Unpredictable predicated backedge-taken count.
Loop %"x y": backedge-taken count is 15
Loop %"x y": max backedge-taken count is 15, actual taken count either this or zero.
Loop %"x y": Predicated backedge-taken count is 15
Loop %"x y": Trip multiple is 16
Determining loop execution counts for: @h
Loop %3: Unpredictable backedge-taken count.
Loop %3: Unpredictable max backedge-taken count. 
Loop %3: Unpredictable predicated backedge-taken count. 
"""


def test_parser_reads_llvm_14_with_named_fields():
    report = parse_scalar_evolution(LLVM14)
    assert report.problems == []
    assert report.functions == ["f", '"g.with odd\\22name"', "h"]
    counts = {(loop.function, loop.loop): (loop.exact, loop.max, loop.multiple_exits, loop.constant_max())
              for loop in report.loops}
    assert counts == {("f", "4"): ("(-1 + %0)", "-2", False, None),
                      ('"g.with odd\\22name"', "for.body"): ("", "7", True, 7),
                      ('"g.with odd\\22name"', '"x y"'): ("15", "15", False, 15),
                      ("h", "3"): ("", "", False, None)}


def test_parser_reads_newer_llvm_forms():
    """LLVM 15+ says "constant max", 16+ adds "symbolic max", 17+ may print a constant's type."""
    report = parse_scalar_evolution("""Determining loop execution counts for: @f
Loop %loop: backedge-taken count is (-1 + %n)
Loop %loop: constant max backedge-taken count is i64 -2
Loop %loop: symbolic max backedge-taken count is (-1 + %n)
Loop %loop: Trip multiple is 1
Loop %w: Unpredictable backedge-taken count.
Loop %w: Unpredictable constant max backedge-taken count.
Loop %w: symbolic max backedge-taken count is %k
Loop %c: backedge-taken count is i32 99
Loop %c: constant max backedge-taken count is i32 99
""")
    assert report.problems == []
    loops = {loop.loop: loop for loop in report.loops}
    assert (loops["loop"].exact, loops["loop"].max, loops["loop"].symbolic_max) == ("(-1 + %n)", "i64 -2", "(-1 + %n)")
    assert loops["loop"].constant_max() is None and loops["c"].constant_max() == 99
    termination, bounded = LOOPS["termination"], LOOPS["bounded"]
    assert termination.judge(loops["w"]) == ("pass", "terminates: at most %k backedges")
    assert bounded.judge(loops["w"])[0] == "fail"
    assert bounded.judge(loops["c"]) == ("pass", "at most 100 iterations (limit 100000)")


@pytest.mark.parametrize("text, problem", [
    ("Determining loop execution counts for: @f\nLoop %4: backedge-taken count might be 3\n"
     "Loop %4: max backedge-taken count is 3\n", "unreadable ScalarEvolution line 'Loop %4: backedge-taken count "
                                                 "might be 3'"),
    ("Loop %4: backedge-taken count is 3\n", "line 1: unreadable"),  # before any function
    ("Determining loop execution counts for: @f\nLoop %4: backedge-taken count is 3\n", "no max backedge-taken count"),
    ("Determining loop execution counts for: @f\nLoop %4: max backedge-taken count is 3\n", "no backedge-taken count"),
    ("Determining loop execution counts for: @f\nLoop %4: backedge-taken count is 3\n\n[output truncated]\n",
     "truncated"),
    ("Determining loop execution counts for @f\n", "unreadable"),
])
def test_an_unreadable_report_is_a_problem_never_a_bound(text, problem):
    report = parse_scalar_evolution(text)
    assert any(problem in p for p in report.problems), report.problems


def test_ir_index_source_lines():
    index = IrIndex("""define dso_local i64 @f(i64 %0) local_unnamed_addr #0 !dbg !9 {
  br label %2, !dbg !20

2:                                                ; preds = %1, %2
  %3 = phi i64 [ 0, %1 ], [ %4, %2 ]
  %4 = add i64 %3, 1, !dbg !21
  br i1 %5, label %2, label %6, !dbg !22

6:
  ret i64 0

7:
  br label %2, !dbg !24
}
define i64 @"q r"() {
"a b":
  ret i64 0, !dbg !23
}
!0 = distinct !DICompileUnit(language: DW_LANG_C99, file: !1, producer: "clang")
!1 = !DIFile(filename: "f.c", directory: "/p")
!2 = !DIFile(filename: "./ext/plugins/helpers.h", directory: "/p")
!9 = distinct !DISubprogram(name: "f", scope: !1, file: !1, line: 1, unit: !0)
!10 = distinct !DISubprogram(name: "helper", scope: !2, file: !2, line: 40, unit: !0)
!11 = distinct !DILexicalBlock(scope: !10, file: !2, line: 41, column: 3)
!20 = !DILocation(line: 3, column: 1, scope: !9)
!21 = !DILocation(line: 0, scope: !9)
!22 = !DILocation(line: 5, column: 2, scope: !9)
!23 = !DILocation(line: 9, column: 2, scope: !9)
!24 = !DILocation(line: 42, column: 7, scope: !11, inlinedAt: !22)
""")
    assert index.functions == ["f", '"q r"']
    assert index.source_line("f", "2") == " (line 5)"  # line 0 (no line) is skipped
    assert index.source_line("f", "6") == "" and index.source_line("f", "nope") == ""
    assert index.source_line('"q r"', '"a b"') == " (line 9)"
    # code inlined from a header names the header's line (the loop a reader must look at)
    assert index.source_line("f", "7") == " (line 42 of ext/plugins/helpers.h)"


@pytest.mark.parametrize("sed, problem", [
    ("s/max backedge-taken count is/max trip count might be/", "unreadable ScalarEvolution line 'Loop %"),
    ("/^Determining loop execution counts/d", "no ScalarEvolution report for function(s) total_cwin"),
])
def test_an_opt_whose_report_cannot_be_read_makes_an_error(tmp_path, monkeypatch, sed, problem):
    """An opt of another LLVM version, as a wrapper that rewrites the real opt's report: the
    loop is never taken as bounded, the verdict is `error` naming what could not be read."""
    directory = build_example("org.pds.examples.cwin_total", tmp_path)
    bin_dir = tmp_path / "other-llvm" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "opt").write_text(f"#!/bin/sh\n/usr/bin/opt \"$@\" 2>&1 | sed '{sed}' >&2\n")
    (bin_dir / "opt").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    for name, result in verdicts(directory).items():
        assert result.status == "error", (name, result.reason)
        assert result.reason.startswith("cannot judge at total_cwin in total_cwin.o: unreadable opt output: ")
        assert problem in result.reason, result.reason


FRAME_COPY = """#include "pquic.h"
void copy_frame(void *dst, const void *src, size_t n);
typedef struct { uint64_t count; uint64_t ids[8]; } frame_t;
protoop_arg_t pluglet(picoquic_cnx_t *cnx)
{
    frame_t *parsed = (frame_t *) get_cnx(cnx, AK_CNX_INPUT, 0);
    frame_t frame;
    %s(&frame, parsed, sizeof(frame_t));
    uint64_t total = 0;
    for (int i = 0; i < frame.count; i++)
        total += get_cnx(cnx, AK_CNX_PATH, (uint16_t) frame.ids[i & 7]);
    set_cnx(cnx, AK_CNX_OUTPUT, 0, total);
    return 0;
}
"""


def test_loop_bounded_by_a_local_copied_with_a_non_capturing_helper_terminates(tmp_path):
    """PQUIC's TMP_FRAME_BEGIN: a frame copied into a local with my_memcpy, a loop up to one of its
    fields that calls helpers. my_memcpy does not keep the pointer (pquic_helpers.yaml says so),
    so no call in the loop can change the local: its field is fixed at loop entry."""
    got = verdicts(plugin_with_source(tmp_path, FRAME_COPY % "my_memcpy"))
    assert got["termination"].status == "pass", got["termination"].reason
    assert re.search(r"pluglet, loop %\d+ \(line 1[01]\): pass: terminates after \(-1 \+ %\d+\) backedges",
                     got["termination"].log), got["termination"].log
    assert "my_memcpy: argument(s) 1, 2 nocapture" in got["termination"].log


def test_loop_bounded_by_a_local_another_helper_may_keep_fails(tmp_path):
    """The same loop when the local's address went to a helper the config does not vouch for
    (here: one of the plugin's own functions, opaque to the analysis): a call in the loop might
    write through the pointer it kept, so the bound is not fixed."""
    got = verdicts(plugin_with_source(tmp_path, FRAME_COPY % "copy_frame"))
    assert got["termination"].status == "fail", got["termination"].reason
    assert "ScalarEvolution cannot count its iterations" in got["termination"].reason


def test_mark_nocapture_marks_pointer_arguments_and_a_returned_one_only_when_its_result_is_unused():
    from verifier_runners.termination import NoCapture, mark_nocapture

    helpers = {"my_memcpy": NoCapture((1, 2), returns=1), "cancel_head_reservation": NoCapture((1, 2))}
    ir = """define i64 @f(i8* %0) {
  %2 = tail call i8* @my_memcpy(i8* noundef %0, i8* noundef %0, i64 noundef 8)
  ret i64 0
}
declare i8* @my_memcpy(i8* noundef, i8* noundef, i64 noundef) local_unnamed_addr #3
declare i64 @cancel_head_reservation(i64 noundef, { i8*, i32 }* noundef) #3
declare i64 @get_cnx(i8* noundef, i16 noundef zeroext, i16 noundef zeroext)
"""
    text, marked = mark_nocapture(ir, helpers)
    assert "declare i8* @my_memcpy(i8* nocapture noundef, i8* nocapture noundef, i64 noundef) local_unnamed_addr #3" \
        in text
    # an argument that is not a pointer is left alone; a nested type's commas do not split it
    assert "declare i64 @cancel_head_reservation(i64 noundef, { i8*, i32 }* nocapture noundef) #3" in text
    assert "declare i64 @get_cnx(i8* noundef, i16 noundef zeroext, i16 noundef zeroext)" in text
    assert marked == ["my_memcpy: argument(s) 1, 2 nocapture", "cancel_head_reservation: argument(s) 2 nocapture"]
    # the destination comes back as the result: once a caller uses it, the helper keeps it
    used = ir.replace("  ret i64 0", "  store i8 0, i8* %2\n  ret i64 0")
    text, marked = mark_nocapture(used, helpers)
    assert "@my_memcpy(i8* noundef, i8* nocapture noundef, i64 noundef)" in text
    assert marked[0] == "my_memcpy: argument(s) 2 nocapture"


# ---------------------------------------------------------------------- the ranking-function route
# Loops ScalarEvolution cannot count (LLVM 14 says "Unpredictable" for each of them): the
# `termination` verifier then looks for a ranking function; `bounded` stays constant-max only.
BUFFER = """#include "pquic.h"
protoop_arg_t pluglet(picoquic_cnx_t *cnx)
{
    const uint8_t *buf = (const uint8_t *) get_cnx(cnx, AK_CNX_INPUT, 0);
    uint32_t length = (uint32_t) get_cnx(cnx, AK_CNX_INPUT, 1);
    uint32_t i = 0, j = 0, total = 0;
%s
    set_cnx(cnx, AK_CNX_OUTPUT, 0, total);
    return 0;
}
"""
# segments of 2 + 4 * n bytes, each checked against what remains before it is skipped
GUARDED_STRIDE = """    while (i < length) {
        if (length - i <= 2)
            return 1;
        uint32_t step = 2 + 4 * (uint32_t) buf[i + 1];
        if (length - i < step)
            return 1;
        i += step;
        total++;
    }"""
# i may stand still on a zero byte; the dummy counter j advances by 6, under a 16-bit length
DUMMY_COUNTER = """    if (length > 0xffff)
        return 1;
    while (i < length && j < length) {
        j += 6;
        total += buf[i];
        i += buf[i];
    }"""
# a count byte, then that many 4-byte items read by an inner loop that advances i
INNER_LOOP = """    while (i < length) {
        if (length - i <= 2)
            return 1;
        i++;
        uint8_t items = buf[i++];
        for (uint32_t k = 0; k < items && items > 0; k++) {
            if (length - i <= 4)
                return 1;
            total += *(const uint32_t *) (buf + i);
            i += 4;
        }
    }"""
RANKED = r"terminates: ranking function \(%\d+ - %\d+\) decreases \(unsigned\) on every path back to the header"


@pytest.mark.slow
@pytest.mark.parametrize("loop", [GUARDED_STRIDE, DUMMY_COUNTER, INNER_LOOP],
                         ids=["guarded-stride", "stride-6-under-uint16-guard", "inner-loop-advances-i"])
def test_a_loop_scalar_evolution_cannot_count_terminates_by_a_ranking_function(tmp_path, loop):
    got = verdicts(plugin_with_source(tmp_path, BUFFER % loop))
    result = got["termination"]
    assert result.status == "pass", result.reason
    # the loop's verdict names the ranking function and the source line, and keeps the counts
    assert re.search(rf"pluglet, loop %\d+ \(line \d+\): pass: {RANKED} \(\d+ path\(s\) back to the header\) "
                     r"\[backedge-taken count unpredictable; max unpredictable", result.log), result.log
    # a ranking function bounds nothing: bounded still fails the loop
    assert got["bounded"].status == "fail"
    assert "ranking" not in got["bounded"].reason and "ranking" not in got["bounded"].log


# What must stay unproven: each of these loops can run forever (or the route cannot know).
NOT_RANKED = {
    # i += a byte of the data: a zero byte and i stands still
    "stride-may-be-0": """    while (i < length) {
        if (length - i <= 2)
            return 1;
        uint32_t step = buf[i + 1];
        if (length - i < step)
            return 1;
        i += step;
        total++;
    }""",
    # the dummy counter without the 16-bit guard: j += 6 wraps past a length near 2^32
    "wrapping-counter-without-guard": DUMMY_COUNTER.replace("if (length > 0xffff)\n        return 1;", ""),
    # the bound is a field the loop itself grows
    "bound-reloaded-from-memory-the-loop-writes": """    uint32_t *record = (uint32_t *) buf;
    while (i < record[0]) {
        if (record[0] - i <= 2)
            return 1;
        uint32_t step = 2 + 4 * (uint32_t) buf[4 + (i & 63)];
        if (record[0] - i < step)
            return 1;
        i += step;
        record[0] += buf[4 + ((i + 1) & 63)];
    }""",
    # a list walk: the next node is read from memory
    "list-walk": """    struct node { struct node *next; uint32_t value; } *node = (struct node *) buf;
    while (node != NULL) {
        total += node->value;
        node = node->next;
    }""",
}


@pytest.mark.slow
@pytest.mark.parametrize("loop", NOT_RANKED.values(), ids=NOT_RANKED.keys())
def test_a_loop_without_a_ranking_function_stays_unproven(tmp_path, loop):
    result = verdicts(plugin_with_source(tmp_path, BUFFER % loop))["termination"]
    assert result.status == "fail", result.reason
    assert re.search(r"^unproven loop at pluglet, loop %\d+ \(line \d+\) in pluglet\.o: ScalarEvolution cannot count "
                     r"its iterations and no ranking function found: no candidate of \d+ decreases on all \d+ "
                     r"path\(s\) back to the header \[backedge-taken count unpredictable", result.reason), result.reason


# The route on IR text directly: what it cannot read gives no proof, never a pass.
RANKED_IR = """(i32 %0) {
  br label %2

2:
  %3 = phi i32 [ 0, %1 ], [ %5, %2 ]
  %4 = sub i32 %0, %3
  %5 = add nuw i32 %3, 2
  %6 = icmp ugt i32 %0, %5
  br i1 %6, label %2, label %7

7:
  ret i32 0
}
"""


def ranking_of(ir: str, header: str = "2", budget: float = 20.0):
    from verifier_runners.ranking import prove_ranking

    index = IrIndex("define i32 @f" + ir)
    params, body = index.bodies["f"]
    return prove_ranking(body, params, header, budget)


@pytest.mark.parametrize("ir, ranking, why", [
    (RANKED_IR, "ranking function (%0 - %3) decreases (unsigned) on every path back to the header",
     "1 path(s) back to the header"),
    # the stride is read from memory each time: it may be 0
    (RANKED_IR.replace("%5 = add nuw i32 %3, 2", "%8 = load i32, i32* null\n  %5 = add nuw i32 %3, %8"), None,
     "no candidate of 4 decreases on all 1 path(s)"),
    # `i += 2` without nuw: i may wrap from 2^32 - 2 to 0 below a bound of 2^32 - 1, and loop forever
    (RANKED_IR.replace("add nuw i32 %3, 2", "add i32 %3, 2"), None, "no candidate"),
    (RANKED_IR.replace("br i1 %6, label %2, label %7", "indirectbr i8* null, [label %2, label %7]"), None,
     "terminator indirectbr in %2 is not read by this proof"),
    (RANKED_IR.replace("br label %2\n", "br label %9\n"), None, "branch from %1 to unknown block %9"),
    (RANKED_IR.replace("  br i1 %6, label %2, label %7\n", ""), None, "block %2 has no terminator"),
    (RANKED_IR, None, "no natural loop with header %7"),
    # a line of no known shape: what it defines would pass for a value fixed during the loop
    (RANKED_IR.replace("  %5 = add", "  1 %5 = add"), None, "unreadable instruction '1 %5 = add"),
    (RANKED_IR.replace("%6 = icmp ugt i32 %0, %5", "%6 = icmp ugt i32 %0, %9"), None, "%9 is defined nowhere"),
    (RANKED_IR.replace("br i1 %6, label %2, label %7", "switch i32 %5, label %7 [ i32 0, label %2 i32 x, label %2 ]"),
     None, "unreadable switch cases"),
])
def test_the_ranking_route_on_ir(ir, ranking, why):
    header = "7" if "header %7" in why else "2"
    got, reason = ranking_of(ir, header)
    assert got == ranking and why in reason, (got, reason)


# a self-loop with no exit (what the vectoriser left of PQUIC's xor(), behind a test on masked bits)
DEAD_SELF_LOOP = """(i16 %0) {
  %2 = and i16 %0, 7
  %3 = icmp ugt i16 %2, 8
  br i1 %3, label %4, label %7

4:
  %5 = phi i64 [ 0, %1 ], [ %6, %4 ]
  %6 = add nuw i64 %5, 8
  br label %4

7:
  ret i32 0
}
"""


def test_a_loop_behind_contradictory_conditions_is_never_entered_and_one_that_is_entered_never_passes():
    assert ranking_of(DEAD_SELF_LOOP, "4") == ("it is never entered",
                                               "the branch conditions on the way into it contradict each other")
    # the same loop behind a test that can hold: it runs forever, and no ranking function is found
    got, why = ranking_of(DEAD_SELF_LOOP.replace("icmp ugt i16 %2, 8", "icmp ult i16 %2, 8"), "4")
    assert got is None and why == "no candidate of 2 decreases on all 1 path(s) back to the header", why


def test_the_ranking_route_gives_up_when_its_budget_is_spent():
    assert ranking_of(RANKED_IR, budget=0) == (None, "the solver's time budget is spent")


def test_the_solver_version_is_recorded_with_the_verdict(tmp_path):
    got = verdicts(build_example("org.pds.examples.path_sum", tmp_path))
    assert re.fullmatch(r"z3 \d+\.\d+\.\d+(\.\d+)?", got["termination"].tool_versions["z3"])
    assert "z3" not in got["bounded"].tool_versions  # bounded asks no solver
