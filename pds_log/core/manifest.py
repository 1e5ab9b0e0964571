"""Plugin manifests: PQUIC ``.plugin`` files and xBGP ``manifest.json`` (DESIGN.md "Plugin formats").

A plugin lives in ``plugins/<name>/`` of the Plugin Repository. Its directory holds exactly one
top-level manifest:

* PQUIC: a ``<x>.plugin`` file whose first line is ``<plugin name> [flags]`` (the name must be
  the directory name); then lines ``protoop_name [param 0xNN] anchor file.o`` with anchor in
  ``replace|pre|post|extern``, and lines ``other.plugin include`` that pull in fragments
  (``.plugin`` files without a name line, relative to the plugin directory). As PQUIC's
  loader (``picoquic/plugin.c``) reads them: blank lines and lines starting with ``#`` are
  skipped, and a line starting with ``-`` ends the pre-negotiation part.
* xBGP: a ``<x>.plugin`` JSON file, as libxbgp's loader (``static_injection.c``) reads it:
  ``{"name": <xBGP's name>, "jit_all": bool, "extra_mem": n, "shared_mem": n,
  "obj_code_list": {<code>: {"obj": "x.o", "permissions": ["read", "write", "usr_ptr"],
  "jit": bool}}, "insertion_points": {<point>: {"replace"|"pre"|"post": {"<seq>": "<code>"}}}}``
  (or ``"job_plugin": {"schedule": n}`` instead of ``insertion_points``). The PDS plugin name
  is the directory's; the manifest's ``name`` is xBGP's own and is kept as it is. The older
  ``manifest.json`` schema is still read (parse_xbgp_legacy) for plugins stored under it.

All paths in a manifest are relative to the plugin directory. Parsing is pure: the caller passes
the plugin's files as a mapping of relative POSIX path -> bytes.
"""

from __future__ import annotations

import difflib
import re
import struct
from dataclasses import dataclass, field
from typing import Any, Mapping

from . import jsondoc
from .errors import FormatError
from .names import validate_name

PQUIC_FLAGS = frozenset({"dynamic_memory", "negotiate", "rate_unlimited"})
PQUIC_ANCHORS = frozenset({"replace", "pre", "post", "extern"})
XBGP_ANCHORS = ("replace", "pre", "post")
XBGP_LEGACY_MANIFEST = "manifest.json"  # the pre-v2 invented schema, read for stored plugins only
XBGP_MANIFEST = XBGP_LEGACY_MANIFEST  # old name, kept for callers
# libxbgp (static_injection.c, at 9dd0f9b): the keys its loader reads, and their limits
XBGP_TOP_KEYS = frozenset({"name", "jit_all", "extra_mem", "shared_mem", "memory_mgmt", "obj_dir",
                           "obj_code_list", "insertion_points", "job_plugin"})
XBGP_CODE_KEYS = frozenset({"obj", "permissions", "jit", "add_memcheck", "use_libffi"})
XBGP_PERMISSIONS = ("none", "usr_ptr", "read", "write")  # valid_perms[]
XBGP_MEMORY_MGMT = ("bump", "michelfra")  # shared_memory.c: memtype_info[]
XBGP_MAX_MEM = 268435456  # static_injection.h: MAX_MEM_PARSE
XBGP_MAX_NAME = 254  # plugin_name[NAME_MAX], NUL included
XBGP_MAX_POINT = 50  # insertion_points_parser: strnlen(name, 50)
XBGP_JOB_POINT = "job_plugins"  # the reserved insertion point of a job plugin
MAX_INCLUDE_DEPTH = 8
MAX_MANIFEST_BYTES = 1 << 20

_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PARAM_RE = re.compile(r"0x[0-9A-Fa-f]{1,4}")
_SEQ_RE = re.compile(r"0|[1-9][0-9]{0,8}")
_PATH_PART_RE = re.compile(r"[A-Za-z0-9_.+-]+")

EM_BPF = 247
ET_REL = 1


