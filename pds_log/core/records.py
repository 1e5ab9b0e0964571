"""Typed models of the records a PV writes and others read (log v1), with their encoders and
strict parsers, in one place: the writer (pds_log.pv.epoch), the publisher and the human site
(pds_log.pv), the auditor and the peer all use these, never a raw dict.

    results/<shard>/<name>.json     ResultRecord    canonical JSON + "\\n" (path: log_layout.result_path)
    status/<name>.json              PluginStatus    json.dumps(sort_keys=True) + "\\n" (site only)
    pv.json                         PvDescriptor    json.dumps(indent=1, sort_keys=True) + "\\n"
    STR ``policy`` line             policy_hash(acceptance, verifiers)

(The epoch record is `pds_log.core.log_layout.EpochRecord`.) The byte forms are a wire
protocol: tests/core/test_records.py holds vectors copied from a real log, and a change to any
encoder that alters them fails there. Parsers are strict: every key known, every type checked,
and errors are FormatError naming the place, since logs and mirrors are hostile.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from . import jsondoc
from .binding import canonical_json
from .errors import FormatError

RESULT_VERSION = 1
ACCEPTED, REJECTED, REMOVED = "accepted", "rejected", "removed"
RESULT_STATUSES = (ACCEPTED, REJECTED, REMOVED)
VERIFIER_STATUSES = ("pass", "fail", "error")
MAX_RECORD_BYTES = 4 << 20  # a results record or an epoch record (verifier reasons, commit lists)
MAX_DESCRIPTOR_BYTES = 1 << 20


def _object(value: Any, keys: set[str], optional: set[str], where: str) -> dict[str, Any]:
    """`value` as a JSON object with exactly `keys` (plus any of `optional`)."""
    if not isinstance(value, dict):
        raise FormatError(f"{where}: not a JSON object")
    missing = keys - value.keys()
    if missing:
        raise FormatError(f"{where}: missing key(s) {', '.join(sorted(missing))}")
    unknown = value.keys() - keys - optional
    if unknown:
        raise FormatError(f"{where}: unknown key(s) {', '.join(sorted(str(k)[:40] for k in unknown))}")
    return value


def _str(obj: Mapping[str, Any], key: str, where: str, *, nullable: bool = False) -> Any:
    value = obj[key]
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise FormatError(f"{where}: {key} must be a string{' or null' if nullable else ''}")
    return value


def _count(obj: Mapping[str, Any], key: str, where: str) -> int:
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FormatError(f"{where}: {key} must be an integer >= 0")
    return value


def _str_list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise FormatError(f"{where}: must be a list of strings")
    return list(value)


# ---------------------------------------------------------------------- policy hash
def policy_obj(acceptance: str, verifiers: Any) -> dict[str, Any]:
    """What the STR `policy` line hashes: the acceptance formula and the verifier configs."""
    return {"acceptance": acceptance, "verifiers": verifiers}


def policy_hash(acceptance: str, verifiers: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of `policy_obj`: the STR's `policy` line. Raises
    TypeError/ValueError when the verifier configs are not plain JSON data."""
    return hashlib.sha256(canonical_json(policy_obj(acceptance, verifiers))).hexdigest()


# ---------------------------------------------------------------------- results record
@dataclass(frozen=True)
class VerifierOutcome:
    """One verifier's result inside a results record (its log is a separate blob, by hash)."""

    verifier: str
    status: str
    reason: str
    tool_versions: dict[str, str]
    duration_s: float
    log_sha256: str

    KEYS = frozenset({"verifier", "status", "reason", "tool_versions", "duration_s", "log_sha256"})

    @classmethod
    def of(cls, result: Any, log_sha256: str) -> "VerifierOutcome":
        """From a verifier_runners.VerifierResult (its `to_obj()`, minus the log) and its log's hash."""
        obj = result.to_obj()
        return cls(obj["verifier"], obj["status"], obj["reason"], obj["tool_versions"], obj["duration_s"], log_sha256)

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def to_obj(self) -> dict[str, Any]:
        return {"verifier": self.verifier, "status": self.status, "reason": self.reason,
                "tool_versions": dict(sorted(self.tool_versions.items())), "duration_s": self.duration_s,
                "log_sha256": self.log_sha256}

    @classmethod
    def from_obj(cls, value: Any, where: str) -> "VerifierOutcome":
        obj = _object(value, set(cls.KEYS), set(), where)
        status = _str(obj, "status", where)
        if status not in VERIFIER_STATUSES:
            raise FormatError(f"{where}: status must be one of {', '.join(VERIFIER_STATUSES)}")
        versions = obj["tool_versions"]
        if not isinstance(versions, dict) or not all(isinstance(v, str) for v in versions.values()):
            raise FormatError(f"{where}: tool_versions must map names to strings")
        duration = obj["duration_s"]
        if isinstance(duration, bool) or not isinstance(duration, (int, float)) or duration < 0:
            raise FormatError(f"{where}: duration_s must be a number >= 0")
        return cls(_str(obj, "verifier", where), status, _str(obj, "reason", where), dict(versions), duration,
                   _str(obj, "log_sha256", where))


