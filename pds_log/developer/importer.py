"""`pds dev import`: a real PQUIC or xBGP plugin, as its developers lay it out, turned into a
self-contained PDS plugin directory.

PQUIC plugins live in a tree: ``plugins/<x>/<x>.plugin`` names objects beside it, includes
fragments (``other.plugin include``), and their sources include headers from the plugin's
directory, from ``plugins/`` (``../helpers.h``) and from ``picoquic/`` (through the Makefiles'
``-I../../picoquic``). xBGP plugins are a ``<x>.plugin`` JSON naming objects beside it, whose
sources include headers of the xBGP tree. A PDS plugin is built in its own directory with
``-I .`` only, so the import:

* copies the manifest, its fragments and the C source of every object it names, at the same
  paths relative to the manifest's directory;
* follows every ``#include`` of every copied file (quoted: the including file's directory,
  then the include directories; angle brackets: the include directories only, else it is a
  system header and stays as it is) and copies each header found in the tree; a header from
  outside the manifest's directory goes to ``ext/<its path in the tree>``;
* rewrites an include only when its text would no longer find the copied file from the new
  place (``#include "../helpers.h"`` -> ``#include "ext/plugins/helpers.h"``); nothing else in
  any source changes;
* writes the Makefile's ``-D`` defines into ``pds-build.yaml`` (recipe.BUILD_FILE);
* with ``name``, renames the plugin (PQUIC's first line), so variants that share one PQUIC
  name get names of their own; an xBGP manifest is copied byte for byte (its ``name`` is
  xBGP's runtime name; the PDS name is the directory's, ``--name``, required when xBGP's name
  is not a dotted PDS name); a header found through ``-I DIR`` outside the tree (libxbgp's
  ``include/``) goes to ``ext/<DIR's name>/``;
* reports what it copied, rewrote and could not resolve.

Nothing is built or run here: everything read is plain text, and the result is checked by
`pds dev build` and `pds pv check` like any plugin.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from pds_log.core.errors import FormatError, PdsError
from pds_log.core.names import validate_name
from pds_log.core.recipe import BUILD_FILE, parse_build_file

_INCLUDE = re.compile(rb'^(?P<lead>[ \t]*#[ \t]*include[ \t]*)(?P<open>["<])(?P<path>[^">\n]+)(?P<close>[">])',
                      re.M)
_DEFINE = re.compile(r"^-D[A-Za-z_][A-Za-z0-9_]*(=[A-Za-z0-9_.+-]*)?$")
MAX_IMPORT_FILES = 2000


@dataclass
class ImportReport:
    kind: str  # "pquic" | "xbgp"
    name: str
    out: Path
    copied: list[tuple[str, str]] = field(default_factory=list)  # (source in the tree, path in the plugin)
    rewritten: list[str] = field(default_factory=list)  # "file:line: old -> new"
    unresolved: list[str] = field(default_factory=list)  # "file:line: <include>"
    defines: list[str] = field(default_factory=list)
    skipped_flags: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"imported {self.kind} plugin {self.name} into {self.out}: {len(self.copied)} file(s)"]
        out += [f"  copied {src} -> {dst}" for src, dst in self.copied]
        out += [f"  rewrote {r}" for r in self.rewritten]
        out += [f"  system or missing include, left as is: {u}" for u in self.unresolved]
        if self.defines:
            out.append(f"  defines from the Makefile -> {BUILD_FILE}: {' '.join(self.defines)}")
        out += [f"  Makefile flag not carried over (only -D defines are): {f}" for f in self.skipped_flags]
        return out

    def to_obj(self) -> dict:
        return {"kind": self.kind, "name": self.name, "out": str(self.out),
                "copied": [{"from": s, "to": d} for s, d in self.copied], "rewritten": self.rewritten,
                "unresolved": self.unresolved, "defines": self.defines, "skipped_flags": self.skipped_flags}


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PdsError(f"{path}: cannot read ({exc.strerror})") from None


def find_tree_root(start: Path) -> Path:
    """The plugin tree's root: the nearest ancestor holding ``picoquic/`` (PQUIC) or a
    ``Makefile_plugins`` (xBGP), else the manifest's parent directory."""
    for parent in [start, *start.parents]:
        if (parent / "picoquic" / "picoquic.h").is_file() or (parent / "Makefile_plugins").is_file():
            return parent
    return start.parent


