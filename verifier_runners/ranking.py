"""A second proof that a loop ends, for a loop ScalarEvolution cannot count: a ranking function.

A ranking function is an unsigned value computed from the loop header's state that strictly
decreases (``<u``) on every path from the header back to it: unsigned N-bit values cannot
decrease forever, so the loop ends. The candidates come from the loop's comparisons: for a
header phi ``%i`` and a value ``%b`` fixed during the loop that some ``icmp`` or ``sub`` in
the loop uses (``i < len``, ``len - i``), ``%b - %i`` and ``%i - %b`` (also ``%i``, ``0 - %i``).
Each candidate is checked with Z3 in bit-vector semantics, so wrapping arithmetic is exactly
as the machine does it.

The loop's blocks are read from the LLVM IR text by this module (a small hand-written reader:
it is a security control). What it knows of a path is exactly what the IR says:

- values defined outside the loop are fixed, unknown constants; so are branch conditions on
  them that hold whenever the loop is entered (a dominating branch);
- integer arithmetic, casts, comparisons, ``select``, ``umin``/``umax``/``smin``/``smax``
  are modelled exactly; ``nuw``/``nsw`` are taken to mean no overflow, division by zero and
  over-wide shifts not to happen: the soundness basis of the `termination` verifier is already
  "no undefined behaviour in the C code, as the optimiser assumed";
- a load, a call or any other instruction gives a fresh unknown value each time it runs (so a
  bound re-read from memory in the loop is never a fixed bound: no candidate uses it);
- an inner loop is not unrolled: its header's values are fresh unknowns, constrained only by
  invariants proved of it (e.g. ``%j >=u`` its initial value, ``%j <u %n``, ``%n - %j >=u 5``):
  true of its initial values on the path that enters it, and inductive over its own paths;
- the header's own values satisfy invariants proved the same way (true on entry, kept by every
  path back), which the ranking check assumes.

Anything this reader does not know (a terminator other than br/switch/ret/unreachable,
irreducible control flow, too many paths, a solver timeout) makes it give up: the loop stays
unproven, never passes. A loop whose entry conditions contradict each other is reported as
never entered (rather than "proved" by a vacuous ranking function).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import z3

from .ir_text import NAME as _NAME
from .ir_text import top_level

# ---------------------------------------------------------------------------------- limits
MAX_PATHS = 256  # paths from the header back to it (or through an inner loop to its exits)
MAX_CANDIDATES = 64  # ranking functions tried
SOLVER_BUDGET_SECONDS = 20.0  # per loop, every query together: hostile IR cannot hang the PV

_VALUE = re.compile(rf"^%(?P<name>{_NAME})$")
_METADATA = re.compile(r",\s*!(?:[A-Za-z_][\w.]*)\s+!\d+")
_LABEL_LINE = re.compile(rf"^(?P<label>{_NAME}):")
_ASSIGN = re.compile(rf"^%(?P<name>{_NAME}) = (?P<rest>.*)$")
_INT_TYPE = re.compile(r"^i(\d+)$")


def z3_version() -> str:
    """The solver's version, for the verdict's tool versions (another solver may prove more)."""
    return f"z3 {z3.get_version_string()}"


class GiveUp(Exception):
    """The route cannot judge this loop (the message says why): the loop stays unproven."""


@dataclass
class Inst:
    name: str | None
    op: str
    rest: str  # the text after the opcode (flags, types, operands)
    line: str


@dataclass
class Block:
    label: str
    phis: list[Inst] = field(default_factory=list)
    insts: list[Inst] = field(default_factory=list)
    terminator: str = ""
    successors: list[str] = field(default_factory=list)


def _width(type_text: str) -> int | None:
    """The bit width of an integer or pointer type, None for any other type."""
    type_text = type_text.strip()
    m = _INT_TYPE.match(type_text)
    if m:
        return int(m.group(1)) if 1 <= int(m.group(1)) <= 1024 else None
    if type_text == "ptr" or type_text.endswith("*"):
        return 64
    return None


def _split_top(text: str) -> list[str]:
    """`text` split at commas outside brackets (one empty part for an empty text)."""
    out, start = [], 0
    for i in top_level(text, ","):
        out.append(text[start:i].strip())
        start = i + 1
    out.append(text[start:].strip())
    return out


def _operands(text: str, count: int, what: str) -> list[str]:
    """`count` operands of an instruction, else give up naming it."""
    parts = _split_top(text)
    if len(parts) != count:
        raise GiveUp(f"unreadable {what}: expected {count} operands in {text[:80]!r}")
    return parts


def _label_of(token: str) -> str:
    m = re.fullmatch(rf"label %({_NAME})", token.strip())
    if not m:
        raise GiveUp(f"unreadable branch target {token.strip()[:80]!r}")
    return m.group(1)


def _instruction_lines(body: str) -> list[str]:
    """The body's lines without comments, metadata attachments and blank lines; a switch's
    cases (they span lines up to the closing bracket) joined to it."""
    lines = [_METADATA.sub("", ln.split(";", 1)[0] if not ln.lstrip().startswith(";") else "").rstrip()
             for ln in body.splitlines()]
    joined: list[str] = []
    for ln in lines:
        if not ln.strip():
            continue
        if joined and joined[-1].lstrip().startswith("switch ") and joined[-1].count("[") > joined[-1].count("]"):
            joined[-1] += " " + ln.strip()
        else:
            joined.append(ln)
    return joined


def _instruction(text: str) -> Inst:
    """One instruction line; a line of another shape gives up (a value it defined unread would
    pass for one fixed during the loop)."""
    assign = _ASSIGN.match(text)
    if text.startswith("%") and not assign:
        raise GiveUp(f"unreadable instruction {text[:80]!r}")
    name, rest = (assign.group("name"), assign.group("rest")) if assign else (None, text)
    op, _, operands = rest.partition(" ")
    if op in ("tail", "musttail", "notail"):
        op, _, operands = operands.partition(" ")
    if not re.fullmatch(r"[a-z][a-z0-9_]*", op):
        raise GiveUp(f"unreadable instruction {text[:80]!r}")
    return Inst(name, op, operands, text)


def parameters(params: str) -> set[str]:
    """The names of a function's parameters (each parameter ends with its name)."""
    return {m.group(1) for p in _split_top(params) if (m := re.search(rf"%({_NAME})$", p.strip()))}


