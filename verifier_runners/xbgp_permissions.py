"""Side effects of an xBGP plugin: xBGP's own model, the manifest's per-code ``permissions``.

libxbgp (ubpf_manager.c: safe_ubpf_register -> check_perms) registers a helper into a code's VM
only when every attribute the helper carries (HELPER_ATTR_READ, _WRITE, _USR_PTR) is among the
code's permissions; a call to a helper that is not registered makes the pluglet fail to load.
So, for every code of the manifest (``obj_code_list``), every helper its object calls must have
``requires`` (configs/xbgp_helpers.yaml: the attributes libxbgp and the host API give each
helper) within the code's ``permissions``: a code without ``write`` calls no writing helper
(``add_attr``, ``set_attr``, ``write_to_buffer``, ``set_peer_info``, ...), without ``usr_ptr`` no
helper that takes a pointer into the pluglet's memory, without ``read`` no reading helper.
``next`` exists only for replace pluglets (``anchors``).

What the config cannot judge is an ``error``, never a pass: a call to a helper with no entry
(no attributes known), a relocation that is not a plain helper call, a manifest that declares
no permissions (the legacy ``manifest.json``).

Checked per code, as the manifest declares it. (libxbgp at 9dd0f9b stores the permissions on the
plugin when its first code loads, plugins_manager.c: add_extension_code -> init_plugin, so at run
time every code of a plugin gets the first code's; where a plugin's codes differ, the check per
code is the one the manifest's author asked for.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pds_log.core.errors import FormatError
from pds_log.core.yamldoc import parse_mapping

from . import ebpf
from .base import ERROR, FAIL, PASS, PluginInput, VerifierResult

CONFIG = Path(__file__).resolve().parent / "configs" / "xbgp_helpers.yaml"
PERMISSIONS = ("read", "usr_ptr", "write")
ANCHORS = ("replace", "pre", "post")


def load_helper_permissions(path: Path = CONFIG) -> dict[str, dict[str, tuple[str, ...]]]:
    """helper -> {"requires": (...), "anchors": (...)} from xbgp_helpers.yaml, validated."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise FormatError(f"{path}: {exc.strerror}") from None
    doc = parse_mapping(text, str(path))
    helpers = doc.get("helpers")
    if not isinstance(helpers, dict) or not helpers:
        raise FormatError(f"{path}: expected 'helpers: {{name: {{requires: [...]}}}}'")
    out: dict[str, dict[str, tuple[str, ...]]] = {}
    for name, entry in helpers.items():
        where = f"{path}: helpers.{name}"
        if not isinstance(entry, dict) or "requires" not in entry:
            raise FormatError(f"{where}: needs 'requires: [..]' (the helper's libxbgp attributes)")
        requires = entry["requires"]
        if not isinstance(requires, list) or any(r not in PERMISSIONS for r in requires):
            raise FormatError(f"{where}.requires: a list of {', '.join(PERMISSIONS)}")
        anchors = entry.get("anchors", list(ANCHORS))
        if not isinstance(anchors, list) or not anchors or any(a not in ANCHORS for a in anchors):
            raise FormatError(f"{where}.anchors: a non-empty list of {', '.join(ANCHORS)}")
        out[str(name)] = {"requires": tuple(sorted(requires)), "anchors": tuple(anchors)}
    return out


def _judge_calls(code: str, calls: list[tuple[str, str]], granted: set[str], code_anchors: set[str],
                 helpers: dict[str, dict[str, tuple[str, ...]]], problems: list[str], unjudged: list[str],
                 log: list[str]) -> None:
    """Judge one code's helper calls against its granted permissions and its anchors."""
    for where, helper in calls:
        entry = helpers.get(helper)
        if entry is None:
            unjudged.append(f"{where}: code {code} calls {helper}, a helper with no libxbgp attributes in the "
                            f"config (not registered by libxbgp or its host API)")
            continue
        missing = [p for p in entry["requires"] if p not in granted]
        if missing:
            problems.append(f"{where}: code {code} calls {helper}, which needs permission "
                            f"{', '.join(missing)}; the manifest grants it "
                            f"{', '.join(sorted(granted)) or 'none'}")
        wrong = sorted(code_anchors - set(entry["anchors"]))
        if wrong:
            problems.append(f"{where}: code {code} calls {helper}, which libxbgp registers only for "
                            f"{', '.join(entry['anchors'])} pluglets, not {', '.join(wrong)}")
        if not missing and not wrong:
            log.append(f"{where}: code {code}: {helper} needs {', '.join(entry['requires']) or 'nothing'}: granted")


def check(verifier: Any, plugin: PluginInput, helpers: dict[str, dict[str, tuple[str, ...]]]) -> VerifierResult:
    """The xBGP side-effect verdict of `plugin` (`verifier` makes the result)."""
    manifest = plugin.manifest
    codes = manifest.options.get("codes")
    if not isinstance(codes, dict):
        return verifier.result(ERROR, f"cannot judge: {manifest.path} declares no per-code permissions "
                                      f"(the legacy manifest.json schema); use the xBGP .plugin JSON")
    problems: list[str] = []  # a call the code's permissions do not allow: fail
    unjudged: list[str] = []  # what the config cannot decide: error
    log: list[str] = []
    anchors: dict[str, set[str]] = {}
    for hook in manifest.hooks:
        anchors.setdefault(hook.code, set()).add(hook.anchor)
    calls_of: dict[str, list[tuple[str, str]]] = {}  # object -> [(where, helper)]
    for code, spec in codes.items():
        obj_path = spec["obj"]
        if obj_path not in plugin.files:  # the manifest names an object the plugin does not ship
            return verifier.result(FAIL, f"{manifest.path}: code {code}: its object {obj_path} is not in the plugin")
        if obj_path not in calls_of:
            try:
                obj = ebpf.load_object(plugin.files[obj_path])
            except ebpf.ObjectError as exc:
                return verifier.result(FAIL, f"{obj_path}: {exc}")
            calls_of[obj_path] = [(f"{obj_path} #{insn.index} in {fname}", insn.reloc)
                                  for _, fname, insns, _ in ebpf.functions(obj)
                                  for insn in insns if insn.is_call() and insn.reloc is not None]
        _judge_calls(code, calls_of[obj_path], set(spec["permissions"]), anchors.get(code, set()), helpers,
                     problems, unjudged, log)
    if problems:
        return verifier.result(FAIL, problems[0] + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""),
                               "\n".join(log + problems + unjudged))
    if unjudged:
        return verifier.result(ERROR, "cannot judge: " + unjudged[0]
                               + (f" (+{len(unjudged) - 1} more)" if len(unjudged) > 1 else ""),
                               "\n".join(log + unjudged))
    return verifier.result(PASS, f"{len(codes)} code(s): every helper call is within the code's permissions",
                           "\n".join(log) or "no helper calls")
