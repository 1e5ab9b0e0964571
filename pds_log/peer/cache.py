"""A peer's local copy of what mirrors served, so that a warm `pds peer verify` costs one small
request per PV: the conditional GET of ``latest.note``.

    <cache>/<sha256(mirror URL)[:24]>/<path>            immutable files (static_layout.is_mutable
                                                         is false: STRs of past epochs, tiles,
                                                         bindings, one-file proofs), kept forever
    <cache>/<...>/latest.note, latest.validators.json   the newest STR, with its ETag /
                                                         Last-Modified for If-None-Match /
                                                         If-Modified-Since
    <cache>/<...>/checkpoint, checkpoint.validators.json
                                                         the same for the newest STR v2 (C2SP
                                                         tlog-tiles; its tiles tile/... are
                                                         immutable, partial ones included)
    <cache>/<...>/under/<sha256(latest.note)[:24]>/status/<name>.json
                                                         the PV's explanation of an absence,
                                                         reused only while latest.note is the
                                                         same (it is unauthenticated anyway)

The cache is never trusted, only used to avoid a download:
1. only the files of an answer that passed every check are written (`keep`);
2. every byte read from it goes through the same checks as the mirror's: the STR's signature
   and chain, each tile against the hash its parent gave, the binding against the leaf's
   value, the proof against the root -- a poisoned entry can make the peer refuse, never accept;
3. an answer refused while cached bytes were used is asked again from the mirror alone, after
   those entries are deleted (`forget`): a corrupt or poisoned cache costs one refetch, not a
   false refusal.
Entries are written atomically. Not cached: answers from local mirror directories (reading
them is as cheap), 404s.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pds_log.core import static_layout as site
from pds_log.core.errors import FormatError
from pds_log.core.jsondoc import loads
from pds_log.infra.http import Fetcher, is_local

from .logchain import CHECKPOINT

VALIDATORS = {site.LATEST: "latest.validators.json", CHECKPOINT: "checkpoint.validators.json"}


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:24]


class MirrorCache:
    """Fetch through the cache (see the module docstring); one answer at a time per mirror:
    begin(mirror), get()..., then keep(mirror) or discard(mirror)."""

    def __init__(self, directory: str | Path, fetcher: Fetcher) -> None:
        self.root = Path(directory)
        self.fetcher = fetcher
        self.bypass = False  # fetch everything from the mirror (the retry after a refusal)
        self._pending: dict[str, dict[str, bytes]] = {}  # mirror -> cache path -> bytes to keep
        self._used: dict[str, set[str]] = {}  # mirror -> cache paths served to the current answer
        self._latest: dict[str, bytes] = {}  # mirror -> the latest.note of the current answer

    def begin(self, mirror: str) -> None:
        self._pending[mirror], self._used[mirror] = {}, set()

    def get(self, mirror: str, path: str, *, max_bytes: int) -> bytes:
        if is_local(mirror):
            return self.fetcher.get(mirror, path, max_bytes=max_bytes)
        if path in VALIDATORS:
            return self._get_latest(mirror, path, max_bytes)
        if path.startswith("status/") and mirror in self._latest:
            key = f"under/{_digest(self._latest[mirror])}/{path}"
        elif site.is_mutable(path):
            return self.fetcher.get(mirror, path, max_bytes=max_bytes)
        else:
            key = path
        cached = None if self.bypass else self._read(mirror, key, max_bytes)
        if cached is not None:
            self._used[mirror].add(key)
            return cached
        data = self.fetcher.get(mirror, path, max_bytes=max_bytes)
        self._pending.setdefault(mirror, {})[key] = data
        return data

    def keep(self, mirror: str) -> None:
        """The answer passed every check: store what it fetched."""
        from pds_log.infra.files import atomic_write_bytes  # lazily: a warm run writes nothing

        for key, data in self._pending.pop(mirror, {}).items():
            atomic_write_bytes(self._path(mirror, key), data)
        self._used.pop(mirror, None)

    def discard(self, mirror: str) -> None:
        self._pending.pop(mirror, None)
        self._used.pop(mirror, None)

    def forget(self, mirror: str) -> bool:
        """Delete the entries the current answer used; True if there were any."""
        used = self._used.pop(mirror, set())
        for key in used:
            self._path(mirror, key).unlink(missing_ok=True)
        self._pending.pop(mirror, None)
        return bool(used)

    # ------------------------------------------------------------------ internals
    def _dir(self, mirror: str) -> Path:
        return self.root / hashlib.sha256(mirror.encode()).hexdigest()[:24]

    def _path(self, mirror: str, key: str) -> Path:
        parts = key.split("/")
        if any(p in ("", ".", "..") for p in parts):  # the paths come from the peer's own layout
            raise FormatError(f"cache: unsafe path {key!r}")
        return self._dir(mirror).joinpath(*parts)

    def _read(self, mirror: str, key: str, max_bytes: int) -> bytes | None:
        try:
            data = self._path(mirror, key).read_bytes()
        except OSError:
            return None
        return data if len(data) <= max_bytes else None

    def _get_latest(self, mirror: str, path: str, max_bytes: int) -> bytes:
        """latest.note or checkpoint: a conditional GET when a copy and its validators are kept."""
        body = None if self.bypass else self._read(mirror, path, max_bytes)
        etag = modified = None
        if body is not None:
            etag, modified = self._validators(mirror, path)
        if body is None or (etag is None and modified is None):
            fetched = self.fetcher.fetch(mirror, path, max_bytes=max_bytes)
        else:
            fetched = self.fetcher.fetch(mirror, path, max_bytes=max_bytes, etag=etag, last_modified=modified)
        if fetched.data is None:
            assert body is not None
            self._used[mirror].add(path)
            self._latest[mirror] = body
            return body
        self._latest[mirror] = fetched.data
        pending = self._pending.setdefault(mirror, {})
        pending[path] = fetched.data
        pending[VALIDATORS[path]] = json.dumps({"etag": fetched.etag,
                                                "last_modified": fetched.last_modified}).encode()
        return fetched.data

    def _validators(self, mirror: str, path: str) -> tuple[str | None, str | None]:
        name = VALIDATORS[path]
        data = self._read(mirror, name, 4096)
        try:
            doc = loads(data, name, max_bytes=4096) if data is not None else None
        except FormatError:
            doc = None
        if not isinstance(doc, dict):
            return None, None
        etag, modified = doc.get("etag"), doc.get("last_modified")
        return (etag if isinstance(etag, str) else None), (modified if isinstance(modified, str) else None)


__all__ = ["MirrorCache"]