@dataclass(frozen=True)
class ResultRecord:
    """results/<name>.json: the latest verification of one plugin, written by the epoch that
    verified (or removed) it. status: accepted (binding_value is the tree leaf), rejected
    (reason says why; taint when a refused PR commit touched it) or removed (deleted from the PR)."""

    name: str
    epoch: int
    status: str
    reason: str
    commit: str | None
    files_sha256: str | None
    binding_value: str | None
    verifiers: dict[str, VerifierOutcome] = field(default_factory=dict)
    taint: str | None = None

    KEYS = frozenset({"v", "name", "epoch", "status", "reason", "commit", "files_sha256", "binding_value",
                      "verifiers", "taint"})

    @property
    def verdicts(self) -> dict[str, bool]:
        """verifier name -> passed (the atoms of the acceptance formula)."""
        return {name: outcome.passed for name, outcome in self.verifiers.items()}

    def to_obj(self) -> dict[str, Any]:
        return {"v": RESULT_VERSION, "name": self.name, "epoch": self.epoch, "status": self.status,
                "reason": self.reason, "commit": self.commit, "files_sha256": self.files_sha256,
                "binding_value": self.binding_value,
                "verifiers": {n: o.to_obj() for n, o in sorted(self.verifiers.items())}, "taint": self.taint}

    def encode(self) -> bytes:
        return canonical_json(self.to_obj()) + b"\n"

    @classmethod
    def decode(cls, data: bytes, where: str = "results record") -> "ResultRecord":
        return cls.from_obj(jsondoc.loads(data, where, max_bytes=MAX_RECORD_BYTES), where)

    @classmethod
    def from_obj(cls, value: Any, where: str) -> "ResultRecord":
        if not isinstance(value, dict) or value.get("v") != RESULT_VERSION or isinstance(value.get("v"), bool):
            raise FormatError(f"{where}: not a v{RESULT_VERSION} results record")
        obj = _object(value, set(cls.KEYS), set(), where)
        status = obj["status"]
        if status not in RESULT_STATUSES:
            raise FormatError(f"{where}: status must be one of {', '.join(RESULT_STATUSES)}")
        verifiers = obj["verifiers"]
        if not isinstance(verifiers, dict):
            raise FormatError(f"{where}: verifiers must map names to objects")
        outcomes = {str(n): VerifierOutcome.from_obj(o, f"{where}: verifiers.{str(n)[:40]}")
                    for n, o in verifiers.items()}
        return cls(_str(obj, "name", where), _count(obj, "epoch", where), status, _str(obj, "reason", where),
                   _str(obj, "commit", where, nullable=True), _str(obj, "files_sha256", where, nullable=True),
                   _str(obj, "binding_value", where, nullable=True), outcomes,
                   _str(obj, "taint", where, nullable=True))


# ---------------------------------------------------------------------- status file
@dataclass(frozen=True)
class PluginStatus:
    """status/<name>.json on the static site: the PV's latest word on a plugin, pointing at the
    full results record. Not authenticated (peers show it as the PV's explanation only)."""

    name: str
    epoch: int
    status: str | None
    reason: str | None
    result: str

    KEYS = frozenset({"name", "epoch", "status", "reason", "result"})

    @classmethod
    def of(cls, record: ResultRecord, result_path: str) -> "PluginStatus":
        return cls(record.name, record.epoch, record.status, record.reason, result_path)

    def to_obj(self) -> dict[str, Any]:
        return {"name": self.name, "epoch": self.epoch, "status": self.status, "reason": self.reason,
                "result": self.result}

    def encode(self) -> bytes:
        return json.dumps(self.to_obj(), sort_keys=True).encode() + b"\n"

    @classmethod
    def decode(cls, data: bytes, where: str = "status file", max_bytes: int | None = None) -> "PluginStatus":
        obj = _object(jsondoc.loads(data, where, max_bytes=max_bytes), set(cls.KEYS), set(), where)
        status = _str(obj, "status", where, nullable=True)
        if status is not None and status not in RESULT_STATUSES:
            raise FormatError(f"{where}: status must be one of {', '.join(RESULT_STATUSES)}")
        return cls(_str(obj, "name", where), _count(obj, "epoch", where), status,
                   _str(obj, "reason", where, nullable=True), _str(obj, "result", where))


