"""A PV's static publication built directly with the core (no git, no clang, no verifiers).

`SimPV` writes exactly the files `pds pv publish` writes for peers (pds_log.core.static_layout):
latest.note, epochs/<E//1000>/<E>.note, tiles/, bindings/<v0>/<value>.json, proofs/<E>/<name>.json
for the names changed or rejected at E, and status/<name>.json; after `use_v2()`, STR v2 as
site/docs/formats.md says: `checkpoint` (cosigned by the sim's witnesses) and the epoch log's
C2SP tlog-tiles, tile/<L>/<N>[.p/<W>] and tile/entries/<N>[.p/<W>]. It holds the PV's signing key,
so tests can also make it misbehave as only a PV can: sign a second STR for an epoch
(equivocation), fork its chain, or date an STR. The real pipeline (`pds pv epoch` +
`pds_log.pv.publish.publish`) is used by test_peer.py; anything written here could be
swapped for it: the peer only ever sees these files.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

from pds_log.core import note as notes
from pds_log.core import static_layout as site
from pds_log.core import tlog
from pds_log.core.binding import Binding
from pds_log.core.checkpoint import (
    Checkpoint,
    CosignatureSigner,
    EpochRecord,
    add_signatures,
    sign_checkpoint,
    str_v2,
)
from pds_log.core.names import name_key
from pds_log.core.note import NoteSigner
from pds_log.core.proof import make_proof
from pds_log.core.signed_root import ZERO_HASH, SignedTreeRoot, TreeHead, sign_str
from pds_log.core.tiles import all_tiles, tiles_on_paths
from pds_log.core.tree import PrefixTree
from pds_log.peer.logchain import CHECKPOINT, record_of

PR_COMMIT = "ab" * 20
POLICY = "00" * 32


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def plugin_files(name: str, version: str = "1") -> dict[str, bytes]:
    """A plugin directory's files (manifest + two objects); not real eBPF: the peer only hashes them."""
    return {"p.plugin": f"{name}\nupdate_rtt post a.o\nprocess_frame pre b.o\n".encode(),
            "a.o": f"\x7fELF a {name} v{version}".encode(), "b.o": f"\x7fELF b {name} v{version}".encode()}


def binding_for(name: str, files: dict[str, bytes], properties=("safety", "termination")) -> Binding:
    return Binding.create(name, "p.plugin", sha(files["p.plugin"]),
                          {p: sha(d) for p, d in files.items() if p.endswith(".o")}, PR_COMMIT, properties)


