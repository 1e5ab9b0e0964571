"""`pds pv publish`: turn a PV log repo into the static directory peers and mirrors serve
(layout: pds_log.core.static_layout).

Anyone holding a clone of the log repo can publish it: the publisher trusts nothing but the
STRs it verifies against the key in pv.json of the log (and, if given, the expected key).
Files under tiles/, bytecode/ and logs/ are published at their layout-1 paths whatever the
log's layout (core.log_layout.published_path), so a log's move to layout 2 changes nothing a
peer fetches. Epochs are published in order; for each, only the files that epoch added are written, each
atomically, and `latest.note` is replaced last, so a reader never sees an STR whose tiles,
bindings or proofs are not there yet. A log that signs STR v2 also gets its epoch log as C2SP
tlog-tiles (``tile/...``, copied from the log repo's ``tlog/``: O(log n) new files per epoch)
and ``checkpoint``, written after ``latest.note``: the latest STR v2 with the witness
cosignatures given (``state/checkpoint`` of the PV, pds_log.pv.cosign), each kept only if it
verifies under a given witness key over exactly that STR.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pygit2

from pds_log.core import log_layout as logl
from pds_log.core import static_layout as site
from pds_log.core.binding import Binding
from pds_log.core.checkpoint import CosignatureVerifier
from pds_log.core.errors import FormatError, PdsError
from pds_log.core.names import is_valid_name, name_key
from pds_log.core.note import NoteVerifier
from pds_log.core.proof import make_proof_from_leaf
from pds_log.core.records import ACCEPTED, PluginStatus, PvDescriptor, ResultRecord
from pds_log.core.strs import SignedStr, open_any
from pds_log.core.tiles import prove_from_tiles, tile_prefix
from pds_log.infra.files import atomic_write_bytes
from pds_log.infra.gittree import blob_at, renamed_diff, walk_blobs

from .logrepo import LogRepo

STATE_FILE = ".pds-publish.json"
_COPIED_PREFIXES = ("tiles/", "bytecode/", "logs/")


@dataclass
class PublishSummary:
    out: str
    epochs: list[int] = field(default_factory=list)
    files_written: int = 0
    bytes_written: int = 0
    latest_epoch: int = 0
    checkpoint_cosigners: list[str] = field(default_factory=list)  # witnesses on the published checkpoint


class Publisher:
    def __init__(self, log_repo: str | Path, out: str | Path, vkey: str | None = None,
                 human_site: bool = True, cosigned: bytes | None = None,
                 witnesses: list[CosignatureVerifier] | None = None) -> None:
        self.log = LogRepo(log_repo)
        self.cosigned = cosigned
        self.witnesses = list(witnesses or [])
        self.out = Path(out)
        self.summary = PublishSummary(out=str(self.out))
        self.progress: Callable[[int, int], None] | None = None  # (epochs published, of total): a progress bar
        head = self.log.head()
        if head is None:
            raise PdsError(f"{log_repo}: the log has no epoch yet; nothing to publish")
        self.head = head
        descriptor = self.log.read(head, logl.PV_DESCRIPTOR)
        if descriptor is None:
            raise PdsError(f"{log_repo}: no {logl.PV_DESCRIPTOR} in the log")
        self.descriptor_bytes = descriptor
        desc = PvDescriptor.decode(descriptor, f"{log_repo}: {logl.PV_DESCRIPTOR}")
        if vkey is not None and desc.vkey != vkey:
            raise PdsError(f"{log_repo}: pv.json names key {desc.vkey}, expected {vkey}")
        self.descriptor = desc
        self.verifier = NoteVerifier.from_string(vkey or desc.vkey)
        self.site = None
        if human_site:
            from .human_site import HumanSite

            self.site = HumanSite(self.out, desc)

    def write(self, path: str, data: bytes, replace: bool = False) -> None:
        target = self.out / path
        if target.exists():
            if not replace or target.read_bytes() == data:
                return
        atomic_write_bytes(target, data)
        self.summary.files_written += 1
        self.summary.bytes_written += len(data)

    def published_epoch(self) -> int:
        try:
            return int(json.loads((self.out / STATE_FILE).read_text())["epoch"])
        except (OSError, ValueError, KeyError):
            return 0

    def epoch_commits(self, after: int) -> list[tuple[int, pygit2.Commit]]:
        """(epoch, commit) for every epoch newer than `after`, oldest first."""
        out = []
        commit = self.head
        while True:
            signed = open_any(self.log.read_required(commit, logl.LATEST_STR), self.verifier)
            if signed.head.epoch <= after:
                break
            out.append((signed.head.epoch, commit))
            if not commit.parents:
                break
            commit = commit.parents[0]
        out.reverse()
        return out

    def publish(self) -> PublishSummary:
        self.out.mkdir(parents=True, exist_ok=True)
        todo = self.epoch_commits(self.published_epoch())
        for done, (epoch, commit) in enumerate(todo, start=1):
            self.publish_epoch(epoch, commit)
            self.summary.epochs.append(epoch)
            if self.progress:
                self.progress(done, len(todo))
        self.write(site.DESCRIPTOR, self.descriptor_bytes, replace=True)
        if self.site is not None:
            self.summary.files_written += self.site.build()
        latest = self.log.read_required(self.head, logl.LATEST_STR)
        signed = open_any(latest, self.verifier)
        self.summary.latest_epoch = signed.head.epoch
        self.write(site.LATEST, latest, replace=True)  # everything it names is in place
        if signed.version == 2:
            self.write(site.CHECKPOINT, self.checkpoint(signed), replace=True)  # last
        atomic_write_bytes(self.out / STATE_FILE, json.dumps(
            {"epoch": self.summary.latest_epoch, "commit": str(self.head.id)}).encode())
        return self.summary

    def checkpoint(self, signed: SignedStr) -> bytes:
        """The latest STR v2 with the given cosignatures that verify over it."""
        from .cosign import cosigned_note, valid_cosignatures

        note = cosigned_note(signed, self.cosigned, self.witnesses)
        text = note.split(b"\n\n", 1)[0].decode() + "\n"
        self.summary.checkpoint_cosigners = sorted(s.name for s in valid_cosignatures(note, text, self.witnesses))
        return note

    def publish_epoch(self, epoch: int, commit: pygit2.Commit) -> None:
        repo = self.log.repo
        note = self.log.read_required(commit, logl.str_path(epoch))
        signed = open_any(note, self.verifier)
        record = logl.EpochRecord.decode(self.log.read_required(commit, logl.epoch_record_path(epoch)))
        parent = commit.parents[0] if commit.parents else None
        log_layout = self.log.layout(commit)
        changed = _added_or_modified(self.log, parent, commit, epoch)
        results: dict[str, ResultRecord] = {}
        for path, oid in changed:
            if path.startswith(_COPIED_PREFIXES):
                # published at its layout-1 path whatever the log's layout; a file a layout
                # migration moved is already published there, and written once
                data = None
                try:
                    if path.startswith("tiles/") and log_layout >= logl.TILES_BY_POSITION:
                        # stored at its position: published under the hash its content says
                        data = blob_at(repo, oid)
                        published = logl.published_tile_path(path, data, log_layout)
                    else:
                        published = logl.published_path(path, log_layout)
                except FormatError as exc:
                    raise PdsError(f"log epoch {epoch}: {exc}") from None
                if not (self.out / published).exists():
                    self.write(published, data if data is not None else blob_at(repo, oid))
            elif path.startswith(logl.TLOG_DIR + "/tile/"):
                self.write(path[len(logl.TLOG_DIR) + 1:], blob_at(repo, oid))
            elif path.startswith("bindings/"):
                data = blob_at(repo, oid)
                self.write(site.binding_by_value_path(hashlib.sha256(data).digest()), data)
            elif path.startswith("results/"):
                name = _record_name(path, log_layout, epoch)
                data = blob_at(repo, oid)
                self.write(site.result_path(epoch, name), data)
                result = ResultRecord.decode(data, f"{path}@epoch {epoch}")
                results[name] = result
                status = PluginStatus(name, epoch, result.status, result.reason, site.result_path(epoch, name))
                self.write(site.status_path(name), status.encode(), replace=True)
        self.write(logl.epoch_record_path(epoch), self.log.read_required(commit, logl.epoch_record_path(epoch)))
        names = set(record.added) | set(record.updated)
        names |= {e["name"] for e in record.removed} | {e["name"] for e in record.rejected}
        for name in sorted(n for n in names if is_valid_name(n)):
            proof = self.proof_at(commit, signed.head.root, epoch, name)
            self.write(site.proof_path(epoch, name), proof.to_json() + b"\n")
        self.write(logl.str_path(epoch), note)
        if self.site is not None:
            bindings = {}
            for name, result in results.items():
                binding = (self.log.read(commit, logl.binding_path(name, log_layout))
                           if result.status == ACCEPTED else None)
                bindings[name] = Binding.decode(binding) if binding else None
            self.site.record_epoch(epoch, record, results, bindings)

    def proof_at(self, commit: pygit2.Commit, root: bytes, epoch: int, name: str):
        return proof_at(self.log, commit, root, epoch, name)


def proof_at(log: LogRepo, commit: pygit2.Commit, root: bytes, epoch: int, name: str):
    """A one-file proof for `name` at this epoch, built from the epoch's own tiles."""
    log_layout = log.layout(commit)
    key = name_key(name)

    def fetch(level: int, tile_hash: bytes) -> bytes:  # prove_from_tiles checks what it gets
        data = log.read(commit, logl.tile_path(level, tile_hash, log_layout, tile_prefix(key, level)))
        if data is None:
            raise PdsError(f"log epoch {epoch}: tile {level}/{tile_hash.hex()} missing")
        return data

    siblings, leaf = prove_from_tiles(key, root, fetch)

    def binding_of(n: str) -> Binding:
        data = log.read(commit, logl.binding_path(n, log_layout))
        if data is None:
            raise PdsError(f"log epoch {epoch}: binding of {n} missing")
        return Binding.decode(data)

    return make_proof_from_leaf(name, epoch, siblings, leaf, binding_of)