@dataclass(frozen=True)
class Hook:
    """One pluglet attachment: where (protoop/insertion point, param, anchor) and which object."""

    point: str
    anchor: str
    pluglet: str
    param: int | None = None
    seq: int | None = None  # xBGP order within an anchor
    source: str = ""  # "file:line" (PQUIC) or JSON path (xBGP), for messages
    code: str = ""  # xBGP: the obj_code_list entry (its permissions are in Manifest.options["codes"])


@dataclass(frozen=True)
class Manifest:
    kind: str  # "pquic" | "xbgp"
    path: str  # manifest file, relative to the plugin directory
    name: str  # plugin name (PQUIC: from the name line; xBGP: the directory name)
    hooks: tuple[Hook, ...]
    flags: tuple[str, ...] = ()
    fragments: tuple[str, ...] = ()  # PQUIC included files, in include order
    options: Mapping[str, object] = field(default_factory=dict)  # xBGP jit_all / memory sizes
    # PQUIC: how many hooks come before the '-' line that ends the pre-negotiation part (None:
    # no such line). The manifest's bytes are bound as they are; this only reports the split.
    pre_negotiation: int | None = None

    @property
    def pluglets(self) -> tuple[str, ...]:
        """Every object file the manifest names, sorted, without duplicates."""
        unattached = self.options.get("unattached", ())
        extra = set(unattached) if isinstance(unattached, (list, tuple, set, frozenset)) else set()
        return tuple(sorted({h.pluglet for h in self.hooks} | extra))

    @property
    def files(self) -> tuple[str, ...]:
        """Manifest files (top level + fragments)."""
        return (self.path, *self.fragments)


def validate_relative_path(path: str, where: str) -> str:
    """A safe path inside the plugin directory: relative, no ``..``/``.``/empty parts,
    no backslashes, only ``[A-Za-z0-9_.+-]`` in each part."""
    if not isinstance(path, str) or not path:
        raise FormatError(f"{where}: empty path")
    if path.startswith("/"):
        raise FormatError(f"{where}: absolute path {path!r} not allowed")
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise FormatError(f"{where}: unsafe path {path!r} (empty, '.' or '..' component)")
        if not _PATH_PART_RE.fullmatch(part):
            raise FormatError(f"{where}: unsafe characters in path {path!r}")
    return path


def ebpf_object_problem(data: bytes) -> str | None:
    """Why `data` is not a relocatable 64-bit eBPF ELF object, or None when it is one.

    A header check only (magic, class, byte order, type, machine); the bytecode verifiers
    decode the rest."""
    if len(data) < 64:
        return "too short to be an ELF object"
    if data[:4] != b"\x7fELF":
        return "not an ELF file (bad magic)"
    if data[4] != 2:
        return "not a 64-bit ELF (eBPF objects are ELFCLASS64)"
    if data[5] not in (1, 2):
        return "bad ELF byte order"
    endian = "<" if data[5] == 1 else ">"
    e_type, e_machine = struct.unpack_from(endian + "HH", data, 16)
    if e_machine != EM_BPF:
        return f"ELF machine is {e_machine}, not eBPF ({EM_BPF})"
    if e_type != ET_REL:
        return f"ELF type is {e_type}, not a relocatable object ({ET_REL})"
    return None