# ---------------------------------------------------------------------- pv.json
@dataclass(frozen=True)
class PvDescriptor:
    """pv.json (in the log repo and on the site): what auditors, peers and developers need to
    know about a PV, no secrets. `log_urls`: where anyone can git-clone the log repo;
    `mirrors`: base URLs of static mirrors of the published files (both optional, and only
    written when configured, so descriptors of PVs that set neither keep their bytes). Decoding
does not check `policy` against the configs: the auditor reports a mismatch as its own finding."""

    origin: str
    vkey: str
    pr_url: str
    pr_branch: str
    pr_root: str | None
    acceptance: str
    verifiers: dict[str, Any]
    epoch_interval: int
    policy: str  # as written; `computed_policy()` is what it must be (the auditor compares)
    log_urls: tuple[str, ...] = ()
    mirrors: tuple[str, ...] = ()

    KEYS = frozenset({"v", "origin", "vkey", "pr", "acceptance", "verifiers", "policy", "epoch_interval"})
    OPTIONAL = frozenset({"log"})

    @classmethod
    def build(cls, *, origin: str, vkey: str, pr_url: str, pr_branch: str, pr_root: str | None, acceptance: str,
              verifiers: dict[str, Any], epoch_interval: int, log_urls: tuple[str, ...] = (),
              mirrors: tuple[str, ...] = ()) -> "PvDescriptor":
        return cls(origin, vkey, pr_url, pr_branch, pr_root, acceptance, verifiers, epoch_interval,
                   policy_hash(acceptance, verifiers), tuple(log_urls), tuple(mirrors))

    def computed_policy(self) -> str:
        return policy_hash(self.acceptance, self.verifiers)

    def to_obj(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "v": 1, "origin": self.origin, "vkey": self.vkey,
            "pr": {"url": self.pr_url, "branch": self.pr_branch, "root": self.pr_root},
            "acceptance": self.acceptance, "verifiers": self.verifiers, "policy": self.policy,
            "epoch_interval": self.epoch_interval,
        }
        if self.log_urls or self.mirrors:
            obj["log"] = {"urls": list(self.log_urls), "mirrors": list(self.mirrors)}
        return obj

    def encode(self) -> bytes:
        return json.dumps(self.to_obj(), indent=1, sort_keys=True).encode() + b"\n"

    @classmethod
    def decode(cls, data: bytes, where: str = "pv.json") -> "PvDescriptor":
        obj = _object(jsondoc.loads(data, where, max_bytes=MAX_DESCRIPTOR_BYTES), set(cls.KEYS),
                      set(cls.OPTIONAL), where)
        if obj["v"] != 1 or isinstance(obj["v"], bool):
            raise FormatError(f"{where}: not a v1 PV descriptor")
        pr = _object(obj["pr"], {"url", "branch", "root"}, set(), f"{where}: pr")
        verifiers = obj["verifiers"]
        if not isinstance(verifiers, dict) or not all(isinstance(v, dict) for v in verifiers.values()):
            raise FormatError(f"{where}: verifiers must map names to objects")
        log_urls: tuple[str, ...] = ()
        mirrors: tuple[str, ...] = ()
        if "log" in obj:
            log = _object(obj["log"], {"urls", "mirrors"}, set(), f"{where}: log")
            log_urls = tuple(_str_list(log["urls"], f"{where}: log.urls"))
            mirrors = tuple(_str_list(log["mirrors"], f"{where}: log.mirrors"))
        desc = cls(_str(obj, "origin", where), _str(obj, "vkey", where), _str(pr, "url", f"{where}: pr"),
                   _str(pr, "branch", f"{where}: pr"), _str(pr, "root", f"{where}: pr", nullable=True),
                   _str(obj, "acceptance", where), dict(verifiers), _count(obj, "epoch_interval", where),
                   _str(obj, "policy", where), log_urls, mirrors)
        return desc