def parse_function(body: str, params: str) -> tuple[dict[str, Block], str]:
    """The blocks of a function body (the text between its `{` and `}`) and its entry label.
    The entry block has no label in clang's output: it takes the number after the arguments."""
    numbered_args = [int(n) for n in re.findall(r"%(\d+)\s*(?=,|$)", params.strip())]
    joined = _instruction_lines(body)
    blocks: dict[str, Block] = {}
    entry = str(max(numbered_args) + 1 if numbered_args else 0)
    current: Block | None = None
    for ln in joined:
        label = _LABEL_LINE.match(ln)
        if label and not ln.startswith(" "):
            current = Block(label.group("label"))
            if current.label in blocks:
                raise GiveUp(f"block %{current.label} defined twice")
            blocks[current.label] = current
            continue
        if current is None:  # the unlabelled entry block
            current = Block(entry)
            blocks[entry] = current
        text = ln.strip()
        if current.terminator:
            raise GiveUp(f"instruction after the terminator of %{current.label}: {text[:80]!r}")
        inst = _instruction(text)
        op = inst.op
        if op in ("br", "switch", "ret", "unreachable"):
            current.terminator = text
            current.successors = _successors(inst)
        elif op in ("indirectbr", "invoke", "callbr", "resume", "catchswitch", "catchret", "cleanupret"):
            raise GiveUp(f"terminator {op} in %{current.label} is not read by this proof")
        elif op == "phi":
            if current.insts:
                raise GiveUp(f"phi after other instructions in %{current.label}")
            current.phis.append(inst)
        else:
            current.insts.append(inst)
    _check_blocks(blocks)
    return blocks, entry


def _check_blocks(blocks: dict[str, Block]) -> None:
    for block in blocks.values():
        if not block.terminator:
            raise GiveUp(f"block %{block.label} has no terminator")
        for succ in block.successors:
            if succ not in blocks:
                raise GiveUp(f"branch from %{block.label} to unknown block %{succ}")


def _successors(inst: Inst) -> list[str]:
    if inst.op == "br":
        parts = _split_top(inst.rest)
        if len(parts) not in (1, 3):
            raise GiveUp(f"unreadable br: {inst.line[:80]!r}")
        return [_label_of(parts[0])] if len(parts) == 1 else [_label_of(p) for p in parts[1:]]
    if inst.op == "switch":
        head, _, cases = inst.rest.partition("[")
        default = _operands(head, 2, "switch")[1]
        targets = [_label_of(t) for t in re.findall(rf"label %{_NAME}", cases)]
        # every case must be read (a case skipped would be a path never checked)
        if len(_switch_cases(cases)) != len(targets) or not cases.rstrip().endswith("]"):
            raise GiveUp(f"unreadable switch cases: {inst.line[:80]!r}")
        return [_label_of(default)] + targets
    return []


def _switch_cases(cases: str) -> list[tuple[str, str]]:
    """(value, target) of each case of a switch (the text after its `[`)."""
    return re.findall(rf"i\d+ (-?\d+|true|false), label %({_NAME})", cases)


# ---------------------------------------------------------------------------------- control flow
def dominators(blocks: dict[str, Block], entry: str) -> dict[str, set[str]]:
    """block -> the blocks dominating it (itself included), over the blocks reachable from entry."""
    preds = predecessors(blocks)
    order = _reverse_postorder(blocks, entry)
    dom = {b: set(order) for b in order}
    dom[entry] = {entry}
    changed = True
    while changed:
        changed = False
        for b in order[1:]:
            reachable_preds = [p for p in preds[b] if p in dom]
            new = set.intersection(*(dom[p] for p in reachable_preds)) | {b} if reachable_preds else {b}
            if new != dom[b]:
                dom[b], changed = new, True
    return dom


def predecessors(blocks: dict[str, Block]) -> dict[str, list[str]]:
    preds: dict[str, list[str]] = {b: [] for b in blocks}
    for block in blocks.values():
        for succ in dict.fromkeys(block.successors):
            preds[succ].append(block.label)
    return preds


