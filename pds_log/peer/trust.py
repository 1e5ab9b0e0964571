"""A peer's trust configuration (trust.yaml) and its memory of STRs seen (the state file).

trust.yaml (parsed strictly; every error is one line naming the file and the field):

    version: 1
    pvs:
      pv1:                                     # a formula atom: [A-Za-z][A-Za-z0-9_]*
        vkey: "pv1.example+1a2b3c4d+AbCd..."    # C2SP verifier key; its name is the PV's origin
        mirrors: ["https://pv1.example/pds/", "https://mirror.example/pv1/"]   # tried in order
        pr: "https://pr.example/pr.git"         # optional (monitor, gossip)
        cosigned_by: "2 of w1, w2, w3"          # optional: this PV's witness quorum (overrides the global one)
    require: "pv1 & (pv2 | pv3)"               # atoms: PV names, or PV.property; monotone
    max_age: 3600                              # seconds; an older STR makes that PV count false
    state: ~/.local/state/pds/peer-state.json  # optional (default shown); --state overrides
    witnesses:                                 # optional: witnesses this peer knows, label -> cosignature/v1 key
      w1: "witness.example/w1+20324abe+BCms..."
    cosigned_by: "1 of w1"                     # optional: the quorum every PV needs ("none": no witnesses)

`cosigned_by` is "<k> of <label>, <label>, ..." (k >= 1 distinct valid cosignatures of the
witnesses named, which must be listed under `witnesses`) or "none". A PV's STR without its
quorum's valid cosignatures is not fresh evidence (`pds_log.peer.errors.Unwitnessed`); a
witness cosigns only a checkpoint of the PV's epoch log (STR v2), so a PV that must be
witnessed cannot be accepted on a v1 STR.

A mirror is an http(s) base URL or a local directory (absolute, ``file://``, or relative to
trust.yaml). Two PV entries may share a key (say, different mirror sets), but one origin
cannot have two different keys.

State file (JSON, replaced atomically under a lock, merged with concurrent writers):

    {"v": 1, "pvs": {"<origin>": {"epoch": E, "note": "<signed STR note>",
                                  "seen": <unix seconds>, "source": "<mirror URL or bundle>"}}}

-- for each PV, the newest STR this peer fully verified. A mirror serving an older epoch is a
rollback; a different STR for the same epoch is equivocation; a newer one must chain to it.
An unreadable state file is an error, never "nothing seen" (that would forget what rollback
protection depends on).
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from pds_log.core import jsondoc
from pds_log.core.checkpoint import CosignatureVerifier, WitnessPolicy
from pds_log.core.errors import FormatError, PdsError
from pds_log.core.formula import Formula
from pds_log.core.note import NoteVerifier
from pds_log.core.yamldoc import parse_mapping
from pds_log.infra.http import check_mirror_url, is_local

DEFAULT_STATE = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "pds" / "peer-state.json"
STATE_VERSION = 1
_PV_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_WITNESS_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_QUORUM = re.compile(r"\s*([0-9]{1,3})\s+of\s+(.+)")


@dataclass
class TrustedPv:
    name: str
    verifier: NoteVerifier
    mirrors: list[str]
    pr: str | None = None
    witnesses: WitnessPolicy | None = None  # the cosignatures an STR needs to count
    witness_labels: dict[str, str] = field(default_factory=dict)  # witness key name -> trust.yaml label

    @property
    def origin(self) -> str:
        return self.verifier.name


@dataclass
class Trust:
    pvs: dict[str, TrustedPv]
    formula: Formula
    max_age: int
    state_path: Path
    path: Path | None = None


def parse_trust(text: str | bytes, where: str = "trust.yaml", base: Path | None = None) -> Trust:
    """Parse trust.yaml; `base` resolves relative local mirrors and state paths."""
    doc = parse_mapping(text, where, {"version", "pvs", "require", "max_age", "state", "witnesses", "cosigned_by"})
    version = doc.get("version")
    if version != 1 or isinstance(version, bool):
        raise FormatError(f"{where}: version: must be 1, got {version!r}")
    pvs_doc = doc.get("pvs")
    if not isinstance(pvs_doc, dict) or not pvs_doc:
        raise FormatError(f"{where}: pvs: must be a mapping naming at least one PV")
    pvs: dict[str, TrustedPv] = {}
    origins: dict[str, tuple[str, NoteVerifier]] = {}
    for name, entry in pvs_doc.items():
        pvs[name] = _pv_entry(name, entry, f"{where}: pvs.{name}", base, origins)
    _witness_policies(doc, pvs_doc, pvs, where)
    if "require" not in doc:
        raise FormatError(f"{where}: require: missing (e.g. require: \"{' & '.join(pvs)}\")")
    if not isinstance(doc["require"], str):
        raise FormatError(f"{where}: require: must be a string formula such as \"pv1 & (pv2 | pv3)\"")
    try:
        formula = Formula.parse(doc["require"], known_pvs=list(pvs))
    except FormatError as exc:
        raise FormatError(f"{where}: require: {exc}") from None
    max_age = doc.get("max_age", 3600)
    if isinstance(max_age, bool) or not isinstance(max_age, int) or max_age <= 0:
        raise FormatError(f"{where}: max_age: must be a positive whole number of seconds, got {max_age!r}")
    state_doc = doc.get("state")
    if state_doc is None:
        state = DEFAULT_STATE
    elif isinstance(state_doc, str) and state_doc.strip():
        state = Path(os.path.expanduser(state_doc))
        if base is not None and not state.is_absolute():
            state = base / state
    else:
        raise FormatError(f"{where}: state: must be a file path")
    return Trust(pvs, formula, max_age, state)


def _pv_entry(name: object, entry: object, w: str, base: Path | None,
              origins: dict[str, tuple[str, NoteVerifier]]) -> TrustedPv:
    """One entry of pvs:; `origins` (origin -> first PV name and key) catches one origin with two keys."""
    if not isinstance(name, str) or not _PV_NAME.fullmatch(name):
        raise FormatError(f"{w}: a PV name must be a formula atom ([A-Za-z][A-Za-z0-9_]*)")
    if not isinstance(entry, dict):
        raise FormatError(f"{w}: must be a mapping with vkey and mirrors")
    extra = set(entry) - {"vkey", "mirrors", "pr", "cosigned_by"}
    if extra:
        raise FormatError(f"{w}: unknown key(s) {', '.join(sorted(map(str, extra)))}")
    if "vkey" not in entry:
        raise FormatError(f"{w}.vkey: missing (the PV's verifier key)")
    try:
        verifier = NoteVerifier.from_string(entry["vkey"])
    except FormatError as exc:
        raise FormatError(f"{w}.vkey: {exc}") from None
    seen = origins.get(verifier.name)
    if seen is not None and seen[1] != verifier:
        raise FormatError(f"{w}.vkey: origin {verifier.name} already has a different key (pvs.{seen[0]})")
    origins.setdefault(verifier.name, (name, verifier))
    return TrustedPv(name, verifier, _mirrors(entry.get("mirrors"), f"{w}.mirrors", base),
                     _optional_str(entry.get("pr"), f"{w}.pr"))


def _witness_policies(doc: dict, pvs_doc: dict, pvs: dict[str, TrustedPv], where: str) -> None:
    """Each PV's witness quorum: its own cosigned_by, else the global one (else none)."""
    known = _witnesses(doc.get("witnesses"), f"{where}: witnesses")
    default = _cosigned_by(doc.get("cosigned_by"), f"{where}: cosigned_by", known)
    for name, pv in pvs.items():
        policy = default
        if "cosigned_by" in pvs_doc[name]:
            policy = _cosigned_by(pvs_doc[name]["cosigned_by"], f"{where}: pvs.{name}.cosigned_by", known)
        if policy is not None:
            pv.witnesses = policy
            pv.witness_labels = {v.name: label for label, v in known.items() if v in policy.witnesses}


