"""The pinned build recipe: how a pluglet's C source becomes its eBPF object.

Developers (`pds dev build`) and the PV's reproducible-build verifier use the same recipe, so
the PV can rebuild a pluglet and compare bytes. Convention: pluglet ``dir/x.o`` is built from
``dir/x.c``, with the plugin directory as working directory and include path, so no absolute
path ends up in the object. No ``-g``: clang-14 output is then byte-identical across
directories (DESIGN.md, measured facts).

The default recipe is PQUIC's own pipeline, as its Makefiles run it::

    clang [defines] -I . -O2 -fno-gnu-inline-asm -emit-llvm -c x.c -o x.o.bc   # host-target IR
    llc -march=bpf -filetype=obj x.o.bc -o x.o                                 # eBPF object

as two separate processes, each checked (no shell, no pipe: a pipe hides a failed first stage
and yields a valid-looking ELF with an empty ``.text``). Host-target IR is what lets real
pluglets include glibc's headers (``clang -target bpf`` builds 0 of PQUIC's 171); going through
a file instead of a pipe gives the same bytes (measured on PQUIC's pluglets). Both tools are
pinned by the first line of their ``--version`` output. A recipe that names no ``llc`` is one
compiler call, ``compiler flags -c x.c -o x.o`` (the v1 form, e.g. ``-target bpf``).

Per-plugin defines: a plugin may carry ``pds-build.yaml`` (BUILD_FILE) in its directory,
``defines: [NAME, NAME=VALUE, ...]`` — preprocessor defines only, of the form
``[A-Za-z_][A-Za-z0-9_]*`` with an optional ``=`` and a value of ``[A-Za-z0-9_.+-]*`` — so the
flags a PQUIC Makefile passes (``-DDISABLE_PROTOOP_PRINTF``) are reproducible, and nothing else
(no include path, no plugin, no output option) can be smuggled into the compiler's command line.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import FormatError
from .manifest import validate_relative_path
from .yamldoc import load as load_yaml

BUILD_FILE = "pds-build.yaml"
MAX_DEFINES = 64
_DEFINE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}(=[A-Za-z0-9_.+-]{0,64})?")

# The first stage of the default recipe (its defines go first, then these).
DEFAULT_FLAGS = (
    "-I", ".",
    "-O2",
    "-fno-gnu-inline-asm",
    "-emit-llvm",
)
DEFAULT_LLC_FLAGS = ("-march=bpf", "-filetype=obj")
# The v1 default: one compiler call for the BPF target (kept for recipes written that way).
ONE_STAGE_FLAGS = (
    "-target", "bpf",
    "-O2",
    "-fno-gnu-inline-asm",
    "-fno-stack-protector",
    "-Wall",
    "-Wno-unused-function",
    "-I", ".",
)
RECIPE_KEYS = {"compiler", "version_prefix", "flags", "llc", "llc_version_prefix", "llc_flags"}


@dataclass(frozen=True)
class BuildRecipe:
    """Compiler and llc, their pinned versions, and flags."""

    compiler: str = "clang"
    # The first line of `clang --version` must start with this: another compiler version is
    # not the recipe (bytes would differ for reasons unrelated to the plugin).
    version_prefix: str = "Debian clang version 14."
    flags: tuple[str, ...] = field(default=DEFAULT_FLAGS)
    llc: str | None = "llc"  # None: a one-stage recipe
    llc_version_prefix: str = "Debian LLVM version 14."  # first non-empty line of `llc --version`
    llc_flags: tuple[str, ...] = field(default=DEFAULT_LLC_FLAGS)

    @classmethod
    def from_obj(cls, obj: Any) -> "BuildRecipe":
        if obj is None:
            return cls()
        if not isinstance(obj, dict) or set(obj) - RECIPE_KEYS:
            raise FormatError(f"build recipe: expected keys {', '.join(sorted(RECIPE_KEYS))}")
        two_stage = "llc" in obj and obj["llc"] is not None
        flags = _strings(obj.get("flags", list(DEFAULT_FLAGS if two_stage else ONE_STAGE_FLAGS)), "flags")
        llc_flags = _strings(obj.get("llc_flags", list(DEFAULT_LLC_FLAGS)), "llc_flags")
        return cls(str(obj.get("compiler", "clang")), str(obj.get("version_prefix", cls.version_prefix)), flags,
                   str(obj["llc"]) if two_stage else None,
                   str(obj.get("llc_version_prefix", cls.llc_version_prefix)), llc_flags)

    def to_obj(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"compiler": self.compiler, "version_prefix": self.version_prefix,
                               "flags": list(self.flags)}
        if self.llc is not None:
            obj.update(llc=self.llc, llc_version_prefix=self.llc_version_prefix, llc_flags=list(self.llc_flags))
        return obj

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_obj(), sort_keys=True).encode()).hexdigest()

    def tools(self) -> list[tuple[str, str]]:
        """(program, pinned version prefix) of each stage."""
        out = [(self.compiler, self.version_prefix)]
        if self.llc is not None:
            out.append((self.llc, self.llc_version_prefix))
        return out

    @staticmethod
    def source_for(pluglet: str) -> str:
        """The C source of pluglet ``x.o``: ``x.c`` beside it."""
        validate_relative_path(pluglet, "pluglet")
        if not pluglet.endswith(".o"):
            raise FormatError(f"pluglet {pluglet!r} must end in .o")
        return pluglet[:-2] + ".c"

    def stages(self, pluglet: str, output: str | None = None, defines: tuple[str, ...] = (),
               ir: str | None = None) -> list[list[str]]:
        """The command lines that build `pluglet` (into `output`, through the intermediate file
        `ir`, default `output`.bc), to run in order in the plugin directory; each must succeed.
        (Neither output name reaches the object's bytes.)"""
        source, output = self.source_for(pluglet), output or pluglet
        define_args = [f"-D{d}" for d in defines]
        if self.llc is None:
            return [[self.compiler, *define_args, *self.flags, "-c", source, "-o", output]]
        ir = ir or output + ".bc"
        return [[self.compiler, *define_args, *self.flags, "-c", source, "-o", ir],
                [self.llc, *self.llc_flags, ir, "-o", output]]

    def ir_argv(self, pluglet: str, output: str, defines: tuple[str, ...] = ()) -> list[str]:
        """The command line that writes, as text with debug lines, the LLVM IR this recipe really
        compiles (for ScalarEvolution): the first stage with ``-g -S``."""
        source = self.source_for(pluglet)
        flags = [f for f in self.flags if f != "-emit-llvm"]
        return [self.compiler, *[f"-D{d}" for d in defines], *flags, "-g", "-emit-llvm", "-S", "-c", source,
                "-o", output]


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(f, str) for f in value):
        raise FormatError(f"build recipe: {what} must be a list of strings")
    return tuple(value)