def _reverse_postorder(blocks: dict[str, Block], entry: str) -> list[str]:
    seen: set[str] = set()
    order: list[str] = []
    stack: list[tuple[str, Iterator[str]]] = [(entry, iter(blocks[entry].successors))]
    seen.add(entry)
    while stack:
        label, it = stack[-1]
        nxt = next(it, None)
        if nxt is None:
            order.append(label)
            stack.pop()
        elif nxt not in seen:
            seen.add(nxt)
            stack.append((nxt, iter(blocks[nxt].successors)))
    return order[::-1]


@dataclass
class Loop:
    header: str
    blocks: set[str]
    children: list[Loop] = field(default_factory=list)


def natural_loops(blocks: dict[str, Block], dom: dict[str, set[str]]) -> dict[str, Loop]:
    """header -> its natural loop (every back edge to the header together), with inner loops."""
    preds = predecessors(blocks)
    loops: dict[str, Loop] = {}
    for label in dom:
        for succ in blocks[label].successors:
            if succ in dom[label]:  # a back edge label -> succ
                loop = loops.setdefault(succ, Loop(succ, {succ}))
                work = [label]
                while work:
                    b = work.pop()
                    if b not in loop.blocks and b in dom:
                        loop.blocks.add(b)
                        work.extend(preds[b])
    for loop in loops.values():
        inner = [other for other in loops.values() if other is not loop and other.header in loop.blocks]
        # immediate children: inner loops not inside another inner loop of this one
        loop.children = [c for c in inner if not any(o is not c and c.header in o.blocks for o in inner)]
    return loops


# ---------------------------------------------------------------------------------- the model
_PREDICATES = {
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b,
    "ugt": z3.UGT, "uge": z3.UGE, "ult": z3.ULT, "ule": z3.ULE,
    "sgt": lambda a, b: a > b, "sge": lambda a, b: a >= b, "slt": lambda a, b: a < b, "sle": lambda a, b: a <= b,
}
_MINMAX = re.compile(r"^@llvm\.(?P<kind>umin|umax|smin|smax)\.i\d+$")
_BINARY = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "shl": lambda a, b: a << b, "lshr": z3.LShR, "ashr": lambda a, b: a >> b,
    "and": lambda a, b: a & b, "or": lambda a, b: a | b, "xor": lambda a, b: a ^ b,
    "udiv": z3.UDiv, "urem": z3.URem, "sdiv": lambda a, b: a / b, "srem": z3.SRem,
}


def _no_undefined_behaviour(op: str, flags: set[str], a: z3.BitVecRef, b: z3.BitVecRef,
                            width: int) -> list[z3.BoolRef]:
    """What the instruction's flags and C's rules say cannot happen: `nuw`/`nsw` overflow, an
    over-wide shift, a division by zero (the verifier's basis: no undefined behaviour)."""
    nuw, nsw = "nuw" in flags, "nsw" in flags
    facts: list[z3.BoolRef] = []
    if op == "add":
        facts += [z3.BVAddNoOverflow(a, b, False)] if nuw else []
        facts += [z3.BVAddNoOverflow(a, b, True), z3.BVAddNoUnderflow(a, b)] if nsw else []
    elif op == "sub":
        facts += [z3.BVSubNoUnderflow(a, b, False)] if nuw else []
        facts += [z3.BVSubNoOverflow(a, b), z3.BVSubNoUnderflow(a, b, True)] if nsw else []
    elif op == "mul":
        facts += [z3.BVMulNoOverflow(a, b, False)] if nuw else []
        facts += [z3.BVMulNoOverflow(a, b, True), z3.BVMulNoUnderflow(a, b)] if nsw else []
    elif op in ("shl", "lshr", "ashr"):
        facts.append(z3.ULT(b, width))
        facts += [z3.LShR(a << b, b) == a] if op == "shl" and nuw else []
        facts += [(a << b) >> b == a] if op == "shl" and nsw else []
    elif op in ("udiv", "urem", "sdiv", "srem"):
        facts.append(b != 0)
    return facts


@dataclass
class State:
    """One path being walked: the SSA values it defined and the conditions it took."""

    env: dict[str, z3.BitVecRef]
    facts: list[z3.BoolRef]
    visited: frozenset[str] = frozenset()


