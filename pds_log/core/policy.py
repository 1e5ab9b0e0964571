"""The Plugin Repository's policy (``pds/policy.yaml`` in the PR): who may write what, when.

    version: 1
    branch: main                        # the plugin branch
    layout: 2                           # where plugins' files sit (core/pr_layout.py); absent = 1
    max_blob_bytes: 1048576             # any larger file is refused
    admins:                             # may change pds/ (this policy) and files outside plugins/
      - name: alice-admin
        key: ssh-ed25519 AAAA... alice@example
    developers:
      - name: alice
        key: ssh-ed25519 AAAA...
        namespaces: ["be.example.*"]    # plugin names this key may write (plugins/<name>/...)
        valid_after: 2026-01-01T00:00:00Z    # optional, ISO 8601 or unix seconds
        valid_before: 2027-01-01T00:00:00Z   # optional
    revoked:                            # keys refused whatever else says
      - key: ssh-ed25519 AAAA...
        reason: laptop stolen
    pvs:                                # each PV writes only refs/heads/pvs/<origin>, pvs/<origin>/...
      - origin: pv1.example
        key: ssh-ed25519 AAAA...

Keys are compared by algorithm and key data (the comment is ignored). A key may appear in
several roles. Validity is judged at a time the caller passes (the PR hook: the time of the
push; a PV: the time it observes the commit), never at the committer date, which the signer
chooses. Parsing is strict: unknown keys, bad patterns and malformed keys are errors naming
the entry.
"""

from __future__ import annotations

import base64
import binascii
import datetime
from dataclasses import dataclass, field
from typing import Any

import yaml

from .errors import FormatError, PdsError
from .names import in_namespace, validate_name, validate_namespace
from .note import validate_key_name
from .pr_layout import DEFAULT_LAYOUT, validate_layout
from .pr_layout import PLUGINS_DIR as PLUGINS_DIR
from .yamldoc import parse_mapping

POLICY_PATH = "pds/policy.yaml"
PV_AREA_DIR = "pvs"
DEFAULT_MAX_BLOB = 1 << 20
_KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
              "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com")


def key_id(openssh: str) -> str:
    """`<type> <base64>` of an OpenSSH public key line (the comment dropped)."""
    parts = str(openssh).split()
    if len(parts) < 2 or parts[0] not in _KEY_TYPES:
        raise FormatError(f"not an OpenSSH public key: {str(openssh)[:50]!r}")
    try:  # checked here so that short_key, called on every decision, cannot fail later
        base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        raise FormatError(f"not an OpenSSH public key (key data is not base64): {str(openssh)[:50]!r}") from None
    return f"{parts[0]} {parts[1]}"


def parse_time(value: str | int | None, where: str) -> int | None:
    """A time given by a person (a command-line option): ISO 8601 or unix seconds, or None."""
    if isinstance(value, str) and value.isdigit() and value.isascii():
        value = int(value)
    return _timestamp(value, where)


