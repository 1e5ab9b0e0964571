"""eBPF objects: ELF reading (pyelftools), instruction decoding, CFG, simple dataflow.

An instruction is 8 bytes: opcode, dst (low nibble) / src (high nibble) registers, a signed
16-bit offset and a signed 32-bit immediate, little-endian; ``lddw`` (0x18) spans two slots.
Helper calls in PQUIC-style objects are ``call -1`` with an ``R_BPF_64_32`` relocation to an
undefined symbol naming the helper; a ``call`` with src = 1 and no relocation is a BPF-to-BPF
("local") call, which the PQUIC VM would misread as a helper id.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field
from typing import Iterator, NamedTuple

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection
from elftools.elf.sections import SymbolTableSection

# instruction classes
LD, LDX, ST, STX, ALU, JMP, JMP32, ALU64 = range(8)
LDDW = 0x18
CALL, EXIT, JA = 0x85, 0x95, 0x05
FRAME_SIZE = 512
R_BPF_64_32 = 10

_ALU_OPS = {0x00: "add", 0x10: "sub", 0x20: "mul", 0x30: "div", 0x40: "or", 0x50: "and", 0x60: "lsh",
            0x70: "rsh", 0x80: "neg", 0x90: "mod", 0xA0: "xor", 0xB0: "mov", 0xC0: "arsh", 0xD0: "end"}
_JMP_OPS = {0x00: "ja", 0x10: "jeq", 0x20: "jgt", 0x30: "jge", 0x40: "jset", 0x50: "jne", 0x60: "jsgt",
            0x70: "jsge", 0x80: "call", 0x90: "exit", 0xA0: "jlt", 0xB0: "jle", 0xC0: "jslt", 0xD0: "jsle"}
_SIZES = {0x00: 4, 0x08: 2, 0x10: 1, 0x18: 8}


class ObjectError(Exception):
    """The object cannot be read as an eBPF ELF (a `fail`, with this reason)."""


@dataclass
class Insn:
    index: int  # slot index within the section
    opcode: int
    dst: int
    src: int
    off: int
    imm: int
    imm64: int | None = None  # lddw
    reloc: str | None = None  # symbol of a relocation at this slot

    @property
    def cls(self) -> int:
        return self.opcode & 7

    @property
    def op(self) -> int:
        return self.opcode & 0xF0

    @property
    def width(self) -> int:
        return 2 if self.opcode == LDDW else 1

    def is_call(self) -> bool:
        return self.opcode == CALL

    def is_exit(self) -> bool:
        return self.opcode == EXIT

    def is_jump(self) -> bool:
        return self.cls in (JMP, JMP32) and self.op not in (0x80, 0x90)

    def is_cond_jump(self) -> bool:
        return self.is_jump() and self.op != 0x00

    def mem_size(self) -> int:
        return _SIZES[self.opcode & 0x18]

    def text(self) -> str:
        return f"#{self.index}: op {self.opcode:#04x} dst r{self.dst} src r{self.src} off {self.off} imm {self.imm}"


@dataclass
class Section:
    name: str
    index: int
    data: bytes
    insns: list[Insn] = field(default_factory=list)
    functions: dict[int, str] = field(default_factory=dict)  # slot -> function name


@dataclass
class EbpfObject:
    sections: list[Section]  # executable sections
    undefined: set[str]


MAX_SECTIONS = 1024
MAX_SYMBOLS = 1 << 16
MAX_RELOCATIONS = 1 << 16
SHF_COMPRESSED = 0x800


def check_headers(elf: ELFFile, size: int) -> None:
    """Every section's declared extent lies inside the object and nothing is compressed, before
    any section is read: pyelftools inflates an SHF_COMPRESSED section to whatever size its
    header claims (measured: a 33 KB object unpacking to 32 MiB drove an epoch to 3.1 GB)."""
    count = elf.num_sections()
    if count > MAX_SECTIONS:
        raise ObjectError(f"{count} sections, over the limit of {MAX_SECTIONS}")
    for idx in range(count):
        header = elf._get_section_header(idx)  # the raw header: nothing read or inflated yet
        if header["sh_flags"] & SHF_COMPRESSED:
            raise ObjectError(f"section #{idx} is compressed (SHF_COMPRESSED): not accepted in a pluglet")
        if header["sh_type"] != "SHT_NOBITS" and header["sh_offset"] + header["sh_size"] > size:
            raise ObjectError(f"section #{idx} claims {header['sh_size']} bytes at offset {header['sh_offset']}, "
                              f"past the end of the {size}-byte object")
        entsize = header["sh_entsize"]
        if header["sh_type"] in ("SHT_SYMTAB", "SHT_REL", "SHT_RELA") and entsize:
            limit = MAX_SYMBOLS if header["sh_type"] == "SHT_SYMTAB" else MAX_RELOCATIONS
            if header["sh_size"] // entsize > limit:
                raise ObjectError(f"section #{idx} holds {header['sh_size'] // entsize} entries, over {limit}")


def _exec_sections(elf: ELFFile) -> list[Section]:
    sections: list[Section] = []
    for idx, sec in enumerate(elf.iter_sections()):
        if sec["sh_type"] == "SHT_PROGBITS" and sec["sh_flags"] & 0x4:  # SHF_EXECINSTR
            sections.append(Section(sec.name, idx, sec.data()))
    return sections


def _read_symbols(elf: ELFFile, by_index: dict[int, Section]) -> set[str]:
    """The undefined symbol names; records each function symbol in its section."""
    symtab = elf.get_section_by_name(".symtab")
    undefined: set[str] = set()
    if symtab is not None and not isinstance(symtab, SymbolTableSection):
        raise ELFError(".symtab is not a symbol table")
    if symtab is not None:
        for sym in symtab.iter_symbols():
            if sym["st_shndx"] == "SHN_UNDEF" and sym.name:
                undefined.add(sym.name)
            owner = by_index.get(sym["st_shndx"]) if isinstance(sym["st_shndx"], int) else None
            if owner is not None and sym["st_info"]["type"] == "STT_FUNC":
                owner.functions[sym["st_value"] // 8] = sym.name
    return undefined


def _read_relocations(elf: ELFFile) -> dict[int, dict[int, tuple[str, int]]]:
    relocs: dict[int, dict[int, tuple[str, int]]] = {}
    for sec in elf.iter_sections():
        if isinstance(sec, RelocationSection):
            target = sec["sh_info"]
            table = elf.get_section(sec["sh_link"])
            if not isinstance(table, SymbolTableSection):
                raise ELFError(f"relocation section {sec.name} links to {table.name}, not a symbol table")
            for rel in sec.iter_relocations():
                sym = table.get_symbol(rel["r_info_sym"])
                relocs.setdefault(target, {})[rel["r_offset"] // 8] = (sym.name, rel["r_info_type"])
    return relocs


def _parse_elf(data: bytes) -> tuple[list[Section], set[str], dict[int, dict[int, tuple[str, int]]]]:
    elf = ELFFile(io.BytesIO(data))
    if elf["e_machine"] not in ("EM_BPF", 247):
        raise ObjectError(f"ELF machine {elf['e_machine']} is not eBPF")
    check_headers(elf, len(data))
    sections = _exec_sections(elf)
    by_index = {s.index: s for s in sections}
    undefined = _read_symbols(elf, by_index)
    relocs = _read_relocations(elf)
    return sections, undefined, relocs


def load_object(data: bytes) -> EbpfObject:
    try:
        sections, undefined, relocs = _parse_elf(data)
    except ELFError as exc:
        raise ObjectError(f"malformed ELF: {exc}") from None
    except (struct.error, ValueError, KeyError, IndexError, AttributeError, TypeError) as exc:
        raise ObjectError(f"malformed ELF: {type(exc).__name__}: {exc}") from None
    for s in sections:
        s.insns = decode(s.data)
        at_slot = {insn.index: insn for insn in s.insns}
        for slot, (name, rtype) in relocs.get(s.index, {}).items():
            insn = at_slot.get(slot)
            if insn is not None:
                insn.reloc = name if rtype == R_BPF_64_32 or insn.opcode == LDDW else f"{name}?type{rtype}"
    return EbpfObject(sections, undefined)


def decode(data: bytes) -> list[Insn]:
    if len(data) % 8:
        raise ObjectError(f"code size {len(data)} is not a multiple of 8")
    out = []
    n = len(data) // 8
    i = 0
    while i < n:
        opcode, regs, off, imm = struct.unpack_from("<BBhi", data, i * 8)
        insn = Insn(i, opcode, regs & 0xF, regs >> 4, off, imm)
        if opcode == LDDW:
            if i + 1 >= n:
                raise ObjectError(f"#{i}: lddw truncated at the end of the section")
            op2, _, _, imm2 = struct.unpack_from("<BBhi", data, (i + 1) * 8)
            insn.imm64 = (imm & 0xFFFFFFFF) | ((imm2 & 0xFFFFFFFF) << 32)
            if op2 != 0:
                raise ObjectError(f"#{i}: second slot of lddw has opcode {op2:#x}")
        out.append(insn)
        i += insn.width
    return out


def _alu_problem(insn: Insn) -> str | None:
    op = insn.opcode
    if insn.op not in _ALU_OPS:
        return f"invalid ALU operation {op:#04x}"
    if insn.op == 0xD0 and insn.cls == ALU64:
        return f"invalid byte swap {op:#04x}"
    if insn.dst == 10:
        return f"write to the read-only frame pointer r10 ({insn.text()})"
    return None


def _jmp_problem(insn: Insn) -> str | None:
    op = insn.opcode
    if insn.op not in _JMP_OPS:
        return f"invalid jump operation {op:#04x}"
    if insn.cls == JMP32 and insn.op in (0x00, 0x80, 0x90):
        return f"invalid 32-bit jump {op:#04x}"
    if insn.op == 0x80 and insn.src not in (0, 1):
        return f"call with unsupported src {insn.src}"
    return None


def _ldx_problem(insn: Insn) -> str | None:
    op = insn.opcode
    if op & 0xE0 != 0x60:
        return f"invalid load mode {op:#04x}"
    if insn.dst == 10:
        return f"load into the read-only frame pointer r10 ({insn.text()})"
    return None


def _stx_problem(insn: Insn) -> str | None:
    op = insn.opcode
    if op & 0xE0 == 0x60:
        return None
    if op & 0xE0 == 0xC0 and op & 0x18 in (0x00, 0x18):  # atomic add (xadd) 32/64
        return None
    return f"invalid store mode {op:#04x}"


def opcode_problem(insn: Insn) -> str | None:
    """Why an instruction is not a valid eBPF instruction, or None."""
    op, cls = insn.opcode, insn.cls
    if insn.dst > 10 or insn.src > 10:
        return f"register out of range ({insn.text()})"
    if cls in (ALU, ALU64):
        return _alu_problem(insn)
    if cls in (JMP, JMP32):
        return _jmp_problem(insn)
    if cls == LD:
        return None if op == LDDW else f"legacy packet load {op:#04x} not supported"
    if cls == LDX:
        return _ldx_problem(insn)
    if cls == ST:
        return None if op & 0xE0 == 0x60 else f"invalid store mode {op:#04x}"
    if cls == STX:
        return _stx_problem(insn)
    return f"unknown opcode {op:#04x}"  # pragma: no cover - all 8 classes handled


@dataclass
class Cfg:
    leaders: list[int]  # slot index of each block start
    succ: dict[int, list[int]]  # block leader -> successor leaders
    back_edges: list[tuple[int, int]]  # (from insn slot, to leader)


def _block_leaders(insns: list[Insn], order: list[int], by_slot: dict[int, Insn], entry: int) -> list[int]:
    leaders_set = {entry}
    for k, insn in enumerate(insns):
        if insn.is_jump():
            leaders_set.add(insn.index + 1 + insn.off)
        if (insn.is_jump() or insn.is_exit()) and k + 1 < len(order):
            leaders_set.add(order[k + 1])
    return sorted(s for s in leaders_set if s in by_slot)


def _block_successors(tail: Insn, order: list[int], end_pos: int) -> list[int]:
    """The successor leaders of the block ending in `tail` (`end_pos`: position after it)."""
    targets: list[int] = []
    if tail.is_exit():
        pass
    elif tail.is_jump():
        targets.append(tail.index + 1 + tail.off)
        if tail.is_cond_jump() and end_pos < len(order):
            targets.append(order[end_pos])
    elif end_pos < len(order):
        targets.append(order[end_pos])
    return targets


def _back_edges(entry: int, succ: dict[int, list[int]], block_last: dict[int, int]) -> list[tuple[int, int]]:
    """Back edges by an iterative DFS from the entry."""
    back: list[tuple[int, int]] = []
    state: dict[int, int] = {entry: 1}
    stack = [(entry, iter(succ.get(entry, [])))]
    while stack:
        node, it = stack[-1]
        child = next(it, None)
        if child is None:
            state[node] = 2
            stack.pop()
            continue
        if state.get(child) == 1:
            back.append((block_last[node], child))
        elif child not in state:
            state[child] = 1
            stack.append((child, iter(succ.get(child, []))))
    return back


def build_cfg(insns: list[Insn], entry: int = 0) -> Cfg:
    """Basic blocks and back edges of one function starting at slot `entry`.

    Linear in the number of instructions (each is visited a constant number of times): the
    input is hostile, and a quadratic pass was measured at > 600 s on one 1 MiB object of
    131k self-jumps."""
    by_slot = {i.index: i for i in insns}
    order = [i.index for i in insns]
    position = {slot: k for k, slot in enumerate(order)}
    leaders = _block_leaders(insns, order, by_slot, entry)
    succ: dict[int, list[int]] = {}
    block_last: dict[int, int] = {}  # block leader -> slot of its last instruction
    for k, start in enumerate(leaders):
        end_pos = position[leaders[k + 1]] if k + 1 < len(leaders) else len(order)
        last = order[end_pos - 1]
        block_last[start] = last
        succ[start] = _block_successors(by_slot[last], order, end_pos)
    return Cfg(leaders, succ, _back_edges(entry, succ, block_last))


def function_ranges(section: Section) -> list[tuple[str, list[Insn]]]:
    """Split a section's instructions by function symbol (one range if there are no symbols);
    one pass over the instructions."""
    starts = sorted(section.functions) or [0]
    ranges: list[list[Insn]] = [[] for _ in starts]
    k = 0
    for insn in section.insns:
        if insn.index < starts[0]:
            continue
        while k + 1 < len(starts) and insn.index >= starts[k + 1]:
            k += 1
        ranges[k].append(insn)
    return [(section.functions.get(start, f"{section.name}+{start}"), insns)
            for start, insns in zip(starts, ranges, strict=True)]


class Function(NamedTuple):
    """One function of an executable section, with its CFG (unpacks as
    ``section, name, insns, cfg``)."""

    section: Section
    name: str
    insns: list[Insn]
    cfg: Cfg


def section_functions(section: Section) -> Iterator[Function]:
    """Every non-empty function of one executable section with its CFG."""
    for name, insns in function_ranges(section):
        if insns:
            yield Function(section, name, insns, build_cfg(insns, insns[0].index))


def functions(obj: EbpfObject) -> Iterator[Function]:
    """Every non-empty function of every executable section with its CFG: the one
    section -> function -> CFG walk the verifiers share."""
    for section in obj.sections:
        yield from section_functions(section)


def constant_registers(insns: list[Insn], cfg: Cfg) -> dict[int, dict[int, int | tuple]]:
    """For each slot, the registers known before it: int constants, ("oneof", frozenset of
    ints) for a register that holds one of a few constants (at most MAX_ONEOF: clang merges the
    tails of calls that differ only in a constant argument, so a helper's key may be one of
    several constants loaded on the paths into the call), or ("fp", offset) for pointers into
    the frame. A forward dataflow to a fixed point; at a join, values that agree are kept,
    constants that differ become their set, anything else is dropped (so only facts true on
    every path survive).

    Bounded: after its first visit a register of a block's entry state only moves up the chain
    constant -> sets of 2..MAX_ONEOF constants -> unknown, at most MAX_ONEOF changes, and there
    are 11 registers, so each block is re-queued at most 11 * MAX_ONEOF + 1 times per edge."""
    by_slot = {i.index: i for i in insns}
    order = [i.index for i in insns]
    position = {slot: k for k, slot in enumerate(order)}
    if not order:
        return {}
    leader_set = set(cfg.leaders)
    entry_state: dict[int, dict[int, int | tuple] | None] = {lead: None for lead in cfg.leaders}
    first = cfg.leaders[0] if cfg.leaders else order[0]
    entry_state[first] = {10: ("fp", 0)}
    before: dict[int, dict[int, int | tuple]] = {}
    work = [first]
    queued = {first}
    budget = (11 * MAX_ONEOF + 2) * (sum(len(t) for t in cfg.succ.values()) + len(cfg.leaders)) + 1
    while work:
        budget -= 1
        if budget < 0:  # cannot happen (see above); fail closed rather than return partial facts
            raise ObjectError("register dataflow did not converge")
        lead = work.pop()
        queued.discard(lead)
        regs = dict(entry_state[lead] or {})
        pos = position[lead]
        while True:
            slot = order[pos]
            insn = by_slot[slot]
            before[slot] = dict(regs)
            _transfer(insn, regs)
            pos += 1
            if insn.is_jump() or insn.is_exit() or pos >= len(order) or order[pos] in leader_set:
                break
        for target in cfg.succ.get(lead, []):
            if target not in position:
                continue  # a jump out of the function: reported by the safety check
            old = entry_state.get(target)
            merged = dict(regs) if old is None else _join(old, regs)
            if old is None or merged != old:
                entry_state[target] = merged
                if target not in queued:
                    work.append(target)
                    queued.add(target)
    return before


MAX_ONEOF = 8  # the most constants a register is tracked as being one of


def constants_of(value: int | tuple | None) -> frozenset[int] | None:
    """The constants a register value may be (one, or the members of a "oneof"), else None."""
    if isinstance(value, int):
        return frozenset({value})
    if isinstance(value, tuple) and value[0] == "oneof":
        return value[1]
    return None


def _join(old: dict[int, int | tuple], new: dict[int, int | tuple]) -> dict[int, int | tuple]:
    out: dict[int, int | tuple] = {}
    for r, v in old.items():
        w = new.get(r)
        if w == v:
            out[r] = v
            continue
        a, b = constants_of(v), constants_of(w)
        if a is not None and b is not None and len(a | b) <= MAX_ONEOF:
            out[r] = ("oneof", a | b)
    return out


def _transfer(insn: Insn, regs: dict[int, int | tuple]) -> None:
    cls, op = insn.cls, insn.op
    if insn.opcode == LDDW:
        loaded = insn.imm64 if insn.reloc is None else ("sym", insn.reloc)
        if loaded is None:  # cannot happen: decoding sets imm64 on every lddw
            regs.pop(insn.dst, None)
        else:
            regs[insn.dst] = loaded
    elif cls in (ALU, ALU64):
        use_reg = bool(insn.opcode & 0x08)
        src_val = regs.get(insn.src) if use_reg else insn.imm
        dst_val = regs.get(insn.dst)
        result: int | tuple | None = None  # None: nothing known about dst afterwards
        if op == 0xB0:  # mov
            result = src_val
        elif op == 0x00 and isinstance(dst_val, tuple) and dst_val[0] == "fp" and isinstance(src_val, int):
            result = ("fp", dst_val[1] + src_val)
        elif op == 0x10 and isinstance(dst_val, tuple) and dst_val[0] == "fp" and isinstance(src_val, int):
            result = ("fp", dst_val[1] - src_val)
        elif isinstance(dst_val, int) and isinstance(src_val, int) and op in (0x00, 0x10, 0x40, 0x50, 0xA0):
            fn = {0x00: lambda a, b: a + b, 0x10: lambda a, b: a - b, 0x40: lambda a, b: a | b,
                  0x50: lambda a, b: a & b, 0xA0: lambda a, b: a ^ b}[op]
            result = fn(dst_val, src_val) & 0xFFFFFFFFFFFFFFFF
        if result is None:
            regs.pop(insn.dst, None)
        else:
            regs[insn.dst] = result
    elif cls == LDX:
        regs.pop(insn.dst, None)
    elif insn.is_call():
        for r in range(0, 6):  # r0 = result, r1-r5 clobbered
            regs.pop(r, None)


def signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value