def _witnesses(value: object, where: str) -> dict[str, CosignatureVerifier]:
    """witnesses: label -> cosignature/v1 verifier key."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FormatError(f"{where}: must map a label to each witness's verifier key")
    out: dict[str, CosignatureVerifier] = {}
    for label, vkey in value.items():
        if not isinstance(label, str) or not _WITNESS_LABEL.fullmatch(label):
            raise FormatError(f"{where}: label {str(label)[:40]!r} must be letters, digits, '_', '.', '-'")
        try:
            verifier = CosignatureVerifier.from_string(vkey)
        except FormatError as exc:
            raise FormatError(f"{where}.{label}: {exc}") from None
        same = [other for other, v in out.items() if v.name == verifier.name]
        if same:
            raise FormatError(f"{where}.{label}: witness {verifier.name} is already listed as {same[0]}")
        out[label] = verifier
    return out


def _cosigned_by(value: object, where: str, known: dict[str, CosignatureVerifier]) -> WitnessPolicy | None:
    """ "<k> of <label>, ..." as a WitnessPolicy; None for "none" or no value."""
    if value is None or value == "none":
        return None
    m = _QUORUM.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        raise FormatError(f"{where}: expected \"<k> of <witness>, <witness>, ...\" or \"none\", "
                          f"got {str(value)[:60]!r}")
    labels = [label.strip() for label in m.group(2).split(",")]
    for label in labels:
        if label not in known:
            listed = ", ".join(known) or "none listed"
            raise FormatError(f"{where}: unknown witness {label[:40]!r} (witnesses: {listed})")
    if len(set(labels)) != len(labels):
        raise FormatError(f"{where}: a witness is named twice")
    quorum = int(m.group(1))
    if not 1 <= quorum <= len(labels):
        raise FormatError(f"{where}: {quorum} of {len(labels)} witnesses: the quorum must be 1 to {len(labels)}")
    return WitnessPolicy(tuple(known[label] for label in labels), quorum)


def _mirrors(value: object, where: str, base: Path | None) -> list[str]:
    if not isinstance(value, list) or not value:
        raise FormatError(f"{where}: must be a non-empty list of mirror URLs")
    out = []
    for i, mirror in enumerate(value):
        if not isinstance(mirror, str) or not mirror.strip():
            raise FormatError(f"{where}[{i}]: must be a URL string")
        try:
            check_mirror_url(mirror)
        except ValueError as exc:
            raise FormatError(f"{where}[{i}]: {exc}") from None
        if is_local(mirror) and not mirror.startswith("file:") and base is not None and not Path(mirror).is_absolute():
            mirror = str(base / mirror)
        if mirror in out:
            raise FormatError(f"{where}[{i}]: {mirror!r} is listed twice")
        out.append(mirror)
    return out


def _optional_str(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise FormatError(f"{where}: must be a URL string")
    return value


def load_trust(path: str | os.PathLike) -> Trust:
    path = Path(path)
    try:
        data = path.read_bytes()  # decoded by yamldoc: strict UTF-8, an error naming the file
    except OSError as exc:
        raise PdsError(f"{path}: cannot read trust file ({exc.strerror or exc})") from None
    trust = parse_trust(data, str(path), base=path.parent.resolve())
    trust.path = path
    return trust


@dataclass
class PeerState:
    """The newest fully verified STR per PV origin (see the module docstring)."""

    path: Path
    pvs: dict[str, dict] = field(default_factory=dict)
    _changed: set[str] = field(default_factory=set, repr=False)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PeerState":
        path = Path(path)
        return cls(path, _read_state(path))

    def last(self, origin: str) -> tuple[int, bytes] | None:
        """(epoch, note) of the newest STR verified for `origin`, or None."""
        entry = self.pvs.get(origin)
        return (int(entry["epoch"]), entry["note"].encode()) if entry else None

    def remember(self, origin: str, epoch: int, note: bytes, source: str = "", now: int | None = None) -> None:
        """Record a fully verified STR (kept only if it is newer than the one remembered)."""
        current = self.pvs.get(origin)
        if current is not None and int(current["epoch"]) >= epoch:
            return
        self.pvs[origin] = {"epoch": epoch, "note": note.decode(), "seen": int(time.time() if now is None else now),
                            "source": source}
        self._changed.add(origin)

    def save(self) -> None:
        """Write the state atomically; entries another process advanced meanwhile are kept
        when they are newer (the file only ever moves forward)."""
        if not self._changed:
            return
        from pds_log.infra.files import atomic_write_bytes, exclusive_lock  # lazily: a warm run saves nothing

        with exclusive_lock(self.path.with_name(self.path.name + ".lock"), wait=True):
            merged = _read_state(self.path)
            for origin in self._changed:
                ours = self.pvs[origin]
                theirs = merged.get(origin)
                if theirs is None or int(theirs["epoch"]) < int(ours["epoch"]):
                    merged[origin] = ours
            atomic_write_bytes(self.path, json.dumps({"v": STATE_VERSION, "pvs": merged}, indent=1,
                                                     sort_keys=True).encode() + b"\n", mode=0o600)
            self.pvs = merged
            self._changed.clear()


def _read_state(path: Path) -> dict[str, dict]:
    try:
        doc = jsondoc.loads(path.read_bytes(), str(path))
    except FileNotFoundError:
        return {}
    except (OSError, FormatError) as exc:
        raise PdsError(f"{path}: unreadable peer state ({exc}); refusing to forget what was seen") from None
    if not isinstance(doc, dict) or doc.get("v") != STATE_VERSION or not isinstance(doc.get("pvs"), dict):
        raise PdsError(f"{path}: not a v{STATE_VERSION} peer state file")
    for origin, entry in doc["pvs"].items():
        if (not isinstance(entry, dict) or isinstance(entry.get("epoch"), bool)
                or not isinstance(entry.get("epoch"), int) or not isinstance(entry.get("note"), str)):
            raise PdsError(f"{path}: entry {origin!r} needs an integer epoch and a note")
    return doc["pvs"]
