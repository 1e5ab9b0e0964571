"""A peer's trust configuration (trust.yaml) and its memory of STRs seen (the state file).

    version: 1
    pvs:
      pv1:
        vkey: "pv1.example+1a2b3c4d+AbCd..."    # C2SP verifier key; its name is the PV's origin
        mirrors: ["https://pv1.example/pds/", "https://mirror.example/pv1/"]
        pr: "https://pr.example/pr.git"         # optional
    require: "pv1 & (pv2 | pv3)"               # atoms: PV names, or PV.property
    max_age: 3600                              # seconds; an older STR makes that PV count false
    state: ~/.local/state/pds/peer-state.json  # optional (default shown); --state overrides

State file (JSON, written atomically): {"v": 1, "pvs": {"<origin>": {"epoch": E, "note": "<STR>"}}}
-- the newest STR verified for each PV; an older one is a rollback, a different one for the
same epoch is equivocation.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path


from pds_log.core.errors import FormatError, PdsError
from pds_log.core.formula import Formula
from pds_log.core.note import NoteVerifier
from pds_log.core.yamldoc import parse_mapping
from pds_log.infra.files import atomic_write_bytes

DEFAULT_STATE = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "pds" / "peer-state.json"


@dataclass
class TrustedPv:
    name: str
    verifier: NoteVerifier
    mirrors: list[str]
    pr: str | None = None


@dataclass
class Trust:
    pvs: dict[str, TrustedPv]
    formula: Formula
    max_age: int
    state_path: Path
    path: Path | None = None


def parse_trust(text: str | bytes, where: str = "trust.yaml", base: Path | None = None) -> Trust:
    doc = parse_mapping(text, where, {"version", "pvs", "require", "max_age", "state"})
    if doc.get("version") != 1:
        raise FormatError(f"{where}: version must be 1")
    pvs_doc = doc.get("pvs")
    if not isinstance(pvs_doc, dict) or not pvs_doc:
        raise FormatError(f"{where}: pvs must name at least one PV")
    pvs = {}
    for name, entry in pvs_doc.items():
        w = f"{where}: pvs.{name}"
        if not isinstance(entry, dict):
            raise FormatError(f"{w}: must be a mapping")
        extra = set(entry) - {"vkey", "mirrors", "pr"}
        if extra:
            raise FormatError(f"{w}: unknown key(s) {', '.join(sorted(extra))}")
        try:
            verifier = NoteVerifier.from_string(entry.get("vkey", ""))
        except FormatError as exc:
            raise FormatError(f"{w}.vkey: {exc}") from None
        mirrors = entry.get("mirrors")
        if not isinstance(mirrors, list) or not mirrors or not all(isinstance(m, str) and m for m in mirrors):
            raise FormatError(f"{w}.mirrors: must be a non-empty list of URLs")
        pvs[str(name)] = TrustedPv(str(name), verifier, mirrors, entry.get("pr"))
    try:
        formula = Formula.parse(str(doc.get("require", "")), known_pvs=list(pvs))
    except FormatError as exc:
        raise FormatError(f"{where}: require: {exc}") from None
    max_age = doc.get("max_age", 3600)
    if isinstance(max_age, bool) or not isinstance(max_age, int) or max_age <= 0:
        raise FormatError(f"{where}: max_age must be a positive number of seconds")
    state = Path(os.path.expanduser(str(doc["state"]))) if doc.get("state") else DEFAULT_STATE
    if base is not None and not state.is_absolute():
        state = base / state
    return Trust(pvs, formula, max_age, state)


def load_trust(path: str | os.PathLike) -> Trust:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise PdsError(f"{path}: {exc.strerror}") from None
    trust = parse_trust(text, str(path), base=path.parent.resolve())
    trust.path = path
    return trust


@dataclass
class PeerState:
    path: Path
    pvs: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> "PeerState":
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            return cls(path)
        except (OSError, ValueError) as exc:
            raise PdsError(f"{path}: unreadable peer state ({exc}); refusing to forget what was seen") from None
        if not isinstance(doc, dict) or doc.get("v") != 1 or not isinstance(doc.get("pvs"), dict):
            raise PdsError(f"{path}: not a v1 peer state file")
        return cls(path, doc["pvs"])

    def last(self, origin: str) -> tuple[int, bytes] | None:
        entry = self.pvs.get(origin)
        return (int(entry["epoch"]), entry["note"].encode()) if entry else None

    def remember(self, origin: str, epoch: int, note: bytes) -> None:
        self.pvs[origin] = {"epoch": epoch, "note": note.decode()}

    def save(self) -> None:
        atomic_write_bytes(self.path, json.dumps({"v": 1, "pvs": self.pvs}, indent=1, sort_keys=True).encode())
