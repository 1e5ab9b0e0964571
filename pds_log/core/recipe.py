"""The pinned build recipe: how a pluglet's C source becomes its eBPF object.

Developers (`pds dev build`) and the PV's reproducible-build verifier use the same recipe, so
the PV can rebuild a pluglet and compare bytes. Convention: pluglet ``dir/x.o`` is built from
``dir/x.c``, with the plugin directory as working directory and include path, so no absolute
path ends up in the object. No ``-g``: clang-14 output is then byte-identical across
directories (DESIGN.md, measured facts). One compiler invocation, no shell and no pipe, so a
failed compile can never yield a valid-looking empty object.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from .errors import FormatError
from .manifest import validate_relative_path

DEFAULT_FLAGS = (
    "-target", "bpf",
    "-O2",
    "-fno-gnu-inline-asm",
    "-fno-stack-protector",
    "-Wall",
    "-Wno-unused-function",
    "-I", ".",
)


@dataclass(frozen=True)
class BuildRecipe:
    """Compiler, its pinned version, and flags."""

    compiler: str = "clang"
    # The first line of `clang --version` must start with this: another compiler version is
    # not the recipe (bytes would differ for reasons unrelated to the plugin).
    version_prefix: str = "Debian clang version 14."
    flags: tuple[str, ...] = field(default=DEFAULT_FLAGS)

    @classmethod
    def from_obj(cls, obj: dict | None) -> "BuildRecipe":
        if obj is None:
            return cls()
        if not isinstance(obj, dict) or set(obj) - {"compiler", "version_prefix", "flags"}:
            raise FormatError("build recipe: expected keys compiler, version_prefix, flags")
        flags = obj.get("flags", list(DEFAULT_FLAGS))
        if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
            raise FormatError("build recipe: flags must be a list of strings")
        return cls(str(obj.get("compiler", "clang")), str(obj.get("version_prefix", cls.version_prefix)),
                   tuple(flags))

    def to_obj(self) -> dict:
        return {"compiler": self.compiler, "version_prefix": self.version_prefix, "flags": list(self.flags)}

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_obj(), sort_keys=True).encode()).hexdigest()

    @staticmethod
    def source_for(pluglet: str) -> str:
        """The C source of pluglet ``x.o``: ``x.c`` beside it."""
        validate_relative_path(pluglet, "pluglet")
        if not pluglet.endswith(".o"):
            raise FormatError(f"pluglet {pluglet!r} must end in .o")
        return pluglet[:-2] + ".c"

    def argv(self, pluglet: str, output: str | None = None) -> list[str]:
        """The compiler command line for `pluglet`, to run in the plugin directory."""
        return [self.compiler, *self.flags, "-c", self.source_for(pluglet), "-o", output or pluglet]
