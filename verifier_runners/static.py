"""Static analysis of a plugin's C sources (cppcheck, or clang's analyzer), with each finding
attributed to the pluglets that can run the code it is in.

Why attribution: real plugins share headers full of helpers (PQUIC's `helpers.h`), and one
finding in a helper that only one pluglet calls used to fail every plugin that includes the
header. Here a finding fails the plugin only if one of its pluglets reaches the function the
finding is in; findings in code no pluglet reaches are listed apart in the log.

How reachability is computed, from the compiler rather than from a C parser of our own: each
pluglet's source is compiled to LLVM IR with the recipe's flags and defines (its first stage,
so the same headers and the same configuration), at -O0, with debug info and
`-femit-all-decls` (so every function the translation unit defines is in the IR, used or not).

* roots: the functions with external linkage the IR defines (a pluglet's entry is its
  non-static function; every one of them counts, the loader could call any);
* edges: every `@function` a function's body or a reachable global's initializer names (calls,
  and addresses taken: function pointers count), and every subprogram its debug locations
  inline (always_inline helpers are inlined even at -O0);
* extents: a function spans from its DISubprogram line to the last line any debug location in
  it names, inlined copies included (at -O0 the closing brace carries the return).

A finding at file:line belongs to the one function whose extent (in any pluglet's IR) covers
it. Fail closed: a finding no extent covers, or several do, counts against every pluglet; a
pluglet whose IR cannot be produced makes the verdict `error`; findings that say the tool
stopped analysing a file (syntax errors, internal errors) count against every pluglet.

Speed (measured on the PQUIC corpus, benchmarks/static.py): cppcheck checks one
configuration (`--max-configs=1` and the defines the recipe compiles with: 10x less CPU than
its default 12 on PQUIC) and only the categories that can fail (the severity threshold), on
each TU alone (about the CPU of one call over all sources, less on large plugins, whose
whole-program step relates pluglets that are never linked together; and it makes the per-TU
cache possible), `jobs` TUs and IR builds at a time, and the IR is
built only when there is a finding to attribute. Under a PV each TU's result is cached by
SHA-256 of the tool, the argv and every file the TU can read (static_cache.py), so variants
and later versions of a plugin re-run only the TUs that changed. No cppcheck build directory
is shared between plugins: its cache is keyed by a CRC32 of the preprocessed code, so one
plugin could craft a collision and hand another plugin its clean result.

A TU cppcheck's preprocessor refuses (a directive inside a macro argument, xBGP's
PROOF_INSTS) is analysed from clang's preprocessed output instead (see `_DIRECTIVE_IN_ARGS`).
"""

from __future__ import annotations

import collections
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from pds_log.core.errors import FormatError
from pds_log.core.recipe import BuildRecipe, plugin_defines

from . import static_cache
from .base import ERROR, FAIL, PASS, PluginInput, Verifier, VerifierResult
from .sandbox import tool_version

_SEVERITY_RANK = {"information": 0, "portability": 1, "performance": 1, "style": 2, "warning": 3, "error": 4}
# cppcheck's --enable categories (errors are always on) and the rank of each.
_CPPCHECK_CATEGORIES = {"warning": 3, "style": 2, "performance": 1, "portability": 1}
_CPPCHECK_LINE = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+):(?P<sev>\w+):(?P<id>[\w-]+):(?P<msg>.*)$")
_CLANG_LINE = re.compile(r"^(?P<file>[^:\s][^:]*):(?P<line>\d+):(?P<col>\d+): (?P<sev>warning|error): (?P<msg>.*?)"
                         r"(?: \[(?P<id>[\w.,-]+)\])?$")
_IGNORED_IDS = {"missingIncludeSystem", "missingInclude", "checkersReport", "toomanyconfigs"}
# cppcheck gave up on (part of) a file: nothing in it was analysed, so no function is clean.
_ABORTED_IDS = {"syntaxError", "internalAstError", "cppcheckError", "internalError", "unknownMacro",
                "preprocessorErrorDirective"}
