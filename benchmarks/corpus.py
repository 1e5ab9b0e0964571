"""Compatibility benchmark: the real PQUIC and xBGP plugin corpora through PDS.

    python benchmarks/corpus.py PQUIC_TREE [XBGP_TREE] [--libxbgp LIBXBGP] [--check] [--no-safety] [--termination]
        [--json]

PQUIC_TREE is a checkout of p-quic/pquic (its `plugins/` and `picoquic/`), XBGP_TREE one of
pluginized-protocols/xbgp_plugins. Neither is part of this repository. For every top-level
manifest (PQUIC: a `.plugin` whose first line names the plugin; fragments are pulled in by
it; xBGP: every `.plugin` JSON), the benchmark

1. imports it with `pds dev import` into a scratch directory (a name per variant when several
   manifests share one plugin name),
2. builds every pluglet with the default recipe, one stage after the other (the pluglets of a
   plugin are counted one by one, a failure does not stop the others),
3. builds the same source with the plugin's own Makefile pipeline in the original tree
   (`clang $(CFLAGS) -O2 -fno-gnu-inline-asm -emit-llvm -c x.c -o - | llc -march=bpf
   -filetype=obj`) and compares bytes,
4. with --check, runs `pds pv check` (the default verifiers) on every plugin whose pluglets
   all built, and counts the verdicts per verifier;
5. unless --no-safety, runs the two fast in-process verifiers, bytecode_safety and
   side_effects, on the built pluglets of every plugin, and counts the calls to helpers the
   host registers that the allow-list refuses, the calls to registered helpers the side-effect
   check cannot judge (no effect class / no libxbgp attributes: writes nothing checks), the
   distinct pluglets refused for local calls, and every remaining verdict with its reason;
6. with --termination, runs the loop verifiers `termination` and `bounded` (in-process, on the
   IR of the default recipe) on every plugin's built pluglets and counts, per distinct pluglet
   whose bytecode loops, which pass termination, which pass bounded, which neither, with the
   reason of every loop that does not pass.

On XBGP_TREE (run_xbgp_corpus; PQUIC_TREE may be `-` to skip PQUIC) every `.plugin` JSON is
read with PDS's strict parser, imported (libxbgp's include/ as -I), built with the default
recipe, compared with xbgp_plugins' own pipeline (Makefile_plugins: `clang $(CFLAGS)
-emit-llvm`, `llc -O2 -march=bpf`), its helper calls counted against what libxbgp registers
(with --libxbgp, xbgp_helpers.yaml is checked against libxbgp's ubpf_api.c and the host API's
xbgp_api_vars.h, attributes included), safety and side_effects run as for PQUIC (the
permission gate for side_effects), every top-level directory accounted for (a plugin's
manifests, or why it holds none), and with --check run through `pds pv check`.

It prints the counts and every failure with its reason.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from pds_log.core.errors import PdsError  # noqa: E402
from pds_log.core.recipe import BuildRecipe, plugin_defines  # noqa: E402
from pds_log.developer.build import read_plugin_dir  # noqa: E402
from pds_log.developer.importer import _makefile_flags, import_plugin  # noqa: E402


def top_level_pquic_manifests(tree: Path) -> list[Path]:
    out = []
    for path in sorted((tree / "plugins").rglob("*.plugin")):
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines()]
        content = [ln for ln in lines if ln and not ln.startswith("#")]
        if content and not content[0].split()[-1].endswith(".o") and content[0].split()[-1] != "include":
            out.append(path)
    return out


def makefile_reference(source: Path, out: Path) -> bool:
    """PQUIC's own pipeline for one source, in its directory, with its Makefile's CFLAGS."""
    directory = source.parent
    for candidate in (directory, *directory.parents):
        if (candidate / "Makefile").is_file():
            makefile_dir = candidate
            break
    else:
        return False
    defines, includes, _ = _makefile_flags(makefile_dir)
    rel_includes = [f"-I{(makefile_dir / i).resolve()}" for i in includes]
    cmd = (f"clang {' '.join('-D' + d for d in defines)} {' '.join(rel_includes)} -O2 -fno-gnu-inline-asm "
           f"-emit-llvm -c {shlex.quote(source.name)} -o - | llc -march=bpf -filetype=obj -o {shlex.quote(str(out))}")
    run = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=directory, capture_output=True)
    return run.returncode == 0 and out.exists() and out.stat().st_size > 0


def build_pluglets(plugin: Path, pluglets: list[str], recipe: BuildRecipe) -> dict[str, str | None]:
    """pluglet -> None when built, else why not."""
    files = read_plugin_dir(plugin)
    defines = plugin_defines(files)
    out: dict[str, str | None] = {}
    for pluglet in pluglets:
        why = None
        for argv in recipe.stages(pluglet, defines=defines):
            run = subprocess.run(argv, cwd=plugin, capture_output=True, text=True)
            if run.returncode != 0:
                lines = [ln for ln in run.stderr.splitlines() if "error" in ln.lower()] or run.stderr.splitlines()
                why = f"{argv[0]}: {(lines[0] if lines else f'exit {run.returncode}')[:160]}"
                break
        (plugin / (pluglet + ".bc")).unlink(missing_ok=True)
        out[pluglet] = why
    return out


def pquic_pluglets(plugin: Path) -> list[str]:
    """Objects named by a PQUIC manifest and its fragments (as the importer copied them)."""
    names = []
    for manifest in plugin.rglob("*.plugin"):
        for line in manifest.read_text(errors="replace").splitlines():
            words = line.split()
            if words and not line.lstrip().startswith(("#", "-")) and words[-1].endswith(".o"):
                rel = (manifest.parent / words[-1]).relative_to(plugin).as_posix()
                names.append(rel)
    return sorted(set(names))


_REFUSED = re.compile(r"^(?P<pluglet>\S+): #\d+: call to (?P<helper>\S+), which is not on the helper allow-list")
# a call the side-effect check cannot judge: PQUIC's spec has no effect class for the helper, or
# xBGP's helper list gives it no libxbgp attributes (so what it writes is checked by nothing)
_UNJUDGED = (re.compile(r"^(?P<pluglet>\S+) #\d+ in \S+: the spec has no effect class for helper (?P<helper>\S+)"),
             re.compile(r"^(?P<pluglet>\S+) #\d+ in \S+: code \S+ calls (?P<helper>\S+), a helper with no libxbgp "
                        r"attributes"))
_LOCAL_CALL = re.compile(r"^(?P<pluglet>\S+): #\d+: local call without a relocation")
REFUSED_REGISTERED = "safety: call sites of registered helpers refused by the allow-list"
UNJUDGED_REGISTERED = "side_effects: calls to registered helpers the check cannot judge (writes unchecked)"
UNJUDGED_OTHER = "side_effects: calls the check cannot judge to functions the host does not register"
LOCAL_CALLS = "safety: distinct pluglets failing on local calls"


def safety_counts(dest: Path, name: str, registered: set[str], counts: collections.Counter,
                  verdicts: dict, failures: list[str], rel: Path, ok: set[str],
                  local_calls: set[str] | None = None, source_of=None) -> None:
    """bytecode_safety and side_effects in-process on one imported plugin; the sources of the
    pluglets safety refuses for local calls go to `local_calls` (`source_of(pluglet)` names them)."""
    import verifier_runners as vr
    from pds_log.core.manifest import parse_plugin_manifest

    verifiers = _fast_verifiers()
    files = read_plugin_dir(dest)
    try:
        manifest = parse_plugin_manifest(files, name)
    except PdsError as exc:
        failures.append(f"{rel}: manifest: {exc}")
        return
    # a plugin whose pluglets did not all build is checked on those that did
    built = tuple(h for h in manifest.hooks if h.pluglet in ok and h.pluglet in files)
    if len(built) != len(manifest.hooks):
        counts["plugins checked on their built pluglets only"] += 1
        manifest = dataclasses.replace(manifest, hooks=built)
        if isinstance(manifest.options.get("codes"), dict):  # xBGP: the permission gate reads the codes
            codes = {c: spec for c, spec in manifest.options["codes"].items() if spec["obj"] in ok}
            manifest = dataclasses.replace(manifest, options={**manifest.options, "codes": codes})
    counts["plugins checked (safety, side_effects)"] += 1
    counts["pluglets checked (safety, side_effects), with variants"] += len(manifest.pluglets)
    plugin = vr.PluginInput(name, "0" * 40, files, manifest)
    for vname, verifier in verifiers.items():
        result = vr.run_verifier(verifier, plugin)
        verdicts[vname][result.status] += 1
        refused = {(m["pluglet"], m["helper"]) for m in map(_REFUSED.match, result.log.splitlines()) if m}
        refused_registered = {(p, h) for p, h in refused if h in registered}
        unjudged = [m for line in result.log.splitlines() for rx in _UNJUDGED if (m := rx.match(line))]
        counts[REFUSED_REGISTERED] += len(refused_registered)
        counts[UNJUDGED_REGISTERED] += sum(m["helper"] in registered for m in unjudged)
        counts[UNJUDGED_OTHER] += sum(m["helper"] not in registered for m in unjudged)
        for pluglet, helper in sorted(refused_registered):
            failures.append(f"{rel}: {pluglet}: registered helper {helper} refused by the allow-list")
        for m in unjudged:
            if m["helper"] in registered:
                failures.append(f"{rel}: {m['pluglet']}: registered helper {m['helper']} unjudged by side_effects")
        if local_calls is not None and source_of is not None:
            local_calls |= {source_of(m["pluglet"]) for m in map(_LOCAL_CALL.match, result.log.splitlines()) if m}
        if vname == "side_effects":
            for line in result.log.splitlines():
                if " is not allowed in protoop " in line or " with unknown key " in line or "cannot judge" in line \
                        or "non-constant key" in line or "does not know" in line:
                    counts["side_effects: problem lines"] += 1
                    failures.append(f"{rel}: side_effects: {line}")
        if result.status != "pass":
            failures.append(f"{rel}: {vname}: {result.status}: {result.reason[:300]}")


_FAST: dict = {}


def _fast_verifiers() -> dict:
    if not _FAST:
        import verifier_runners as vr

        _FAST.update(vr.build_verifiers({"safety": {"runner": "bytecode_safety"},
                                         "side_effects": {"runner": "side_effects"}}))
    return _FAST


# ---------------------------------------------------------------------- termination / bounded
_BACK_EDGES = re.compile(r"^(?P<pluglet>\S+\.o): (?P<count>\d+) back edge\(s\) in the bytecode")
_LOOP_VERDICT = re.compile(r"^(?P<pluglet>\S+\.o): (?P<where>.+?): (?P<status>pass|fail|error): (?P<why>.*)$")


def termination_counts(dest: Path, name: str, ok: set[str], original_dir: Path, loops: dict) -> None:
    """`termination` and `bounded` in-process on one imported plugin's built pluglets; records,
    per distinct pluglet source that loops, each verifier's worst loop verdict and the reasons of
    the loops that do not pass (into `loops`: source -> {verifier: status, "reasons": [...]})."""
    import verifier_runners as vr
    from pds_log.core.manifest import parse_plugin_manifest

    if not _LOOP_VERIFIERS:
        _LOOP_VERIFIERS.update(vr.build_verifiers({"termination": {"runner": "termination"},
                                                   "bounded": {"runner": "bounded"}}))
    files = read_plugin_dir(dest)
    try:
        manifest = parse_plugin_manifest(files, name)
    except PdsError:
        return  # counted by the other sections
    todo = [p for p in manifest.pluglets if p in ok and p in files
            and (original_dir / p).with_suffix(".c").resolve() not in loops]
    if not todo:
        return
    manifest = dataclasses.replace(manifest, hooks=tuple(h for h in manifest.hooks if h.pluglet in todo))
    plugin = vr.PluginInput(name, "0" * 40, files, manifest)
    found: dict[str, dict] = {}
    for vname, verifier in _LOOP_VERIFIERS.items():
        result = vr.run_verifier(verifier, plugin)
        for line in result.log.splitlines():
            m = _BACK_EDGES.match(line)
            if m and int(m["count"]) and vname == "termination":
                found[m["pluglet"]] = {"reasons": []}
        rank = {"pass": 0, "error": 1, "fail": 2}
        for line in result.log.splitlines():
            m = _LOOP_VERDICT.match(line)
            if not m or m["pluglet"] not in found:
                continue
            entry = found[m["pluglet"]]
            if rank[m["status"]] >= rank[entry.get(vname, "pass")]:
                entry[vname] = m["status"]
            if m["status"] != "pass":
                entry["reasons"].append(f"{vname}: {m['where']}: {m['status']}: {m['why']}")
        for entry in found.values():
            if vname not in entry:  # no verdict line for this pluglet: the verifier's own word
                entry[vname] = result.status
                entry["reasons"].append(f"{vname}: {result.status}: {result.reason}")
    for pluglet, entry in found.items():
        entry["debug_info_difference"] = debug_info_difference(dest, pluglet, plugin_defines(files))
        loops[(original_dir / pluglet).with_suffix(".c").resolve()] = entry


def debug_info_difference(plugin: Path, pluglet: str, defines: tuple[str, ...]) -> str | None:
    """None when ScalarEvolution counts the loops of the recipe's exact first-stage bitcode (what
    llc compiles) as it counts those of the `-g -S` IR the loop verifiers analyse (header block
    names aside); else the difference."""
    from verifier_runners.termination import parse_scalar_evolution

    recipe = BuildRecipe()
    counts = []
    with tempfile.TemporaryDirectory(prefix="pds-scev-") as tmp:
        exact, text = Path(tmp) / "exact.bc", Path(tmp) / "debug.ll"
        for argv, ir in ((recipe.stages(pluglet, str(Path(tmp) / "x.o"), defines, ir=str(exact))[0], exact),
                         (recipe.ir_argv(pluglet, str(text), defines), text)):
            built = subprocess.run(argv, cwd=plugin, capture_output=True, text=True)
            scev = subprocess.run(["opt", "-passes=print<scalar-evolution>", "-disable-output", str(ir)],
                                  capture_output=True, text=True)
            if built.returncode or scev.returncode:
                return f"{argv[0]} or opt failed"
            report = parse_scalar_evolution(scev.stdout + scev.stderr)
            counts.append([(loop.function, loop.exact, loop.max) for loop in report.loops])
    return None if counts[0] == counts[1] else f"exact bitcode {counts[0]} vs -g IR {counts[1]}"


_LOOP_VERIFIERS: dict = {}


def termination_summary(loops: dict, tree: Path) -> dict:
    """The counts of `termination_counts` and the reasons of every looping pluglet that does not
    pass both."""
    counts = collections.Counter()
    reasons = []
    for source, entry in sorted(loops.items()):
        counts["looping pluglets"] += 1
        t, b = entry.get("termination"), entry.get("bounded")
        counts[f"termination {t}"] += 1
        counts[f"bounded {b}"] += 1
        counts["termination pass, bounded pass" if t == b == "pass" else
               "termination pass, bounded not" if t == "pass" else "neither"] += 1
        if entry.get("debug_info_difference") is None:
            counts["same ScalarEvolution counts in the exact bitcode and the -g IR"] += 1
        else:
            reasons.append(f"{source.relative_to(tree.resolve())}: -g changes the counts: "
                           f"{entry['debug_info_difference'][:300]}")
        for reason in entry["reasons"]:
            reasons.append(f"{source.relative_to(tree.resolve())}: {reason[:300]}")
    return {"counts": dict(counts), "reasons": reasons}


def run_corpus(kind: str, manifests: list[Path], tree: Path, work: Path, check: bool, safety: bool = False,
               termination: bool = False) -> dict:
    recipe = BuildRecipe()
    registered: set[str] = set()
    if safety and kind == "pquic":
        from protocol_configs import registered_helpers

        registered = set(registered_helpers(tree))
    counts: collections.Counter = collections.Counter()
    failures: list[str] = []
    verdicts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    names: collections.Counter = collections.Counter()
    seen_sources: set[Path] = set()
    check_seconds: list[float] = []
    checked_sources: set[Path] = set()
    loops: dict = {}  # --termination: distinct looping pluglet source -> verdicts
    local_calls: set[str] = set()  # sources of the pluglets safety refuses for local calls
    for manifest in manifests:
        counts["manifests"] += 1
        rel = manifest.relative_to(tree)
        if kind == "pquic":
            content = [ln for ln in manifest.read_text(errors="replace").splitlines()
                       if ln.strip() and not ln.lstrip().startswith("#")]
            original = content[0].split()[0]
        else:
            original = json.loads(manifest.read_text()).get("name", manifest.stem)
            original = f"org.xbgp.{original}"
        names[original] += 1
        name = original if names[original] == 1 else f"{original}.v{names[original]}"
        dest = work / kind / str(rel).replace("/", "__")
        try:
            import_plugin(manifest, dest, name=name if (name != original or kind == "xbgp") else None)
        except PdsError as exc:
            counts["import failed"] += 1
            failures.append(f"{rel}: import: {exc}")
            continue
        counts["imported"] += 1
        if kind == "pquic":
            pluglets = pquic_pluglets(dest)
        else:
            doc = json.loads(manifest.read_text())
            pluglets = sorted({str(c["obj"]) for c in doc["obj_code_list"].values()})
        built = build_pluglets(dest, pluglets, recipe)
        for pluglet, why in built.items():
            source = (manifest.parent / pluglet).with_suffix(".c").resolve()
            first = source not in seen_sources
            seen_sources.add(source)
            if first:
                counts["distinct pluglets"] += 1
            if why is not None:
                if first:
                    counts["distinct not built"] += 1
                    ref = work / "ref-failed" / (str(source.relative_to(tree)).replace("/", "__") + ".o")
                    ref.parent.mkdir(parents=True, exist_ok=True)
                    theirs = makefile_reference(source, ref)
                    counts["distinct not built that PQUIC's own Makefile pipeline builds"] += theirs
                    why += (" (PQUIC's own Makefile pipeline builds it: a difference of our recipe)" if theirs else
                            " (PQUIC's own Makefile pipeline fails on it too, with the same compiler: a property "
                            "of the plugin)")
                failures.append(f"{rel}: {pluglet}: {why}")
                continue
            if first:
                counts["distinct built"] += 1
                ref = work / "ref" / (str(source.relative_to(tree)).replace("/", "__") + ".o")
                ref.parent.mkdir(parents=True, exist_ok=True)
                if makefile_reference(source, ref):
                    counts["reference objects"] += 1
                    if ref.read_bytes() == (dest / pluglet).read_bytes():
                        counts["reproduced byte for byte"] += 1
                    else:
                        failures.append(f"{rel}: {pluglet}: differs from the Makefile's object")
        if safety:
            safety_counts(dest, name, registered, counts, verdicts, failures, rel,
                          {p for p, why in built.items() if why is None}, local_calls,
                          lambda p, m=manifest: str((m.parent / p).with_suffix(".c").resolve().relative_to(
                              tree.resolve())))
            for pluglet, why in built.items():
                if why is None:
                    checked_sources.add((manifest.parent / pluglet).with_suffix(".c").resolve())
        if termination:
            termination_counts(dest, name, {p for p, why in built.items() if why is None}, manifest.parent, loops)
        if check and all(why is None for why in built.values()):
            start = time.perf_counter()
            run = subprocess.run([sys.executable, "-m", "pds_log", "pv", "check", str(dest), "--name", name,
                                  "--json"], capture_output=True, text=True)
            check_seconds.append(time.perf_counter() - start)
            try:
                results = json.loads(run.stdout)
            except ValueError:
                failures.append(f"{rel}: pv check: {run.stderr.strip()[-200:]}")
                continue
            for r in results:
                verdicts[r["verifier"]][r["status"]] += 1
                if r["status"] != "pass":
                    failures.append(f"{rel}: {r['verifier']}: {r['status']}: {r['reason'][:200]}")
    if safety:
        counts["distinct pluglets checked (safety, side_effects)"] = len(checked_sources)
        counts[LOCAL_CALLS] = len(local_calls)
        failures += [f"{source}: safety: local calls (BPF-to-BPF), which PQUIC's VM reads as helper ids"
                     for source in sorted(local_calls)]
    return {"kind": kind, "counts": dict(counts), "verdicts": {k: dict(v) for k, v in verdicts.items()},
            "check_seconds": {"median": sorted(check_seconds)[len(check_seconds) // 2] if check_seconds else None,
                              "max": max(check_seconds) if check_seconds else None},
            "failures": failures, **({"termination": termination_summary(loops, tree)} if termination else {})}


# ---------------------------------------------------------------------------- xBGP (XBGP_TREE)
_XBGP_ATTR = {"HELPER_ATTR_USR_PTR": "usr_ptr", "HELPER_ATTR_WRITE": "write", "HELPER_ATTR_READ": "read",
              "HELPER_ATTR_NONE": None}


def _xbgp_registrations(text: str, array: str) -> dict[str, tuple[str, ...]]:
    """name -> attributes of the entries of C array `array` ({.name = "..", .attributes = ..})."""
    body = text[text.index(array):]
    body = body[:body.index("\n};")]
    out = {}
    for entry in re.split(r"\}\s*,\s*\{", body):
        name = re.search(r'\.name\s*=\s*"(\w+)"', entry)
        attrs = re.search(r"\.attributes\s*=\s*([A-Z_| ]+)", entry)
        if name:
            bits = {_XBGP_ATTR[a.strip()] for a in (attrs.group(1) if attrs else "HELPER_ATTR_NONE").split("|")}
            out[name.group(1)] = tuple(sorted(bits - {None}))
    return out


def xbgp_registered_helpers(libxbgp: Path, tree: Path) -> dict[str, tuple[str, ...]]:
    """What a libxbgp BGP host registers into a pluglet's VM, with each helper's attributes:
    libxbgp's ubpf_api.c:base_api_fun__ and xbgp_plugins' xbgp_compliant_api/xbgp_api_vars.h:api_funcs."""
    base = _xbgp_registrations((libxbgp / "ubpf_api.c").read_text(errors="replace"), "proto_ext_fun_t base_api_fun__[]")
    host = _xbgp_registrations((tree / "xbgp_compliant_api" / "xbgp_api_vars.h").read_text(errors="replace"),
                               "static proto_ext_fun_t api_funcs[]")
    return {**base, **host}


def check_xbgp_helpers(libxbgp: Path, tree: Path) -> list[str]:
    """Differences between configs/xbgp_helpers.yaml and what libxbgp and the host API register."""
    from verifier_runners.xbgp_permissions import load_helper_permissions

    real, shipped = xbgp_registered_helpers(libxbgp, tree), load_helper_permissions()
    problems = [f"xbgp_helpers.yaml: {h} is registered but not listed" for h in sorted(set(real) - set(shipped))]
    problems += [f"xbgp_helpers.yaml: {h} is listed but not registered" for h in sorted(set(shipped) - set(real))]
    problems += [f"xbgp_helpers.yaml: {h} requires {shipped[h]['requires']}, libxbgp says {real[h]}"
                 for h in sorted(set(real) & set(shipped)) if shipped[h]["requires"] != real[h]]
    return problems


def xbgp_makefile_reference(source: Path, out: Path) -> bool:
    """xbgp_plugins' own pipeline (Makefile_plugins): clang $(CFLAGS) -emit-llvm -c, llc -O2."""
    bc = out.with_suffix(".bc")
    first = subprocess.run(["clang", "-O2", "-Wall", "-Wshadow", "-Wextra", "-Wwrite-strings", "-Wcast-qual",
                            "-Wmissing-prototypes", "-Wmissing-declarations", "-Wpointer-arith",
                            "-Wbad-function-cast", "-fno-stack-protector", "-emit-llvm", "-c", source.name,
                            "-o", str(bc)], cwd=source.parent, capture_output=True)
    if first.returncode != 0:
        return False
    second = subprocess.run(["llc", "-O2", "-march=bpf", "-filetype=obj", "-o", str(out), str(bc)],
                            capture_output=True)
    return second.returncode == 0 and out.stat().st_size > 0