def write_dir(directory: Path, files: dict[str, bytes]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        (directory / rel).write_bytes(data)
    return directory


class SimPV:
    def __init__(self, out: Path, origin: str) -> None:
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.signer = NoteSigner.generate(origin)
        self.origin = origin
        self.vkey = str(self.signer.verifier())
        self.tree = PrefixTree()
        self.bindings: dict[str, Binding] = {}
        self.strs: dict[int, SignedTreeRoot] = {}
        self.epoch = 0
        self.version = 1
        self.records: list[EpochRecord] = []  # the record of every epoch (entry E-1 of the epoch log)
        self.log = tlog.MemoryHashes.empty()  # the epoch log, from the first v2 epoch on
        self.checkpoints: dict[int, Checkpoint] = {}
        self.witnesses: tuple[CosignatureSigner, ...] = ()

    # ------------------------------------------------------------------ writing files
    def write(self, path: str, data: bytes) -> None:
        target = self.out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def next_epoch(self, put: dict[str, Binding] | None = None, remove: tuple[str, ...] = (),
                   reject: dict[str, str] | None = None, at: int | None = None) -> SignedTreeRoot | bytes:
        """Run one epoch: add/replace `put`, drop `remove`, record `reject` (name -> reason),
        sign the STR (time `at`, default now) and publish every file, latest.note last."""
        put, reject = put or {}, reject or {}
        changed = set(put) | set(remove) | set(reject)
        for name, binding in put.items():
            self.bindings[name] = binding
            self.tree.set(name_key(name), binding.value())
            self.write(site.binding_by_value_path(binding.value()), binding.encode())
        for name in (*remove, *reject):
            if name in self.bindings:
                del self.bindings[name]
                self.tree.delete(name_key(name))
        tiles = all_tiles(self.tree) if self.epoch == 0 else tiles_on_paths(self.tree, [name_key(n) for n in changed]).items()
        for tile_hash, tile in tiles:
            self.write(site.tile_path(tile.level, tile_hash), tile.encode())
        self.epoch += 1
        stamp = int(time.time() if at is None else at)
        if self.version == 2:
            note = self._publish_v2(EpochRecord(self.epoch, self.tree.root(), stamp, PR_COMMIT, len(self.tree),
                                                POLICY))
        else:
            prev = self.strs[self.epoch - 1].hash if self.epoch > 1 else ZERO_HASH
            head = TreeHead(self.origin, self.epoch, self.tree.root(), prev, stamp, PR_COMMIT, len(self.tree), POLICY)
            signed = sign_str(head, self.signer)
            self.strs[self.epoch] = signed
            self.records.append(record_of(signed))
            note = signed.note
        for name in sorted(changed):
            proof = make_proof(self.tree, name, self.epoch, self.bindings.__getitem__)
            self.write(site.proof_path(self.epoch, name), proof.to_json() + b"\n")
            status = ("accepted", None) if name in put else (
                ("rejected", reject[name]) if name in reject else ("removed", "deleted from the PR"))
            self.write(site.status_path(name), json.dumps(
                {"name": name, "epoch": self.epoch, "status": status[0], "reason": status[1],
                 "result": site.result_path(self.epoch, name)}, sort_keys=True).encode() + b"\n")
        if self.version == 2:  # as pds pv publish: the epoch's STR and latest.note (the PV's signature only), then checkpoint
            own = notes.parse(note).only(self.origin, self.signer.key_id).serialize()
            self.write(site.str_path(self.epoch), own)
            self.write(site.LATEST, own)
            self.write(CHECKPOINT, note)
            return note
        self.write(site.str_path(self.epoch), note)
        self.write(site.LATEST, note)
        return self.strs[self.epoch]

    # ------------------------------------------------------------------ STR v2
    def use_v2(self, witnesses: tuple[CosignatureSigner, ...] = ()) -> None:
        """From the next epoch on, sign STR v2 (C2SP checkpoints of the epoch log), whose log
        first holds the records of every v1 epoch so far (the migration rule); publish
        `checkpoint` cosigned by `witnesses`, and the log's tiles and entry bundles."""
        self.version, self.witnesses = 2, witnesses
        for record in self.records[self.log.size:]:
            self.log.append(record.entry())
        self._publish_tiles(0)

    def _publish_v2(self, record: EpochRecord) -> bytes:
        old = self.log.size
        self.records.append(record)
        self.log.append(record.entry())
        self._publish_tiles(old)
        checkpoint = str_v2(self.origin, record, self.log.root())
        self.checkpoints[self.epoch] = checkpoint
        return self.cosign(sign_checkpoint(checkpoint, self.signer))

    def cosign(self, note: bytes, witnesses: tuple[CosignatureSigner, ...] | None = None) -> bytes:
        text = notes.parse(note).text
        sigs = [w.cosign(text, int(time.time())) for w in (self.witnesses if witnesses is None else witnesses)]
        return add_signatures(note, sigs)

    def _publish_tiles(self, old: int) -> None:
        for tile in tlog.new_tiles(old, self.log.size):
            self.write(tile.path(), tlog.read_tile_data(tile, self.log))
        for bundle in tlog.entry_bundles_for(old, self.log.size):
            first = bundle.n * tlog.TILE_WIDTH
            self.write(bundle.path(), tlog.encode_entry_bundle(r.entry() for r in self.records[first:first + bundle.width]))

    def sign_checkpoint_at(self, size: int, log: tlog.MemoryHashes, record: EpochRecord) -> bytes:
        """A checkpoint of another log (a fork), validly signed: what only a lying PV can make."""
        return sign_checkpoint(str_v2(self.origin, record, log.root(size)), self.signer)

    # ------------------------------------------------------------------ misbehaviour
    def resign(self, epoch: int, *, time_delta: int = 1, prev: bytes | None = None) -> SignedTreeRoot:
        """A second, different, validly signed STR for `epoch` (what only a lying PV can make)."""
        h = self.strs[epoch].head
        return sign_str(TreeHead(h.origin, h.epoch, h.root, h.prev if prev is None else prev, h.time + time_delta,
                                 h.pr, h.size, h.policy), self.signer)

    def sign_head(self, **changes) -> SignedTreeRoot:
        """The latest STR re-signed with some fields changed (a new epoch, another time...)."""
        h = self.strs[self.epoch].head
        fields = {k: getattr(h, k) for k in ("origin", "epoch", "root", "prev", "time", "pr", "size", "policy")}
        fields.update(changes)
        return sign_str(TreeHead(**fields), self.signer)

    def copy(self, dest: Path) -> Path:
        shutil.copytree(self.out, dest)
        return dest