def _makefile_flags(directory: Path) -> tuple[list[str], list[str], list[str]]:
    """(-D defines, -I directories, other flags) of the CFLAGS assignments in a Makefile."""
    makefile = directory / "Makefile"
    defines: list[str] = []
    includes: list[str] = []
    other: list[str] = []
    if not makefile.is_file():
        return defines, includes, other
    text = _read(makefile).decode("utf-8", "replace")
    for line in text.splitlines():
        m = re.match(r"^\s*CFLAGS\s*[+:?]?=\s*(.*)$", line)
        if not m:
            continue
        try:
            words = shlex.split(m.group(1))
        except ValueError:
            words = m.group(1).split()
        for word in words:
            if _DEFINE.match(word):
                defines.append(word[2:])
            elif word.startswith("-I") and len(word) > 2:
                includes.append(word[2:])
            else:
                other.append(word)
    return defines, includes, other


class _Importer:
    def __init__(self, manifest: Path, out: Path, root: Path, include_dirs: list[Path]) -> None:
        self.manifest = manifest
        self.base = manifest.parent
        self.out = out
        self.root = root
        self.include_dirs = include_dirs
        self.placed: dict[Path, str] = {}  # real source path -> path in the plugin
        self.queue: list[Path] = []
        self.report: ImportReport | None = None

    def place(self, src: Path) -> str:
        """Where a tree file goes in the plugin (queued for copying and include-following)."""
        src = src.resolve()
        if src in self.placed:
            return self.placed[src]
        try:
            rel = src.relative_to(self.base.resolve()).as_posix()
        except ValueError:
            try:
                rel = "ext/" + src.relative_to(self.root.resolve()).as_posix()
            except ValueError:
                rel = self.extra_place(src)
        if len(self.placed) >= MAX_IMPORT_FILES:
            raise PdsError(f"{self.manifest}: more than {MAX_IMPORT_FILES} files to import")
        self.placed[src] = rel
        self.queue.append(src)
        return rel

    def extra_place(self, src: Path) -> str:
        """A header found through an -I directory outside the tree (e.g. libxbgp's include/):
        ``ext/<that directory's name>/<path in it>``."""
        for directory in self.include_dirs:
            try:
                return f"ext/{directory.name}/" + src.relative_to(directory.resolve()).as_posix()
            except ValueError:
                continue
        raise PdsError(f"{src}: outside the plugin tree {self.root}")

    def resolve_include(self, including: Path, quoted: bool, text: str) -> Path | None:
        candidates = ([including.parent] if quoted else []) + self.include_dirs
        for directory in candidates:
            path = directory / text
            if path.is_file():
                return path
        return None

    def copy_all(self, report: ImportReport) -> None:
        while self.queue:
            src = self.queue.pop(0)
            rel = self.placed[src]
            data = _read(src)
            if src.suffix in (".c", ".h"):
                data = self.rewrite_includes(src, rel, data, report)
            target = self.out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            report.copied.append((os.path.relpath(src, self.root), rel))

    def rewrite_includes(self, src: Path, rel: str, data: bytes, report: ImportReport) -> bytes:
        def replace(m: re.Match) -> bytes:
            text = m.group("path").decode("utf-8", "replace").strip()
            line = data.count(b"\n", 0, m.start()) + 1
            found = self.resolve_include(src, m.group("open") == b'"', text)
            if found is None:
                report.unresolved.append(f"{rel}:{line}: {m.group('open').decode()}{text}{m.group('close').decode()}")
                return m.group(0)
            target = self.place(found)
            new_text = os.path.relpath(target, os.path.dirname(rel) or ".")
            # unchanged when the old text already finds the copy from its new place
            if m.group("open") == b'"' and os.path.normpath(os.path.join(os.path.dirname(rel), text)) == target:
                return m.group(0)
            report.rewritten.append(f"{rel}:{line}: {m.group('open').decode()}{text}{m.group('close').decode()} "
                                    f'-> "{new_text}"')
            return m.group("lead") + b'"' + new_text.encode() + b'"'

        return _INCLUDE.sub(replace, data)


