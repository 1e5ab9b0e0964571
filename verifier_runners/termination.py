"""Loops: `termination` (every loop ends) and `bounded` (every loop ends within the PV's limit).

Both verifiers find the loops of each pluglet in its bytecode's CFG (back edges); a pluglet
without one passes. For a pluglet that loops they compile the LLVM IR that the PV's recipe
really compiles (``BuildRecipe.ir_argv``: the recipe's first stage, host-target IR for the
default two-stage recipe, with ``-g -S`` so a verdict can name the source line), then run
LLVM's ScalarEvolution on it (``opt -passes=print<scalar-evolution>``) and judge every loop it
reports:

- `termination` passes a loop whose backedge-taken count ScalarEvolution computes. That count
  is loop-invariant by construction (ScalarEvolution reports it only when it is), so it is an
  expression of values fixed when the loop is entered, e.g. ``(-1 + %2)`` for
  ``for (i = 0; i < n; i++)``: the loop ends after that many iterations. A constant (or, in
  newer LLVM, symbolic) maximum also proves it ends.
- `bounded` is stricter: a loop passes only with a constant maximum backedge-taken count, and
  at most `max_trip_count` iterations (maximum + 1). Each loop is judged alone: the limit is
  per loop, not the product of nested loops.

For a loop ScalarEvolution cannot count, `termination` (not `bounded`: a ranking function
gives no bound) tries a second proof (ranking.py): a ranking function built from the loop's
comparisons, e.g. ``(%len - %i)`` for ``while (i < len) { if (len - i <= 2) return; i += 2 +
4 * seg; }``, checked with the Z3 SMT solver in bit-vector semantics to decrease (unsigned) on
every path from the loop's header back to it, under invariants of the header's values it proves
first (``%i <u %len``) and branch conditions that hold on entry (``if (len > UINT16_MAX)
return``). Loads and calls in the loop are fresh unknowns each time; inner loops' values are
fresh unknowns under their own proved invariants; anything it cannot read, too many paths, or
its solver budget spent (20 s per loop, 60 s per plugin) gives no proof. Such a loop passes with
``terminates: ranking function (%len - %i) decreases (unsigned) on every path back to the
header``. A loop behind branch conditions that contradict each other (dead code the
vectoriser left) passes as ``terminates: it is never entered``.

A loop neither proof covers (``while (p) p = p->next``, a loop on state re-read every
iteration, a stride that may be 0) fails both, with its reason. An IR that cannot be produced, an opt that
fails, and opt output this module cannot read (a line it does not know, a loop without its
count line, a function missing, truncated output) are `error`: the verifier could not judge,
and never a pass. Every loop's verdict goes to the log with its place: pluglet, function,
header block, source line (when the IR carries debug lines) and the ScalarEvolution count.

Before counting, the pointer arguments the protocol's helpers never keep (`nocapture:` in the
helper list) are marked so in a copy of the IR, which is re-optimised: a loop bounded by a field
of a local that only such a helper saw (a frame copied with my_memcpy) is then counted.

Soundness is ScalarEvolution's (and the helper list's nocapture entries'): it counts assuming the
C code has no undefined behaviour (signed overflow, out-of-bounds accesses), as the optimiser
that compiled the pluglet did. The ranking proof rests on the same basis: it takes the IR's
``nuw``/``nsw`` flags to mean no overflow, and divisions by zero and over-wide shifts not to
happen.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from pds_log.core.errors import FormatError
from pds_log.core.recipe import BuildRecipe, plugin_defines

from . import ebpf
from .base import ERROR, FAIL, PASS, PluginInput, Verifier, VerifierResult
from .ir_text import NAME as _NAME
from .ir_text import top_level
from .ranking import SOLVER_BUDGET_SECONDS, prove_ranking, z3_version
from .sandbox import tool_version

# All ranking proofs of one plugin together (each loop has SOLVER_BUDGET_SECONDS): a plugin of
# many hostile loops cannot hold the PV for long
RANKING_BUDGET_SECONDS = 60.0

# ------------------------------------------------------------------ opt's ScalarEvolution output
_SCEV_FUNCTION = re.compile(rf"^Determining loop execution counts for: @(?P<function>{_NAME})\s*$")
# Every line printed for a loop starts with "Loop %<header>: " (ScalarEvolution.cpp,
# PrintLoopInfo); "<multiple exits> " precedes the first when the loop has several exits.
_SCEV_LOOP = re.compile(rf"^Loop %(?P<loop>{_NAME}): (?P<multiple><multiple exits> )?(?P<rest>.*?)\s*$")
# LLVM 14: "max"; LLVM 15+: "constant max"; LLVM 16+ adds "symbolic max".
_KIND = r"(?P<kind>max|constant max|symbolic max)"
_SCEV_COUNT = re.compile(rf"^(?:{_KIND} )?backedge-taken count is (?P<count>.+?)"
                         r"(?P<max_or_zero>, actual taken count either this or zero\.)?$")
_SCEV_UNPREDICTABLE = re.compile(rf"^Unpredictable (?:{_KIND} )?backedge-taken count\.?$")
# Lines that prove nothing here: a count under run-time predicates, the trip multiple.
_SCEV_IGNORED = re.compile(r"^(?:Predicated backedge-taken count is .*|Unpredictable predicated backedge-taken "
                           r"count\.?|Trip multiple is \d+)$")
# A constant as ScalarEvolution prints it: a signed decimal (LLVM 17+ may prefix its type), or
# an i1's true/false.
_SCEV_CONSTANT = re.compile(r"^(?:i\d+ )?(?P<value>-?\d+|true|false)$")
TRUNCATED = "[output truncated]"


@dataclass
class LoopCount:
    """What ScalarEvolution says about one loop (`None`: a line not seen yet)."""

    function: str
    loop: str  # the header block, as opt names it (`%6`, or `%for.body` when the IR keeps names)
    multiple_exits: bool = False
    exact: str | None = None  # backedge-taken count, "" = unpredictable
    max: str | None = None  # constant max backedge-taken count, "" = unpredictable
    symbolic_max: str | None = None  # LLVM 16+ only
    line: str = ""  # " (line N)" from the IR's debug info

    @property
    def where(self) -> str:
        return f"{self.function}, loop %{self.loop}{self.line}"

    def constant_max(self) -> int | None:
        """The constant maximum backedge-taken count, None when there is none or it wrapped
        (printed negative: an unsigned count of 2^N - k for an N-bit counter)."""
        m = _SCEV_CONSTANT.match(self.max or "")
        if not m:
            return None
        value = m.group("value")
        number = {"false": 0, "true": 1}.get(value)
        return number if number is not None else (int(value) if int(value) >= 0 else None)

    def facts(self) -> str:
        """The counts, for the log."""
        out = [f"backedge-taken count {self.exact or 'unpredictable'}",
               f"max {self.max or 'unpredictable'}"]
        if self.symbolic_max is not None:
            out.append(f"symbolic max {self.symbolic_max or 'unpredictable'}")
        return "; ".join(out) + ("; several exits" if self.multiple_exits else "")


@dataclass
class ScevReport:
    functions: list[str] = field(default_factory=list)
    loops: list[LoopCount] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # lines or states this parser cannot read


def parse_scalar_evolution(output: str) -> ScevReport:
    """The loop counts in `opt -passes=print<scalar-evolution>` output (LLVM 14 to 19 forms).
    Only unindented lines starting with "Determining" or "Loop " carry them (the rest is the
    expression classification); any such line this parser does not know is a problem, so a
    format change is reported, never read as a bound."""
    report = ScevReport()
    function: str | None = None
    by_key: dict[tuple[str, str], LoopCount] = {}
    for number, line in enumerate(output.splitlines(), 1):
        if line.strip() == TRUNCATED:
            report.problems.append("opt's output was truncated: some loops were not reported")
            continue
        if not line.startswith(("Determining", "Loop ")):
            continue
        m = _SCEV_FUNCTION.match(line)
        if m:
            function = m.group("function")
            report.functions.append(function)
            continue
        m = _SCEV_LOOP.match(line)
        if not m or function is None:
            report.problems.append(f"line {number}: unreadable ScalarEvolution line {line[:200]!r}")
            continue
        key = (function, m.group("loop"))
        loop = by_key.get(key)
        if loop is None:
            loop = by_key[key] = LoopCount(function, m.group("loop"))
            report.loops.append(loop)
        loop.multiple_exits |= bool(m.group("multiple"))
        rest = m.group("rest")
        count = _SCEV_COUNT.match(rest)
        unpredictable = None if count else _SCEV_UNPREDICTABLE.match(rest)
        scev = count or unpredictable
        if scev:
            kind = scev.group("kind")
            value = count.group("count") if count else ""
            slot = {None: "exact", "max": "max", "constant max": "max", "symbolic max": "symbolic_max"}[kind]
            setattr(loop, slot, value)
        elif not _SCEV_IGNORED.match(rest):
            report.problems.append(f"line {number}: unreadable ScalarEvolution line {line[:200]!r}")
    for loop in report.loops:
        if loop.exact is None or loop.max is None:
            missing = "backedge-taken count" if loop.exact is None else "max backedge-taken count"
            report.problems.append(f"{loop.function}, loop %{loop.loop}: no {missing} line")
    return report


# ------------------------------------------------------------------ the IR: functions, source lines
_DEFINE = re.compile(rf"^define [^\n]*?@(?P<function>{_NAME})\(", re.M)
_LABEL = re.compile(rf"^(?P<label>{_NAME}):", re.M)
_DBG_REF = re.compile(r"!dbg !(\d+)")
_DILOCATION = re.compile(r"^!(\d+) = !DILocation\(line: (\d+)(?:, column: \d+)?, scope: !(\d+)", re.M)
# the scopes a location can name (a function, a block in it, a block from another file) carry
# the file they are in; a location inlined from a header names the header's function
_DISCOPE = re.compile(r"^!(\d+) = (?:distinct )?!DI(?:Subprogram|LexicalBlock|LexicalBlockFile)\([^\n]*?\bfile: !(\d+)",
                      re.M)
_DIFILE = re.compile(r'^!(\d+) = !DIFile\(filename: "((?:[^"\\\n]|\\.)*)"', re.M)
_DICOMPILE_UNIT = re.compile(r"^!\d+ = distinct !DICompileUnit\([^\n]*?\bfile: !(\d+)", re.M)


def _parameters(after_open: str) -> str:
    """The parameter list that `after_open` (a define's text after its opening bracket) starts with."""
    depth = 1
    for i, ch in enumerate(after_open):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0:
            return after_open[:i]
    return ""


class IrIndex:
    """The functions an IR text defines and the source line of each block (one pass each)."""

    def __init__(self, ir: str) -> None:
        self.lines = {ref: int(line) for ref, line, _ in _DILOCATION.findall(ir)}
        scope_file = dict(_DISCOPE.findall(ir))
        files = dict(_DIFILE.findall(ir))
        unit = _DICOMPILE_UNIT.search(ir)
        main = unit.group(1) if unit else None
        # the file of each location when it is not the pluglet's own source (a header's code)
        self.files = {ref: files[scope_file[scope]].removeprefix("./") for ref, _, scope in _DILOCATION.findall(ir)
                      if scope in scope_file and scope_file[scope] != main and scope_file[scope] in files}
        self.blocks: dict[tuple[str, str], str] = {}  # (function, block) -> its text
        self.bodies: dict[str, tuple[str, str]] = {}  # function -> (its parameter list, its body)
        self.functions: list[str] = []
        defines = list(_DEFINE.finditer(ir))
        for define in defines:
            name = define.group("function")
            self.functions.append(name)
            body_end = ir.find("\n}", define.end())
            body = ir[define.end(): body_end if body_end >= 0 else None]
            params = _parameters(body)
            self.bodies[name] = (params, body[body.find("\n") + 1:] if "\n" in body else "")
            # the entry block has no label in clang's output: it is numbered by the arguments
            labels = list(_LABEL.finditer(body))
            for j, label in enumerate(labels):
                end = labels[j + 1].start() if j + 1 < len(labels) else len(body)
                self.blocks[(name, label.group("label"))] = body[label.end(): end]

    def source_line(self, function: str, block: str) -> str:
        """' (line N)' of the first instruction with a real source line in `block` (' (line N of
        FILE)' when that line is in another file than the pluglet's source, a header's inlined
        code), '' when the IR carries no debug lines there."""
        for ref in _DBG_REF.findall(self.blocks.get((function, block), "")):
            line = self.lines.get(ref, 0)
            if line:
                return f" (line {line} of {self.files[ref]})" if ref in self.files else f" (line {line})"
        return ""


# ------------------------------------------------------------------ helper attributes
@dataclass(frozen=True)
class NoCapture:
    """What a helper does with its pointer arguments: `args` (1-based) it never keeps a copy of,
    `returns` the one of them it returns (memcpy's destination), which it keeps only through
    its result: that one is marked only when no call uses the result."""

    args: tuple[int, ...]
    returns: int | None = None


def nocapture_helpers(kind: str) -> dict[str, NoCapture]:
    """helper -> its NoCapture, from the protocol's helper list (`nocapture:` and `returns:` in
    pquic_helpers.yaml / xbgp_helpers.yaml)."""
    from .builtin import DATA, PROTOCOL_HELPERS, load_helpers

    def position(value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 1

    out = {}
    for helper, entry in load_helpers("default", DATA, kind if kind in PROTOCOL_HELPERS else "pquic").items():
        args = entry.get("nocapture") if isinstance(entry, dict) else None
        if args is None:
            continue
        if not isinstance(args, list) or not args or not all(map(position, args)):
            raise FormatError(f"helpers.{helper}.nocapture: expected a list of argument positions (1, 2, ...)")
        returns = entry.get("returns")
        if returns is not None and (not position(returns) or returns not in args):
            raise FormatError(f"helpers.{helper}.returns: expected one of the nocapture positions")
        out[helper] = NoCapture(tuple(args), returns)
    return out


_DECLARE = re.compile(rf"^(declare [^\n]*?@(?P<function>{_NAME})\()(?P<params>[^\n]*?)(\)[^\n]*)$", re.M)


def _split_params(params: str) -> list[str]:
    """A declaration's parameter list split at its top-level commas."""
    out, start = [], 0
    for i in top_level(params, ","):
        out.append(params[start:i].strip())
        start = i + 1
    if params.strip():
        out.append(params[start:].strip())
    return out


_RESULT_OF_CALL = re.compile(
    rf"^\s*(?P<value>%{_NAME}) = (?:tail |musttail |notail )?call [^\n]*?@(?P<function>{_NAME})\(", re.M)


def _split_type(param: str) -> tuple[str, str]:
    """A parameter's type and its attributes: the type ends at the first space outside brackets."""
    i = next(top_level(param, " "), None)
    return (param, "") if i is None else (param[:i], param[i + 1:])


def _result_used(ir: str, function: str) -> bool:
    """Whether any call to `function` in this IR has its result used (a value is named in every
    function from %0 up, so the name's other occurrences are looked for in its function only)."""
    for body in re.split(r"^define ", ir, flags=re.M)[1:]:
        body = body[:body.find("\n}")]
        for m in _RESULT_OF_CALL.finditer(body):
            if m.group("function") == function and len(re.findall(re.escape(m.group("value")) + r"\b", body)) > 1:
                return True
    return False


def mark_nocapture(ir: str, helpers: dict[str, NoCapture]) -> tuple[str, list[str]]:
    """The IR with `nocapture` on the pointer arguments `helpers` never keep, in the declarations
    of those it calls, and what was marked. With it, LLVM knows that a local whose address only
    such a helper saw cannot change behind a later call (PQUIC's TMP_FRAME_BEGIN copies a frame
    into a local with my_memcpy, then loops up to one of its fields)."""
    marked: list[str] = []

    def mark(m: re.Match) -> str:
        spec = helpers.get(m.group("function"))
        if spec is None:
            return m.group(0)
        positions = [p for p in spec.args if p != spec.returns or not _result_used(ir, m.group("function"))]
        params = _split_params(m.group("params"))
        done = []
        for position in positions:
            if position > len(params):
                continue
            param = params[position - 1]
            type_, attrs = _split_type(param)
            if not (type_.endswith("*") or type_ == "ptr") or "nocapture" in attrs.split():
                continue
            params[position - 1] = f"{type_} nocapture {attrs}".strip()
            done.append(str(position))
        if not done:
            return m.group(0)
        marked.append(f"{m.group('function')}: argument(s) {', '.join(done)} nocapture")
        return m.group(1) + ", ".join(params) + m.group(4)

    return _DECLARE.sub(mark, ir), marked


# Re-optimised after marking, so that loads of such locals are forwarded or hoisted out of loops
# before ScalarEvolution counts them: scalar replacement, redundancy elimination, loop-invariant
# code motion. Semantics-preserving passes: a count of the result is a count of the pluglet.
_AFTER_MARKING = "function(sroa,early-cse<memssa>,gvn,loop-mssa(licm),instcombine)"


# ------------------------------------------------------------------ the verifiers
@dataclass
class LoopVerdict:
    pluglet: str
    where: str
    status: str  # PASS, FAIL or ERROR
    why: str

    def text(self) -> str:
        return f"{self.pluglet}: {self.where}: {self.status}: {self.why}"


class LoopVerifier(Verifier):
    """What `termination` and `bounded` share: find loops, build the IR, run opt, read it;
    subclasses judge one loop (`judge`)."""

    options = {"recipe": None}
    property_text = ""  # "terminates" / "bounded", for reasons

    def setup(self) -> None:
        self.recipe = BuildRecipe.from_obj(self.config["recipe"])
        self.nocapture = {kind: nocapture_helpers(kind) for kind in ("pquic", "xbgp")}

    def judge(self, loop: LoopCount, index: IrIndex | None = None) -> tuple[str, str]:  # pragma: no cover
        raise NotImplementedError

    def solver_versions(self) -> dict[str, str]:
        """Tools besides clang and opt whose answers the verdicts depend on."""
        return {}

    def check(self, plugin: PluginInput, workdir: Path) -> VerifierResult:
        log: list[str] = []
        loopy: dict[str, dict[str, list[str]]] = {}  # pluglet -> function -> its back edges
        for pluglet in plugin.manifest.pluglets:
            try:
                obj = ebpf.load_object(plugin.files[pluglet])
            except ebpf.ObjectError as exc:
                return self.result(FAIL, f"{pluglet}: {exc}")
            edges = {f.name: [f"#{a} -> #{b}" for a, b in f.cfg.back_edges] for f in ebpf.functions(obj)}
            edges = {name: e for name, e in edges.items() if e}
            log.append(f"{pluglet}: {sum(map(len, edges.values()))} back edge(s) in the bytecode"
                       + "".join(f"; {name}: {', '.join(e)}" for name, e in edges.items()))
            if edges:
                loopy[pluglet] = edges
        if not loopy:
            return self.result(PASS, "no loops in any pluglet", "\n".join(log))
        versions = {self.recipe.compiler: tool_version(self.recipe.compiler), "opt": tool_version("opt"),
                    **self.solver_versions()}
        verdicts: list[LoopVerdict] = []
        for pluglet, edges in loopy.items():
            verdicts.extend(self.pluglet_verdicts(plugin, pluglet, edges, workdir, log))
        log.extend(v.text() for v in verdicts)
        return self.result(*self.summary(verdicts), "\n".join(log), **versions)

    def summary(self, verdicts: list[LoopVerdict]) -> tuple[str, str]:
        """A definite failure decides; else a loop that could not be judged; else a pass."""
        for status in (FAIL, ERROR):
            bad = [v for v in verdicts if v.status == status]
            if bad:
                first = bad[0]
                more = f" (+{len(bad) - 1} more)" if len(bad) > 1 else ""
                prefix = "unproven loop" if status == FAIL else "cannot judge"
                return status, f"{prefix} at {first.where} in {first.pluglet}: {first.why}{more}"
        shown = "; ".join(f"{v.pluglet} {v.where}: {v.why}" for v in verdicts[:3])
        return PASS, f"every loop {self.property_text} ({len(verdicts)} loop(s)): {shown}" + (
            f" (+{len(verdicts) - 3} more)" if len(verdicts) > 3 else "")

    def with_helper_attributes(self, plugin: PluginInput, pluglet: str, ir: str, workdir: Path,
                               log: list[str]) -> tuple[str, str | None]:
        """The IR to count: the recipe's, or when it calls helpers with `nocapture` arguments a
        copy with them marked, re-optimised; and why not, when that fails."""
        try:
            text = (workdir / ir).read_text(errors="replace")
        except OSError as exc:
            return ir, f"cannot read the IR: {exc.strerror}"
        marked_text, marked = mark_nocapture(text, self.nocapture.get(plugin.manifest.kind, {}))
        if not marked:
            return ir, None
        # a copy, so the recipe's own IR stays as compiled (and as the log's argv says)
        ir = pluglet + ".nocapture.ll"
        (workdir / ir).write_text(marked_text)
        argv = ["opt", "-S", f"-passes={_AFTER_MARKING}", ir, "-o", ir]
        run = self.run_tool(argv, workdir)
        log.append(f"{pluglet}: helper attributes from the protocol's helper list: {'; '.join(marked)}; "
                   f"re-optimised\n$ " + " ".join(argv) + "\n" + run.output)
        if not run.ran or run.timed_out or run.returncode != 0:
            return ir, f"opt failed on the IR with helper attributes: {run.describe()}"
        return ir, None

    def pluglet_verdicts(self, plugin: PluginInput, pluglet: str, edges: dict[str, list[str]], workdir: Path,
                         log: list[str]) -> list[LoopVerdict]:
        def whole(status: str, why: str) -> list[LoopVerdict]:
            return [LoopVerdict(pluglet, ", ".join(edges), status, why)]

        source = self.recipe.source_for(pluglet)
        if source not in plugin.files:
            return whole(FAIL, f"no source {source} to analyse")
        try:
            defines = plugin_defines(plugin.files)
        except FormatError as exc:
            return whole(FAIL, str(exc))
        ir = pluglet + ".ll"
        argv = self.recipe.ir_argv(pluglet, ir, defines)
        run = self.run_tool(argv, workdir)
        log.append("$ " + " ".join(argv) + "\n" + run.output)
        if not run.ran or run.timed_out or run.returncode != 0:
            # no IR, no proof either way: the verifier could not run (never a pass, never a
            # verdict on the loop)
            return whole(ERROR, f"cannot produce the IR the recipe compiles: {run.describe()}")
        ir, problem = self.with_helper_attributes(plugin, pluglet, ir, workdir, log)
        if problem:
            return whole(ERROR, problem)
        argv = ["opt", "-passes=print<scalar-evolution>", "-disable-output", ir]
        run = self.run_tool(argv, workdir)
        log.append("$ " + " ".join(argv) + "\n" + "\n".join(
            line for line in run.output.splitlines() if line.startswith(("Determining", "Loop "))))
        if not run.ran or run.timed_out or run.returncode != 0:
            return whole(ERROR, f"opt failed: {run.describe()}")
        try:
            index = IrIndex((workdir / ir).read_text(errors="replace"))
        except OSError as exc:
            return whole(ERROR, f"cannot read the IR: {exc.strerror}")
        report = parse_scalar_evolution(run.output)
        missing = sorted(set(index.functions) - set(report.functions))
        if missing:
            report.problems.insert(0, f"no ScalarEvolution report for function(s) {', '.join(missing)}")
        if report.problems:
            return whole(ERROR, "unreadable opt output: " + "; ".join(report.problems[:3]))
        return self.loop_verdicts(pluglet, report, index, edges)

    def loop_verdicts(self, pluglet: str, report: ScevReport, index: IrIndex,
                      edges: dict[str, list[str]]) -> list[LoopVerdict]:
        """A verdict per loop ScalarEvolution reports, and a failure per function whose bytecode
        loops where the IR shows no loop."""
        verdicts = []
        for loop in report.loops:
            loop.line = index.source_line(loop.function, loop.loop)
            status, why = self.judge(loop, index)
            verdicts.append(LoopVerdict(pluglet, loop.where, status, f"{why} [{loop.facts()}]"))
        in_ir = {loop.function for loop in report.loops}
        for function, back_edges in edges.items():
            if function not in in_ir:
                verdicts.append(LoopVerdict(pluglet, f"{function}, back edge {', '.join(back_edges)}", FAIL,
                                            "the bytecode loops but ScalarEvolution sees no loop in this "
                                            "function's IR"))
        return verdicts


class Termination(LoopVerifier):
    """Every loop ends: ScalarEvolution computes its backedge-taken count (an expression of
    values fixed at loop entry) or a maximum; failing that, a ranking function decreases on
    every path back to the loop's header (ranking.py)."""

    runner = "termination"
    # 3: a symbolic count proves termination; the limit moved to `bounded`. 4: pointer arguments
    # the protocol's helpers never keep are marked nocapture before counting. 5: a loop
    # ScalarEvolution cannot count passes with a ranking function proved by Z3 (ranking.py)
    version = "5"
    options = {"recipe": None, "max_trip_count": None}  # the latter only to say where it went
    property_text = "terminates"
    ranking_budget = RANKING_BUDGET_SECONDS  # seconds left for this plugin's ranking proofs

    def setup(self) -> None:
        super().setup()
        if self.config["max_trip_count"] is not None:
            raise FormatError(f"verifier {self.name}: max_trip_count is an option of the `bounded` runner now "
                              f"(termination passes every loop that ends); for a limit, add "
                              f"'bounded: {{runner: bounded, max_trip_count: N}}' and name it in the acceptance")

    def solver_versions(self) -> dict[str, str]:
        return {"z3": z3_version()}

    def check(self, plugin: PluginInput, workdir: Path) -> VerifierResult:
        self.ranking_budget = RANKING_BUDGET_SECONDS
        return super().check(plugin, workdir)

    def judge(self, loop: LoopCount, index: IrIndex | None = None) -> tuple[str, str]:
        if loop.exact:
            return PASS, f"terminates after {loop.exact} backedges"
        if loop.max:
            most = loop.constant_max()
            shown = f"{most}" if most is not None else f"2^N{loop.max} (an N-bit counter)"
            return PASS, f"terminates: at most {shown} backedges"
        if loop.symbolic_max:
            return PASS, f"terminates: at most {loop.symbolic_max} backedges"
        if index is None or loop.function not in index.bodies:
            return FAIL, "ScalarEvolution cannot count its iterations"
        params, body = index.bodies[loop.function]
        budget = min(SOLVER_BUDGET_SECONDS, self.ranking_budget)
        if budget <= 0:
            return FAIL, f"ScalarEvolution cannot count its iterations and no ranking function found: the ranking " \
                         f"proofs' budget for this plugin ({RANKING_BUDGET_SECONDS:g} s) is spent"
        started = time.monotonic()
        ranking, why = prove_ranking(body, params, loop.loop, budget)
        self.ranking_budget -= time.monotonic() - started
        if ranking is None:
            return FAIL, f"ScalarEvolution cannot count its iterations and no ranking function found: {why}"
        return PASS, f"terminates: {ranking} ({why})"


class Bounded(LoopVerifier):
    """Every loop ends within `max_trip_count` iterations: ScalarEvolution proves a constant
    maximum backedge-taken count under the limit."""

    runner = "bounded"
    version = "2"  # 2: helper nocapture attributes, as termination 4
    options = {"max_trip_count": 100_000, "recipe": None}
    property_text = "is bounded"

    def setup(self) -> None:
        super().setup()
        limit = self.config["max_trip_count"]
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise FormatError(f"verifier {self.name}: max_trip_count must be a positive integer")

    def judge(self, loop: LoopCount, index: IrIndex | None = None) -> tuple[str, str]:
        limit = self.config["max_trip_count"]
        most = loop.constant_max()
        if most is not None:
            if most + 1 > limit:
                return FAIL, f"up to {most + 1} iterations, over the maximum {limit}"
            return PASS, f"at most {most + 1} iterations (limit {limit})"
        why = f"its count {loop.exact} is symbolic" if loop.exact else "ScalarEvolution cannot count its iterations"
        if loop.max:  # printed negative: the counter's whole unsigned range
            return FAIL, f"{why}; its only constant maximum is {loop.max}, i.e. 2^N{loop.max} for an N-bit " \
                         f"counter, over the maximum {limit}"
        return FAIL, why + ("; no constant maximum" if loop.exact else "")