def _timestamp(value: object, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise FormatError(f"{where}: expected a timestamp")
    if isinstance(value, int):
        try:  # a time messages cannot print (year > 9999) would crash each decision that names it
            _iso(value)
        except (OverflowError, ValueError, OSError):
            raise FormatError(f"{where}: {value} is out of range for a time") from None
        return value
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        try:
            return _timestamp(int(value.timestamp()), where)
        except (OverflowError, ValueError, OSError):
            raise FormatError(f"{where}: {value} is out of range for a time") from None
    if isinstance(value, datetime.date):
        return _timestamp(datetime.datetime(value.year, value.month, value.day, tzinfo=datetime.timezone.utc), where)
    if isinstance(value, str):
        try:
            parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise FormatError(f"{where}: {value!r} is not an ISO 8601 time") from None
        return _timestamp(parsed, where)
    raise FormatError(f"{where}: expected a timestamp, got {type(value).__name__}")


@dataclass(frozen=True)
class Principal:
    name: str
    key: str  # key_id form
    role: str  # "admin" | "developer" | "pv"
    namespaces: tuple[str, ...] = ()
    valid_after: int | None = None
    valid_before: int | None = None
    origin: str | None = None  # for PVs


@dataclass
class Policy:
    branch: str = "main"
    max_blob_bytes: int = DEFAULT_MAX_BLOB
    layout: int = DEFAULT_LAYOUT  # the PR layout (pds_log.core.pr_layout)
    admins: list[Principal] = field(default_factory=list)
    developers: list[Principal] = field(default_factory=list)
    pvs: list[Principal] = field(default_factory=list)
    revoked: dict[str, str] = field(default_factory=dict)  # key id -> reason

    # ------------------------------------------------------------------ parsing
    @classmethod
    def parse(cls, text: str | bytes, where: str = POLICY_PATH) -> "Policy":
        doc = parse_mapping(text, where, {"version", "branch", "layout", "max_blob_bytes", "admins",
                                          "developers", "revoked", "pvs"})
        if doc.get("version") != 1:
            raise FormatError(f"{where}: version must be 1")
        branch = doc.get("branch", "main")
        if not isinstance(branch, str) or not branch.strip():
            raise FormatError(f"{where}: branch must be a branch name")
        policy = cls(branch=branch, layout=validate_layout(doc.get("layout", DEFAULT_LAYOUT), where))
        mbb = doc.get("max_blob_bytes", DEFAULT_MAX_BLOB)
        if isinstance(mbb, bool) or not isinstance(mbb, int) or mbb <= 0:
            raise FormatError(f"{where}: max_blob_bytes must be a positive integer")
        policy.max_blob_bytes = mbb
        for i, entry in enumerate(_list(doc, "admins", where)):
            w = f"{where}: admins[{i}]"
            _only(entry, {"name", "key"}, w)
            policy.admins.append(Principal(_str(entry, "name", w), _key(entry, w), "admin"))
        for i, entry in enumerate(_list(doc, "developers", where)):
            policy.developers.append(_parse_developer(entry, f"{where}: developers[{i}]"))
        for i, entry in enumerate(_list(doc, "revoked", where)):
            w = f"{where}: revoked[{i}]"
            _only(entry, {"key", "reason", "name"}, w)
            policy.revoked[_key(entry, w)] = str(entry.get("reason", "revoked"))
        for i, entry in enumerate(_list(doc, "pvs", where)):
            policy.pvs.append(_parse_pv(entry, f"{where}: pvs[{i}]"))
        if not policy.admins:
            raise FormatError(f"{where}: at least one admin is required")
        return policy

    def to_yaml(self) -> str:
        def dev(p: Principal) -> dict[str, Any]:
            d: dict[str, Any] = {"name": p.name, "key": p.key, "namespaces": list(p.namespaces)}
            if p.valid_after is not None:
                d["valid_after"] = p.valid_after
            if p.valid_before is not None:
                d["valid_before"] = p.valid_before
            return d

        doc: dict[str, Any] = {"version": 1, "branch": self.branch}
        if self.layout != DEFAULT_LAYOUT:  # a layout-1 policy keeps its bytes
            doc["layout"] = self.layout
        doc.update({
            "max_blob_bytes": self.max_blob_bytes,
            "admins": [{"name": p.name, "key": p.key} for p in self.admins],
            "developers": [dev(p) for p in self.developers],
            "revoked": [{"key": k, "reason": r} for k, r in self.revoked.items()],
            "pvs": [{"origin": p.origin, "key": p.key} for p in self.pvs],
        })
        return str(yaml.safe_dump(doc, sort_keys=False, width=1000))

    # ------------------------------------------------------------------ edits (an admin's commit)
    def add_developer(self, name: str, key: str, namespaces: tuple[str, ...] | list[str],
                      valid_after: int | None = None, valid_before: int | None = None) -> str:
        """Let `key` (of principal `name`) write plugins under `namespaces`, replacing that
        principal's earlier entry for the same key; returns the commit message."""
        kid = key_id(key)
        spaces = tuple(validate_namespace(ns) for ns in namespaces)
        if not spaces:
            raise FormatError("a developer needs at least one namespace")
        if valid_after is not None and valid_before is not None and valid_after >= valid_before:
            raise FormatError("valid_after must be before valid_before")
        self.developers = [p for p in self.developers if not (p.name == name and p.key == kid)]
        self.developers.append(Principal(name, kid, "developer", spaces, valid_after, valid_before))
        return f"policy: developer {name} may write {', '.join(spaces)}"

    def add_pv(self, origin: str, key: str) -> str:
        """Give PV `origin` its area (refs/heads/pvs/<origin>), replacing an earlier key."""
        validate_key_name(origin)
        if "/" in origin:
            raise FormatError(f"origin {origin!r} must not contain '/' (it names a branch)")
        self.pvs = [p for p in self.pvs if p.origin != origin]
        self.pvs.append(Principal(origin, key_id(key), "pv", origin=origin))
        return f"policy: PV {origin} writes refs/heads/pvs/{origin}"

    def revoke(self, key: str, reason: str) -> str:
        """Refuse every commit `key` signs from now on (never the only admin key)."""
        kid = key_id(key)
        if self.is_admin(kid) and len(self.admins) == 1:
            raise PdsError("refusing to revoke the only admin key")
        self.revoked[kid] = reason
        return f"policy: revoke a key ({reason})"

    # ------------------------------------------------------------------ decisions
    def principals_for(self, key: str) -> list[Principal]:
        kid = key_id(key)
        return [p for p in (*self.admins, *self.developers, *self.pvs) if p.key == kid]

    def key_problem(self, key: str, when: int) -> str | None:
        """Why a key may not sign at time `when` (unknown, revoked), or None."""
        kid = key_id(key)
        if kid in self.revoked:
            return f"key {short_key(kid)} is revoked ({self.revoked[kid]})"
        if not self.principals_for(kid):
            return f"key {short_key(kid)} is not in the policy"
        return None

    def may_write_plugin(self, key: str, name: str, when: int) -> str | None:
        """None if `key` may write plugins/<name>/ at `when`, else the reason."""
        validate_name(name)
        devs = [p for p in self.principals_for(key) if p.role == "developer"]
        if not devs:
            return f"key {short_key(key_id(key))} is not a developer key"
        reasons = []
        for dev in devs:
            if dev.valid_after is not None and when < dev.valid_after:
                reasons.append(f"{dev.name}'s key is not valid before {_iso(dev.valid_after)}")
                continue
            if dev.valid_before is not None and when >= dev.valid_before:
                reasons.append(f"{dev.name}'s key expired at {_iso(dev.valid_before)}")
                continue
            if any(in_namespace(name, ns) for ns in dev.namespaces):
                return None
            reasons.append(f"signer {dev.name} may not write outside {', '.join(dev.namespaces)}")
        return "; ".join(reasons)

    def is_admin(self, key: str) -> str | None:
        admins = [p for p in self.principals_for(key) if p.role == "admin"]
        return admins[0].name if admins else None

    def pv_origin(self, key: str) -> list[str]:
        return [p.origin for p in self.principals_for(key) if p.role == "pv" and p.origin is not None]

    def name_of(self, key: str) -> str | None:
        found = self.principals_for(key)
        return found[0].name if found else None


def short_key(kid: str) -> str:
    import hashlib

    blob = base64.b64decode(kid.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _iso(ts: int) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_developer(entry: dict[str, Any], w: str) -> Principal:
    """One entry of policy.yaml's developers list (`w` names it in errors)."""
    _only(entry, {"name", "key", "namespaces", "valid_after", "valid_before"}, w)
    spaces = entry.get("namespaces")
    if not isinstance(spaces, list) or not spaces:
        raise FormatError(f"{w}: namespaces must be a non-empty list like ['be.example.*']")
    for ns in spaces:
        try:
            validate_namespace(ns)
        except FormatError as exc:
            raise FormatError(f"{w}: {exc}") from None
    after = _timestamp(entry.get("valid_after"), f"{w}.valid_after")
    before = _timestamp(entry.get("valid_before"), f"{w}.valid_before")
    if after is not None and before is not None and after >= before:
        raise FormatError(f"{w}: valid_after must be before valid_before")
    return Principal(_str(entry, "name", w), _key(entry, w), "developer", tuple(spaces), after, before)


def _parse_pv(entry: dict[str, Any], w: str) -> Principal:
    """One entry of policy.yaml's pvs list (`w` names it in errors)."""
    _only(entry, {"origin", "key"}, w)
    origin = _str(entry, "origin", w)
    try:
        validate_key_name(origin)
    except FormatError as exc:
        raise FormatError(f"{w}: {exc}") from None
    if "/" in origin:
        raise FormatError(f"{w}: origin {origin!r} must not contain '/' (it names a branch)")
    return Principal(origin, _key(entry, w), "pv", origin=origin)


def _list(doc: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    value = doc.get(key) or []
    if not isinstance(value, list):
        raise FormatError(f"{where}: {key} must be a list")
    for i, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise FormatError(f"{where}: {key}[{i}] must be a mapping")
    return value


def _only(entry: dict[str, Any], keys: set[str], where: str) -> None:
    extra = set(entry) - keys
    if extra:
        raise FormatError(f"{where}: unknown key(s) {', '.join(sorted(map(str, extra)))}")


def _str(entry: dict[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value:
        raise FormatError(f"{where}: {key} must be a non-empty string")
    return value


def _key(entry: dict[str, Any], where: str) -> str:
    try:
        return key_id(entry.get("key", ""))
    except FormatError as exc:
        raise FormatError(f"{where}: {exc}") from None