class LoopModel:
    """One function's IR, read for the ranking proof of its loops."""

    def __init__(self, body: str, params: str) -> None:
        self.blocks, self.entry = parse_function(body, params)
        self.parameters = parameters(params)
        self.dom = dominators(self.blocks, self.entry)
        self.loops = natural_loops(self.blocks, self.dom)
        self.preds = predecessors(self.blocks)
        self.defined_in: dict[str, str] = {}
        self.instruction: dict[str, Inst] = {}
        for block in self.blocks.values():
            for inst in block.phis + block.insts:
                if inst.name is not None:
                    self.defined_in[inst.name] = block.label
                    self.instruction[inst.name] = inst
        self.fixed: dict[str, z3.BitVecRef] = {}  # the terms of values fixed during the loop
        self.depth = 0
        self.fresh_count = 0
        self.paths = 0
        self.invariants: dict[tuple[str, tuple[tuple[str, str, str], ...]], list[Invariant]] = {}
        self.deadline = 0.0

    # -------------------------------------------------------------- values
    def fresh(self, what: str, width: int) -> z3.BitVecRef:
        self.fresh_count += 1
        return z3.BitVec(f"{what}#{self.fresh_count}", width)

    def value(self, state: State, token: str, width: int, scope: Loop) -> z3.BitVecRef:
        """The term of an operand: a constant, a value of this path, or a value fixed during
        `scope` (defined outside it: one symbol for the whole proof)."""
        token = token.strip()
        if re.fullmatch(r"-?\d+", token):
            return z3.BitVecVal(int(token), width)
        if token in ("true", "false"):
            return z3.BitVecVal(int(token == "true"), width)
        if token == "null" or token == "zeroinitializer":
            return z3.BitVecVal(0, width)
        m = _VALUE.match(token)
        if not m:  # undef, poison, a constant expression: any value
            return self.fresh("const", width)
        name = m.group("name")
        term = state.env.get(name)
        if term is None:
            block = self.defined_in.get(name)
            if block is not None and block in scope.blocks:
                if block not in state.visited:
                    raise GiveUp(f"%{name} is used on a path that does not define it")
                # its instruction ran on this path but is not modelled (getelementptr, bitcast,
                # a non-integer type): a fresh unknown, the same for every use on this path
                term = state.env[name] = self.fresh(name, width)
            elif block is None and name not in self.parameters:
                raise GiveUp(f"%{name} is defined nowhere in the function")
            else:
                term = self.outside(name, width)  # fixed during the loop (an argument, a value before it)
        if term.size() != width:
            raise GiveUp(f"%{name} used as i{width} and as i{term.size()}")
        return term

    def outside(self, name: str, width: int) -> z3.BitVecRef:
        """The term of a value fixed during the loop: its instruction's result on the terms of its
        operands when this model computes it (so `%c = icmp ult i32 %n, 7` relates %c to %n), else
        one unknown for the whole proof. The no-overflow facts of its flags are not kept."""
        term = self.fixed.get(name)
        if term is not None:
            return term
        inst = self.instruction.get(name)
        term = None
        if inst is not None and inst.op not in ("phi", "load", "call") and self.depth < 64:
            self.depth += 1
            try:
                term = self.evaluate(inst, State({}, []), _NO_LOOP)
            except GiveUp:
                term = None
            finally:
                self.depth -= 1
        if term is None or term.size() != width:
            term = z3.BitVec(f"%{name}", width)
        self.fixed[name] = term
        return term

    def typed(self, state: State, typed_operand: str, scope: Loop) -> tuple[z3.BitVecRef, int] | None:
        """`i32 %x` -> its term and width; None for a type this model does not know."""
        type_text, _, token = typed_operand.strip().rpartition(" ")
        for attribute in (" noundef", " zeroext", " signext", " nonnull"):
            type_text = type_text.replace(attribute, "")
        width = _width(type_text)
        if width is None:
            return None
        return self.value(state, token, width, scope), width

    # -------------------------------------------------------------- instructions
    def execute(self, inst: Inst, state: State, scope: Loop) -> None:
        if inst.name is None:
            return  # a store, a call without result: memory is never read back as a fixed value
        term = self.evaluate(inst, state, scope)
        if term is not None:
            state.env[inst.name] = term

    def evaluate(self, inst: Inst, state: State, scope: Loop) -> z3.BitVecRef | None:
        """The term of an instruction's result; None when this model does not compute it (its
        uses then get a fresh unknown)."""
        if inst.op in _BINARY:
            return self.binary(inst, state, scope)
        how = {"icmp": self.icmp, "zext": self.cast, "sext": self.cast, "trunc": self.cast,
               "select": self.select, "call": self.call, "load": self.load}.get(inst.op)
        # anything else (getelementptr, bitcast, freeze, ...): not computed
        return how(inst, state, scope) if how else None

    def binary(self, inst: Inst, state: State, scope: Loop) -> z3.BitVecRef | None:
        words = inst.rest.split()
        flags = set()
        while words and words[0] in ("nuw", "nsw", "exact", "disjoint"):
            flags.add(words.pop(0))
        first, second = _operands(" ".join(words), 2, inst.op)
        a_typed = self.typed(state, first, scope)
        if a_typed is None:
            return None
        a, width = a_typed
        b = self.value(state, second, width, scope)
        state.facts.extend(_no_undefined_behaviour(inst.op, flags, a, b, width))
        return _BINARY[inst.op](a, b)

    def icmp(self, inst: Inst, state: State, scope: Loop) -> z3.BitVecRef | None:
        predicate, _, operands = inst.rest.partition(" ")
        if predicate not in _PREDICATES:
            raise GiveUp(f"icmp predicate {predicate!r}")
        first, second = _operands(operands, 2, "icmp")
        a_typed = self.typed(state, first, scope)
        if a_typed is None:
            return None
        a, width = a_typed
        b = self.value(state, second, width, scope)
        return z3.If(_PREDICATES[predicate](a, b), z3.BitVecVal(1, 1), z3.BitVecVal(0, 1))

    def cast(self, inst: Inst, state: State, scope: Loop) -> z3.BitVecRef | None:
        source, _, target = inst.rest.rpartition(" to ")
        a_typed = self.typed(state, source, scope)
        to = _width(target)
        if a_typed is None or to is None:
            return None
        a, width = a_typed
        if inst.op == "trunc":
            return z3.Extract(to - 1, 0, a) if to <= width else None
        if to < width:
            return None
        return a if to == width else (z3.ZeroExt if inst.op == "zext" else z3.SignExt)(to - width, a)

    def select(self, inst: Inst, state: State, scope: Loop) -> z3.BitVecRef | None:
        cond, if_true, if_false = _operands(inst.rest, 3, "select")
        c_typed = self.typed(state, cond, scope)
        t_typed = self.typed(state, if_true, scope)
        if c_typed is None or t_typed is None or c_typed[1] != 1:
            return None
        f = self.value(state, if_false.rpartition(" ")[2], t_typed[1], scope)
        return z3.If(c_typed[0] == 1, t_typed[0], f)

    def call(self, inst: Inst, state: State, scope: Loop) -> z3.BitVecRef | None:
        """umin/umax/smin/smax exactly; any other call's result is a fresh unknown."""
        m = re.search(rf"(?P<type>\S+) (?P<callee>@{_NAME})\((?P<args>.*)\)", inst.rest)
        width = _width(m.group("type")) if m else None
        if m is None or width is None:
            return None
        kind = _MINMAX.match(m.group("callee"))
        if kind:
            args = [self.typed(state, arg, scope) for arg in _split_top(m.group("args"))]
            terms = [t[0] for t in args if t is not None and t[1] == width]
            if len(args) == 2 and len(terms) == 2:
                a, b = terms
                less = {"umin": z3.ULT(a, b), "umax": z3.UGT(a, b), "smin": a < b, "smax": a > b}
                return z3.If(less[kind.group("kind")], a, b)
        return self.fresh(inst.name or "call", width)

    def load(self, inst: Inst, state: State, scope: Loop) -> z3.BitVecRef | None:
        """A fresh unknown every time: memory may have changed (this model keeps none)."""
        width = _width(_split_top(inst.rest)[0].replace("volatile ", "").replace("atomic ", ""))
        return self.fresh(inst.name or "load", width) if width is not None else None

    # -------------------------------------------------------------- paths
    def phi_incoming(self, phi: Inst, pred: str) -> tuple[str, str]:
        """(type, the value phi takes from `pred`)."""
        type_text, _, incoming = phi.rest.partition(" [")
        for fast in ("nnan", "ninf", "nsz", "arcp", "contract", "afn", "reassoc", "fast"):
            type_text = type_text.replace(fast + " ", "")
        for pair in re.findall(r"\[\s*(.+?),\s*%(" + _NAME + r")\s*\]", "[" + incoming):
            if pair[1] == pred:
                return type_text.strip(), pair[0]
        raise GiveUp(f"phi %{phi.name} has no value for the edge from %{pred}")

    def enter(self, state: State, pred: str, block: str, scope: Loop) -> None:
        """Take the edge pred -> block: its phis, read together from pred's values."""
        values = []
        for phi in self.blocks[block].phis:
            type_text, token = self.phi_incoming(phi, pred)
            width = _width(type_text)
            values.append((phi.name, None if width is None else self.value(state, token, width, scope)))
        for name, term in values:
            assert name is not None
            if term is None:
                state.env.pop(name, None)
            else:
                state.env[name] = term

    def edges(self, state: State, label: str, scope: Loop) -> Iterator[tuple[str, State]]:
        """Each successor of `label` with the path state that takes it."""
        block = self.blocks[label]
        inst = Inst(None, block.terminator.split(" ", 1)[0], block.terminator.partition(" ")[2], block.terminator)
        if inst.op == "br":
            parts = _split_top(inst.rest)
            if len(parts) == 1:
                yield _label_of(parts[0]), state
                return
            c_typed = self.typed(state, parts[0], scope)
            cond = c_typed[0] if c_typed else self.fresh("cond", 1)
            for target, holds in ((_label_of(parts[1]), cond == 1), (_label_of(parts[2]), cond == 0)):
                yield target, State(dict(state.env), state.facts + [holds], state.visited)
        elif inst.op == "switch":
            head, _, cases = inst.rest.partition("[")
            selector, default = _operands(head, 2, "switch")
            s_typed = self.typed(state, selector, scope)
            if s_typed is None:
                raise GiveUp(f"switch on a type this proof does not read in %{label}")
            s, width = s_typed
            pairs = _switch_cases(cases)
            values = [self.value(state, v, width, scope) for v, _ in pairs]
            for (_, target), v in zip(pairs, values, strict=True):
                yield target, State(dict(state.env), state.facts + [s == v], state.visited)
            yield _label_of(default), State(dict(state.env), state.facts + [s != v for v in values], state.visited)
        # ret, unreachable: the path ends

    def walk(self, loop: Loop, state: State, scope: Loop) -> Iterator[tuple[str, str, str, State]]:
        """Every path from `loop`'s header (its phis already in `state`): ("back", latch, header,
        state) for a path back to the header, ("exit", from, to, state) for one leaving it.
        Inner loops are entered with fresh header values under their proved invariants."""
        stack = [(loop.header, state)]
        while stack:
            label, current = stack.pop()
            if label in current.visited:
                raise GiveUp(f"irreducible control flow at %{label}")
            current = State(current.env, current.facts, current.visited | {label})
            for inst in self.blocks[label].insts:
                self.execute(inst, current, scope)
            for target, taken in self.edges(current, label, scope):
                self.paths += 1
                if self.paths > MAX_PATHS * 4:
                    raise GiveUp(f"more than {MAX_PATHS * 4} path steps")
                if target == loop.header:
                    yield "back", label, target, taken
                elif target not in loop.blocks:
                    yield "exit", label, target, taken
                else:
                    yield from self.inside(loop, label, target, taken, scope, stack)

    def inside(self, loop: Loop, label: str, target: str, taken: State, scope: Loop,
               stack: list[tuple[str, State]]) -> Iterator[tuple[str, str, str, State]]:
        """The edge label -> target inside `loop`: a block to walk on (pushed on `stack`), or an
        inner loop's header, whose ways out are followed at once."""
        child = next((c for c in loop.children if c.header == target), None)
        if child is None:
            if any(target in c.blocks for c in loop.children):
                raise GiveUp(f"%{target} is entered other than through its loop's header")
            self.enter(taken, label, target, scope)
            stack.append((target, taken))
            return
        for _, src, dst, after in self.through_inner(child, label, taken, scope):
            if dst == loop.header:
                yield "back", src, dst, after
            elif dst not in loop.blocks:
                yield "exit", src, dst, after
            else:  # a block of this loop, or the header of another inner loop
                yield from self.inside(loop, src, dst, after, scope, stack)

    def through_inner(self, child: Loop, pred: str, state: State,
                      scope: Loop) -> Iterator[tuple[str, str, str, State]]:
        """The ways out of inner loop `child` entered from `pred`: its header's values are fresh,
        under the candidate invariants true of its initial values on this path and kept by every
        path back to its header."""
        initial = State(dict(state.env), list(state.facts), state.visited)
        self.enter(initial, pred, child.header, scope)
        candidates = self.prune(self.candidate_invariants(child), initial.facts, [initial.env])
        invariants = self.prove_invariants(child, candidates)
        inside = State(dict(state.env), list(state.facts), state.visited)
        for phi in self.blocks[child.header].phis:
            width = _width(self.phi_incoming(phi, pred)[0])
            if width is not None and phi.name is not None:
                inside.env[phi.name] = self.fresh(phi.name, width)
        # true of the initial values (prune) and kept by every path back (prove_invariants): true
        # of the header's values on every iteration, the one the loop is left from included
        inside.facts.extend(inv.formula(inside.env) for inv in invariants)
        for kind, src, dst, after in self.walk(child, inside, scope):
            if kind == "exit":
                yield kind, src, dst, after

    # -------------------------------------------------------------- invariants
    def header_phis(self, loop: Loop) -> list[tuple[str, int]]:
        out = []
        for phi in self.blocks[loop.header].phis:
            width = _width(phi.rest.partition(" [")[0])
            if width is not None and phi.name is not None:
                out.append((phi.name, width))
        return out

    def fixed_operands(self, loop: Loop) -> list[tuple[str, int]]:
        """(operand, width) of every icmp and sub in the loop whose operand is fixed during the
        loop: a constant or a value defined outside it (the bounds `i < n` and `n - i` name)."""
        out: dict[tuple[str, int], None] = {}
        for label in sorted(loop.blocks):
            for inst in self.blocks[label].insts:
                if inst.op == "icmp":
                    operands = inst.rest.partition(" ")[2]
                elif inst.op == "sub":
                    operands = " ".join(w for w in inst.rest.split() if w not in ("nuw", "nsw"))
                else:
                    continue
                parts = _split_top(operands)
                if len(parts) != 2:
                    continue
                type_text, _, first = parts[0].rpartition(" ")
                width = _width(type_text)
                if width is None:
                    continue
                for token in (first, parts[1]):
                    if self.fixed_during(token, loop):
                        out[(token, width)] = None
        return list(out)

    def fixed_during(self, token: str, loop: Loop) -> bool:
        """A constant, or a value defined outside `loop` (an argument, a value before it)."""
        if re.fullmatch(r"-?\d+", token):
            return True
        m = _VALUE.match(token)
        return m is not None and self.defined_in.get(m.group("name"), "") not in loop.blocks

    def candidate_invariants(self, loop: Loop) -> list[Invariant]:
        bounds = self.fixed_operands(loop)
        outside = [p for p in self.preds[loop.header] if p not in loop.blocks]
        out = []
        for name, width in self.header_phis(loop):
            tokens = [t for t, w in bounds if w == width]
            phi = next(p for p in self.blocks[loop.header].phis if p.name == name)
            for pred in outside:
                token = self.phi_incoming(phi, pred)[1]
                if token not in tokens and self.fixed_during(token, loop):
                    tokens.append(token)
            for token in tokens:
                for relation in ("ult", "ule", "ugt", "uge", "slt", "sle", "sgt", "sge"):
                    out.append(Invariant(self, name, width, relation, token, loop))
            # what remains of a bound: `len - i >=u c`, `len` a bound and `c` a constant compared
            constants = [t for t in tokens if re.fullmatch(r"-?\d+", t)]
            for remaining in (t for t in tokens if t.startswith("%")):
                for constant in constants:
                    out += [Invariant(self, name, width, relation, constant, loop, remaining)
                            for relation in ("ugt", "uge")]
        return out

    def prune(self, candidates: list[Invariant], facts: list[z3.BoolRef],
              envs: list[dict[str, z3.BitVecRef]]) -> list[Invariant]:
        """The candidates true of the header's initial values (each env: one way in) under facts:
        a model of the facts where some are false drops those, until none is."""
        for env in envs:
            while candidates:
                solver = self.solver()
                solver.add(*facts, z3.Not(z3.And([c.formula(env) for c in candidates])))
                result = solver.check()
                if result == z3.unknown:
                    raise GiveUp("the solver timed out")
                if result == z3.unsat:
                    break
                model = solver.model()
                candidates = [c for c in candidates
                              if z3.is_true(model.eval(c.formula(env), model_completion=True))]
        return candidates

    def prove_invariants(self, loop: Loop, candidates: list[Invariant],
                         facts: list[z3.BoolRef] | None = None) -> list[Invariant]:
        """The candidates (all true on entry) kept by every path back to the header, assuming
        they all hold at its start (Houdini: drop those a path breaks, until the rest hold
        together). `facts`: what holds during the whole loop (the target loop's entry facts)."""
        key = (loop.header, tuple(c.key() for c in candidates))
        if key in self.invariants:
            return self.invariants[key]
        self.invariants[key] = []  # while proving: none (only reached through irreducible flow)
        start = State({}, list(facts or []))
        for name, width in self.header_phis(loop):
            start.env[name] = z3.BitVec(f"%{name}", width)
        backs = self.paths_back(loop, start)
        while candidates:
            broken: set[int] = set()
            for s, nxt in backs:
                solver = self.solver()
                solver.add(*s.facts, *[c.formula(start.env) for c in candidates])
                solver.add(z3.Not(z3.And([c.formula(nxt) for c in candidates])))
                result = solver.check()
                if result == z3.unknown:
                    raise GiveUp("the solver timed out")
                if result == z3.sat:
                    model = solver.model()
                    broken |= {i for i, c in enumerate(candidates)
                               if not z3.is_true(model.eval(c.formula(nxt), model_completion=True))}
                    break
            if not broken:
                break
            candidates = [c for i, c in enumerate(candidates) if i not in broken]
        self.invariants[key] = candidates
        return candidates

    def entry_invariants(self, loop: Loop, facts: list[z3.BoolRef]) -> list[Invariant]:
        """The target loop's invariants: true on every way in, under the entry facts."""
        envs = []
        for pred in self.preds[loop.header]:
            if pred not in loop.blocks and pred in self.dom:
                state = State({}, [])
                self.enter(state, pred, loop.header, _NO_LOOP)
                envs.append(state.env)
        return self.prove_invariants(loop, self.prune(self.candidate_invariants(loop), facts, envs), facts)

    def paths_back(self, loop: Loop, start: State) -> list[tuple[State, dict[str, z3.BitVecRef]]]:
        """Every path from the header back to it, with the header's values it brings back."""
        backs = []
        for kind, latch, _, state in self.walk(loop, start, loop):
            if kind == "back":
                backs.append((state, self.next_values(loop, latch, state)))
                if len(backs) > MAX_PATHS:
                    raise GiveUp(f"more than {MAX_PATHS} paths back to the header")
        return backs

    def next_values(self, loop: Loop, latch: str, state: State) -> dict[str, z3.BitVecRef]:
        after = State(dict(state.env), [], state.visited)
        self.enter(after, latch, loop.header, loop)
        return {name: after.env[name] for name, _ in self.header_phis(loop) if name in after.env}

    def solver(self) -> z3.Solver:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise GiveUp("the solver's time budget is spent")
        # bit-blasting after simplification: far faster than the default on these path queries
        solver = z3.Then("simplify", "propagate-values", "solve-eqs", "simplify", "bit-blast", "sat").solver()
        solver.set("timeout", max(1, int(remaining * 1000)))
        return solver

    # -------------------------------------------------------------- entry conditions
    def entry_facts(self, loop: Loop) -> list[z3.BoolRef]:
        """Branch conditions that hold whenever the loop runs: for each block X strictly
        dominating the header with a conditional branch, the condition of the edge X -> T when
        T dominates the header and that edge is the only way into T (T's other predecessors are
        reached only through T). Their operands are defined before the loop: fixed in it."""
        facts: list[z3.BoolRef] = []
        for x in self.dom[loop.header] - {loop.header}:
            block = self.blocks[x]
            if not block.terminator.startswith("br i1 ") or len(set(block.successors)) != 2:
                continue
            try:
                for target, taken in self.edges(State({}, []), x, _NO_LOOP):
                    if target in self.dom[loop.header] and all(
                            p == x or target in self.dom.get(p, set()) for p in self.preds[target]):
                        facts.extend(taken.facts)
            except GiveUp:
                continue
        return facts