def xbgp_directories(tree: Path) -> dict[str, str]:
    """Every top-level directory of xbgp_plugins, and what it is for PDS: the manifests it holds
    (each a plugin libxbgp loads), or why it holds none."""
    out: dict[str, str] = {}
    top_makefile = (tree / "Makefile").read_text(errors="replace") if (tree / "Makefile").is_file() else ""
    for d in sorted(p for p in tree.iterdir() if p.is_dir() and not p.name.startswith(".")):
        manifests = sorted(str(m.relative_to(d)) for m in d.rglob("*.plugin"))
        sources = list(d.rglob("*.c"))
        if manifests:
            out[d.name] = f"{len(manifests)} manifest(s): {', '.join(manifests)}"
        elif any(re.search(r"^int\s+main\s*\(", f.read_text(errors="replace"), re.M) for f in sources):
            out[d.name] = (f"not a plugin: {len(sources)} C file(s), host programs with a main() (proof or test "
                           f"harnesses), no .plugin manifest")
        elif sources:
            built = "in" if re.search(rf"\b{re.escape(d.name)}\b", top_makefile) else "not in"
            out[d.name] = (f"not a plugin: {len(sources)} C file(s) but no .plugin manifest, so libxbgp cannot "
                           f"load it (nothing names its codes, insertion points or permissions); {built} the "
                           f"top-level Makefile's PLUGIN_DIR")
        else:
            kinds = sorted({f.suffix or f.name for f in d.rglob("*") if f.is_file()})
            out[d.name] = f"not a plugin: no C sources, no manifest ({', '.join(kinds[:8])})"
    return out


