"""Bindings: the value stored at a plugin's leaf (DESIGN.md "Formats (v1)").

    {"v":1,"name":..,"manifest":{"path":..,"sha256":..},"pluglets":{"<file>.o":"<sha256>",..},
     "source":"<PR commit id>","properties":["reproducible",..]}

Encoded as canonical JSON: sorted keys, ``,`` and ``:`` separators, UTF-8, no whitespace.
``value = SHA-256(binding bytes)``. `properties` is sorted and without duplicates so the
encoding of a binding is unique. Parsing is strict: a binding that is not exactly in this
shape is rejected rather than silently re-encoded to different bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from . import jsondoc
from .errors import FormatError
from .manifest import validate_relative_path
from .names import validate_name

BINDING_VERSION = 1
_HEX64 = re.compile(r"[0-9a-f]{64}")
_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # SHA-1 or SHA-256 git object ids
_PROPERTY = re.compile(r"[A-Za-z0-9_-]{1,64}")


def canonical_json(obj: Any) -> bytes:
    """Canonical JSON bytes: sorted keys, compact separators, UTF-8 (not ASCII-escaped)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_hex64(value: object, where: str) -> str:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        shown = value[:80] if isinstance(value, str) else f"<{type(value).__name__}>"  # str() of a huge int raises
        raise FormatError(f"{where}: expected 64 lowercase hex characters, got {shown!r}")
    return value


@dataclass(frozen=True)
class Binding:
    name: str
    manifest_path: str
    manifest_sha256: str
    pluglets: Mapping[str, str]
    source: str
    properties: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        validate_name(self.name)
        validate_relative_path(self.manifest_path, f"binding {self.name} manifest.path")
        _check_hex64(self.manifest_sha256, f"binding {self.name} manifest.sha256")
        if not isinstance(self.pluglets, Mapping) or not self.pluglets:
            raise FormatError(f"binding {self.name}: pluglets must be a non-empty object")
        for path, digest in self.pluglets.items():
            validate_relative_path(path, f"binding {self.name} pluglets")
            _check_hex64(digest, f"binding {self.name} pluglets[{path!r}]")
        if not isinstance(self.source, str) or not _COMMIT.fullmatch(self.source):
            raise FormatError(f"binding {self.name}: source must be a lowercase hex git commit id")
        props = tuple(self.properties)
        for prop in props:
            if not isinstance(prop, str) or not _PROPERTY.fullmatch(prop):
                raise FormatError(f"binding {self.name}: invalid property {prop!r}")
        if list(props) != sorted(set(props)):
            raise FormatError(f"binding {self.name}: properties must be sorted and unique")
        object.__setattr__(self, "properties", props)
        object.__setattr__(self, "pluglets", dict(sorted(self.pluglets.items())))

    @classmethod
    def create(cls, name: str, manifest_path: str, manifest_sha256: str,
               pluglets: Mapping[str, str], source: str, properties: Iterable[str] = ()) -> "Binding":
        """Like the constructor but sorts and de-duplicates `properties` for the caller."""
        return cls(name, manifest_path, manifest_sha256, dict(pluglets), source,
                   tuple(sorted(set(properties))))

    def to_obj(self) -> dict[str, Any]:
        return {
            "v": BINDING_VERSION,
            "name": self.name,
            "manifest": {"path": self.manifest_path, "sha256": self.manifest_sha256},
            "pluglets": dict(self.pluglets),
            "source": self.source,
            "properties": list(self.properties),
        }

    def encode(self) -> bytes:
        """The canonical binding bytes (what the leaf value hashes)."""
        return canonical_json(self.to_obj())

    def value(self) -> bytes:
        """The 32-byte leaf value: SHA-256 of the canonical binding bytes."""
        return hashlib.sha256(self.encode()).digest()

    @classmethod
    def from_obj(cls, obj: object, where: str = "binding") -> "Binding":
        """Parse a binding from decoded JSON, strictly."""
        if not isinstance(obj, dict):
            raise FormatError(f"{where}: must be a JSON object")
        keys = {"v", "name", "manifest", "pluglets", "source", "properties"}
        if set(obj) != keys:
            missing, extra = keys - set(obj), set(obj) - keys
            raise FormatError(
                f"{where}: wrong keys (missing: {sorted(missing)}, unexpected: {sorted(extra, key=repr)})"
            )
        if obj["v"] != BINDING_VERSION or isinstance(obj["v"], bool):
            raise FormatError(f"{where}: unsupported binding version {obj['v']!r}")
        manifest = obj["manifest"]
        if not isinstance(manifest, dict) or set(manifest) != {"path", "sha256"}:
            raise FormatError(f"{where}: manifest must be {{\"path\":..,\"sha256\":..}}")
        if not isinstance(obj["properties"], list):
            raise FormatError(f"{where}: properties must be a list")
        if not isinstance(obj["pluglets"], dict):
            raise FormatError(f"{where}: pluglets must be an object")
        try:
            return cls(obj["name"], manifest["path"], manifest["sha256"], obj["pluglets"],
                       obj["source"], tuple(obj["properties"]))
        except FormatError as exc:
            raise FormatError(f"{where}: {exc}") from None

    @classmethod
    def decode(cls, data: bytes, where: str = "binding") -> "Binding":
        """Parse canonical binding bytes; non-canonical encodings are rejected."""
        obj = jsondoc.loads(data, where)
        binding = cls.from_obj(obj, where)
        if binding.encode() != data:
            raise FormatError(f"{where}: not in canonical form (sorted keys, no spaces)")
        return binding


def plugin_files_digest(files: Mapping[str, bytes]) -> str:
    """Content hash of a plugin directory: SHA-256 of the canonical JSON object mapping each
    relative path to the SHA-256 of its bytes. Keys verifier-result caches: unchanged bytes are
    never verified twice, whatever commit they come from."""
    listing = {path: hashlib.sha256(data).hexdigest() for path, data in files.items()}
    return hashlib.sha256(canonical_json(listing)).hexdigest()