_NO_LOOP = Loop("", set())


@dataclass
class Invariant:
    """`%phi <relation> bound`, or with `remaining`, `(remaining - %phi) <relation> bound` (what is
    left of a length: `len - i >=u 5` when a rotated loop tests the next value only)."""

    model: LoopModel
    phi: str
    width: int
    relation: str
    bound: str
    loop: Loop
    remaining: str | None = None

    def key(self) -> tuple[str, str, str]:
        return self.phi, self.relation, self.bound + (f" from {self.remaining}" if self.remaining else "")

    def formula(self, env: dict[str, z3.BitVecRef]) -> z3.BoolRef:
        value = env.get(self.phi)
        if value is None:
            value = z3.BitVec(f"%{self.phi}", self.width)
        if self.remaining is not None:
            value = self.model.value(State(env, []), self.remaining, self.width, _NO_LOOP) - value
        bound = self.model.value(State(env, []), self.bound, self.width, _NO_LOOP)
        return _PREDICATES[self.relation](value, bound)


@dataclass(frozen=True)
class Ranking:
    text: str  # e.g. "(%len - %i)"
    phi: str
    bound: str | None
    increasing: bool  # bound - phi (True) or phi - bound

    def term(self, model: LoopModel, env: dict[str, z3.BitVecRef], width: int) -> z3.BitVecRef:
        value = env.get(self.phi)
        if value is None:
            value = z3.BitVec(f"%{self.phi}", width)
        bound = z3.BitVecVal(0, width) if self.bound is None else model.value(State(env, []), self.bound, width,
                                                                              _NO_LOOP)
        return bound - value if self.increasing else value - bound