MAX_IR_BYTES = 64 << 20  # an IR larger than this is not parsed (error)
# cppcheck's preprocessor refuses a directive inside a macro's arguments (C11 6.10.3p11 leaves it
# undefined; clang and gcc apply it: xBGP's PROOF_INSTS(#define ...)). Such a TU is analysed
# from clang's own preprocessed output instead, the code the recipe really compiles.
_DIRECTIVE_IN_ARGS = re.compile(r":preprocessorErrorDirective:failed to expand '[^']*', it is invalid to use a "
                                r"preprocessor directive as macro parameter")
_LINEMARKER = re.compile(rb'^# (\d+) ("(?:[^"\\\n]|\\.)*")[ \d]*$', re.M)
MAX_PREPROCESSED_BYTES = 64 << 20
# Measured: on expanded code cppcheck calls the value of `({ int v; ...; v; })` unused (on the
# macro itself it does not); such a finding on clang's output is listed apart, not counted.
_STATEMENT_EXPRESSION_VALUE = re.compile(r":constStatement:Unused variable value '(\w+)'$")


@dataclass(frozen=True)
class Finding:
    file: str  # normalized, relative to the plugin directory unless absolute
    line: int
    severity: str
    check: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.severity}: {self.message} [{self.check}]"


@dataclass
class CallGraph:
    """One translation unit's functions: extents, roots, and what each reaches."""

    extents: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)  # (file, fn) -> lines
    reached: set[tuple[str, str]] = field(default_factory=set)  # (file, fn) reachable from the roots
    roots: list[str] = field(default_factory=list)


_META = re.compile(r"^!(\d+) = (?:distinct )?!(\w+)\((.*)\)\s*$")
_FIELD = re.compile(r"(\w+): (\"(?:[^\"\\]|\\.)*\"|![0-9]+|[^,]+)")
_DEFINE = re.compile(r"^define (?P<attrs>[^@]*)@(?P<name>[\w.$]+|\"[^\"]+\")\(.*?(?:!dbg !(?P<dbg>\d+))?\s*\{\s*$")
_GLOBAL = re.compile(r"^@(?P<name>[\w.$]+|\"[^\"]+\") = (?P<rest>.*)$")
_REF = re.compile(r"@([\w.$]+|\"[^\"]+\")")
_DBG = re.compile(r"!dbg !(\d+)")


def _unquote(text: str) -> str:
    return text[1:-1].encode().decode("unicode_escape") if text.startswith('"') else text


def normalize_path(name: str, directory: str, workdir: str) -> str:
    """A source path as the plugin directory sees it: relative to it when inside it."""
    path = name if os.path.isabs(name) else os.path.join(directory or workdir, name)
    path = os.path.normpath(path)
    work = os.path.normpath(workdir)
    if path == work or path.startswith(work + os.sep):
        return os.path.relpath(path, work)
    return path


_DEBUG_KINDS = ("DIFile", "DISubprogram", "DILexicalBlock", "DILexicalBlockFile", "DILocation")


@dataclass
class _IrModule:
    """What one pass over a module's textual IR collects."""

    meta: dict[int, tuple[str, dict[str, str]]] = field(default_factory=dict)
    # fn -> (internal, subprogram, lines)
    bodies: dict[str, tuple[bool, int | None, list[str]]] = field(default_factory=dict)
    globals_refs: dict[str, set[str]] = field(default_factory=dict)
    alias_roots: list[str] = field(default_factory=list)

    def read_define(self, line: str) -> str:
        """Record the function `line` defines; its name."""
        m = _DEFINE.match(line)
        if not m:
            raise FormatError(f"IR: cannot read the definition {line[:120]!r}")
        name = _unquote(m.group("name"))
        internal = bool(re.search(r"\b(internal|private)\b", m.group("attrs")))
        self.bodies[name] = (internal, int(m.group("dbg")) if m.group("dbg") else None, [])
        return name

    def read_global(self, line: str) -> None:
        m = _GLOBAL.match(line)
        if m:
            name = _unquote(m.group("name"))
            self.globals_refs[name] = {_unquote(r) for r in _REF.findall(m.group("rest"))}
            if re.match(r"(\w+ )*alias ", m.group("rest")) and not re.match(r"(internal|private) ",
                                                                            m.group("rest")):
                self.alias_roots.append(name)  # another external name for a function

    def read_meta(self, line: str) -> None:
        m = _META.match(line)
        if m and m.group(2) in _DEBUG_KINDS:
            self.meta[int(m.group(1))] = (m.group(2), {k: v for k, v in _FIELD.findall(m.group(3))})


