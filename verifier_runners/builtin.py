"""The built-in verifiers: reproducible build, bytecode safety, termination, side effects,
static analysis, and the trivial always-pass / always-fail runners (for tests)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from pds_log.core.errors import FormatError
from pds_log.core.recipe import BuildRecipe, plugin_defines
from pds_log.core.yamldoc import parse_mapping

from . import ebpf
from .base import ERROR, FAIL, PASS, PluginInput, Verifier, VerifierResult
from .sandbox import tool_version

DATA = Path(__file__).resolve().parent / "configs"


def _load_yaml(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as exc:
        raise FormatError(f"{path}: {exc.strerror}") from None
    return parse_mapping(text, str(path))


class AlwaysPass(Verifier):
    runner = "always_pass"
    needs_files = False

    def check(self, plugin: PluginInput, workdir: Path) -> VerifierResult:
        return self.result(PASS, "always passes (test runner)")


class AlwaysFail(Verifier):
    runner = "always_fail"
    needs_files = False
    options = {"reason": "always fails (test runner)"}

    def check(self, plugin: PluginInput, workdir: Path) -> VerifierResult:
        return self.result(FAIL, self.config["reason"])


# ---------------------------------------------------------------------- reproducible build
class Reproducible(Verifier):
    """Rebuild every pluglet from its C source with the pinned recipe; compare bytes."""

    runner = "reproducible"
    version = "2"  # two-stage recipes and per-plugin defines
    options = {"recipe": None}

    def setup(self) -> None:
        self.recipe = BuildRecipe.from_obj(self.config["recipe"])

    def check(self, plugin: PluginInput, workdir: Path) -> VerifierResult:
        versions = {program: tool_version(program) for program, _ in self.recipe.tools()}
        for program, prefix in self.recipe.tools():
            if versions[program] == "missing":
                return self.result(ERROR, f"tool not found: {program}", **versions)
            if not versions[program].startswith(prefix):
                return self.result(ERROR, f"{program} is {versions[program]!r}, the recipe pins {prefix!r}",
                                   **versions)
        try:
            defines = plugin_defines(plugin.files)
        except FormatError as exc:
            return self.result(FAIL, str(exc), **versions)
        log: list[str] = []
        mismatches: list[str] = []
        for pluglet in plugin.manifest.pluglets:
            source = self.recipe.source_for(pluglet)
            if source not in plugin.files:
                return self.result(FAIL, f"{pluglet}: no source {source} to rebuild it from", "\n".join(log),
                                   **versions)
            out = pluglet + ".rebuilt"
            for argv in self.recipe.stages(pluglet, out, defines):
                log.append("$ " + " ".join(argv))
                run = self.run_tool(argv, workdir)
                log.append(run.output)
                if not run.ran or run.timed_out or run.returncode != 0:
                    status = ERROR if (not run.ran or run.timed_out) else FAIL
                    return self.result(status, f"{pluglet}: rebuild failed at {argv[0]}: {run.describe()}",
                                       "\n".join(log), **versions)
            rebuilt = (workdir / out).read_bytes()
            submitted = plugin.files[pluglet]
            if rebuilt != submitted:
                mismatches.append(f"{pluglet}: {describe_difference(submitted, rebuilt)}")
        if mismatches:
            log.extend(mismatches)
            return self.result(FAIL, "not reproducible: " + "; ".join(mismatches), "\n".join(log), **versions)
        return self.result(PASS, f"{len(plugin.manifest.pluglets)} pluglet(s) rebuilt byte for byte",
                           "\n".join(log), **versions)


def describe_difference(submitted: bytes, rebuilt: bytes) -> str:
    """Which ELF sections differ (name, sizes), or the sizes when an object cannot be read."""
    def sections(data: bytes) -> dict[str, tuple[int, str]] | None:
        # The submitted object is hostile: section bytes are hashed as stored (never through
        # pyelftools' data(), which inflates compressed sections), after the header checks.
        try:
            import io

            from elftools.elf.elffile import ELFFile

            elf = ELFFile(io.BytesIO(data))
            ebpf.check_headers(elf, len(data))
            return {s.name: (s["sh_size"], hashlib.sha256(data[s["sh_offset"]:s["sh_offset"] + s["sh_size"]])
                             .hexdigest()[:12])
                    for s in elf.iter_sections() if s["sh_type"] != "SHT_NOBITS"}
        except Exception:  # noqa: BLE001 - an unreadable object is itself the difference
            return None

    a, b = sections(submitted), sections(rebuilt)
    if a is None or b is None:
        return f"submitted {len(submitted)} bytes vs rebuilt {len(rebuilt)} bytes (unreadable ELF)"
    diffs = []
    for name in sorted(a.keys() | b.keys()):
        if name not in a:
            diffs.append(f"section {name} only in the rebuild ({b[name][0]} bytes)")
        elif name not in b:
            diffs.append(f"section {name} only in the submitted object ({a[name][0]} bytes)")
        elif a[name] != b[name]:
            if a[name][0] == b[name][0]:
                diffs.append(f"section {name} differs in content ({a[name][0]} bytes each)")
            else:
                diffs.append(f"section {name} differs (submitted {a[name][0]} vs rebuilt {b[name][0]} bytes)")
    return ", ".join(diffs) or f"same sections, different bytes ({len(submitted)} vs {len(rebuilt)} bytes)"


# ---------------------------------------------------------------------- bytecode safety
PROTOCOL_HELPERS = {"pquic": "pquic_helpers.yaml", "xbgp": "xbgp_helpers.yaml"}
# C library functions clang calls by itself at -O2, from code that never names them: a
# memcmp/strncmp compared with 0 becomes bcmp, a copy or fill loop memcpy/memset, ... (on a
# target whose C library has them, which the host-target IR of PQUIC's and xBGP's pipelines is).
COMPILER_LIBCALLS = frozenset({"bcmp", "memcmp", "memcpy", "memmove", "memset", "strlen", "strcmp", "strncmp"})


def load_helpers(spec: Any, base_dir: Path, kind: str = "pquic") -> dict[str, dict]:
    """Helper allow-list: 'default' (the shipped list of the protocol `kind`: a PQUIC pluglet may
    call what PQUIC's VM registers, an xBGP one what libxbgp declares), a YAML file path, or a
    list of names."""
    if spec in (None, "default"):
        doc = _load_yaml(DATA / PROTOCOL_HELPERS[kind])
    elif isinstance(spec, str):
        doc = _load_yaml((base_dir / spec).resolve())
    elif isinstance(spec, list):
        doc = {"helpers": {str(h): {} for h in spec}}
    else:
        raise FormatError("helpers: expected 'default', a YAML file or a list of names")
    helpers = doc.get("helpers") if isinstance(doc, dict) else None
    if not isinstance(helpers, dict):
        raise FormatError("helpers spec: expected a mapping 'helpers: {name: {...}}'")
    return {str(k): (v or {}) for k, v in helpers.items()}


class BytecodeSafety(Verifier):
    runner = "bytecode_safety"
    version = "2"  # one allow-list per protocol (PQUIC's ubpf.c, libxbgp's API)
    needs_files = False
    options = {"helpers": "default", "max_instructions": 16384, "max_object_bytes": 1 << 20}

    def setup(self) -> None:
        # protocol kind -> allow-list; a configured file or list applies to every protocol
        self.helpers_by_kind = {kind: load_helpers(self.config["helpers"], self.base_dir, kind)
                                for kind in PROTOCOL_HELPERS}

    def digest_material(self) -> Any:
        return {**self.config, "helpers": {kind: sorted(h) for kind, h in self.helpers_by_kind.items()}}

    def check(self, plugin: PluginInput, workdir: Path) -> VerifierResult:
        problems: list[str] = []
        log: list[str] = []
        kind = plugin.manifest.kind
        if kind not in self.helpers_by_kind:
            return self.result(ERROR, f"no helper allow-list for plugins of kind {kind!r}")
        helpers = self.helpers_by_kind[kind]
        for pluglet in plugin.manifest.pluglets:
            data = plugin.files[pluglet]
            found = self.check_object(pluglet, data, log, helpers)
            problems.extend(f"{pluglet}: {p}" for p in found)
        if problems:
            return self.result(FAIL, problems[0] + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""),
                               "\n".join(log + problems))
        return self.result(PASS, f"{len(plugin.manifest.pluglets)} pluglet(s): every instruction checked",
                           "\n".join(log))

    def check_object(self, pluglet: str, data: bytes, log: list[str],
                     helpers: dict[str, dict] | None = None) -> list[str]:
        if len(data) > self.config["max_object_bytes"]:
            return [f"object is {len(data)} bytes, over the {self.config['max_object_bytes']}-byte limit"]
        try:
            obj = ebpf.load_object(data)
        except ebpf.ObjectError as exc:
            return [str(exc)]
        problems = []
        if not obj.sections:
            return ["no executable section"]
        if len(obj.sections) > 1:
            problems.append(f"{len(obj.sections)} executable sections ({', '.join(s.name for s in obj.sections)}); "
                            f"a pluglet must be one .text")
        for section in obj.sections:
            if not section.insns:
                problems.append(f"empty {section.name} (a failed build? no code to run)")
                continue
            if len(section.insns) > self.config["max_instructions"]:
                limit = self.config["max_instructions"]
                problems.append(f"{len(section.insns)} instructions, over the limit of {limit}")
            log.append(f"{pluglet} {section.name}: {len(section.insns)} instructions, "
                       f"functions {', '.join(section.functions.values()) or '-'}")
            problems.extend(self.check_section(section, helpers))
        return problems

    def check_section(self, section: ebpf.Section, helpers: dict[str, dict] | None = None) -> list[str]:
        if helpers is None:
            helpers = self.helpers_by_kind["pquic"]
        problems = []
        slots = {i.index for i in section.insns}
        count = section.insns[-1].index + section.insns[-1].width
        for insn in section.insns:
            why = self._insn_problem(insn, slots, count, helpers)
            if why:
                problems.append(why)
        last = section.insns[-1]
        if not (last.is_exit() or (last.is_jump() and not last.is_cond_jump())):
            problems.append(f"#{last.index}: code falls off the end of {section.name}")
        for _, name, insns, cfg in ebpf.section_functions(section):
            regs_before = ebpf.constant_registers(insns, cfg)
            for insn in insns:
                problems.extend(self._stack_access(name, insn, regs_before.get(insn.index, {})))
        return problems

    @staticmethod
    def _insn_problem(insn: ebpf.Insn, slots: set[int], count: int, helpers: dict[str, dict]) -> str | None:
        """The one problem of an instruction on its own (its opcode, jump target, call), or None."""
        why = ebpf.opcode_problem(insn)
        if why:
            return f"#{insn.index}: {why}"
        if insn.is_jump():
            target = insn.index + 1 + insn.off
            if target < 0 or target >= count:
                return f"#{insn.index}: jump out of range (to #{target}, code has {count} slots)"
            if target not in slots:
                return f"#{insn.index}: jump into the middle of a 16-byte lddw (#{target})"
        elif insn.is_call():
            if insn.reloc is None:
                kind = "local call" if insn.src == 1 else f"call to helper id {insn.imm}"
                return (f"#{insn.index}: {kind} without a relocation (the VM would misread it as a "
                        f"helper id {insn.imm})")
            if insn.reloc not in helpers:
                why = f"#{insn.index}: call to {insn.reloc}, which is not on the helper allow-list"
                if insn.reloc in COMPILER_LIBCALLS:
                    why += (f" (a C library function clang emits by itself, e.g. bcmp for a memcmp or strncmp "
                            f"compared with 0, memset/memcpy for a fill or copy loop; the host registers no "
                            f"{insn.reloc}, so the pluglet as built would not load: build it with -fno-builtin "
                            f"or call the host's own helper)")
                return why
        return None

    @staticmethod
    def _stack_access(function: str, insn: ebpf.Insn, regs: dict) -> list[str]:
        cls = insn.cls
        if cls not in (ebpf.LDX, ebpf.ST, ebpf.STX):
            return []
        base = insn.src if cls == ebpf.LDX else insn.dst
        value = regs.get(base)
        if not (isinstance(value, tuple) and value[0] == "fp"):
            return []
        offset = value[1] + insn.off
        size = insn.mem_size()
        if offset < -ebpf.FRAME_SIZE or offset + size > 0:
            verb = "read" if cls == ebpf.LDX else "write"
            return [f"#{insn.index} in {function}: stack {verb} of {size} bytes at r10{offset:+d}, outside the "
                    f"{ebpf.FRAME_SIZE}-byte frame [r10-{ebpf.FRAME_SIZE}, r10)"]
        return []


# ---------------------------------------------------------------------- termination
# `termination` and `bounded` live in termination.py (imported here for older callers).
from .termination import Bounded, Termination  # noqa: E402,F401

# ---------------------------------------------------------------------- side effects
_REGISTER = re.compile(r"^r([1-5])$")


def _register(value: Any, where: str) -> int:
    m = _REGISTER.match(str(value))
    if not m:
        raise FormatError(f"side-effect spec: {where}: expected an argument register r1..r5, got {value!r}")
    return int(m.group(1))


def _names(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise FormatError(f"side-effect spec: {where}: expected a list of names")
    return value


class SideEffectSpec:
    """The side-effect spec of a protocol, validated (see pquic_side_effects.yaml):

    - `keys`: access-key helpers (set_cnx, set_path, ...): the argument register carrying the
      key and the field each key number selects;
    - `private`: setters of plugin-private metadata, with the register carrying the index;
    - `helpers`: every other helper in an effect class; a class may `writes:` context fields
      (only when its `when_nonzero:` register is not the constant 0, if it names one);
    - `common`: fields every protoop may write; `protoops`: per protoop, the fields it may write.
    """

    def __init__(self, doc: Any) -> None:
        if (not isinstance(doc, dict) or not isinstance(doc.get("keys"), dict)
                or not isinstance(doc.get("protoops"), dict)):
            raise FormatError("side-effect spec: expected 'keys: {set_helper: {key: rN, fields: {...}}}' and "
                              "'protoops: {...}'")
        self.doc = doc
        self.keys: dict[str, tuple[int, dict[int, str]]] = {}
        for helper, entry in doc["keys"].items():
            if not isinstance(entry, dict) or not isinstance(entry.get("fields"), dict):
                raise FormatError(f"side-effect spec: keys.{helper}: "
                                  f"expected 'key: rN' and 'fields: {{field: number}}'")
            fields = self._key_fields(helper, entry["fields"])
            self.keys[str(helper)] = (_register(entry.get("key"), f"keys.{helper}.key"), fields)
        for section in ("private", "helpers"):
            if not isinstance(doc.get(section) or {}, dict):
                raise FormatError(f"side-effect spec: {section}: expected a mapping")
        self.private: dict[str, int] = {}
        for helper, entry in (doc.get("private") or {}).items():
            if not isinstance(entry, dict):
                raise FormatError(f"side-effect spec: private.{helper}: expected 'index: rN'")
            self.private[str(helper)] = _register(entry.get("index"), f"private.{helper}.index")
        # helper -> (effect class, fields a call writes, the register whose constant 0 means
        # the call writes nothing: None = it always writes)
        self.classes: dict[str, tuple[str, list[str], int | None]] = self._classes(doc.get("helpers") or {})
        self.common = _names(doc.get("common", []), "common")
        self.protoops: dict[str, list[str]] = {}
        for point, entry in doc["protoops"].items():
            if not isinstance(entry, dict):
                raise FormatError(f"side-effect spec: protoops.{point}: expected 'writes: [...]'")
            self.protoops[str(point)] = _names(entry.get("writes", []), f"protoops.{point}.writes")

    @staticmethod
    def _key_fields(helper: Any, doc_fields: dict) -> dict[int, str]:
        """An access-key helper's key numbers -> the field each selects."""
        fields: dict[int, str] = {}
        for field, value in doc_fields.items():
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFFFF:
                raise FormatError(f"side-effect spec: keys.{helper}.fields.{field}: expected a 16-bit key number")
            if value in fields:
                raise FormatError(f"side-effect spec: keys.{helper}: key {value:#x} names both {fields[value]} "
                                  f"and {field}")
            fields[value] = str(field)
        return fields

    @staticmethod
    def _classes(doc_helpers: dict) -> dict[str, tuple[str, list[str], int | None]]:
        classes: dict[str, tuple[str, list[str], int | None]] = {}
        for cls, entry in doc_helpers.items():
            if not isinstance(entry, dict):
                raise FormatError(f"side-effect spec: helpers.{cls}: expected 'names: [...]'")
            writes = _names(entry.get("writes", []), f"helpers.{cls}.writes")
            when = entry.get("when_nonzero")
            register = None if when is None else _register(when, f"helpers.{cls}.when_nonzero")
            for helper in _names(entry.get("names", []), f"helpers.{cls}.names"):
                classes[helper] = (str(cls), writes, register)
        return classes

    def allowed(self, point: str) -> list[str] | None:
        if point not in self.protoops:
            return None
        return self.common + self.protoops[point]


def load_side_effect_specs(spec: Any, base_dir: Path) -> SideEffectSpec:
    doc = _load_yaml(DATA / "pquic_side_effects.yaml") if spec in (None, "default") else _load_yaml(
        (base_dir / str(spec)).resolve())
    return SideEffectSpec(doc)


class SideEffects(Verifier):
    """Every helper call of a PQUIC pluglet is judged by the spec: an access-key write
    (set_cnx, set_path, ...) needs a constant key naming a field every protoop the pluglet is
    attached to may write; metadata setters write plugin-private storage; other helpers write
    what their effect class says. What the spec cannot judge is an `error`, never a pass."""

    runner = "side_effects"
    version = "4"  # 2: PQUIC's getset.h keys, every helper judged; 3: xBGP per-code permissions; 4: key sets
    needs_files = False
    options = {"specs": "default"}

    def setup(self) -> None:
        from . import xbgp_permissions

        self.spec = load_side_effect_specs(self.config["specs"], self.base_dir)
        self.xbgp_helpers = xbgp_permissions.load_helper_permissions()

    def digest_material(self) -> Any:
        return {"spec": self.spec.doc, "xbgp_helpers": self.xbgp_helpers}

    def check(self, plugin: PluginInput, workdir: Path) -> VerifierResult:
        if plugin.manifest.kind == "xbgp":  # xBGP's own model: the manifest's per-code permissions
            from . import xbgp_permissions

            return xbgp_permissions.check(self, plugin, self.xbgp_helpers)
        if plugin.manifest.kind != "pquic":
            return self.result(ERROR, f"no side-effect model for a {plugin.manifest.kind} plugin")
        problems: list[str] = []  # definite violations: fail
        unjudged: list[str] = []  # what the spec cannot decide: error
        log: list[str] = []
        attached: dict[str, set[str]] = {}
        for hook in plugin.manifest.hooks:
            attached.setdefault(hook.pluglet, set()).add(hook.point)
        for pluglet in plugin.manifest.pluglets:
            try:
                obj = ebpf.load_object(plugin.files[pluglet])
            except ebpf.ObjectError as exc:
                return self.result(FAIL, f"{pluglet}: {exc}")
            points = sorted(attached.get(pluglet, ()))
            unknown_points = [p for p in points if self.spec.allowed(p) is None]
            for _, fname, insns, cfg in ebpf.functions(obj):
                regs = ebpf.constant_registers(insns, cfg)
                for insn in insns:
                    if not insn.is_call() or insn.reloc is None:
                        continue  # calls without a relocation are the safety check's
                    where = f"{pluglet} #{insn.index} in {fname}"
                    self._judge_call(insn.reloc, regs.get(insn.index, {}), where, points, unknown_points,
                                     problems, unjudged, log)
        if problems:
            return self.result(FAIL, problems[0] + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""),
                               "\n".join(log + problems + unjudged))
        if unjudged:
            return self.result(ERROR, "cannot judge: " + unjudged[0]
                               + (f" (+{len(unjudged) - 1} more)" if len(unjudged) > 1 else ""),
                               "\n".join(log + unjudged))
        return self.result(PASS, "every write is allowed by its protoop's spec", "\n".join(log) or "no writes")

    def _judge_call(self, helper: str, regs: dict, where: str, points: list[str], unknown_points: list[str],
                    problems: list[str], unjudged: list[str], log: list[str]) -> None:
        """Judge one helper call against every protoop its pluglet is attached to."""
        writes, note = self._writes(helper, regs, where, problems, unjudged)
        if note:
            log.append(f"{where}: {note}")
        if writes and unknown_points:
            unjudged.append(f"{where}: {helper} writes {', '.join(writes)} in protoop "
                            f"{', '.join(unknown_points)}, which the spec does not know")
            return
        for field in writes:
            for point in points:
                allowed = self.spec.allowed(point) or []
                if field not in allowed:
                    problems.append(f"{where}: {helper}({field}) is not allowed in protoop {point}"
                                    f" (may write: {', '.join(allowed) or 'nothing'})")
                else:
                    log.append(f"{where}: {helper}({field}) allowed in {point}")

    def _writes(self, helper: str, regs: dict, where: str, problems: list[str],
                unjudged: list[str]) -> tuple[list[str], str]:
        """The fields a call to `helper` writes (given the registers before it), and a log note;
        a call the spec cannot judge goes to `unjudged`, an unknown key to `problems`."""
        if helper in self.spec.keys:
            register, fields = self.spec.keys[helper]
            keys = ebpf.constants_of(regs.get(register))
            if keys is None:
                unjudged.append(f"{where}: {helper} with a non-constant key (r{register}): which field it writes "
                                f"is decided at run time")
                return [], ""
            # the helper's key parameter is a 16-bit access_key_t; a call reached with one of
            # several constant keys (clang merged the calls' tails) writes any of their fields
            found: list[str] = []
            for key in sorted({k & 0xFFFF for k in keys}):
                field = fields.get(key)
                if field is None:
                    problems.append(f"{where}: {helper} with unknown key {key:#x} (r{register})")
                elif field not in found:
                    found.append(field)
            note = (f"{helper} key r{register} is one of {', '.join(f'{k:#x}' for k in sorted(keys))} "
                    f"(merged call paths)") if len(keys) > 1 else ""
            return found, note
        if helper in self.spec.private:
            register = self.spec.private[helper]
            index = regs.get(register)
            indexes = ebpf.constants_of(index)
            shown = (f"{index}" if isinstance(index, int) else f"one of {', '.join(map(str, sorted(indexes)))}"
                     if indexes is not None else "a computed index")
            return [], f"{helper} writes the plugin's private metadata (index r{register} = {shown})"
        if helper in self.spec.classes:
            cls, writes, when = self.spec.classes[helper]
            if when is not None and ebpf.constants_of(regs.get(when)) == frozenset({0}):
                return [], f"{helper} with r{when} = 0 writes nothing"
            return list(writes), ""
        unjudged.append(f"{where}: the spec has no effect class for helper {helper}")
        return [], ""


# ---------------------------------------------------------------------- static analysis
# StaticAnalysis lives in its own module; importable from here as before.
from .static import StaticAnalysis  # noqa: E402,F401