NEVER_ENTERED = "it is never entered"


def prove_ranking(body: str, params: str, header: str,
                  budget: float = SOLVER_BUDGET_SECONDS) -> tuple[str | None, str]:
    """(what proves the loop at `header` ends, how it was checked): "ranking function (%n - %i)
    decreases (unsigned) on every path back to the header", or NEVER_ENTERED when the branch
    conditions leading to it cannot all hold (dead code, e.g. a vectorised loop behind a test
    the masks of its operands decide); else (None, why not). `budget`: the seconds the solver
    may take, all queries together."""
    try:
        model = LoopModel(body, params)
        loop = model.loops.get(header)
        if loop is None:
            return None, f"no natural loop with header %{header} in the IR"
        model.deadline = time.monotonic() + budget
        facts = model.entry_facts(loop)
        if never_entered(model, facts):
            return NEVER_ENTERED, "the branch conditions on the way into it contradict each other"
        invariants = model.entry_invariants(loop, facts)
        start = State({}, list(facts))
        phis = model.header_phis(loop)
        for name, width in phis:
            start.env[name] = z3.BitVec(f"%{name}", width)
        # the header's invariants hold at the start of every path (inner loops entered on the
        # way are judged with them)
        held = [inv.formula(start.env) for inv in invariants]
        start.facts.extend(held)
        backs = model.paths_back(loop, start)
        if not backs:
            return None, "no path back to the header"
        candidates = ranking_candidates(model, loop, phis)
        for ranking, width in candidates[:MAX_CANDIDATES]:
            if all(decreases(model, ranking, width, start.env, state, nxt) for state, nxt in backs):
                return f"ranking function {ranking.text} decreases (unsigned) on every path back to the header", \
                    f"{len(backs)} path(s) back to the header"
        return None, f"no candidate of {min(len(candidates), MAX_CANDIDATES)} decreases on all " \
                     f"{len(backs)} path(s) back to the header"
    except GiveUp as exc:
        return None, str(exc)
    except z3.Z3Exception as exc:
        return None, f"the solver failed: {exc}"


