"""Helpers for the witness tests: real `pds witness serve` processes on 127.0.0.1."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from pds_log.core import checkpoint as cp
from pds_log.core import note as notes
from pds_log.core import tlog
from tests.support import PDS


class WitnessProcess:
    """One `pds witness serve DIR` subprocess; `start` waits for its `listening on` line."""

    def __init__(self, directory: Path, name: str, log_vkeys: list[str]) -> None:
        self.directory = directory
        self.name = name
        out = subprocess.run([*PDS, "witness", "init", str(directory), "--name", name,
                              *[a for v in log_vkeys for a in ("--log", v)]], capture_output=True, text=True, check=True)
        self.verifier = cp.CosignatureVerifier.from_string(out.stdout.strip())
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.url = ""

    def start(self) -> "WitnessProcess":
        assert self.proc is None
        stderr = open(self.directory / "serve.log", "ab")
        self.proc = subprocess.Popen([*PDS, "witness", "serve", str(self.directory), "--listen", f"127.0.0.1:{self.port}"],
                                     stdout=subprocess.PIPE, stderr=stderr, text=True)
        stderr.close()
        line = self.proc.stdout.readline()  # printed once the socket is bound and listening
        assert line.startswith("listening on http://127.0.0.1:"), line + (self.directory / "serve.log").read_text()
        self.url = line.split()[-1]
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)  # no clean shutdown: state must already be on disk
        self.proc.wait(timeout=30)
        self.proc.stdout.close()
        self.proc = None

    def endpoint(self):
        from pds_log.witness.client import WitnessEndpoint

        return WitnessEndpoint(self.url, self.verifier)


class EpochLog:
    """A PV's epoch log built with core/tlog: record of epoch E at entry E-1, STR v2 heads."""

    def __init__(self, origin: str = "pv1.example/log", fork_from: int | None = None, seed: bytes = bytes(range(32))) -> None:
        self.signer = notes.NoteSigner(origin, seed)
        self.hashes = tlog.MemoryHashes.empty()
        self.entries: list[bytes] = []
        self.fork_from = fork_from

    def record(self, epoch: int) -> cp.EpochRecord:
        forked = self.fork_from is not None and epoch >= self.fork_from
        map_root = bytes(32) if forked else epoch.to_bytes(32, "big")
        return cp.EpochRecord(epoch, map_root, 1_700_000_000 + 600 * epoch, f"{epoch:040x}", epoch, "ab" * 32)

    def grow(self, epochs: int) -> "EpochLog":
        while self.hashes.size < epochs:
            entry = self.record(self.hashes.size + 1).entry()
            self.entries.append(entry)
            self.hashes.append(entry)
        return self

    def head(self, epoch: int | None = None) -> bytes:
        epoch = self.hashes.size if epoch is None else epoch
        return cp.sign_checkpoint(cp.str_v2(self.signer.name, self.record(epoch), self.hashes.root(epoch)), self.signer)

    def prove(self, epoch: int):
        return lambda old: tlog.prove_consistency(epoch, old, self.hashes)


@pytest.fixture
def epoch_log():
    return EpochLog