def _scan_ir(text: str) -> _IrModule:
    module = _IrModule()
    current: str | None = None
    for line in text.splitlines():
        if current is not None:
            if line.startswith("}"):
                current = None
            else:
                module.bodies[current][2].append(line)
            continue
        if line.startswith("!"):
            module.read_meta(line)
            continue
        if line.startswith("define "):
            current = module.read_define(line)
            continue
        if line.startswith("@"):
            module.read_global(line)
    return module


def _meta_ref(value: str | None) -> int | None:
    return int(value[1:]) if value and value.startswith("!") and value[1:].isdigit() else None


@dataclass
class _DebugInfo:
    """Lookups in a module's debug metadata."""

    meta: dict[int, tuple[str, dict[str, str]]]
    workdir: str

    def file_of(self, node: int | None) -> str:
        kind, fields = self.meta.get(node, ("", {})) if node is not None else ("", {})
        if kind != "DIFile":
            return "?"
        return normalize_path(_unquote(fields.get("filename", '""')), _unquote(fields.get("directory", '""')),
                              self.workdir)

    def subprogram_of(self, scope: int | None, depth: int = 0) -> int | None:
        while scope is not None and depth < 10_000:
            kind, fields = self.meta.get(scope, ("", {}))
            if kind == "DISubprogram":
                return scope
            if kind not in ("DILexicalBlock", "DILexicalBlockFile"):
                return None
            scope, depth = _meta_ref(fields.get("scope")), depth + 1
        return None

    def key_of(self, subprogram: int) -> tuple[str, str] | None:
        kind, fields = self.meta.get(subprogram, ("", {}))
        if kind != "DISubprogram" or "name" not in fields:
            return None
        return self.file_of(_meta_ref(fields.get("file"))), _unquote(fields["name"])

    def body_refs(self, sp: int | None, lines: list[str],
                  lines_of: dict[int, list[int]]) -> tuple[set[str], set[tuple[str, str]]]:
        """The names a function body refers to and the functions inlined in it; records the
        lines of its debug locations in `lines_of` (subprogram -> lines)."""
        refs: set[str] = set()
        in_lined: set[tuple[str, str]] = set()
        for body_line in lines:
            refs.update(_unquote(r) for r in _REF.findall(body_line))
            for loc_id in _DBG.findall(body_line):
                kind, fields = self.meta.get(int(loc_id), ("", {}))
                if kind != "DILocation":
                    continue
                owner = self.subprogram_of(_meta_ref(fields.get("scope")))
                if owner is None:
                    continue
                if fields.get("line", "0").isdigit():  # inlined copies tell the callee's extent too
                    lines_of.setdefault(owner, []).append(int(fields["line"]))
                if owner != sp:
                    other = self.key_of(owner)
                    if other is not None:
                        in_lined.add(other)
        return refs, in_lined

    def extents(self, lines_of: dict[int, list[int]]) -> dict[tuple[str, str], tuple[int, int]]:
        out: dict[tuple[str, str], tuple[int, int]] = {}
        for sp, lines in lines_of.items():
            key = self.key_of(sp)
            if key is None or key[0] == "?":
                continue
            start = int(self.meta[sp][1]["line"]) if self.meta[sp][1].get("line", "").isdigit() else min(lines)
            out[key] = (start, max([start, *lines]))
        return out


def _mark_reached(graph: CallGraph, edges: dict[str, set[str]], key_by_fn: dict[str, tuple[str, str]],
                  inlined: dict[str, set[tuple[str, str]]]) -> None:
    seen: set[str] = set()
    todo = list(graph.roots)
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        if node in key_by_fn:
            graph.reached.add(key_by_fn[node])
            graph.reached.update(inlined.get(node, ()))
        todo.extend(r for r in edges.get(node, ()) if r not in seen)


