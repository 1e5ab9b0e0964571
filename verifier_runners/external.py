"""A generic runner for external verification tools (T2, SeaHorn, CBMC, ESBMC, ...).

Configured in YAML (see verifier_runners/configs/*.yaml for the shipped, documented ones):

    tool: cbmc                         # for messages and the version probe
    version_args: ["--version"]        # optional
    per: pluglet                       # run once per pluglet ("pluglet") or once ("plugin")
    argv: ["cbmc", "{source}", "--function", "{entry}", "--unwind", "64", "--bounds-check"]
    timeout: 300
    pass: "VERIFICATION SUCCESSFUL"    # regex on stdout+stderr: all runs must match to pass
    fail: "VERIFICATION FAILED"        # regex: any match is a fail (checked first)
    exit_codes: {pass: [0], fail: [10]}   # optional, checked when no regex decides

Placeholders: {plugin_dir} (the materialised plugin), {name} (plugin name), {pluglet} (x.o),
{source} (x.c), {entry} (the pluglet's first function symbol, default the file stem),
{manifest}, {tools} (the shipped helper scripts in verifier_runners/tools, shown read-only in
the sandbox; they use only the system Python). argv is a list: it is never given to a shell.
Anything that is neither a clear pass nor a clear fail -- the tool missing, a crash, a timeout,
unmatched output -- is `error`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pds_log.core.errors import FormatError
from pds_log.core.recipe import BuildRecipe
from pds_log.core.yamldoc import parse_mapping

from . import ebpf
from .base import ERROR, FAIL, PASS, PluginInput, Verifier, VerifierResult
from .sandbox import tool_version

CONFIGS = Path(__file__).resolve().parent / "configs"
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_KNOWN = {"plugin_dir", "name", "pluglet", "source", "entry", "manifest", "tools"}
TOOLS = Path(__file__).resolve().parent / "tools"
EXTERNAL_KEYS = {"tool", "version_args", "per", "argv", "timeout", "pass", "fail", "exit_codes", "description"}


def _substitute(arg: str, values: dict[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], arg)


class External(Verifier):
    runner = "external"
    version = "1"
    options = {"config": None, "inline": None}

    def _spec_text(self) -> str:
        """The external config's YAML text: a file in the PV's directory or a shipped one."""
        if not self.config["config"]:
            raise FormatError(f"verifier {self.name}: external runner needs 'config' (a YAML file) or 'inline'")
        path = Path(self.config["config"])
        if not path.is_absolute():
            shipped = CONFIGS / path
            path = shipped if shipped.exists() and not (self.base_dir / path).exists() else self.base_dir / path
        try:
            return path.read_text()
        except OSError as exc:
            raise FormatError(f"verifier {self.name}: {path}: {exc.strerror}") from None

    def _load_spec(self) -> dict[str, Any]:
        spec = self.config["inline"]
        if spec is None:
            spec = self._spec_text()
        where = f"verifier {self.name}: external config"
        if isinstance(spec, str):
            return parse_mapping(spec, where, EXTERNAL_KEYS)
        if not isinstance(spec, dict):
            raise FormatError(f"{where} must be a mapping")
        if set(spec) - EXTERNAL_KEYS:
            raise FormatError(f"{where}: unknown key(s) {', '.join(sorted(set(spec) - EXTERNAL_KEYS))}")
        return spec

    def setup(self) -> None:
        spec = self._load_spec()
        argv = spec.get("argv")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise FormatError(f"verifier {self.name}: argv must be a non-empty list of strings")
        for arg in argv:
            for ph in _PLACEHOLDER.findall(arg):
                if ph not in _KNOWN:
                    raise FormatError(f"verifier {self.name}: unknown placeholder {{{ph}}} in argv")
        if spec.get("per", "pluglet") not in ("pluglet", "plugin"):
            raise FormatError(f"verifier {self.name}: per must be 'pluglet' or 'plugin'")
        for key in ("pass", "fail"):
            if spec.get(key) is not None:
                try:
                    re.compile(spec[key])
                except re.error as exc:
                    raise FormatError(f"verifier {self.name}: bad {key} regex: {exc}") from None
        self.spec = spec
        if "timeout" in spec:
            self.timeout = float(spec["timeout"])

    def digest_material(self) -> Any:
        return self.spec

    def check(self, plugin: PluginInput, workdir: Path) -> VerifierResult:
        spec = self.spec
        tool = spec.get("tool", spec["argv"][0])
        versions = {tool: tool_version(tool, *(spec.get("version_args") or ["--version"])[:1])}
        runs = [None] if spec.get("per", "pluglet") == "plugin" else list(plugin.manifest.pluglets)
        log: list[str] = []
        for pluglet in runs:
            values = {"plugin_dir": str(workdir), "name": plugin.name, "manifest": plugin.manifest.path,
                      "pluglet": pluglet or "", "source": BuildRecipe.source_for(pluglet) if pluglet else "",
                      "entry": _entry(plugin, pluglet) if pluglet else "", "tools": str(TOOLS)}
            argv = [_substitute(a, values) for a in spec["argv"]]
            log.append("$ " + " ".join(argv))
            run = self.run_tool(argv, workdir, readonly=(TOOLS,) if "{tools}" in " ".join(spec["argv"]) else ())
            log.append(run.output)
            what = pluglet or plugin.name
            if not run.ran:
                return self.result(ERROR, run.describe(), "\n".join(log), **versions)
            if run.timed_out:
                return self.result(ERROR, f"{tool} timed out after {self.timeout:g} s on {what} (killed)",
                                   "\n".join(log), **versions)
            output = run.output
            if run.returncode == 127:  # a wrapper (e.g. the T2 pipeline) could not find a step's tool
                missing = re.search(r"tool not found: (\S+)|(\S+): command not found", output)
                if missing:
                    return self.result(ERROR, f"tool not found: {missing.group(1) or missing.group(2)}",
                                       "\n".join(log), **versions)
            if spec.get("fail") and re.search(spec["fail"], output, re.M):
                return self.result(FAIL, f"{tool} on {what}: {_first_match(spec['fail'], output)}", "\n".join(log),
                                   **versions)
            if spec.get("pass") and re.search(spec["pass"], output, re.M):
                continue
            codes = spec.get("exit_codes") or {}
            if run.returncode in (codes.get("fail") or []):
                return self.result(FAIL, f"{tool} on {what}: exit code {run.returncode}", "\n".join(log), **versions)
            if run.returncode in (codes.get("pass") or []) and not spec.get("pass"):
                continue
            return self.result(ERROR, f"{tool} on {what}: no verdict ({run.describe()})", "\n".join(log), **versions)
        return self.result(PASS, f"{tool}: verified {len(runs) if runs != [None] else 1} unit(s)", "\n".join(log),
                           **versions)


def _entry(plugin: PluginInput, pluglet: str) -> str:
    try:
        obj = ebpf.load_object(plugin.files[pluglet])
        for section in obj.sections:
            if section.functions:
                return section.functions[min(section.functions)]
    except ebpf.ObjectError:
        pass
    return Path(pluglet).stem


def _first_match(pattern: str, text: str) -> str:
    m = re.search(pattern, text, re.M)
    if not m:
        return ""
    line_start = text.rfind("\n", 0, m.start()) + 1
    line_end = text.find("\n", m.end())
    return text[line_start: line_end if line_end >= 0 else None].strip()[:200]