def _decode_text(data: bytes, path: str) -> str:
    if len(data) > MAX_MANIFEST_BYTES:
        raise FormatError(f"{path}: manifest larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"{path}: not UTF-8 (byte {exc.start})") from None
    if "\r" in text or "\x00" in text:
        raise FormatError(f"{path}: contains CR or NUL characters")
    return text


def _parse_pquic_lines(
    files: Mapping[str, bytes],
    path: str,
    top: bool,
    stack: tuple[str, ...],
    hooks: list[Hook],
    fragments: list[str],
    markers: list[int],
) -> tuple[str, tuple[str, ...]]:
    text = _pquic_file_text(files, path, stack)
    name = ""
    flags: tuple[str, ...] = ()
    expect_name = top
    for lineno, raw in enumerate(text.split("\n"), start=1):
        where = f"{path}:{lineno}"
        tokens = raw.split()
        if not tokens or raw.startswith("#"):  # PQUIC's loader skips blank lines and '#' lines
            continue
        if tokens[0].startswith("-") and not expect_name:
            # PQUIC's loader: a line starting with '-' ends the pre-negotiation part
            markers.append(len(hooks))
            continue
        if raw != raw.strip() or "  " in raw or "\t" in raw:
            raise FormatError(f"{where}: tokens must be separated by single spaces")
        if expect_name:
            expect_name = False
            name, flags = _pquic_header(tokens, where)
            continue
        if len(tokens) == 2 and tokens[1] == "include":
            target = _pquic_include_target(tokens[0], where)
            if target not in fragments:
                fragments.append(target)
            _parse_pquic_lines(files, target, False, stack + (path,), hooks, fragments, markers)
            continue
        hooks.append(_pquic_hook(tokens, where))
    if top and not name:
        raise FormatError(f"{path}: empty manifest (first line must be '<plugin name> [flags]')")
    return name, flags


def _pquic_file_text(files: Mapping[str, bytes], path: str, stack: tuple[str, ...]) -> str:
    """The text of manifest file `path`, reached through the include chain `stack`."""
    if path in stack:
        raise FormatError(f"{stack[-1]}: include cycle through {path}")
    if len(stack) >= MAX_INCLUDE_DEPTH:
        raise FormatError(f"{path}: includes nested deeper than {MAX_INCLUDE_DEPTH}")
    if path not in files:
        where = stack[-1] if stack else path
        raise FormatError(f"{where}: included file {path} is missing")
    return _decode_text(files[path], path)


def _pquic_header(tokens: list[str], where: str) -> tuple[str, tuple[str, ...]]:
    """The (name, flags) of a manifest's first line '<plugin name> [flags]'."""
    name = validate_name_at(tokens[0], where)
    flags = tuple(tokens[1:])
    for flag in flags:
        if flag not in PQUIC_FLAGS:
            raise FormatError(
                f"{where}: unknown flag {flag!r} (allowed: {', '.join(sorted(PQUIC_FLAGS))})"
            )
    if len(set(flags)) != len(flags):
        raise FormatError(f"{where}: duplicate flag")
    return name, flags


def _pquic_include_target(token: str, where: str) -> str:
    """The file named by a 'file.plugin include' line."""
    target = validate_relative_path(token, where)
    if not target.endswith(".plugin"):
        raise FormatError(f"{where}: included file {target!r} must end in .plugin")
    return target


def _pquic_hook(tokens: list[str], where: str) -> Hook:
    """The hook of a 'protoop [param 0xNN] anchor file.o' line."""
    if len(tokens) == 3:
        point, anchor, obj = tokens
        param = None
    elif len(tokens) == 5 and tokens[1] == "param":
        point, _, param_text, anchor, obj = tokens
        if not _PARAM_RE.fullmatch(param_text):
            raise FormatError(f"{where}: param {param_text!r} is not hex like 0x1f")
        param = int(param_text, 16)
    else:
        raise FormatError(
            f"{where}: expected 'protoop [param 0xNN] anchor file.o' or 'file.plugin include'"
        )
    if not _IDENT_RE.fullmatch(point):
        raise FormatError(f"{where}: invalid protoop name {point!r}")
    if anchor not in PQUIC_ANCHORS:
        raise FormatError(
            f"{where}: anchor {anchor!r} not one of {', '.join(sorted(PQUIC_ANCHORS))}"
        )
    validate_relative_path(obj, where)
    if not obj.endswith(".o"):
        raise FormatError(f"{where}: pluglet {obj!r} must be an object file ending in .o")
    return Hook(point=point, anchor=anchor, pluglet=obj, param=param, source=where)


def validate_name_at(name: str, where: str) -> str:
    try:
        return validate_name(name)
    except FormatError as exc:
        raise FormatError(f"{where}: {exc}") from None


def parse_pquic(files: Mapping[str, bytes], path: str, dir_name: str | None = None) -> Manifest:
    """Parse the PQUIC manifest at `path` (with its includes) from `files`."""
    validate_relative_path(path, path)
    hooks: list[Hook] = []
    fragments: list[str] = []
    markers: list[int] = []
    name, flags = _parse_pquic_lines(files, path, True, (), hooks, fragments, markers)
    if dir_name is not None and name != dir_name:
        raise FormatError(f"{path}:1: plugin name {name!r} differs from its directory {dir_name!r}")
    if not hooks:
        raise FormatError(f"{path}: names no pluglet")
    seen: dict[tuple[str, int | None], str] = {}
    for hook in hooks:
        if hook.anchor == "replace":
            key = (hook.point, hook.param)
            if key in seen:
                raise FormatError(
                    f"{hook.source}: second 'replace' for {hook.point}"
                    f"{'' if hook.param is None else f' param {hook.param:#x}'} (first at {seen[key]})"
                )
            seen[key] = hook.source
    return Manifest(kind="pquic", path=path, name=name, hooks=tuple(hooks), flags=flags,
                    fragments=tuple(fragments), pre_negotiation=markers[0] if markers else None)


def _nonneg_int(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > 1 << 32:
        raise FormatError(f"{where}: must be an integer in 0..2^32")
    return value


def _is_xbgp_plugin_json(data: bytes) -> bool:
    """An xBGP ``.plugin`` is JSON (its first non-blank byte opens an object); PQUIC's is text."""
    return data.lstrip(b" \t\r\n")[:1] == b"{"


def _xbgp_bool(doc: dict[str, Any], key: str, where: str, default: bool) -> bool:
    if key not in doc:
        return default
    value = doc[key]
    if not isinstance(value, bool):
        raise FormatError(f"{where}: '{key}' must be true or false")
    return value


def _xbgp_mem(doc: dict[str, Any], key: str, where: str, default: int) -> int:
    if key not in doc:
        return default
    value = doc[key]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= XBGP_MAX_MEM:
        raise FormatError(f"{where}: '{key}' must be an integer in 0..{XBGP_MAX_MEM} (libxbgp's MAX_MEM_PARSE)")
    return value


def _unknown_keys(extra: set[str], allowed: frozenset[str] | set[str]) -> str:
    """Unknown keys, each with the allowed key it may be a typo of. libxbgp ignores a key it does
    not know, so a misspelt one silently loses its meaning there; PDS refuses it instead."""
    named = []
    for key in sorted(extra):
        close = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.75)
        named.append(f"{key[:60]!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return (f"{', '.join(named)} (allowed: {', '.join(sorted(allowed))}; libxbgp ignores a key it does not "
            f"know, PDS refuses it)")


def _xbgp_code(code: str, spec: object, where: str, jit_all: bool) -> dict[str, Any]:
    if not _IDENT_RE.fullmatch(code) or len(code) > XBGP_MAX_NAME:
        raise FormatError(f"{where}: code name must be an identifier of at most {XBGP_MAX_NAME} characters")
    if not isinstance(spec, dict):
        raise FormatError(f"{where}: must be an object {{\"obj\": \"x.o\", \"permissions\": [...]}}")
    extra = set(spec) - XBGP_CODE_KEYS
    if extra:
        raise FormatError(f"{where}: unknown key(s) {_unknown_keys(extra, XBGP_CODE_KEYS)}")
    if "obj" not in spec:
        raise FormatError(f"{where}: 'obj' missing (the pluglet's object file; libxbgp requires it)")
    if not isinstance(spec["obj"], str):
        raise FormatError(f"{where}.obj: must be a string")
    obj = validate_relative_path(spec["obj"], f"{where}.obj")
    if not obj.endswith(".o"):
        raise FormatError(f"{where}.obj: pluglet {obj!r} must be an object file ending in .o (libxbgp loads "
                          f"'obj' as the pluglet's eBPF ELF object)")
    perms = spec.get("permissions", [])
    if not isinstance(perms, list) or not all(isinstance(p, str) for p in perms):
        raise FormatError(f"{where}.permissions: must be a list of strings")
    granted: set[str] = set()
    for i, perm in enumerate(perms):
        # libxbgp compares case-insensitively (static_injection.c:parse_permissions_pluglet)
        if perm.lower() not in XBGP_PERMISSIONS:
            raise FormatError(f"{where}.permissions[{i}]: unknown permission {perm[:40]!r} (allowed: "
                              f"{', '.join(XBGP_PERMISSIONS)}; libxbgp would grant every right to it)")
        if perm.lower() != "none":
            granted.add(perm.lower())
    if len(perms) != len({p.lower() for p in perms}):
        raise FormatError(f"{where}.permissions: duplicate permission")
    return {"obj": obj, "permissions": tuple(sorted(granted)), "jit": _xbgp_bool(spec, "jit", where, jit_all),
            "add_memcheck": _xbgp_bool(spec, "add_memcheck", where, False),
            "use_libffi": _xbgp_bool(spec, "use_libffi", where, False)}


def parse_xbgp(files: Mapping[str, bytes], name: str, path: str = XBGP_LEGACY_MANIFEST) -> Manifest:
    """Parse an xBGP ``<x>.plugin`` JSON manifest as libxbgp's loader reads it
    (static_injection.c: global_opts_parser, obj_code_list_parser, insertion_points_parser,
    job_plugin_parser), strictly: unknown keys and wrong types are refused, naming the key.
    `name` is the PDS plugin name (the directory); the manifest's own ``name`` is xBGP's."""
    validate_name(name)
    validate_relative_path(path, path)
    if path == XBGP_LEGACY_MANIFEST:
        return parse_xbgp_legacy(files, name, path)
    doc = _xbgp_document(files, path)
    jit_all = _xbgp_bool(doc, "jit_all", path, False)
    options: dict[str, object] = {
        "xbgp_name": doc["name"], "jit_all": jit_all,
        "extra_mem": _xbgp_mem(doc, "extra_mem", path, 4096),  # libxbgp's defaults
        "shared_mem": _xbgp_mem(doc, "shared_mem", path, 0),
        "memory_mgmt": doc.get("memory_mgmt", "bump"),
    }
    codes = _xbgp_codes(doc, path, jit_all)
    options["codes"] = codes
    hooks: list[Hook]
    points, job = doc.get("insertion_points"), doc.get("job_plugin")
    if points is None and job is None:
        raise FormatError(f"{path}: needs 'insertion_points' or 'job_plugin' (libxbgp loads a plugin by one)")
    if points is not None and job is not None:
        raise FormatError(f"{path}: 'insertion_points' and 'job_plugin' exclude each other (libxbgp)")
    if job is not None:
        hooks = _xbgp_job_hooks(job, codes, path, options)
    else:
        hooks = _xbgp_point_hooks(points, codes, path)
    # A code no insertion point uses is not loaded, but libxbgp's loader still resolves its
    # object's path (obj_code_list_parser: realpath), so its object is one of the plugin's files.
    used = {h.code for h in hooks}
    options["unattached"] = tuple(sorted({spec["obj"] for code, spec in codes.items() if code not in used}))
    return Manifest(kind="xbgp", path=path, name=name, hooks=tuple(hooks), options=options)


def _xbgp_document(files: Mapping[str, bytes], path: str) -> dict[str, Any]:
    """The JSON object of xBGP manifest `path`, its top-level keys, name, obj_dir and
    memory_mgmt checked."""
    if path not in files:
        raise FormatError(f"{path}: missing")
    doc = jsondoc.loads(_decode_text(files[path], path), path)
    if not isinstance(doc, dict):
        raise FormatError(f"{path}: top level must be a JSON object")
    extra = set(doc) - XBGP_TOP_KEYS
    if extra:
        outcome = ""
        if "insertion_points" not in doc and "job_plugin" not in doc:
            outcome = "; so libxbgp finds neither 'insertion_points' nor 'job_plugin' and does not load this plugin"
        raise FormatError(f"{path}: unknown top-level key(s) {_unknown_keys(extra, XBGP_TOP_KEYS)}{outcome}")
    if "name" not in doc:
        raise FormatError(f"{path}: 'name' missing (libxbgp requires the plugin's name)")
    xname = doc["name"]
    if not isinstance(xname, str) or not xname or len(xname.encode()) > XBGP_MAX_NAME or "\x00" in xname:
        raise FormatError(f"{path}: 'name' must be a non-empty string of at most {XBGP_MAX_NAME} bytes")
    if "obj_dir" in doc:
        raise FormatError(f"{path}: 'obj_dir' is not supported: a PDS plugin's objects sit beside its manifest")
    if "memory_mgmt" in doc and doc["memory_mgmt"] not in XBGP_MEMORY_MGMT:
        raise FormatError(f"{path}: 'memory_mgmt' must be one of {', '.join(XBGP_MEMORY_MGMT)}")
    return doc


def _xbgp_codes(doc: dict[str, Any], path: str, jit_all: bool) -> dict[str, dict[str, Any]]:
    """The manifest's obj_code_list, each code checked by _xbgp_code."""
    codes_doc = doc.get("obj_code_list")
    if codes_doc is None:
        raise FormatError(f"{path}: 'obj_code_list' missing (libxbgp requires it)")
    if not isinstance(codes_doc, dict) or not codes_doc:
        raise FormatError(f"{path}: 'obj_code_list' must be a non-empty object {{code: {{\"obj\": ..}}}}")
    return {code: _xbgp_code(code, spec, f"{path}: obj_code_list.{code}", jit_all)
            for code, spec in codes_doc.items()}


def _xbgp_job_hooks(job: object, codes: dict[str, dict[str, Any]], path: str,
                    options: dict[str, object]) -> list[Hook]:
    """The hooks of a job plugin (its schedule goes into `options`)."""
    where = f"{path}: job_plugin"
    if not isinstance(job, dict) or set(job) != {"schedule"}:
        raise FormatError(f"{where}: must be exactly {{\"schedule\": <seconds>}}")
    options["schedule"] = _nonneg_int(job["schedule"], f"{where}.schedule")
    # libxbgp: every code, replace, seq 0, 10, ...
    return [Hook(point=XBGP_JOB_POINT, anchor="replace", pluglet=spec["obj"], seq=10 * i,
                 source=f"{where} ({code})", code=code)
            for i, (code, spec) in enumerate(codes.items())]


def _xbgp_point_hooks(points: object, codes: dict[str, dict[str, Any]], path: str) -> list[Hook]:
    """The hooks of a manifest's insertion_points."""
    if not isinstance(points, dict) or not points:
        raise FormatError(f"{path}: 'insertion_points' must be a non-empty object")
    hooks: list[Hook] = []
    for point, anchors in points.items():
        where = f"{path}: insertion_points.{point}"
        if not _IDENT_RE.fullmatch(point) or len(point) > XBGP_MAX_POINT:
            # libxbgp compares at most 50 characters of a point's name (insertion_points_parser)
            raise FormatError(f"{where}: insertion point name must be an identifier of at most "
                              f"{XBGP_MAX_POINT} characters")
        if not isinstance(anchors, dict) or not anchors:
            raise FormatError(f"{where}: must be a non-empty object {{\"replace\"|\"pre\"|\"post\": ..}}")
        for anchor, seqs in anchors.items():
            hooks.extend(_xbgp_anchor_hooks(point, anchor, seqs, codes, f"{where}.{anchor}"))
    return hooks


def _xbgp_anchor_hooks(point: str, anchor: str, seqs: object, codes: dict[str, dict[str, Any]],
                       awhere: str) -> list[Hook]:
    """The hooks of insertion_points.<point>.<anchor>, {"<seq>": "<code>"}."""
    if anchor not in XBGP_ANCHORS:
        raise FormatError(f"{awhere}: anchor must be one of {', '.join(XBGP_ANCHORS)}")
    if not isinstance(seqs, dict) or not seqs:
        raise FormatError(f"{awhere}: must be a non-empty object {{\"<seq>\": \"<code>\"}}")
    hooks: list[Hook] = []
    for seq, code in seqs.items():
        swhere = f"{awhere}.{seq}"
        if not _SEQ_RE.fullmatch(seq) or int(seq) >= 2**31 - 1:
            raise FormatError(f"{swhere}: sequence must be a decimal number below 2^31-1")
        if not isinstance(code, str):
            raise FormatError(f"{swhere}: must name a code of obj_code_list (a string)")
        if code not in codes:
            raise FormatError(f"{swhere}: code {code[:60]!r} is not in obj_code_list "
                              f"(libxbgp: pluglet not found)")
        hooks.append(Hook(point=point, anchor=anchor, pluglet=codes[code]["obj"], seq=int(seq),
                          source=swhere, code=code))
    return hooks


def parse_xbgp_legacy(files: Mapping[str, bytes], name: str, path: str = XBGP_LEGACY_MANIFEST) -> Manifest:
    """The pre-v2 ``manifest.json`` schema (invented by an earlier brief; no real xBGP plugin
    uses it), still read so that plugins stored in existing logs keep verifying:
    ``{"jit_all": bool, "plugins": {<point>: {"extra_mem": n, "shared_mem": n,
    "replace"|"pre"|"post": {"<seq>": {"path": "x.o"}}}}}``. It declares no permissions
    (``options["legacy"]``), so xBGP's side-effect check cannot pass it."""
    validate_name(name)
    if path not in files:
        raise FormatError(f"{path}: missing")
    doc = jsondoc.loads(_decode_text(files[path], path), path)
    if not isinstance(doc, dict):
        raise FormatError(f"{path}: top level must be an object")
    extra = set(doc) - {"jit_all", "plugins"}
    if extra:
        raise FormatError(f"{path}: unknown top-level key(s) {', '.join(sorted(extra))}")
    if not isinstance(doc.get("jit_all"), bool):
        raise FormatError(f"{path}: 'jit_all' must be true or false")
    points = doc.get("plugins")
    if not isinstance(points, dict) or not points:
        raise FormatError(f"{path}: 'plugins' must be a non-empty object")
    hooks: list[Hook] = []
    options: dict[str, object] = {"jit_all": doc["jit_all"], "legacy": True}
    for point, spec in points.items():
        hooks.extend(_xbgp_legacy_point_hooks(point, spec, f"{path}: plugins.{point}", options))
    return Manifest(kind="xbgp", path=path, name=name, hooks=tuple(hooks), options=options)


def _xbgp_legacy_point_hooks(point: str, spec: object, where: str, options: dict[str, object]) -> list[Hook]:
    """The hooks of a legacy manifest's plugins.<point> (its memory sizes go into `options`)."""
    if not _IDENT_RE.fullmatch(point):
        raise FormatError(f"{where}: invalid insertion point name")
    if not isinstance(spec, dict):
        raise FormatError(f"{where}: must be an object")
    extra = set(spec) - {"extra_mem", "shared_mem", *XBGP_ANCHORS}
    if extra:
        raise FormatError(f"{where}: unknown key(s) {', '.join(sorted(extra))}")
    for mem in ("extra_mem", "shared_mem"):
        if mem in spec:
            options[f"{point}.{mem}"] = _nonneg_int(spec[mem], f"{where}.{mem}")
    anchors = [a for a in XBGP_ANCHORS if a in spec]
    if not anchors:
        raise FormatError(f"{where}: needs at least one of replace, pre, post")
    hooks: list[Hook] = []
    for anchor in anchors:
        hooks.extend(_xbgp_legacy_anchor_hooks(point, anchor, spec[anchor], where))
    return hooks


def _xbgp_legacy_anchor_hooks(point: str, anchor: str, seqs: object, where: str) -> list[Hook]:
    """The hooks of a legacy manifest's plugins.<point>.<anchor>, {"<seq>": {"path": "x.o"}}."""
    if not isinstance(seqs, dict) or not seqs:
        raise FormatError(f"{where}.{anchor}: must be a non-empty object of '<seq>': {{...}}")
    hooks: list[Hook] = []
    for seq, entry in seqs.items():
        ewhere = f"{where}.{anchor}.{seq}"
        if not _SEQ_RE.fullmatch(seq):
            raise FormatError(f"{ewhere}: sequence key must be a decimal number")
        if not isinstance(entry, dict) or set(entry) != {"path"}:
            raise FormatError(f"{ewhere}: must be exactly {{\"path\": \"x.o\"}}")
        obj = validate_relative_path(entry["path"], ewhere)
        if not obj.endswith(".o"):
            raise FormatError(f"{ewhere}: pluglet {obj!r} must end in .o")
        hooks.append(Hook(point=point, anchor=anchor, pluglet=obj, seq=int(seq), source=ewhere))
    return hooks


def parse_manifest_at(files: Mapping[str, bytes], path: str, name: str) -> Manifest:
    """Parse the manifest a binding names (`path`), of whichever protocol its bytes are."""
    if path == XBGP_LEGACY_MANIFEST:
        return parse_xbgp_legacy(files, name, path)
    if path in files and _is_xbgp_plugin_json(files[path]):
        return parse_xbgp(files, name, path)
    return parse_pquic(files, path, dir_name=name)


def find_manifest_path(files: Mapping[str, bytes], name: str) -> str:
    """Which file of a plugin directory is its top-level manifest.

    A top-level ``.plugin`` file holding a JSON object is an xBGP manifest (``manifest.json``:
    the legacy xBGP schema). Otherwise the PQUIC manifest is the one top-level ``.plugin``
    file whose first line that is neither blank nor a ``#`` comment starts with the plugin's
    name (fragments start with a protoop line). Exactly one manifest is allowed."""
    candidates = []
    if XBGP_LEGACY_MANIFEST in files:
        candidates.append(XBGP_LEGACY_MANIFEST)
    for path in sorted(files):
        if "/" in path or not path.endswith(".plugin"):
            continue
        if _is_xbgp_plugin_json(files[path]):
            candidates.append(path)
            continue
        try:
            first = next((ln for ln in files[path].decode("utf-8", "replace").split("\n")
                          if ln.strip() and not ln.startswith("#")), "")
        except Exception:  # pragma: no cover - decode with "replace" cannot fail
            first = ""
        if first.split()[:1] == [name]:
            candidates.append(path)
    if not candidates:
        raise FormatError(
            f"plugins/{name}: no manifest (need an xBGP .plugin JSON or a PQUIC .plugin file starting with {name!r})"
        )
    if len(candidates) > 1:
        raise FormatError(f"plugins/{name}: more than one manifest: {', '.join(candidates)}")
    return candidates[0]


def parse_plugin_manifest(files: Mapping[str, bytes], name: str) -> Manifest:
    """Find and parse the manifest of plugin `name` whose files are `files` (relative paths)."""
    validate_name(name)
    return parse_manifest_at(files, find_manifest_path(files, name), name)


def check_pluglets(manifest: Manifest, files: Mapping[str, bytes], prefix: str = "") -> list[str]:
    """Problems with the objects a manifest names: missing, or not eBPF ELF objects.

    Returns one message per problem (empty list = fine); `prefix` is prepended to paths."""
    problems = []
    for obj in manifest.pluglets:
        hook = next((h for h in manifest.hooks if h.pluglet == obj), None)
        if obj not in files:
            problems.append(f"{prefix}{obj}: missing pluglet named at {prefix}{hook.source if hook else manifest.path}")
            continue
        why = ebpf_object_problem(files[obj])
        if why:
            problems.append(f"{prefix}{obj}: not an eBPF object: {why}")
    return problems