def parse_ir(text: str, workdir: str) -> CallGraph:
    """The call graph, extents and reachable functions of one module's textual IR."""
    module = _scan_ir(text)
    info = _DebugInfo(module.meta, workdir)
    graph = CallGraph()
    edges: dict[str, set[str]] = {}  # node (function or global) -> nodes and "!sp" keys
    inlined: dict[str, set[tuple[str, str]]] = {}
    key_by_fn: dict[str, tuple[str, str]] = {}
    lines_of: dict[int, list[int]] = {}  # subprogram -> lines of the debug locations in it
    for name, (internal, sp, lines) in module.bodies.items():
        key = info.key_of(sp) if sp is not None else None
        if key is None:
            key = ("?", name)
        key_by_fn[name] = key
        if not internal:
            graph.roots.append(name)
        edges[name], inlined[name] = info.body_refs(sp, lines, lines_of)
    graph.extents.update(info.extents(lines_of))
    for name, refs in module.globals_refs.items():
        edges.setdefault(name, refs)
    graph.roots.extend(module.alias_roots)
    _mark_reached(graph, edges, key_by_fn, inlined)
    return graph


def enclosing_function(finding: Finding, graphs: list[CallGraph]) -> tuple[str, str] | None:
    """The one function whose extent covers the finding in some pluglet's IR, else None."""
    owners = {key for graph in graphs for key, (start, end) in graph.extents.items()
              if key[0] == finding.file and start <= finding.line <= end}
    return owners.pop() if len(owners) == 1 else None


def _cppcheck_findings(stderr: str, workdir: Path) -> list[Finding]:
    findings = []
    for line in stderr.splitlines():
        m = _CPPCHECK_LINE.match(line.strip())
        if not m and line.strip():
            # with --quiet and our template every line is a finding: one we cannot read is
            # one we cannot place, so it counts against every pluglet
            findings.append(Finding("?", 0, "error", "unreadableOutput", line.strip()[:200]))
            continue
        if not m or m.group("id") in _IGNORED_IDS:
            continue
        findings.append(Finding(normalize_path(m.group("file"), str(workdir), str(workdir)), int(m.group("line")),
                                m.group("sev"), m.group("id"), m.group("msg").strip()))
    return findings


def ir_for_reachability(recipe: BuildRecipe, pluglet: str, output: str, defines: tuple[str, ...]) -> list[str]:
    """The recipe's first stage (its flags, defines, headers) writing -O0 IR with every
    function the translation unit defines."""
    argv = recipe.ir_argv(pluglet, output, defines)
    argv = [a for a in argv if not re.fullmatch(r"-O([0-3sz]|fast)?", a)]
    argv = [a for a in argv if a != "-g"]  # line tables are all the extents need, and half the IR
    at = argv.index("-c")
    return [*argv[:at], "-O0", "-gline-tables-only", "-Xclang", "-femit-all-decls", *argv[at:]]