def latest_proof(log_repo: str | Path, name: str):
    """The one-file proof for `name` at the log's latest epoch, whose STR verifies with the key
    in the log's pv.json (`pds pv prove`)."""
    log = LogRepo(log_repo)
    head = log.head()
    if head is None:
        raise PdsError(f"{log_repo}: the log has no epoch yet")
    descriptor = log.read(head, logl.PV_DESCRIPTOR)
    if descriptor is None:
        raise PdsError(f"{log_repo}: no {logl.PV_DESCRIPTOR} in the log")
    verifier = NoteVerifier.from_string(PvDescriptor.decode(descriptor, f"{log_repo}: {logl.PV_DESCRIPTOR}").vkey)
    signed = open_any(log.read_required(head, logl.LATEST_STR), verifier)
    return proof_at(log, head, signed.head.root, signed.head.epoch, name)


def _record_name(path: str, log_layout: int, epoch: int) -> str:
    try:
        return logl.name_from_record_path(path, log_layout)
    except FormatError as exc:
        raise PdsError(f"log epoch {epoch}: {exc}") from None


def _added_or_modified(log: LogRepo, parent: pygit2.Commit | None, commit: pygit2.Commit, epoch: int):
    """(path, blob id) of every file added or changed by `commit`; at a log layout migration,
    a bindings/ or results/ record counts only if it differs from the parent's record (at its
    new path): a record the migration only moved was published by an earlier epoch."""
    repo = log.repo
    if parent is None:
        return list(walk_blobs(repo, commit.tree))
    parent_layout, log_layout = log.layout(parent), log.layout(commit)
    migrating = parent_layout != log_layout
    diff = parent.tree.diff_to_tree(commit.tree)
    out = []
    for delta in diff.deltas:
        if delta.status in (pygit2.enums.DeltaStatus.ADDED, pygit2.enums.DeltaStatus.MODIFIED):
            if migrating and delta.new_file.path.split("/", 1)[0] in logl.RECORD_DIRS:
                continue
            out.append((delta.new_file.path, delta.new_file.id))
    if migrating:
        def moved(path: str) -> str:
            try:
                return logl.reshard_path(path, parent_layout, log_layout)
            except FormatError as exc:
                raise PdsError(f"log epoch {epoch - 1}: {exc}") from None

        deltas = renamed_diff(repo, parent.tree, commit.tree, logl.RECORD_DIRS, moved)
        out += [(path, oid) for path, _, oid in deltas if oid is not None]
    return out


def publish(log_repo: str | Path, out: str | Path, vkey: str | None = None, human_site: bool = True,
            cosigned: bytes | None = None, witnesses: list[CosignatureVerifier] | None = None) -> PublishSummary:
    return Publisher(log_repo, out, vkey, human_site, cosigned, witnesses).publish()