def run_xbgp_corpus(tree: Path, work: Path, check: bool, libxbgp: Path | None = None, safety: bool = True) -> dict:
    """Every `.plugin` JSON of xbgp_plugins: read (strictly), imported, built with the default
    recipe, compared with the Makefile's objects, the helpers its objects call against what
    libxbgp registers, with `safety` bytecode_safety and side_effects (the permission gate)
    in-process on its built pluglets, and with `check` `pds pv check` on each plugin whose
    pluglets all built."""
    from pds_log.core.manifest import parse_xbgp
    from verifier_runners import ebpf
    from verifier_runners.xbgp_permissions import load_helper_permissions

    recipe = BuildRecipe()
    listed = load_helper_permissions()
    counts: collections.Counter = collections.Counter()
    failures: list[str] = []
    verdicts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    names: collections.Counter = collections.Counter()
    seen: set[Path] = set()
    called: set[str] = set()
    ref_callers: dict[str, set[str]] = {}  # helper -> sources whose Makefile-built object calls it
    check_seconds: list[float] = []
    local_calls: set[str] = set()
    # what a pluglet may call: what libxbgp and the host API register (else the shipped list)
    registered = set(xbgp_registered_helpers(libxbgp, tree)) if libxbgp is not None else set(listed)
    if libxbgp is not None:
        problems = check_xbgp_helpers(libxbgp, tree)
        counts["helpers registered by libxbgp + host API"] = len(xbgp_registered_helpers(libxbgp, tree))
        counts["xbgp_helpers.yaml differences from libxbgp"] = len(problems)
        failures += problems
    for manifest in sorted(tree.rglob("*.plugin")):
        rel = manifest.relative_to(tree)
        counts["manifests"] += 1
        try:
            parsed = parse_xbgp({manifest.name: manifest.read_bytes()}, "org.xbgp.read", manifest.name)
        except PdsError as exc:
            failures.append(f"{rel}: manifest: {exc}")
            continue
        counts["manifests read"] += 1
        original = f"org.xbgp.{parsed.options['xbgp_name']}"
        names[original] += 1
        name = original if names[original] == 1 else f"{original}.v{names[original]}"
        dest = work / "xbgp" / str(rel).replace("/", "__")
        try:
            import_plugin(manifest, dest, name=name, include_dirs=[str(libxbgp / "include")] if libxbgp else None)
        except PdsError as exc:
            failures.append(f"{rel}: import: {exc}")
            continue
        counts["imported"] += 1
        built = build_pluglets(dest, list(parsed.pluglets), recipe)
        for pluglet, why in built.items():
            counts["pluglets (with variants)"] += 1
            source = (manifest.parent / pluglet).with_suffix(".c").resolve()
            first = source not in seen
            seen.add(source)
            counts["distinct pluglets"] += first
            if why is not None:
                counts["distinct not built"] += first
                failures.append(f"{rel}: {pluglet}: {why}")
                continue
            counts["pluglets built (with variants)"] += 1
            obj = ebpf.load_object((dest / pluglet).read_bytes())
            helpers = {i.reloc for _, _, insns, _ in ebpf.functions(obj) for i in insns
                       if i.is_call() and i.reloc is not None}
            called |= helpers
            if not first:
                continue
            counts["distinct built"] += 1
            ref = work / "xbgp-ref" / (str(source.relative_to(tree)).replace("/", "__") + ".o")
            ref.parent.mkdir(parents=True, exist_ok=True)
            if xbgp_makefile_reference(source, ref):
                counts["reference objects (Makefile pipeline)"] += 1
                ref_obj = ebpf.load_object(ref.read_bytes())
                for helper in {i.reloc for _, _, insns, _ in ebpf.functions(ref_obj) for i in insns
                               if i.is_call() and i.reloc is not None}:
                    ref_callers.setdefault(helper, set()).add(str(source.relative_to(tree)))
                if ref.read_bytes() == (dest / pluglet).read_bytes():
                    counts["reproduced byte for byte"] += 1
                else:
                    failures.append(f"{rel}: {pluglet}: differs from the Makefile's object")
        if safety:
            safety_counts(dest, name, registered, counts, verdicts, failures, rel,
                          {p for p, why in built.items() if why is None}, local_calls,
                          lambda p, m=manifest: str((m.parent / p).with_suffix(".c").resolve().relative_to(
                              tree.resolve())))
        if not check:
            continue
        if not all(why is None for why in built.values()):
            failures.append(f"{rel}: not checked: not every pluglet built")
            continue
        start = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "pds_log", "pv", "check", str(dest), "--name", name, "--json"],
                             capture_output=True, text=True)
        check_seconds.append(time.perf_counter() - start)
        try:
            results = json.loads(run.stdout)
        except ValueError:
            failures.append(f"{rel}: pv check: {run.stderr.strip()[-300:]}")
            continue
        counts["plugins checked"] += 1
        counts["plugins accepted (every verifier passes)"] += all(r["status"] == "pass" for r in results)
        for r in results:
            verdicts[r["verifier"]][r["status"]] += 1
            if r["status"] != "pass":
                failures.append(f"{rel}: {r['verifier']}: {r['status']}: {r['reason'][:300]}")
    counts["distinct helpers called"] = len(called)
    counts["distinct helpers called that xbgp_helpers.yaml lists"] = len(called & set(listed))
    for helper in sorted(called - set(listed)):
        own = sorted(ref_callers.get(helper, ()))
        failures.append(f"helper {helper} is called but libxbgp does not register it" + (
            f" (xbgp_plugins' own Makefile pipeline emits the same call, in {', '.join(own)}: a property of the "
            f"plugin as its developers build it, which libxbgp would not load)" if own else
            " (the Makefile pipeline's objects do not call it: a difference of our recipe)"))
    counts["distinct plugin names (of the manifests read)"] = len(names)
    if safety:
        counts[LOCAL_CALLS] = len(local_calls)
    directories = xbgp_directories(tree)
    with_manifests = sum(what.endswith(".plugin") or " manifest(s): " in what for what in directories.values())
    counts["top-level directories, each accounted for below"] = len(directories)
    counts["top-level directories with manifests"] = with_manifests
    return {"kind": "xbgp", "counts": dict(counts), "verdicts": {k: dict(v) for k, v in verdicts.items()},
            "directories": directories,
            "check_seconds": {"median": sorted(check_seconds)[len(check_seconds) // 2] if check_seconds else None,
                              "max": max(check_seconds) if check_seconds else None},
            "failures": failures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pquic", type=Path)
    parser.add_argument("xbgp", type=Path, nargs="?")
    parser.add_argument("--libxbgp", type=Path, help="a libxbgp checkout: check xbgp_helpers.yaml against it")
    parser.add_argument("--check", action="store_true", help="also run `pds pv check` on each built plugin")
    parser.add_argument("--safety", action="store_true", default=True,
                        help="run bytecode_safety and side_effects (in-process, fast) on each built plugin "
                             "(the default)")
    parser.add_argument("--no-safety", dest="safety", action="store_false", help="skip that")
    parser.add_argument("--termination", action="store_true",
                        help="run the loop verifiers termination and bounded on each plugin's built pluglets")
    parser.add_argument("--work", type=Path, help="scratch directory (default: a new temporary one)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="pds-corpus-"))
    results = [] if args.pquic == Path("-") else [
        run_corpus("pquic", top_level_pquic_manifests(args.pquic), args.pquic, work, args.check, args.safety,
                    args.termination)]
    if args.xbgp:
        results.append(run_xbgp_corpus(args.xbgp, work, args.check, args.libxbgp, args.safety))
    if args.json:
        print(json.dumps(results, indent=1))
        return
    for result in results:
        print(f"## {result['kind']}")
        print("| count | value |\n|---|---|")
        for key, value in result["counts"].items():
            print(f"| {key} | {value} |")
        for verifier, statuses in result["verdicts"].items():
            # from `pds pv check` with --check, else from the in-process safety pass
            print(f"| verdicts of {verifier} | " + ", ".join(f"{s} {n}" for s, n in sorted(statuses.items())) + " |")
        if result["check_seconds"]["median"] is not None:
            print(f"| pv check seconds (median / max) | {result['check_seconds']['median']:.1f} / "
                  f"{result['check_seconds']['max']:.1f} |")
        if "termination" in result:
            print_termination(result["termination"])
        if "directories" in result:
            print("\n| directory | what it is |\n|---|---|")
            for directory, what in result["directories"].items():
                print(f"| {directory}/ | {what} |")
        print(f"\n{len(result['failures'])} failure line(s):")
        for line in result["failures"]:
            print(f"- {line}")
        print()


def print_termination(summary: dict) -> None:
    print("\n### loops (termination, bounded)\n| looping pluglets | value |\n|---|---|")
    for key, value in sorted(summary["counts"].items()):
        print(f"| {key} | {value} |")
    print(f"\n{len(summary['reasons'])} loop(s) not passing, with their reasons:")
    for line in summary["reasons"]:
        print(f"- {line}")


if __name__ == "__main__":
    main()
