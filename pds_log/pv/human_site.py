"""The human side of a PV's publication: jinja2 pages (pds_log/templates/site) built with mkdocs.

Per plugin (status, properties, reasons for absence, bytecode hashes, verifier results with
logs, history), per epoch (what changed and why), and the PV's key and policy. The page data
kept between runs lives in ``<out>/.pds-site/`` (history per plugin, epoch summaries), so an
epoch only re-renders the pages of what it changed plus the indexes. mkdocs renders into a
scratch directory and only files whose bytes changed are (atomically) replaced under
``<out>/site/``.

Everything shown that comes from plugins or tools (names are restricted, but reasons and logs
are free text) is HTML-escaped: the site must not become a way to inject script.
"""

from __future__ import annotations

import datetime
import html
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import jinja2

from pds_log.core import static_layout as site
from pds_log.core.log_layout import EpochRecord
from pds_log.core.names import is_valid_name
from pds_log.core.records import PvDescriptor, ResultRecord
from pds_log.infra.files import atomic_write_bytes, atomic_write_text
from pds_log.infra.resources import template

DATA_DIR = ".pds-site"
RECENT = 10


def _cell(value: Any) -> str:
    """Safe inside a Markdown table cell: HTML-escaped, no pipes or newlines."""
    text = html.escape(str(value if value is not None else ""))
    return text.replace("|", "&#124;").replace("\n", " ").replace("\r", " ")


# status -> (label, CSS class of pds_log/templates/site/theme/pds.css); anything else is shown
# escaped with the neutral class
_STATUS = {"accepted": ("ACCEPTED", "pds-accepted"), "rejected": ("REJECTED", "pds-rejected"),
           "removed": ("REMOVED", "pds-removed"), "pass": ("pass", "pds-pass"), "fail": ("fail", "pds-fail"),
           "error": ("error", "pds-error")}


def _status(value: Any) -> str:
    """A coloured status badge (inline HTML inside Markdown): ACCEPTED green, REJECTED red."""
    label, css = _STATUS.get(str(value or ""), (_cell(value or "?"), "pds-unknown"))
    return f'<span class="pds-status {css}">{label}</span>'


def _utc(ts: int) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _by_name(entry: dict[str, str]) -> str:
    return entry["name"]


