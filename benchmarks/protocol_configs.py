"""The protocol facts our shipped verifier configs are made of, read from the real trees.

    python benchmarks/protocol_configs.py PQUIC_TREE [--xbgp XBGP_API_DIR] [--check]
    python benchmarks/protocol_configs.py PQUIC_TREE --print helpers|keys|protoops

PQUIC_TREE is a checkout of p-quic/pquic; XBGP_API_DIR the `xbgp_compliant_api` directory of
pluginized-protocols/xbgp_plugins. Neither is part of this repository: the YAML under
verifier_runners/configs/ is committed data, and this script is how it was made and how it is
kept honest. It reads

- the helpers PQUIC registers with its VM (`ubpf_register(vm, idx, "name", fn)` in
  picoquic/ubpf.c),
- the access keys (`#define AK_<GROUP>_<FIELD> 0x..` in picoquic/getset.h) and, for every
  writing helper declared there (`void set_*(...)`), which argument register carries the key
  (or, for the metadata setters, the index),
- the protocol operations PQUIC defines (`#define PROTOOPID_* "name"` in picoquic/protoop.h)
  and the ones the plugins' manifests attach to,
- the xBGP helpers (the `extern` functions of xbgp_common_vm.h and xbgp_plugin_api.h).

`--check` compares these with the shipped configs and exits 1 on any difference (helpers
missing or extra, a key number or key register that differs, a protoop without a spec).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from pds_log.core.yamldoc import parse_mapping  # noqa: E402

CONFIGS = HERE.parent / "verifier_runners" / "configs"

# getset.h group prefix -> (field prefix, the helper that writes it or None)
AK_GROUPS = {
    "PKTCTX": ("pkt_ctx", "set_pkt_ctx"),
    "PKT": ("pkt", "set_pkt"),
    "CNXID": ("cnxid", "set_cnxid"),
    "CNX": ("cnx", "set_cnx"),
    "PATH": ("path", "set_path"),
    "SACKITEM": ("sack_item", "set_sack_item"),
    "STREAMHEAD": ("stream_head", "set_stream_head"),
    "STREAMDATA": ("stream_data", None),  # get_stream_data only
    "CRYPTOCONTEXT": ("crypto_context", "set_crypto_context"),
    "PH": ("ph", "set_ph"),
    "PIDREQ": ("preq", "set_preq"),
}
_AK = re.compile(r"^#define\s+AK_(" + "|".join(AK_GROUPS) + r")_(\w+)\s+(0x[0-9A-Fa-f]+|\d+)\b", re.M)
_SETTER = re.compile(r"^void\s+(set_\w+)\s*\(([^)]*)\)\s*;", re.M)
_REGISTER = re.compile(r'ubpf_register\s*\(\s*vm\s*,\s*[^,]+,\s*"([^"]+)"')
_PROTOOPID = re.compile(r'^#define\s+PROTOOPID_\w+\s+"([^"]+)"', re.M)
_EXTERN = re.compile(r"^extern\s+[^;(]*?\**\s*\b(\w+)\s*\(", re.M)
_ANCHORS = ("replace", "pre", "post", "extern")


def registered_helpers(tree: Path) -> list[str]:
    return sorted(set(_REGISTER.findall((tree / "picoquic" / "ubpf.c").read_text(errors="replace"))))


def access_keys(tree: Path) -> dict[str, dict[str, int]]:
    """writing helper -> field -> getset.h number."""
    out: dict[str, dict[str, int]] = {}
    for group, field, value in _AK.findall((tree / "picoquic" / "getset.h").read_text(errors="replace")):
        prefix, helper = AK_GROUPS[group]
        if helper:
            out.setdefault(helper, {})[f"{prefix}.{field.lower()}"] = int(value, 0)
    return out


def writer_registers(tree: Path) -> dict[str, tuple[str, int]]:
    """set_* helper -> ("key" | "index", argument register): r1 is the first argument."""
    out = {}
    for helper, args in _SETTER.findall((tree / "picoquic" / "getset.h").read_text(errors="replace")):
        params = [a.strip() for a in args.split(",")]
        for i, param in enumerate(params):
            if param.startswith("access_key_t"):
                out[helper] = ("key", i + 1)
                break
            if re.fullmatch(r"int\s+idx", param):
                out[helper] = ("index", i + 1)
                break
    return out


def pquic_protoops(tree: Path) -> list[str]:
    return sorted(set(_PROTOOPID.findall((tree / "picoquic" / "protoop.h").read_text(errors="replace"))))


def attached_protoops(tree: Path) -> list[str]:
    """Every protoop a manifest under plugins/ attaches a pluglet to."""
    names = set()
    for manifest in (tree / "plugins").rglob("*.plugin"):
        for line in manifest.read_text(errors="replace").splitlines():
            words = line.split()
            if len(words) >= 3 and not words[0].startswith(("#", "-")) and words[-1].endswith(".o"):
                if words[-2] in _ANCHORS:
                    names.add(words[0])
    return sorted(names)


def xbgp_helpers(api: Path) -> list[str]:
    names = set()
    for header in ("xbgp_common_vm.h", "xbgp_plugin_api.h"):
        names.update(_EXTERN.findall((api / header).read_text(errors="replace")))
    return sorted(names)


def _shipped(name: str) -> dict:
    return parse_mapping((CONFIGS / name).read_text(), name)


def check(tree: Path, xbgp_api: Path | None) -> list[str]:
    problems = []
    real = set(registered_helpers(tree))
    listed = set(_shipped("pquic_helpers.yaml")["helpers"])
    problems += [f"pquic_helpers.yaml: {h} is registered by ubpf.c but not listed" for h in sorted(real - listed)]
    problems += [f"pquic_helpers.yaml: {h} is listed but ubpf.c does not register it" for h in sorted(listed - real)]
    spec = _shipped("pquic_side_effects.yaml")
    keys = access_keys(tree)
    for helper, fields in keys.items():
        shipped = spec["keys"].get(helper)
        if shipped is None:
            problems.append(f"pquic_side_effects.yaml: keys has no {helper}")
            continue
        if shipped.get("fields") != fields:
            for field in sorted(set(fields) | set(shipped.get("fields") or {})):
                a, b = fields.get(field), (shipped.get("fields") or {}).get(field)
                if a != b:
                    problems.append(f"pquic_side_effects.yaml: {helper} {field}: getset.h {a} vs shipped {b}")
    for helper, (kind, register) in writer_registers(tree).items():
        section = spec["keys"] if kind == "key" else spec.get("private", {})
        entry = section.get(helper)
        if not entry:
            problems.append(f"pquic_side_effects.yaml: writing helper {helper} is not judged ({kind} r{register})")
        elif entry.get(kind) != f"r{register}":
            problems.append(f"pquic_side_effects.yaml: {helper}: {kind} is r{register} in getset.h, "
                            f"shipped {entry.get(kind)}")
    effects = spec.get("helpers") or {}
    classified = {h for group in effects.values() for h in (group.get("names") or [])}
    classified |= set(spec["keys"]) | set(spec.get("private") or {})
    problems += [f"pquic_side_effects.yaml: registered helper {h} has no effect class"
                 for h in sorted(real - classified)]
    problems += [f"pquic_side_effects.yaml: {h} has an effect class but ubpf.c does not register it"
                 for h in sorted(classified - real)]
    protoops = set(pquic_protoops(tree)) | set(attached_protoops(tree))
    problems += [f"pquic_side_effects.yaml: protoop {p} has no spec" for p in sorted(protoops - set(spec["protoops"]))]
    header = (HERE.parent / "pds_log" / "data" / "pquic" / "pquic.h").read_text()
    ours = {f"AK_{g}_{f}": int(v, 0) for g, f, v in _AK.findall(header)}
    theirs = {f"AK_{g}_{f}": int(v, 0) for g, f, v in _AK.findall((tree / "picoquic" / "getset.h").read_text())}
    problems += [f"pds_log/data/pquic/pquic.h: {k} = {v:#x}, getset.h says {theirs.get(k)}"
                 for k, v in sorted(ours.items()) if theirs.get(k) != v]
    if xbgp_api is not None:
        real_x = set(xbgp_helpers(xbgp_api))
        listed_x = set(_shipped("xbgp_helpers.yaml")["helpers"])
        problems += [f"xbgp_helpers.yaml: {h} is declared by the xBGP API but not listed"
                     for h in sorted(real_x - listed_x)]
        problems += [f"xbgp_helpers.yaml: {h} is listed but the xBGP API does not declare it"
                     for h in sorted(listed_x - real_x)]
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pquic", type=Path)
    parser.add_argument("--xbgp", type=Path, help="xbgp_compliant_api directory")
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--print", choices=["helpers", "keys", "protoops", "xbgp", "defines"])
    args = parser.parse_args()
    if args.print == "helpers":
        for h in registered_helpers(args.pquic):
            print(f"  {h}: {{}}")
    elif args.print == "xbgp":
        for h in xbgp_helpers(args.xbgp):
            print(f"  {h}: {{}}")
    elif args.print == "keys":
        registers = writer_registers(args.pquic)
        for helper, fields in sorted(access_keys(args.pquic).items()):
            print(f"  {helper}:\n    key: r{registers[helper][1]}\n    fields:")
            for field, value in sorted(fields.items(), key=lambda kv: kv[1]):
                print(f"      {field}: {value:#04x}")
    elif args.print == "defines":  # the AK_* block of pds_log/data/pquic/pquic.h
        text = (args.pquic / "picoquic" / "getset.h").read_text(errors="replace")
        for group, field, value in _AK.findall(text):
            print(f"#define AK_{group}_{field} {int(value, 0):#04x}")
    elif args.print == "protoops":
        core = set(pquic_protoops(args.pquic))
        for p in sorted(core | set(attached_protoops(args.pquic))):
            print(p, "" if p in core else "(plugin)")
    if args.check:
        problems = check(args.pquic, args.xbgp)
        for p in problems:
            print(p)
        print(f"{len(problems)} difference(s) between the shipped configs and the tree")
        sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
