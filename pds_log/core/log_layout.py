"""The PV log repository format (log v1 and log layouts 1, 2, 3): paths and records, shared by
PVs and auditors.

A PV's log repo is a git repository whose branch ``main`` has exactly one commit per epoch
(message ``epoch <E>``; the commit of epoch E has the commit of epoch E-1 as its only parent).
The tree of the epoch-E commit is the complete state after epoch E:

    layout.json                              {"log":3} (canonical JSON): the layout version;
                                             absent = layout 1
    pv.json                                  the PV descriptor (origin, verifier key, PR, acceptance)
    latest.note                              the STR of epoch E
    epochs/<E // 1000>/<E>.note              the STR of every epoch so far
    epochs/<E // 1000>/<E>.json              the epoch record of every epoch so far
    bindings/<k0>/<k1>/<k2>/<k3>/<name>.json           canonical binding of every plugin in the tree
    results/<k0>/<k1>/<k2>/<k3>/<name>.json            the latest verification record of every plugin seen
    tiles/<level>/<p0>/.../<position hex>           the tiles of the current tree (core.tiles format), by position
    bytecode/<h0>/<h1>/<h2>/<h3>/<sha256 hex>          validated objects and manifests, content-addressed
    logs/<h0>/<h1>/<h2>/<h3>/<sha256 hex>              verifier logs, content-addressed

where k0..k3 are the first four hex digits of SHA-256(name), one per directory, and h0..h3 the
first four hex digits of the file's own hash (LAYOUT2_LEVELS). A tile is stored where it sits
in the tree (layout 3): the tile at level t >= 1 covering the keys whose first 8t bits are P is
``tiles/<t>/<p0>/.../<pd>/<P as 2t hex digits>``, with one directory per leading hex digit of P,
min(4, 2t - 1) of them (``tiles/1/a/ab``, ``tiles/2/a/b/c/abcd``, ``tiles/3/a/b/c/d/abcdef``),
and the root tile is ``tiles/0/root``.

Why tiles by position (layout 3) and not by hash (layouts 1 and 2, ``tiles/<t>/<h0>/../<hash>``):
a change rewrites every tile on its path, and from ~10^5 plugins on the level-1 tile there has
~256 entries (~8.7 KiB of hashes, incompressible), so a log stored each change as a new
8.7 KiB blob under a new name. Git stores and sends a new version of a file as a delta against
an old one, but finds the old one by the file's path (pack-objects groups objects by a hash of
their path's name): a tile at its position keeps its path across epochs, so in every pack (git
gc, a clone, a mirror's fetch) it costs the few entries that changed (~0.1-0.2 KiB), whatever N.
The name no longer says the content, so readers check every tile against the hash its parent
(or the STR) gives, as they did, and the publisher names the published file by its hash. Sharding keeps git tree objects
small, so an epoch that changes k plugins writes O(k * depth) new tree objects of at most 16
directory entries whatever the number of plugins N (four levels of 16: ~15 files per leaf
directory at 10^6 files). Why 16 and not 256: every tree on a changed path is
rewritten whole, and a 256-entry tree is ~7 KiB of mostly incompressible object ids; with two
levels of 256 each change rewrote one full 256-entry tree per kind at 10^6 plugins
(benchmarks/epoch.py --synthetic: 42.4 KiB of loose objects per change at 1M against 5.0 at 1k;
four levels of 16: 18.6 against 4.6). What still grows with N is the tiles themselves: from
~10^5 plugins on, the level-1 tile on a changed path has ~256 entries (~8.7 KiB), rewritten
per change. Four levels, not five: five measured no smaller per change at 1M (19.0) but put
about one file in each leaf directory, ~N more tree objects in the snapshot (the migration of
1M plugins wrote ~265 MiB of loose objects in 220 s; four levels: ~80 MiB in 61 s).

Layout 1 (logs written before layout 2; no ``layout.json``) shards ``bindings/<k0>/<k1>/`` and
``results/<k0>/<k1>/`` by the first two and next two hex digits of SHA-256(name), and the
content-addressed files one level only: ``tiles/<level>/<h0>/<hash>``, ``bytecode/<h0>/<sha>``,
``logs/<h0>/<sha>`` (h0 the first two hex digits; at 1M plugins each shard tree has ~4k
entries and every change rewrites ~330 KiB of trees).
Migration to layout 3 (from 1 or 2): as 1 -> 2 for every file but the tiles, which cannot move
by path (a hash does not say a position): the epoch deletes every tile of the old layout and
writes every tile of its own tree at its position (all_tiles, ~N/15 files), once.
Migration 1 -> 2: the first epoch a layout-2 PV runs on a layout-1 log moves every file under
``bindings/``, ``results/``, ``tiles/``, ``bytecode/`` and ``logs/`` to its layout-2 path (the
same blob: no content changes; what the epoch itself writes there wins) and adds
``layout.json``, inside that epoch's one commit. Readers that diff that commit against its
parent (auditor, publisher) compare each parent record at its layout-2 path. A log never goes
back from 2 to 1. Every other path is the same in both layouts.

The static publication (``pds pv publish``, core.static_layout) keeps the layout-1 paths for
what it serves (`published_path` maps a log path to it), plus ``proofs/<E>/<name>.json``
one-file proofs; only ``latest.note`` ever changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from . import jsondoc
from .binding import canonical_json
from .errors import FormatError
from .names import name_key, validate_name

LOG_VERSION = 1
PV_DESCRIPTOR = "pv.json"
LATEST_STR = "latest.note"
EPOCH_SHARD = 1000
_HEX64 = re.compile(r"[0-9a-f]{64}")


def epoch_dir(epoch: int) -> str:
    return f"epochs/{epoch // EPOCH_SHARD}"


def str_path(epoch: int) -> str:
    return f"{epoch_dir(epoch)}/{epoch}.note"


def epoch_record_path(epoch: int) -> str:
    return f"{epoch_dir(epoch)}/{epoch}.json"


LAYOUT2_LEVELS = 4  # layouts 2 and 3: directory levels of one hex digit each, for every sharded kind
TILES_BY_POSITION = 3  # the first layout that stores tiles at their position, not under their hash
ROOT_TILE_NAME = "root"


def _shard_dirs(h: str, layout: int, record: bool) -> str:
    """The shard directories of a file whose hash (SHA-256 of the name for a record) is `h`."""
    if layout == 1:
        return f"{h[:2]}/{h[2:4]}" if record else h[:2]
    if layout in (2, 3):
        return "/".join(h[:LAYOUT2_LEVELS])
    raise FormatError(f"unknown log layout {layout!r}")


def rewrites_tiles(from_layout: int, to_layout: int) -> bool:
    """A move from `from_layout` to `to_layout` rewrites the tiles at their positions (they
    cannot move by path: a hash does not say a position)."""
    return to_layout >= TILES_BY_POSITION > from_layout


def tile_position_path(level: int, prefix: int) -> str:
    """Layout 3: the path of the tile at (level, prefix)."""
    if level == 0:
        return f"tiles/0/{ROOT_TILE_NAME}"
    name = f"{prefix:0{2 * level}x}"
    return f"tiles/{level}/{'/'.join(name[:min(LAYOUT2_LEVELS, 2 * level - 1)])}/{name}"


def _record_path(kind: str, name: str, layout: int) -> str:
    return f"{kind}/{_shard_dirs(name_key(validate_name(name)).hex(), layout, True)}/{name}.json"


def binding_path(name: str, layout: int) -> str:
    """Where the log repo of layout `layout` keeps the binding of plugin `name`."""
    return _record_path("bindings", name, layout)


def result_path(name: str, layout: int) -> str:
    """Where the log repo of layout `layout` keeps the latest results record of plugin `name`."""
    return _record_path("results", name, layout)


def tile_path(level: int, tile_hash: bytes, layout: int, prefix: int | None = None) -> str:
    """Where the log repo of layout `layout` keeps the tile named `tile_hash` at (level,
    prefix): under its hash in layouts 1 and 2, at its position from layout 3 on (which needs
    `prefix`, core.tiles.tile_prefix of a key on its path)."""
    if layout >= TILES_BY_POSITION:
        if prefix is None or not 0 <= level <= 31 or not 0 <= prefix < 1 << (8 * level):
            raise FormatError(f"tile {level}/{tile_hash.hex()[:16]}...: no position in the tree")
        return tile_position_path(level, prefix)
    h = tile_hash.hex()
    return f"tiles/{level}/{_shard_dirs(h, layout, False)}/{h}"


def blob_path(kind: str, sha256_hex: str, layout: int) -> str:
    """Content-addressed file under `kind` ("bytecode" or "logs") in a log of layout `layout`."""
    if kind not in ("bytecode", "logs") or not _HEX64.fullmatch(sha256_hex):
        raise FormatError(f"bad content-addressed path {kind}/{sha256_hex}")
    return f"{kind}/{_shard_dirs(sha256_hex, layout, False)}/{sha256_hex}"


# ---------------------------------------------------------------------- layout versions
LAYOUT_FILE = "layout.json"
LATEST_LAYOUT = 3
KNOWN_LAYOUTS = (1, 2, 3)
CONTENT_DIRS = ("tiles", "bytecode", "logs")  # named by their content (tiles up to layout 2), never by a plugin
RECORD_DIRS = ("bindings", "results")  # one <name>.json per plugin, sharded by SHA-256(name)
SHARDED_DIRS = RECORD_DIRS + CONTENT_DIRS  # the directories whose sharding the layout sets
_MAX_LAYOUT_FILE = 64


def layout_file(layout: int) -> bytes:
    """The bytes of layout.json for `layout` (>= 2; layout 1 has no such file)."""
    if layout not in KNOWN_LAYOUTS[1:]:
        raise FormatError(f"log layout {layout} has no {LAYOUT_FILE}")
    return canonical_json({"log": layout})


def parse_layout_file(data: bytes | None, where: str = LAYOUT_FILE) -> int:
    """The layout a log commit says it has: 1 without layout.json, else its version (only the
    canonical bytes of a known version are accepted)."""
    if data is None:
        return 1
    if len(data) > _MAX_LAYOUT_FILE:
        raise FormatError(f"{where}: {len(data)} bytes, not a layout file")
    obj = jsondoc.loads(data, where)
    known = KNOWN_LAYOUTS[1:]
    if (not isinstance(obj, dict) or set(obj) != {"log"} or isinstance(obj["log"], bool)
            or obj["log"] not in known):
        raise FormatError(f"{where}: not a known log layout (expected one of "
                          f"{', '.join(layout_file(v).decode() for v in known)})")
    found: int = obj["log"]
    if data != layout_file(found):
        raise FormatError(f"{where}: not canonical JSON (expected {layout_file(found).decode()!r})")
    return found


def parse_sharded_path(path: str, layout: int) -> tuple[str, int | None, str]:
    """(kind, tile level or None, hash hex -- or plugin name for bindings/ and results/) of a
    file under one of SHARDED_DIRS, checked to sit in its own shard for `layout`; FormatError
    naming the path otherwise."""
    parts = path.split("/")
    kind = parts[0]
    if kind not in SHARDED_DIRS:
        raise FormatError(f"{path}: not under {', '.join(SHARDED_DIRS)}")
    level: int | None = None
    rest = parts[1:]
    if kind == "tiles":
        if not rest or not rest[0].isdigit() or str(int(rest[0])) != rest[0] or int(rest[0]) > 31:
            raise FormatError(f"{path}: bad tile level")
        level = int(rest[0])
        rest = rest[1:]
    file_name = rest[-1] if rest else ""
    if kind in RECORD_DIRS:
        if not file_name.endswith(".json"):
            raise FormatError(f"{path}: not a {kind}/ record path (<name>.json)")
        try:
            stem = validate_name(file_name[:-5])
        except FormatError as exc:
            raise FormatError(f"{path}: {exc}") from None
        expected = _record_path(kind, stem, layout)
    elif level is not None and layout >= TILES_BY_POSITION:
        stem = file_name
        if level == 0 and stem == ROOT_TILE_NAME:
            expected = tile_position_path(0, 0)
        elif level > 0 and re.fullmatch(f"[0-9a-f]{{{2 * level}}}", stem):
            expected = tile_position_path(level, int(stem, 16))
        else:
            raise FormatError(f"{path}: not a level-{level} tile position (expected "
                              f"{ROOT_TILE_NAME!r} or {2 * level} hex digits)" if level else
                              f"{path}: the level-0 tile is {tile_position_path(0, 0)}")
    else:
        if not _HEX64.fullmatch(file_name):
            raise FormatError(f"{path}: file name is not a 64-digit hex hash")
        stem = file_name
        expected = f"{kind}/{'' if level is None else f'{level}/'}{_shard_dirs(stem, layout, False)}/{stem}"
    if path != expected:
        raise FormatError(f"{path}: file is in the wrong shard for log layout {layout} (expected {expected})")
    return kind, level, stem


def reshard_path(path: str, from_layout: int, to_layout: int) -> str:
    """The path in layout `to_layout` of a file under one of SHARDED_DIRS of a log of layout
    `from_layout` (checked to be in its right shard there)."""
    kind, level, stem = parse_sharded_path(path, from_layout)
    if kind in RECORD_DIRS:
        return _record_path(kind, stem, to_layout)
    if kind == "tiles" and max(from_layout, to_layout) >= TILES_BY_POSITION:
        # a hash does not say where its tile sits, nor a position which hash it holds: a move
        # to layout 3 rewrites the tiles from the tree (pv.epoch), and a log never goes back
        raise FormatError(f"{path}: tiles are not moved between log layouts {from_layout} and {to_layout}")
    prefix = f"{kind}/{level}/" if level is not None else f"{kind}/"
    return f"{prefix}{_shard_dirs(stem, to_layout, False)}/{stem}"


def published_path(path: str, layout: int) -> str:
    """The static publication's path (core.static_layout: the layout-1 paths) of the file at
    `path` in a log of layout `layout`: the peer's wire format does not depend on the layout.
    (A layout-3 tile is published under its hash, which only its content says: `published_tile_path`.)"""
    if path.split("/", 1)[0] in CONTENT_DIRS:
        return reshard_path(path, layout, 1)
    return path


def published_tile_path(path: str, data: bytes, layout: int) -> str:
    """The static publication's path of the layout-3 tile file at `path` holding `data`: under
    the hash its content says (core.static_layout.tile_path). FormatError naming the path on a
    file that is not a tile of the level its path says."""
    from .static_layout import tile_path as static_tile_path  # static_layout imports this module
    from .tiles import Tile

    kind, level, _ = parse_sharded_path(path, layout)
    if kind != "tiles" or level is None or layout < TILES_BY_POSITION:
        raise FormatError(f"{path}: not a layout-3 tile path")
    tile = Tile.decode(data, path)
    if tile.level != level:
        raise FormatError(f"{path}: holds a level-{tile.level} tile")
    return static_tile_path(level, tile.top_hash())


def proof_path(epoch: int, name: str) -> str:
    return f"proofs/{epoch}/{validate_name(name)}.json"


def name_from_record_path(path: str, layout: int) -> str:
    """The plugin name of a bindings/ or results/ path of a log of layout `layout` (checked
    against its shard)."""
    if path.split("/", 1)[0] not in RECORD_DIRS:
        raise FormatError(f"{path}: not a bindings/ or results/ record path")
    return parse_sharded_path(path, layout)[2]


@dataclass
class EpochRecord:
    """What an epoch did: the PR range, the tree changes, and why things were left out.

    added/updated: names whose binding entered or changed in the tree; removed: names whose
    leaf left the tree, each with a reason ("deleted from the PR" or the rejection reason);
    rejected: names verified this epoch and not accepted (absent from the tree after it);
    commits: the PR commits checked this epoch with the verdict of the policy re-check;
    pr_policy: the PR commit whose pds/policy.yaml is in effect after pr_to (the last one the
    PV did not refuse that set it; empty in records older than this field)."""

    epoch: int
    origin: str
    pr_from: str | None
    pr_to: str
    time: int
    root: str
    size: int
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[dict[str, str]] = field(default_factory=list)
    rejected: list[dict[str, str]] = field(default_factory=list)
    commits: list[dict[str, Any]] = field(default_factory=list)
    policy: str = ""
    pr_policy: str = ""

    def to_obj(self) -> dict[str, Any]:
        return {
            "v": LOG_VERSION, "epoch": self.epoch, "origin": self.origin,
            "pr": {"from": self.pr_from, "to": self.pr_to}, "time": self.time,
            "root": self.root, "size": self.size, "policy": self.policy,
            "added": sorted(self.added), "updated": sorted(self.updated),
            "removed": sorted(self.removed, key=lambda r: r["name"]),
            "rejected": sorted(self.rejected, key=lambda r: r["name"]),
            "commits": self.commits,
            **({"pr_policy": self.pr_policy} if self.pr_policy else {}),
        }

    def encode(self) -> bytes:
        return canonical_json(self.to_obj()) + b"\n"

    @classmethod
    def decode(cls, data: bytes, where: str = "epoch record") -> "EpochRecord":
        obj = jsondoc.loads(data, where)
        if not isinstance(obj, dict) or obj.get("v") != LOG_VERSION or isinstance(obj.get("v"), bool):
            raise FormatError(f"{where}: not a v{LOG_VERSION} epoch record")
        for field_name in ("added", "updated", "removed", "rejected", "commits"):
            if field_name in obj and not isinstance(obj[field_name], list):
                raise FormatError(f"{where}: {field_name} must be a list")
        if "pr" in obj and not isinstance(obj["pr"], dict):
            raise FormatError(f"{where}: pr must be an object")
        try:
            rec = cls(epoch=obj["epoch"], origin=obj["origin"], pr_from=obj["pr"]["from"], pr_to=obj["pr"]["to"],
                      time=obj["time"], root=obj["root"], size=obj["size"], added=list(obj["added"]),
                      updated=list(obj["updated"]), removed=list(obj["removed"]), rejected=list(obj["rejected"]),
                      commits=list(obj["commits"]), policy=obj.get("policy", ""),
                      pr_policy=str(obj.get("pr_policy") or ""))
        except (KeyError, TypeError) as exc:
            raise FormatError(f"{where}: missing or bad field {exc}") from None
        rec._check_field_types(where)
        return rec

    def _check_field_types(self, where: str) -> None:
        """FormatError unless every field of a just-decoded record has its type."""
        # Types are checked here, once, so that readers (auditor, publisher, pusher) can use the
        # fields without guarding each access against a hostile log.
        for field_name in ("epoch", "time", "size"):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise FormatError(f"{where}: {field_name} must be an integer >= 0")
        for field_name in ("origin", "pr_to", "root", "policy"):
            if not isinstance(getattr(self, field_name), str):
                raise FormatError(f"{where}: {field_name} must be a string")
        if self.pr_from is not None and not isinstance(self.pr_from, str):
            raise FormatError(f"{where}: pr.from must be a string or null")
        if not all(isinstance(n, str) for n in self.added + self.updated):
            raise FormatError(f"{where}: added/updated must list plugin names")
        for entry in self.removed + self.rejected:
            if (not isinstance(entry, dict) or not isinstance(entry.get("name"), str)
                    or not isinstance(entry.get("reason"), str)):
                raise FormatError(f"{where}: removed/rejected entries need a name and a reason")
        if not all(isinstance(c, dict) for c in self.commits):
            raise FormatError(f"{where}: commits must be a list of objects")


# The PV's epoch log (STR v2, formats.md "Log repository"): its C2SP tlog-tiles files at
# tlog/<path>, <path> exactly as published (tile/<L>/<N>[.p/<W>], tile/entries/<N>[.p/<W>]).
# An epoch commit holds the full tiles and the partial tiles of its own size only.
TLOG_DIR = "tlog"


def tlog_path(tile_path: str) -> str:
    """Where the log repo keeps the epoch log file published at `tile_path` (a ``tile/...`` path)."""
    if not tile_path.startswith("tile/"):
        raise FormatError(f"{tile_path!r} is not a tlog tile path")
    return f"{TLOG_DIR}/{tile_path}"
