"""The epoch log in a real git log repo (pds_log.pv.epochlog): each epoch writes O(log n) tlog/
files, the head holds exactly the tiles of its size, the v1 -> v2 migration rebuilds the log
from the v1 STRs, and stored tiles that do not hash to the last STR v2's log root stop the PV."""

from __future__ import annotations

import pytest

from pds_log.core import log_layout as layout
from pds_log.core import note as notes
from pds_log.core import tlog
from pds_log.core.checkpoint import EpochRecord
from pds_log.core.errors import PdsError
from pds_log.core.signed_root import ZERO_HASH, TreeHead, sign_str
from pds_log.core.strs import SignedStr, TreeHeadV2, open_any
from pds_log.pv import epochlog
from pds_log.pv.logrepo import LogRepo

ORIGIN = "pv1.example"
SIGNER = notes.NoteSigner(ORIGIN, bytes(range(32)))


def record(epoch: int) -> EpochRecord:
    return EpochRecord(epoch, epoch.to_bytes(32, "big"), 1_767_225_600 + 600 * epoch, f"{epoch:040x}", epoch,
                       "ab" * 32)


def commit_epoch(log: LogRepo, epoch: int, note: bytes, changes: dict) -> None:
    head = log.head()
    changes = {**changes, layout.str_path(epoch): note, layout.LATEST_STR: note}
    new = log.write_epoch_commit(head, changes, epoch, ORIGIN, 0, f"epoch {epoch}\n")
    log.advance(head.id if head else None, new, epoch)


def latest(log: LogRepo) -> SignedStr | None:
    head = log.head()
    return open_any(log.read_required(head, layout.LATEST_STR), SIGNER.verifier()) if head else None


def v2_epoch(log: LogRepo, epoch: int) -> epochlog.Appended:
    out = epochlog.append(log, log.head(), latest(log), SIGNER.verifier(), record(epoch))
    note = notes.sign(TreeHeadV2(ORIGIN, record(epoch), out.log_root).text(), [SIGNER])
    commit_epoch(log, epoch, note, out.changes)
    return out


def head_tlog(log: LogRepo) -> dict[str, bytes]:
    from pds_log.infra.gittree import blob_at, walk_blobs

    head = log.head()
    return {p: blob_at(log.repo, oid) for p, oid in walk_blobs(log.repo, head.tree) if p.startswith("tlog/")}


@pytest.mark.slow
def test_each_epoch_writes_o_log_n_files_and_the_head_holds_the_tiles_of_its_size(tmp_path):
    log = LogRepo.init(tmp_path / "log.git")
    written = []
    for epoch in range(1, 601):
        out = v2_epoch(log, epoch)
        written.append(sum(1 for v in out.changes.values() if v is not None))
    assert max(written) <= 4 and written[255] == 3  # epoch 256: full tile 0/000, entries/000, tile 1/000.p/1
    root, files = epochlog.all_files([record(e).entry() for e in range(1, 601)])
    assert head_tlog(log) == files
    assert latest(log).head.log_root == root
    # a peer at any earlier size gets a consistency proof from the head's tiles
    reader = epochlog.reader_at(log, log.head(), 600)
    for old in (1, 255, 256, 257, 599):
        tlog.check_consistency(epochlog.prover(log, log.head(), 600)(old), 600, root, old, tlog.tree_hash(old, reader))


@pytest.mark.slow
def test_migration_rebuilds_the_log_from_the_v1_strs(tmp_path):
    log = LogRepo.init(tmp_path / "log.git")
    prev = None
    for epoch in range(1, 300):
        r = record(epoch)
        head = TreeHead(ORIGIN, epoch, r.map_root, prev.hash if prev else ZERO_HASH, r.time, r.pr, r.size, r.policy)
        prev = sign_str(head, SIGNER)
        commit_epoch(log, epoch, prev.note, {})
    out = v2_epoch(log, 300)
    assert out.migrated == 299
    root, files = epochlog.all_files([record(e).entry() for e in range(1, 301)])
    assert out.log_root == root and head_tlog(log) == files
    assert set(files) == {"tlog/tile/0/000", "tlog/tile/0/001.p/44", "tlog/tile/1/000.p/1", "tlog/tile/entries/000",
                          "tlog/tile/entries/001.p/44"}
    v2_epoch(log, 301)  # then incrementally
    assert head_tlog(log) == epochlog.all_files([record(e).entry() for e in range(1, 302)])[1]


def test_stored_tiles_that_do_not_match_the_signed_log_root_stop_the_pv(tmp_path):
    log = LogRepo.init(tmp_path / "log.git")
    for epoch in range(1, 4):
        v2_epoch(log, epoch)
    head = log.head()
    bad = bytearray(log.read_required(head, "tlog/tile/0/000.p/3"))
    bad[0] ^= 1
    new = log.write_epoch_commit(head, {"tlog/tile/0/000.p/3": bytes(bad)}, 3, ORIGIN, 0, "epoch 3\n")
    log.advance(head.id, new, 3)
    with pytest.raises(PdsError, match="hashes to .* at size 3, but the STR of epoch 3 signed another log root"):
        epochlog.append(log, log.head(), latest(log), SIGNER.verifier(), record(4))
    missing = log.write_epoch_commit(log.head(), {"tlog/tile/0/000.p/3": None}, 3, ORIGIN, 0, "epoch 3\n")
    log.advance(log.head().id, missing, 3)
    with pytest.raises(PdsError, match="has no tlog/tile/0/000.p/3"):
        epochlog.append(log, log.head(), latest(log), SIGNER.verifier(), record(4))
