"""infra.files.sync_new_loose_objects: the epoch makes its own new loose objects durable (an
fsync each, and their directories), not every dirty page of the machine; old objects are left
alone, and past MAX_OBJECT_FSYNCS it is one os.sync()."""

import os
import time

import pygit2

from pds_log.infra import files


def test_only_the_objects_written_since_are_synced(tmp_path, monkeypatch):
    repo = pygit2.init_repository(str(tmp_path / "log.git"), bare=True)
    old = [repo.create_blob(b"old %d" % i) for i in range(5)]
    past = time.time() - 3600
    for oid in old:
        path = tmp_path / "log.git" / "objects" / str(oid)[:2] / str(oid)[2:]
        os.utime(path, (past, past))
        os.utime(path.parent, (past, past))
    synced: list[str] = []
    real_fsync = os.fsync
    monkeypatch.setattr(files.os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")),
                                                       real_fsync(fd)))
    since = time.time_ns()
    new = [repo.create_blob(b"new %d" % i) for i in range(7)]
    assert files.sync_new_loose_objects(tmp_path / "log.git", since) == 7
    for oid in new:
        assert str(tmp_path / "log.git" / "objects" / str(oid)[:2] / str(oid)[2:]) in synced
    for oid in old:
        assert str(tmp_path / "log.git" / "objects" / str(oid)[:2] / str(oid)[2:]) not in synced
    assert str(tmp_path / "log.git" / "objects") in synced


def test_past_the_limit_it_is_one_system_wide_sync(tmp_path, monkeypatch):
    repo = pygit2.init_repository(str(tmp_path / "log.git"), bare=True)
    since = time.time_ns()
    for i in range(40):
        repo.create_blob(b"blob %d" % i)
    calls: list[int] = []
    monkeypatch.setattr(files, "MAX_OBJECT_FSYNCS", 10)
    monkeypatch.setattr(files.os, "sync", lambda: calls.append(1))
    assert files.sync_new_loose_objects(tmp_path / "log.git", since) == -1 and calls == [1]
