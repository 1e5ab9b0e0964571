"""The PV's in-memory tree and its local cache.

The log repo is the truth; rebuilding the tree from it reads one blob per plugin. The cache
(state/tree.cache) stores (name, key, value) for the last committed epoch so the next epoch
starts in a fraction of a second; it is only trusted when the tree it yields has exactly the
root that the log's latest STR signed.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

from pds_log.core.names import name_key
from pds_log.core.tree import PrefixTree
from pds_log.infra.files import atomic_write_bytes

CACHE_MAGIC = b"PDSTREE1\n"


@dataclass
class TreeState:
    tree: PrefixTree
    values: dict[str, bytes] = field(default_factory=dict)  # name -> leaf value

    @classmethod
    def from_values(cls, values: dict[str, bytes]) -> "TreeState":
        return cls(PrefixTree.from_items({name_key(n): v for n, v in values.items()}), dict(values))

    def set(self, name: str, value: bytes) -> None:
        self.values[name] = value
        self.tree.set(name_key(name), value)

    def delete(self, name: str) -> None:
        if self.values.pop(name, None) is not None:
            self.tree.delete(name_key(name))

    def save(self, path: Path, commit: str) -> None:
        header = json.dumps({"commit": commit, "count": len(self.values), "root": self.tree.root().hex()})
        parts = [CACHE_MAGIC, header.encode(), b"\n"]
        for name in sorted(self.values):
            raw = name.encode()
            parts.append(struct.pack(">B", len(raw)) + raw + self.values[name])
        atomic_write_bytes(path, b"".join(parts))

    @classmethod
    def load(cls, path: Path, commit: str, root: bytes) -> "TreeState | None":
        """The cached state if it belongs to `commit` and rebuilds to `root`; else None."""
        try:
            data = path.read_bytes()
        except OSError:
            return None
        if not data.startswith(CACHE_MAGIC):
            return None
        try:
            end = data.index(b"\n", len(CACHE_MAGIC))
            header = json.loads(data[len(CACHE_MAGIC):end])
            if header["commit"] != commit or header["root"] != root.hex():
                return None
            values = {}
            pos = end + 1
            for _ in range(header["count"]):
                n = data[pos]
                name = data[pos + 1:pos + 1 + n].decode()
                values[name] = data[pos + 1 + n:pos + 33 + n]
                pos += 33 + n
            if pos != len(data):
                return None
        except (ValueError, KeyError, IndexError, UnicodeDecodeError, json.JSONDecodeError):
            return None
        state = cls.from_values(values)
        return state if state.tree.root() == root else None
