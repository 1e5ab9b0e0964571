"""`pds monitor`: a developer checks that every PV serves exactly what they pushed.

The developer's plugins are the plugin directories touched by PR commits carrying a valid
signature by their key. For each such plugin, every version they pushed (manifest and object
hashes at each of their commits) is acceptable; a PV whose tree binds the name to anything
else -- bytes they never pushed, or a version attributed to a commit they did not sign -- is
an alert. Absent plugins are reported with the PV's stated reason.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pygit2

from pds_log.core.commit_signature import SignatureProblem, signer_key
from pds_log.core.errors import PdsError
from pds_log.core.manifest import parse_plugin_manifest
from pds_log.core.policy import key_id
from pds_log.infra.commit_check import layout_at
from pds_log.infra.gitremote import fetch_branch
from pds_log.infra.prtree import changed_plugins, plugins_tree
from pds_log.infra.sshkeys import read_public_key
from pds_log.peer.trust import Trust
from pds_log.peer.verify import ABSENT, INCLUDED, verify_plugin


@dataclass
class PushedVersion:
    commit: str
    manifest: tuple[str, str]
    pluglets: dict[str, str]


@dataclass
class MonitorRow:
    plugin: str
    pv: str
    status: str  # ok | absent | alert | unavailable
    detail: str


@dataclass
class MonitorReport:
    developer: str
    plugins: dict[str, list[PushedVersion]] = field(default_factory=dict)
    rows: list[MonitorRow] = field(default_factory=list)

    @property
    def alerts(self) -> list[MonitorRow]:
        return [r for r in self.rows if r.status == "alert"]

    def to_obj(self) -> dict:
        return {"developer": self.developer, "plugins": sorted(self.plugins), "alerts": len(self.alerts),
                "rows": [{"plugin": r.plugin, "pv": r.pv, "status": r.status, "detail": r.detail}
                         for r in self.rows]}


def pushed_versions(repo: pygit2.Repository, head: pygit2.Commit, key: str) -> dict[str, list[PushedVersion]]:
    """plugin name -> versions the key pushed (newest first)."""
    wanted = key_id(key)
    out: dict[str, list[PushedVersion]] = {}
    for commit in repo.walk(head.id, pygit2.enums.SortMode.TOPOLOGICAL):
        signature, payload = commit.gpg_signature
        try:
            if signer_key(signature, payload) != wanted:
                continue
        except SignatureProblem:
            continue
        parent = commit.parents[0] if commit.parents else None
        layout = layout_at(repo, commit)
        changed = changed_plugins(repo, plugins_tree(repo, parent.tree) if parent is not None else None,
                                  layout_at(repo, parent) if parent is not None else layout,
                                  plugins_tree(repo, commit.tree), layout)
        for name, (_, new_id) in sorted(changed.items()):
            entry = repo[new_id] if new_id is not None else None
            if not isinstance(entry, pygit2.Tree):
                continue
            files = _files(repo, entry)
            try:
                manifest = parse_plugin_manifest(files, name)
            except Exception:  # noqa: BLE001 - a malformed version is simply not a version
                continue
            def sha(p: str, files: dict[str, bytes] = files) -> str:
                return hashlib.sha256(files[p]).hexdigest()

            out.setdefault(name, []).append(PushedVersion(
                str(commit.id), (manifest.path, sha(manifest.path)),
                {p: sha(p) for p in manifest.pluglets if p in files}))
    return out


def _files(repo, tree, prefix=""):
    files = {}
    for e in tree:
        if e.type_str == "tree":
            files.update(_files(repo, repo[e.id], prefix + e.name + "/"))
        elif e.type_str == "blob":
            files[prefix + e.name] = repo[e.id].data
    return files


def monitor(developer_key: str, trust: Trust, pr_url: str, **verify_kwargs) -> MonitorReport:
    key = read_public_key(developer_key)
    report = MonitorReport(developer=key)
    with tempfile.TemporaryDirectory(prefix="pds-monitor-") as tmp:
        repo, head = fetch_branch(pr_url, Path(tmp) / "pr.git")
        report.plugins = pushed_versions(repo, head, key)
    if not report.plugins:
        raise PdsError(f"no plugin in {pr_url} was pushed with this key")
    for name, versions in sorted(report.plugins.items()):
        verdict = verify_plugin(name, trust, **verify_kwargs)
        for pv, r in verdict.pvs.items():
            if r.status == INCLUDED:
                b = r.binding
                if b is None:
                    raise PdsError(f"{pv}: an inclusion of {name} without its binding")
                match = next((v for v in versions if v.manifest == (b.manifest_path, b.manifest_sha256)
                              and v.pluglets == dict(b.pluglets)), None)
                if match is None:
                    report.rows.append(MonitorRow(name, pv, "alert",
                                                  f"epoch {r.epoch}: the PV binds bytes you never pushed "
                                                  f"(source {b.source[:12]}, objects "
                                                  f"{', '.join(f'{p}={d[:12]}' for p, d in b.pluglets.items())})"))
                elif b.source not in {v.commit for v in versions}:
                    report.rows.append(MonitorRow(name, pv, "alert",
                                                  f"epoch {r.epoch}: your bytes, but attributed to commit "
                                                  f"{b.source[:12]}, which you did not sign"))
                elif match is not versions[0]:
                    report.rows.append(MonitorRow(name, pv, "ok", f"epoch {r.epoch}: an older version you pushed "
                                                                 f"({match.commit[:12]}); the PV has not caught up"))
                else:
                    report.rows.append(MonitorRow(name, pv, "ok", f"epoch {r.epoch}: your latest push "
                                                                 f"({match.commit[:12]})"))
            elif r.evidence:
                report.rows.append(MonitorRow(name, pv, "alert", f"the PV equivocated: {r.reason}"))
            elif r.status == ABSENT:
                why = f"; the PV says: {r.explanation}" if r.explanation else ""
                report.rows.append(MonitorRow(name, pv, "absent", f"epoch {r.epoch}: not in the tree{why}"))
            else:
                report.rows.append(MonitorRow(name, pv, "unavailable", r.reason))
    return report
