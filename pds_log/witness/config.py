"""The witness directory: ``witness.yaml``, ``witness.key`` (mode 0600) and ``state.sqlite``.

witness.yaml::

    v: 1
    name: witness.example/w1          # the cosigner name (key name of its cosignatures)
    logs:                              # the logs it witnesses
      - origin: pv1.example/log
        vkey: pv1.example/log+1a2b3c4d+AV...   # the log's Ed25519 note verifier key

A log's origin must be its key's name (PDS signs checkpoints under the origin).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from pds_log.core import yamldoc
from pds_log.core.checkpoint import CosignatureSigner
from pds_log.core.errors import FormatError
from pds_log.core.note import NoteVerifier, validate_key_name
from pds_log.infra.files import atomic_write_text

CONFIG_FILE = "witness.yaml"
KEY_FILE = "witness.key"
STATE_FILE = "state.sqlite"
MAX_CONFIG_BYTES = 1 << 20
MAX_LOGS = 10_000


@dataclass(frozen=True)
class WitnessConfig:
    root: Path
    name: str
    logs: dict[str, NoteVerifier]  # origin -> log key

    @property
    def state_path(self) -> Path:
        return self.root / STATE_FILE

    def signer(self) -> CosignatureSigner:
        path = self.root / KEY_FILE
        signer = CosignatureSigner.from_string(path.read_text(encoding="utf-8"))
        if signer.name != self.name:
            raise FormatError(f"{path}: key is for {signer.name!r}, witness.yaml names {self.name!r}")
        return signer


def _logs_yaml(logs: dict[str, NoteVerifier]) -> str:
    if not logs:
        return "logs: []\n"
    return "logs:\n" + "".join(f"  - origin: {json.dumps(o)}\n    vkey: {json.dumps(str(v))}\n"
                               for o, v in sorted(logs.items()))


def init(root: Path, name: str, log_vkeys: list[str]) -> CosignatureSigner:
    """Create a witness directory with a new key; refuses to overwrite an existing one."""
    validate_key_name(name)
    logs: dict[str, NoteVerifier] = {}
    for vkey in log_vkeys:
        verifier = NoteVerifier.from_string(vkey)
        if verifier.name in logs:
            raise FormatError(f"log {verifier.name} listed twice")
        logs[verifier.name] = verifier
    root.mkdir(parents=True, exist_ok=True)
    for f in (CONFIG_FILE, KEY_FILE, STATE_FILE):
        if (root / f).exists():
            raise FormatError(f"{root / f} already exists; refusing to overwrite a witness")
    signer = CosignatureSigner.generate(name)
    atomic_write_text(root / KEY_FILE, signer.to_string() + "\n", mode=0o600)
    atomic_write_text(root / (KEY_FILE + ".pub"), str(signer.verifier()) + "\n")
    atomic_write_text(root / CONFIG_FILE, f"v: 1\nname: {json.dumps(name)}\n" + _logs_yaml(logs))
    return signer


def load(root: Path) -> WitnessConfig:
    path = root / CONFIG_FILE
    where = str(path)
    with open(path, "rb") as f:
        data = f.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise FormatError(f"{where}: larger than {MAX_CONFIG_BYTES} bytes")
    doc = yamldoc.parse_mapping(data, where, allowed=("v", "name", "logs"))
    if doc.get("v") != 1:
        raise FormatError(f"{where}: 'v' must be 1")
    name = doc.get("name")
    if not isinstance(name, str):
        raise FormatError(f"{where}: 'name' must be a string")
    validate_key_name(name)
    entries = doc.get("logs") or []
    if not isinstance(entries, list) or len(entries) > MAX_LOGS:
        raise FormatError(f"{where}: 'logs' must be a list of at most {MAX_LOGS} logs")
    logs: dict[str, NoteVerifier] = {}
    for i, entry in enumerate(entries):
        place = f"{where}: logs[{i}]"
        if not isinstance(entry, dict) or set(entry) != {"origin", "vkey"}:
            raise FormatError(f"{place}: expected exactly 'origin' and 'vkey'")
        origin, vkey = entry["origin"], entry["vkey"]
        if not isinstance(origin, str) or not isinstance(vkey, str):
            raise FormatError(f"{place}: 'origin' and 'vkey' must be strings")
        try:
            verifier = NoteVerifier.from_string(vkey)
        except FormatError as exc:
            raise FormatError(f"{place}: {exc}") from None
        if verifier.name != origin:
            raise FormatError(f"{place}: the key is named {verifier.name!r}, not the origin {origin!r}")
        if origin in logs:
            raise FormatError(f"{place}: log {origin} listed twice")
        logs[origin] = verifier
    if not os.path.exists(root / KEY_FILE):
        raise FormatError(f"{root / KEY_FILE}: missing (run `pds witness init`)")
    return WitnessConfig(root, name, logs)
