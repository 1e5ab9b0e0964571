"""The static publication of a PV (static v1): what a peer fetches, from any HTTP mirror.

    latest.note                              the newest STR                  (the only mutable file)
    pv.json                                  PV descriptor                   (changes only with its config)
    epochs/<E // 1000>/<E>.note              STR of epoch E                  immutable
    epochs/<E // 1000>/<E>.json              epoch record of epoch E         immutable
    tiles/<level>/<h0>/<hash hex>            tree tiles, named by the hash   immutable
    bindings/<v0>/<value hex>.json           binding bytes, named by SHA-256 immutable
    proofs/<E>/<name>.json                   one-file proofs of the names    immutable
                                             changed or rejected at epoch E
    results/<E>/<name>.json                  verification record of <name>   immutable
                                             made at epoch E
    bytecode/<h0>/<sha256 hex>               validated objects/manifests     immutable
    logs/<h0>/<sha256 hex>                   verifier logs                   immutable
    status/<name>.json                       latest status of <name> at this PV (mutable, short
                                             cache; explanatory only: {"epoch", "status",
                                             "reason", "result": path of its results file})
    site/...                                 the human site (HTML)

and, for a PV that signs STR v2 (formats.md "STR v2 and the epoch log"), its epoch log as
C2SP tlog-tiles: ``checkpoint`` (the latest STR v2 with the witness cosignatures collected so
far; mutable, replaced last), ``tile/<L>/<N>[.p/<W>]`` and ``tile/entries/<N>[.p/<W>]``
(immutable).

A peer verifying plugin n: GET latest.note (verify, check chain/freshness), then walk the tiles
from the root named in the STR down to n's position (each tile is checked against the hash its
parent gave), then GET bindings/<v0>/<value>.json for the value found at the leaf and check it
hashes to that value. Publishing epoch E writes only files that did not exist before.

The paths of tiles/, bytecode/ and logs/ are those of the log repo's layout 1 for every log
layout (core.log_layout.published_path maps a layout-2 log's path to them), so a log's
migration to layout 2 changes nothing a peer fetches.
"""

from __future__ import annotations

import re

from .errors import FormatError
from .log_layout import epoch_record_path, str_path
from .names import validate_name

__all__ = ["CHECKPOINT", "LATEST", "DESCRIPTOR", "SITE_DIR", "binding_by_value_path", "content_path",
           "epoch_record_path", "is_mutable", "proof_path", "result_path", "status_path", "str_path", "tile_path"]

LATEST = "latest.note"
CHECKPOINT = "checkpoint"
DESCRIPTOR = "pv.json"
SITE_DIR = "site"
_HEX64 = re.compile(r"[0-9a-f]{64}")


def tile_path(level: int, tile_hash: bytes) -> str:
    """Where a tile is published (the log's layout-1 path, whatever the log's own layout)."""
    h = tile_hash.hex()
    return f"tiles/{level}/{h[:2]}/{h}"


def binding_by_value_path(value: bytes) -> str:
    h = value.hex()
    return f"bindings/{h[:2]}/{h}.json"


def proof_path(epoch: int, name: str) -> str:
    return f"proofs/{epoch}/{validate_name(name)}.json"


def result_path(epoch: int, name: str) -> str:
    return f"results/{epoch}/{validate_name(name)}.json"


def status_path(name: str) -> str:
    return f"status/{validate_name(name)}.json"


def content_path(kind: str, sha256_hex: str) -> str:
    if kind not in ("bytecode", "logs") or not _HEX64.fullmatch(sha256_hex):
        raise FormatError(f"bad content path {kind}/{sha256_hex}")
    return f"{kind}/{sha256_hex[:2]}/{sha256_hex}"


def is_mutable(path: str) -> bool:
    """Files a publisher may replace (serve with a short max-age); all others never change."""
    return path in (LATEST, DESCRIPTOR, CHECKPOINT) or path.startswith((SITE_DIR + "/", "status/"))