def parse_build_file(doc: Any, where: str = BUILD_FILE) -> tuple[str, ...]:
    """The defines of a plugin's build file (an already parsed YAML mapping), validated."""
    if not isinstance(doc, dict) or set(doc) - {"defines"}:
        raise FormatError(f"{where}: expected a mapping with only 'defines: [NAME or NAME=VALUE, ...]'")
    defines = doc.get("defines") or []
    if not isinstance(defines, list) or len(defines) > MAX_DEFINES:
        raise FormatError(f"{where}: defines must be a list of at most {MAX_DEFINES} entries")
    for define in defines:
        if not isinstance(define, str) or not _DEFINE_RE.fullmatch(define):
            raise FormatError(f"{where}: define {str(define)[:80]!r} is not NAME or NAME=VALUE "
                              f"([A-Za-z_][A-Za-z0-9_]*, value [A-Za-z0-9_.+-]*)")
    return tuple(defines)


def plugin_defines(files: Mapping[str, bytes]) -> tuple[str, ...]:
    """The preprocessor defines a plugin's files declare in BUILD_FILE (none without one)."""
    data = files.get(BUILD_FILE)
    return parse_build_file(load_yaml(data, BUILD_FILE) or {}) if data is not None else ()


def recipe_of_verifiers(verifiers: Any, where: str) -> BuildRecipe:
    """The recipe of the `reproducible` verifier in a PV's `verifiers:` mapping (pv.yaml, or
    the published pv.json), so a developer builds exactly as that PV rebuilds."""
    if not isinstance(verifiers, dict):
        raise FormatError(f"{where}: no 'verifiers' mapping")
    recipes = [conf.get("recipe") for conf in verifiers.values()
               if isinstance(conf, dict) and conf.get("runner") == "reproducible"]
    if not recipes:
        raise FormatError(f"{where}: the PV runs no reproducible-build verifier, so it pins no recipe")
    if any(r != recipes[0] for r in recipes[1:]):
        raise FormatError(f"{where}: several reproducible verifiers with different recipes")
    return BuildRecipe.from_obj(recipes[0])