def _pquic_parts(manifest: Path) -> tuple[str, list[Path], list[Path]]:
    """(plugin name, fragment files, object files) of a PQUIC manifest, following includes as
    PQUIC's loader does (fragments relative to the including file's directory)."""
    text = _read(manifest).decode("utf-8", "replace")
    lines = [ln.strip() for ln in text.splitlines()]
    content = [ln for ln in lines if ln and not ln.startswith("#")]
    if not content:
        raise PdsError(f"{manifest}: empty manifest")
    name = content[0].split()[0]
    fragments: list[Path] = []
    objects: list[Path] = []

    def walk(path: Path, body: list[str], depth: int) -> None:
        if depth > 16:
            raise PdsError(f"{path}: fragments nested more than 16 deep")
        for line in body:
            words = line.split()
            if not words or line.startswith("#") or line.startswith("-"):
                continue
            if len(words) == 2 and words[1] == "include":
                fragment = path.parent / words[0]
                if not fragment.is_file():
                    raise PdsError(f"{path}: included fragment {words[0]} not found")
                fragments.append(fragment)
                walk(fragment, [ln.strip() for ln in _read(fragment).decode("utf-8", "replace").splitlines()],
                     depth + 1)
            elif words[-1].endswith(".o"):
                objects.append(path.parent / words[-1])

    walk(manifest, content[1:], 0)
    return name, fragments, objects


def _xbgp_parts(manifest: Path) -> tuple[str, list[Path]]:
    """(xBGP's plugin name, object files) of an xBGP ``.plugin`` JSON, parsed as strictly as the
    PR will (pds_log.core.manifest.parse_xbgp): a manifest PDS would refuse is refused here,
    with the key named, before anything is copied."""
    from pds_log.core.manifest import parse_xbgp

    try:
        parsed = parse_xbgp({manifest.name: _read(manifest)}, "org.pds.import", manifest.name)
    except FormatError as exc:
        raise PdsError(f"{manifest.parent}/{exc}") from None
    return str(parsed.options["xbgp_name"]), [manifest.parent / p for p in parsed.pluglets]


def import_plugin(manifest: str | os.PathLike, out: str | os.PathLike, name: str | None = None,
                  include_dirs: list[str] | None = None) -> ImportReport:
    """Import the plugin whose top-level manifest is `manifest` into the new directory `out`."""
    manifest = Path(manifest).resolve()
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise PdsError(f"{out}: exists and is not empty")
    head = _read(manifest).lstrip()[:1]
    kind = "xbgp" if head == b"{" else "pquic"
    root = find_tree_root(manifest.parent)
    defines, make_includes, other = _makefile_flags(manifest.parent)
    dirs = [(manifest.parent / d).resolve() for d in make_includes]
    dirs += [d for d in (root / "picoquic",) if d.is_dir() and d.resolve() not in dirs] if kind == "pquic" else []
    dirs += [Path(d).resolve() for d in include_dirs or []]
    if kind == "pquic":
        original, fragments, objects = _pquic_parts(manifest)
    else:
        original, objects = _xbgp_parts(manifest)
        fragments = []
    final = name or original
    if kind == "xbgp" and name is None:
        try:
            validate_name(original)
        except FormatError:
            raise PdsError(f"{manifest}: the xBGP name {original!r} is not a PDS plugin name (dot-separated "
                           f"labels, e.g. org.example.{original}): give one with --name") from None
    validate_name(final)
    out.mkdir(parents=True, exist_ok=True)
    report = ImportReport(kind, final, out)
    importer = _Importer(manifest, out, root, dirs)
    top = importer.place(manifest)
    for fragment in fragments:
        importer.place(fragment)
    for obj in objects:
        source = obj.with_suffix(".c")
        if not source.is_file():
            raise PdsError(f"{manifest}: no source {os.path.relpath(source, root)} for {obj.name}")
        importer.place(source)
    importer.copy_all(report)
    if kind == "pquic" and name and name != original:
        path = out / top
        text = path.read_bytes().decode("utf-8", "replace")
        path.write_text(re.sub(rf"^(\s*(?:#[^\n]*\n\s*)*){re.escape(original)}\b", rf"\g<1>{final}", text, count=1))
    # xBGP: the PDS name is the plugin directory's; the manifest's "name" is xBGP's own (the
    # runtime identity libxbgp keys memory by) and its bytes stay as they are
    valid = [d for d in defines if _DEFINE.match("-D" + d)]
    if valid:
        parse_build_file({"defines": valid}, f"{manifest.parent}/Makefile")
        (out / BUILD_FILE).write_text("# -D flags of the plugin's Makefile (CFLAGS), imported by pds dev import\n"
                                      f"defines: [{', '.join(valid)}]\n")
        report.defines = valid
    report.skipped_flags = [f for f in other if f not in ("-O2",)]
    return report