def never_entered(model: LoopModel, facts: list[z3.BoolRef]) -> bool:
    """Whether the conditions that hold whenever the loop runs are contradictory: no execution
    reaches it (every candidate would pass vacuously; this says so instead)."""
    if not facts:
        return False
    solver = model.solver()
    solver.add(*facts)
    result = solver.check()
    if result == z3.unknown:
        raise GiveUp("the solver timed out")
    return result == z3.unsat


def ranking_candidates(model: LoopModel, loop: Loop, phis: list[tuple[str, int]]) -> list[tuple[Ranking, int]]:
    """`b - %i` and `%i - b` for each header phi and each bound b of the loop's comparisons,
    then `%i` and `0 - %i` (a counter down to 0 or up to the wrap)."""
    candidates: list[tuple[Ranking, int]] = []
    for name, width in phis:
        for token, w in model.fixed_operands(loop):
            if w == width:
                candidates += [(Ranking(f"({token} - %{name})", name, token, True), width),
                               (Ranking(f"(%{name} - {token})", name, token, False), width)]
    for name, width in phis:
        candidates += [(Ranking(f"%{name}", name, None, False), width),
                       (Ranking(f"(0 - %{name})", name, None, True), width)]
    return candidates


def decreases(model: LoopModel, ranking: Ranking, width: int, start: dict[str, z3.BitVecRef], state: State,
              nxt: dict[str, z3.BitVecRef]) -> bool:
    """Whether `ranking` of the header's next values is <u its value at the path's start, on
    this path (its facts include the header's invariants). A timeout gives up."""
    if ranking.phi not in nxt:
        return False
    solver = model.solver()
    solver.add(*state.facts, z3.Not(z3.ULT(ranking.term(model, nxt, width), ranking.term(model, start, width))))
    result = solver.check()
    if result == z3.unknown:
        raise GiveUp("the solver timed out")
    return result == z3.unsat