class HumanSite:
    def __init__(self, out: Path, descriptor: PvDescriptor) -> None:
        self.out = out
        self.data = out / DATA_DIR
        self.docs = self.data / "docs"
        self.descriptor = descriptor
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(template("site"))), autoescape=False,
                                      undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
        self.env.filters["e"] = _cell
        self.env.filters["status"] = _status
        self.changed_plugins: set[str] = set()
        self.new_epochs: list[int] = []

    # ------------------------------------------------------------------ data
    def _load(self, rel: str, default):
        try:
            return json.loads((self.data / rel).read_text())
        except (OSError, ValueError):
            return default

    def _save(self, rel: str, obj) -> None:
        atomic_write_text(self.data / rel, json.dumps(obj, sort_keys=True, indent=1) + "\n")

    def record_epoch(self, epoch: int, record: EpochRecord, results: dict[str, ResultRecord],
                     bindings: dict[str, Any]) -> None:
        """Remember what epoch `epoch` did (called by the publisher for each new epoch)."""
        epochs = self._load("epochs.json", [])
        entry = {
            "epoch": epoch, "time": record.time, "time_utc": _utc(record.time), "root": record.root,
            "size": record.size, "pr_from": record.pr_from, "pr_to": record.pr_to,
            "added": sorted(record.added), "updated": sorted(record.updated),
            "removed": [dict(r, linkable=is_valid_name(r["name"])) for r in sorted(record.removed, key=_by_name)],
            "rejected": [dict(r, linkable=is_valid_name(r["name"])) for r in sorted(record.rejected, key=_by_name)],
            "commits": record.commits,
            # PR-integrity alarms (pds_log.pv.epoch): commits on the PR branch no policy key signed
            "alarms": [c["alarm"] for c in record.commits if c.get("alarm")],
            "str_path": site.str_path(epoch),
        }
        epochs = [e for e in epochs if e["epoch"] != epoch] + [entry]
        self._save("epochs.json", sorted(epochs, key=lambda e: e["epoch"]))
        self.new_epochs.append(epoch)
        status = self._load("plugins.json", {})
        for name, result in results.items():
            binding = bindings.get(name)
            files = []
            if binding is not None:
                files = [{"path": binding.manifest_path, "sha256": binding.manifest_sha256}]
                files += [{"path": p, "sha256": d} for p, d in binding.pluglets.items()]
            current = {
                "epoch": epoch, "status": result.status, "reason": result.reason or "",
                "commit": result.commit, "properties": list(binding.properties) if binding else [],
                "files": files,
                "verifiers": [{"name": v, "status": r.status, "reason": r.reason, "log_sha256": r.log_sha256}
                              for v, r in sorted(result.verifiers.items())],
            }
            history = self._load(f"history/{name}.json", [])
            history.append({k: current[k] for k in ("epoch", "status", "reason", "commit")})
            self._save(f"history/{name}.json", history)
            self._save(f"current/{name}.json", current)
            status[name] = {"status": current["status"], "epoch": epoch, "reason": current["reason"]}
            self.changed_plugins.add(name)
        self._save("plugins.json", status)

    # ------------------------------------------------------------------ pages
    def _render(self, template: str, target: str, **ctx) -> None:
        text = self.env.get_template(template).render(origin=self.descriptor.origin, **ctx)
        path = self.docs / target
        if not path.exists() or path.read_text() != text:
            atomic_write_text(path, text)

    def render(self) -> None:
        epochs = self._load("epochs.json", [])
        if not epochs:
            return
        latest = epochs[-1]
        plugins = self._load("plugins.json", {})
        d = self.descriptor.to_obj()
        # the site's own theme (no third-party resources), from wherever pds_log is installed
        self._render("mkdocs.yml.j2", "../mkdocs.yml", theme_dir=str(template("site", "theme")))
        alarms = [{"epoch": e["epoch"], "alarm": a} for e in reversed(epochs) for a in e.get("alarms", [])]
        self._render("index.md.j2", "index.md", latest={**latest, "pr": latest["pr_to"]},
                     acceptance=d["acceptance"], recent_epochs=list(reversed(epochs[-RECENT:])),
                     alarms=alarms[:RECENT])
        self._render("pv.md.j2", "pv.md", vkey=d["vkey"], acceptance=d["acceptance"], policy=d["policy"],
                     verifiers=d["verifiers"], pr=d["pr"], epoch_interval=d["epoch_interval"])
        rows = [{"name": n, "status": s["status"], "epoch": s["epoch"], "reason": s["reason"]}
                for n, s in sorted(plugins.items())]
        self._render("plugins_index.md.j2", "plugins/index.md", plugins=rows, latest_epoch=latest["epoch"])
        self._render("epochs_index.md.j2", "epochs/index.md", epochs=list(reversed(epochs)))
        by_epoch = {e["epoch"]: e for e in epochs}
        for epoch in self.new_epochs:
            self._render("epoch.md.j2", f"epochs/{epoch}.md", e=by_epoch[epoch])
        for name in sorted(self.changed_plugins):
            current = self._load(f"current/{name}.json", None)
            if current is None:
                continue
            self._render("plugin.md.j2", f"plugins/{name}.md", name=name, current=current,
                         history=list(reversed(self._load(f"history/{name}.json", []))))

    def build(self) -> int:
        """Render pages and run mkdocs; returns how many served files changed."""
        self.render()
        if not (self.data / "mkdocs.yml").exists():
            return 0
        with tempfile.TemporaryDirectory(prefix="pds-site-") as tmp:
            result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--quiet", "-f",
                                     str(self.data / "mkdocs.yml"), "-d", tmp], capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(f"mkdocs build failed: {result.stderr.strip()[-2000:]}")
            changed = 0
            target_root = self.out / site.SITE_DIR
            built: set[Path] = set()
            for path in sorted(Path(tmp).rglob("*")):
                if path.is_dir():
                    continue
                rel = path.relative_to(tmp)
                built.add(rel)
                target = target_root / rel
                data = path.read_bytes()
                if target.exists() and target.read_bytes() == data:
                    continue
                atomic_write_bytes(target, data)
                changed += 1
            # files the build no longer makes (an older theme's scripts and fonts) go: whatever
            # is under site/ is what the current pages may load
            for path in sorted(target_root.rglob("*"), reverse=True):
                if path.is_symlink() or path.is_file():
                    if path.relative_to(target_root) not in built:
                        path.unlink()
                        changed += 1
                elif path.is_dir() and not any(path.iterdir()):
                    path.rmdir()
        return changed


def clean(out: Path) -> None:  # pragma: no cover - maintenance helper
    shutil.rmtree(out / DATA_DIR, ignore_errors=True)