class StaticAnalysis(Verifier):
    """cppcheck (or clang --analyze) on the pluglets' sources; a finding at or above `severity`
    fails the plugin when one of its pluglets reaches the code it is in."""

    runner = "static_analysis"
    version = "3"  # findings attributed by reachability; one configuration; cppcheck on each TU alone
    options = {"severity": "warning", "tool": "cppcheck", "extra_args": [], "recipe": None, "max_configs": 1,
               "jobs": 2, "build_dir": False, "cache": True, "cache_dir": None}
    cache_dir: Path | None = None
    default_timeout = 300.0

    def setup(self) -> None:
        if self.config["severity"] not in _SEVERITY_RANK:
            raise FormatError(f"verifier {self.name}: severity must be one of {', '.join(_SEVERITY_RANK)}")
        if self.config["tool"] not in ("cppcheck", "clang-analyzer"):
            raise FormatError(f"verifier {self.name}: tool must be cppcheck or clang-analyzer")
        extra = self.config["extra_args"]
        if not isinstance(extra, list) or not all(isinstance(a, str) for a in extra):
            raise FormatError(f"verifier {self.name}: extra_args must be a list of strings")
        for option, low in (("max_configs", 0), ("jobs", 1)):
            value = self.config[option]
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not low <= value <= 64):
                raise FormatError(f"verifier {self.name}: {option} must be an integer from {low} to 64"
                                  + (" (0: cppcheck's default)" if option == "max_configs" else ""))
        for option in ("build_dir", "cache"):
            if not isinstance(self.config[option], bool):
                raise FormatError(f"verifier {self.name}: {option} must be true or false")
        if self.config["cache_dir"] is not None and not isinstance(self.config["cache_dir"], str):
            raise FormatError(f"verifier {self.name}: cache_dir must be a path")
        self.recipe = BuildRecipe.from_obj(self.config["recipe"])
        self.cache_stats: collections.Counter[str] = collections.Counter()
        if self.config["cache"] and self.config["cache_dir"]:
            self.use_cache_dir(self.base_dir / self.config["cache_dir"])

    def use_cache_dir(self, directory: Path) -> None:
        """Keep per-TU cppcheck results under `directory` (a PV gives a directory in its state
        dir); hidden from every sandboxed tool like the rest of the PV's state."""
        if self.config["cache"] and self.cache_dir is None:
            self.cache_dir = Path(directory)
            self.protected = (*self.protected, str(self.cache_dir))

    def digest_material(self) -> dict:
        # where (and whether) TU results are cached cannot change a verdict (static_cache)
        return {k: v for k, v in self.config.items() if k not in ("cache", "cache_dir")}

    def _sources(self, plugin: PluginInput, pluglets: list[str]) -> tuple[dict[str, str], str | None]:
        """Each pluglet's source, or why the plugin fails."""
        sources: dict[str, str] = {}
        for pluglet in pluglets:
            try:
                source = self.recipe.source_for(pluglet)
            except FormatError as exc:
                return sources, str(exc)
            if source not in plugin.files:
                return sources, f"{pluglet}: no source {source} to analyse"
            sources[pluglet] = source
        return sources, None

    def check(self, plugin: PluginInput, workdir: Path) -> VerifierResult:
        pluglets = list(plugin.manifest.pluglets)
        if not pluglets:
            return self.result(FAIL, "no pluglets to analyse")
        sources, problem = self._sources(plugin, pluglets)
        if problem is not None:
            return self.result(FAIL, problem)
        try:
            defines = plugin_defines(plugin.files)
        except FormatError as exc:
            return self.result(FAIL, str(exc))
        log: list[str] = []
        if self.config["tool"] == "clang-analyzer":
            tool = "clang --analyze"
            findings, problem, versions = self._clang(sorted(set(sources.values())), defines, workdir, log)
        else:
            tool = "cppcheck"
            if any(path == "std.cfg" or path.startswith("std.cfg/") for path in plugin.files):
                # measured: cppcheck loads ./std.cfg (its cwd is the plugin's directory) before its
                # own, so the plugin would configure the tool that judges it
                return self.result(ERROR, "the plugin has a std.cfg at its top, which cppcheck would load as its "
                                          "own library configuration: rename it")
            findings, problem, versions = self._cppcheck(plugin, sorted(set(sources.values())), defines, workdir,
                                                         log)
        if problem:
            return self.result(ERROR, problem, "\n".join(log), **versions)
        threshold = _SEVERITY_RANK[self.config["severity"]]
        # sorted and deduplicated: parallel runs report a header's finding once per source,
        # in any order, and the verdict must not depend on it
        findings = [f for f in sorted(set(findings), key=lambda f: (f.file, f.line, f.check, f.message))
                    if f.check in _ABORTED_IDS or _SEVERITY_RANK.get(f.severity, 0) >= threshold]
        if not findings:
            return self.result(PASS, f"{tool}: no finding at or above {self.config['severity']} in "
                                     f"{len(set(sources.values()))} source(s)", "\n".join(log), **versions)
        versions[self.recipe.compiler] = tool_version(self.recipe.compiler)
        graphs, problem = self._graphs(sources, defines, workdir, log)
        if problem:
            return self.result(ERROR, problem, "\n".join(log), **versions)
        return self._attributed_verdict(tool, findings, graphs, pluglets, log, versions)

    def _attributed_verdict(self, tool: str, findings: list[Finding], graphs: dict[str, CallGraph],
                            pluglets: list[str], log: list[str], versions: dict[str, str]) -> VerifierResult:
        """The verdict once each finding is attributed to the pluglets that reach it."""
        against: list[tuple[Finding, list[str], str]] = []  # finding, pluglets it counts against, where
        apart: list[tuple[Finding, str]] = []
        for finding in findings:
            owner = None if finding.check in _ABORTED_IDS else enclosing_function(finding, list(graphs.values()))
            if owner is None:
                why = ("the tool stopped analysing this file" if finding.check in _ABORTED_IDS
                       else "in no single function")
                against.append((finding, pluglets, why))
                continue
            # a pluglet with no root we can name might run anything: it reaches everything
            reaching = [p for p in pluglets if owner in graphs[p].reached or not graphs[p].roots]
            if reaching:
                against.append((finding, reaching, f"in {owner[1]}()"))
            else:
                apart.append((finding, f"in {owner[1]}(), which no pluglet reaches"))
        log.append(f"{len(against)} finding(s) in code the pluglets reach, {len(apart)} in code they do not")
        for finding, reaching, where in against:
            log.append(f"finding {finding} ({where}; reached by {', '.join(reaching)})")
        for finding, where in apart:
            log.append(f"apart: {finding} ({where})")
        if against:
            finding, reaching, where = against[0]
            more = f" (+{len(against) - 1} more)" if len(against) > 1 else ""
            unreached = f"; {len(apart)} finding(s) in unreached code listed apart" if apart else ""
            return self.result(FAIL, f"{finding} ({where}; reached by {', '.join(reaching[:3])}"
                                     f"{' ...' if len(reaching) > 3 else ''}){more}{unreached}",
                               "\n".join(log), **versions)
        return self.result(PASS, f"{tool}: no finding at or above {self.config['severity']} in code the pluglets "
                                 f"reach; {len(apart)} finding(s) in unreached code listed apart: {apart[0][0]}",
                           "\n".join(log), **versions)

    # ------------------------------------------------------------------ tools

    def _cppcheck_argv(self, defines: tuple[str, ...]) -> list[str]:
        """The command line of one TU's run, without the TU."""
        threshold = _SEVERITY_RANK[self.config["severity"]]
        enable = [c for c, rank in _CPPCHECK_CATEGORIES.items() if rank >= threshold]
        recipe_defines = [f for f in self.recipe.flags if f.startswith("-D") and len(f) > 2]
        argv = ["cppcheck", *([f"--enable={','.join(enable)}"] if enable else []), "--inline-suppr", "--quiet",
                "--language=c", "--std=c11", "-I", ".", "--error-exitcode=0",
                "--template={file}:{line}:{column}:{severity}:{id}:{message}",
                *recipe_defines, *[f"-D{d}" for d in defines]]
        if self.config["max_configs"]:
            argv.append(f"--max-configs={self.config['max_configs']}")
        if self.config["build_dir"]:
            # inside this plugin's own fresh workdir: never shared with another plugin (see the
            # module docstring), so it cannot carry one plugin's result to another
            argv.append("--cppcheck-build-dir=.pds-cppcheck")
        return [*argv, *self.config["extra_args"]]

    def _cache_key(self, plugin: PluginInput, argv: list[str], source: str, workdir: Path) -> str | None:
        """The TU's cache key, or None when it is not to be cached (no cache, options that read
        files or time, includes the closure reader cannot follow)."""
        if self.cache_dir is None or self.config["build_dir"] or self.config["extra_args"]:
            return None
        identity = static_cache.tool_identity("cppcheck", tool_version("cppcheck"))
        if identity is None:
            return None
        try:
            closure = static_cache.include_closure(plugin.files, source, str(workdir))
        except static_cache.Uncacheable:
            return None
        return static_cache.tu_key(identity, argv, closure)

    def _cppcheck_tu(self, plugin: PluginInput, base: list[str], source: str,
                     workdir: Path) -> tuple[list[str], int | None, str, str, str | None]:
        """One TU: (argv, returncode, stdout, stderr, why it could not run), from the cache
        when an entry of the same key is there."""
        argv = [*base, source]
        key = self._cache_key(plugin, argv, source, workdir)
        cache = static_cache.TuCache(self.cache_dir) if key is not None and self.cache_dir else None
        if cache is not None and key is not None:
            hit = cache.get(key)
            if hit is not None:
                self.cache_stats["hit"] += 1
                return argv, *hit, None
        run = self.run_tool(argv, workdir)
        if not run.ran or run.timed_out or run.returncode not in (0, None):
            return argv, run.returncode, run.stdout, run.stderr, f"cppcheck could not run on {source}: {run.describe()}"
        if cache is not None and key is not None and run.returncode == 0:
            self.cache_stats["miss"] += 1
            cache.put(key, 0, run.stdout, run.stderr)
        else:
            self.cache_stats["uncached"] += 1
        return argv, run.returncode, run.stdout, run.stderr, None

    def _compiler_preprocessed(self, source: str, index: int, defines: tuple[str, ...],
                               workdir: Path) -> tuple[str | None, str, str | None]:
        """clang's preprocessed `source` (the recipe's first stage with -E), its line markers
        turned into `#line` (which cppcheck reads): (file name, log entry, why not)."""
        flags = [f for f in self.recipe.flags if f not in ("-emit-llvm", "-c")]
        output = f".pds-pp-{index}.i"
        argv = [self.recipe.compiler, *[f"-D{d}" for d in defines], *flags, "-E", source, "-o", output]
        run = self.run_tool(argv, workdir)
        entry = "$ " + " ".join(argv) + ("\n" + run.output if run.output else "")
        if not run.ran or run.timed_out or run.returncode != 0:
            return None, entry, f"{source}: clang cannot preprocess it either: {run.describe()}"
        path = workdir / output
        try:
            if path.stat().st_size > MAX_PREPROCESSED_BYTES:
                return None, entry, f"{source}: preprocessed output over {MAX_PREPROCESSED_BYTES >> 20} MiB"
            data = _LINEMARKER.sub(rb"#line \1 \2", path.read_bytes())
            converted = workdir / f".pds-pp-{index}.c"
            converted.write_bytes(data)
            path.unlink()
        except OSError as exc:
            return None, entry, f"{source}: preprocessed output unreadable: {exc.strerror}"
        return converted.name, entry, None

    def _cppcheck_preprocessed(self, base: list[str], source: str, index: int, defines: tuple[str, ...],
                               workdir: Path) -> tuple[list[str], str, str | None]:
        """cppcheck on clang's preprocessed TU, for one cppcheck's preprocessor cannot read: (log
        entries, cppcheck's findings output, why not)."""
        note = (f"note: cppcheck's preprocessor refuses {source} (a directive inside a macro argument, "
                f"which C leaves undefined and clang applies); analysing clang's preprocessed output")
        name, entry, problem = self._compiler_preprocessed(source, index, defines, workdir)
        if name is None:
            return [note, entry], "", problem
        argv = [*base, name]
        run = self.run_tool(argv, workdir)
        self.cache_stats["uncached"] += 1
        entries = [note, entry, "$ " + " ".join(argv) + "\n" + run.output]
        if not run.ran or run.timed_out or run.returncode not in (0, None):
            return entries, "", f"cppcheck could not run on {source} preprocessed by clang: {run.describe()}"
        try:
            text = (workdir / name).read_bytes()
        except OSError as exc:
            return entries, "", f"{source}: preprocessed output unreadable: {exc.strerror}"
        kept = []
        for line in run.stderr.splitlines():
            m = _STATEMENT_EXPRESSION_VALUE.search(line)
            if m and re.search(rb"\b" + re.escape(m.group(1).encode()) + rb"\s*;\s*\}\s*\)", text):
                entries.append(f"apart: {line} (the value of a GNU statement expression `({{ ...; "
                               f"{m.group(1)}; }})`, which cppcheck misreads once clang has expanded the macro)")
            else:
                kept.append(line)
        return entries, "\n".join(kept), None

    def _cppcheck(self, plugin: PluginInput, sources: list[str], defines: tuple[str, ...], workdir: Path,
                  log: list[str]) -> tuple[list[Finding], str | None, dict[str, str]]:
        """cppcheck on each TU alone (`jobs` at a time), each run or cache entry read alike; a TU
        cppcheck cannot preprocess is analysed from clang's preprocessed output."""
        base = self._cppcheck_argv(defines)
        if self.config["build_dir"]:
            (workdir / ".pds-cppcheck").mkdir(exist_ok=True)
        versions = {"cppcheck": tool_version("cppcheck")}

        def one(item: tuple[int, str]) -> tuple[list[str], str, str | None]:
            index, source = item
            argv, _, stdout, stderr, problem = self._cppcheck_tu(plugin, base, source, workdir)
            entries = ["$ " + " ".join(argv) + "\n" + stdout + ("\n" if stdout and stderr else "") + stderr]
            if problem is None and _DIRECTIVE_IN_ARGS.search(stderr):
                more, stderr, problem = self._cppcheck_preprocessed(base, source, index, defines, workdir)
                entries += more
                versions[self.recipe.compiler] = tool_version(self.recipe.compiler)
            return entries, stderr, problem

        with ThreadPoolExecutor(max_workers=self.config["jobs"]) as pool:
            runs = list(pool.map(one, enumerate(sources)))
        findings: list[Finding] = []
        for entries, stderr, problem in runs:  # in source order: the log does not depend on timing
            log.extend(entries)
            if problem is not None:
                return [], problem, versions
            findings += _cppcheck_findings(stderr, workdir)
        return findings, None, versions

    def _clang(self, sources: list[str], defines: tuple[str, ...], workdir: Path,
               log: list[str]) -> tuple[list[Finding], str | None, dict[str, str]]:
        flags = [f for f in self.recipe.flags if f not in ("-emit-llvm", "-c") and not f.startswith("-W")]
        argv = [self.recipe.compiler, "--analyze", "-Xanalyzer", "-analyzer-output=text",
                *[f"-D{d}" for d in defines], *flags, *self.config["extra_args"], *sources]
        run = self.run_tool(argv, workdir)
        versions = {self.recipe.compiler: tool_version(self.recipe.compiler)}
        log.append("$ " + " ".join(argv) + "\n" + run.output)
        if not run.ran or run.timed_out or run.returncode not in (0, None):
            return [], f"clang --analyze could not run: {run.describe()}", versions
        findings = []
        for line in run.stderr.splitlines():
            m = _CLANG_LINE.match(line.strip())
            if m:
                check = m.group("id") or "clang-analyzer"
                # the analyzer calls everything a warning; dead stores are what cppcheck calls style
                severity = "style" if check.startswith("deadcode.") else m.group("sev")
                findings.append(Finding(normalize_path(m.group("file"), str(workdir), str(workdir)),
                                        int(m.group("line")), severity, check, m.group("msg").strip()))
        for f in (workdir.glob("*.plist")):  # clang --analyze also writes a plist per source
            f.unlink(missing_ok=True)
        return findings, None, versions

    def _graphs(self, sources: dict[str, str], defines: tuple[str, ...], workdir: Path,
                log: list[str]) -> tuple[dict[str, CallGraph], str | None]:
        """Each pluglet's call graph from its IR (pluglets sharing a source share it)."""
        by_source: dict[str, CallGraph] = {}
        problems: list[str] = []

        def build(source: str, pluglet: str) -> tuple[str, CallGraph | None, str]:
            output = f".pds-reach-{by_source_order[source]}.ll"
            argv = ir_for_reachability(self.recipe, pluglet, output, defines)
            run = self.run_tool(argv, workdir)
            entry = "$ " + " ".join(argv) + ("\n" + run.output if run.output else "")
            if not run.ran or run.timed_out or run.returncode != 0:
                first = next((ln.strip() for ln in run.stderr.splitlines() if " error: " in ln), "")
                return source, None, (f"{pluglet}: cannot produce the IR for reachability: {run.describe()}"
                                      + (f" ({first[:200]})" if first else ""))
            path = workdir / output
            try:
                if path.stat().st_size > MAX_IR_BYTES:
                    return source, None, f"{pluglet}: IR over {MAX_IR_BYTES >> 20} MiB"
                text = path.read_text(errors="replace")
                path.unlink()
            except OSError as exc:
                return source, None, f"{pluglet}: IR unreadable: {exc.strerror}"
            try:
                graph = parse_ir(text, str(workdir))
            except FormatError as exc:
                return source, None, f"{pluglet}: {exc}"
            entry += f"\n{source}: roots {', '.join(graph.roots) or '(none)'}; {len(graph.reached)} function(s) reached"
            return source, graph, entry

        by_source_order = {s: i for i, s in enumerate(sorted(set(sources.values())))}
        first_pluglet: dict[str, str] = {}
        for pluglet, source in sources.items():
            first_pluglet.setdefault(source, pluglet)
        with ThreadPoolExecutor(max_workers=self.config["jobs"]) as pool:
            for source, graph, entry in pool.map(lambda item: build(*item), first_pluglet.items()):
                log.append(entry)
                if graph is None:
                    problems.append(entry)
                else:
                    by_source[source] = graph
        if problems:
            return {}, problems[0]
        return {pluglet: by_source[source] for pluglet, source in sources.items()}, None
