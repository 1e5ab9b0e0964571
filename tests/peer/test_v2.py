"""The peer on STR v2 (C2SP checkpoints of a PV's epoch log, served as tlog-tiles): first
contact, catch-up in a handful of GETs, migration from v1, rollback, forks with evidence that
`pds note verify` accepts, witness quorums from trust.yaml, tampered tiles. Every PV is a core-
built publication (simpv.py) on a real HTTP server on 127.0.0.1; the peer is the CLI."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from pds_log.core import tlog
from pds_log.core.checkpoint import CosignatureSigner, EpochRecord
from pds_log.core.signed_root import sign_str
from tests.support import PDS, run

from .simpv import POLICY, PR_COMMIT, SimPV, binding_for, plugin_files, write_dir
from .test_warm import CountingServer

pytestmark = pytest.mark.slow  # simulated v2 PVs behind real HTTP servers, CLI runs per test

NAME = "org.sim.rtt"
FILES = plugin_files(NAME)


@pytest.fixture
def servers():
    started: list[CountingServer] = []

    def start(directory: Path) -> CountingServer:
        server = CountingServer(directory)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def make_pv(tmp_path: Path, origin: str = "pv1.sim", epochs: int = 1, v1_epochs: int = 0,
            witnesses: tuple[CosignatureSigner, ...] = ()) -> SimPV:
    pv = SimPV(tmp_path / origin, origin)
    for _ in range(v1_epochs):
        pv.next_epoch({NAME: binding_for(NAME, FILES)})
    pv.use_v2(witnesses)
    for _ in range(epochs):
        pv.next_epoch({NAME: binding_for(NAME, FILES)} if pv.epoch == 0 else {})
    return pv


def trust_file(tmp_path: Path, pvs: dict[str, tuple[str, list[str]]], extra: dict | None = None,
               per_pv: dict | None = None) -> Path:
    doc = {"version": 1, "pvs": {n: {"vkey": v, "mirrors": m, **(per_pv or {}).get(n, {})}
                                 for n, (v, m) in pvs.items()},
           "require": " & ".join(pvs), "max_age": 3600, "state": str(tmp_path / "state.json"), **(extra or {})}
    path = tmp_path / "trust.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def verify(trust: Path, tmp_path: Path, *extra) -> tuple[int, dict]:
    bytecode = write_dir(tmp_path / "bytecode", FILES)
    result = run(*PDS, "peer", "verify", NAME, "--trust", trust, "--bytecode", bytecode, "--json", *extra, check=False)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    return result.returncode, json.loads(result.stdout)


def pv_report(verdict: dict, name: str = "pv1") -> dict:
    return verdict["pvs"][name]


def state_of(tmp_path: Path, origin: str = "pv1.sim") -> dict:
    return json.loads((tmp_path / "state.json").read_text())["pvs"][origin]


def test_first_contact_and_catch_up_in_a_handful_of_gets(tmp_path, servers):
    pv = make_pv(tmp_path, epochs=1)
    server = servers(pv.out)
    trust = trust_file(tmp_path, {"pv1": (pv.vkey, [server.url])})
    code, verdict = verify(trust, tmp_path, "--no-cache")
    r = pv_report(verdict)
    assert code == 0, r
    assert r["str_version"] == 2 and r["epoch"] == 1 and r["status"] == "included"
    assert "first STR seen" in r["chain"]
    assert state_of(tmp_path)["epoch"] == 1
    for _ in range(150):
        pv.next_epoch()
    server.reset()
    code, verdict = verify(trust, tmp_path, "--no-cache")
    r = pv_report(verdict)
    assert code == 0, r
    assert r["epoch"] == 151 and "consistent with size 1" in r["chain"], r
    paths = [p for p, _ in server.requests]
    assert paths[0] == "checkpoint"
    assert len(paths) <= 10, paths
    assert state_of(tmp_path)["epoch"] == 151


def test_migration_from_v1_proves_the_v1_str_held_is_in_the_log(tmp_path, servers):
    pv = SimPV(tmp_path / "pv1.sim", "pv1.sim")
    pv.next_epoch({NAME: binding_for(NAME, FILES)})
    pv.next_epoch()
    server = servers(pv.out)
    trust = trust_file(tmp_path, {"pv1": (pv.vkey, [server.url])})
    code, verdict = verify(trust, tmp_path)
    assert code == 0 and pv_report(verdict)["str_version"] == 1
    pv.use_v2()
    for _ in range(3):
        pv.next_epoch()
    server.reset()
    code, verdict = verify(trust, tmp_path)
    r = pv_report(verdict)
    assert code == 0, r
    assert r["str_version"] == 2 and r["epoch"] == 5 and "holds the v1 STR of epoch 2" in r["chain"], r
    # latest.note first (the version last seen was v1): the PV's STR v2 is there too
    assert [p for p, _ in server.requests][0] == "latest.note"
    assert "checkpoint" not in [p for p, _ in server.requests]
    # a v1 STR after the v2 one is refused
    (pv.out / "checkpoint").unlink()
    (pv.out / "latest.note").write_bytes(sign_str(replace(pv.strs[2].head, epoch=6, time=int(time.time())),
                                                  pv.signer).note)
    code, verdict = verify(trust, tmp_path, "--no-cache")
    assert code == 1 and "does not go back to v1" in pv_report(verdict)["reason"], pv_report(verdict)


def test_rollback_to_a_smaller_checkpoint_is_refused(tmp_path, servers):
    pv = make_pv(tmp_path, epochs=3)
    old = pv.copy(tmp_path / "old")
    pv.next_epoch()
    trust = trust_file(tmp_path, {"pv1": (pv.vkey, [servers(pv.out).url])})
    assert verify(trust, tmp_path)[0] == 0
    trust = trust_file(tmp_path, {"pv1": (pv.vkey, [servers(old).url])})
    code, verdict = verify(trust, tmp_path)
    r = pv_report(verdict)
    assert code == 1 and r["chain_ok"] is False and "rollback" in r["reason"], r
    assert state_of(tmp_path)["epoch"] == 4


def forked_log(pv: SimPV, keep: int, size: int) -> tuple[tlog.MemoryHashes, list[EpochRecord]]:
    """The PV's log with entries from `keep` on replaced (another history), up to `size`."""
    records = list(pv.records[:keep])
    for e in range(keep + 1, size + 1):
        records.append(EpochRecord(e, pv.tree.root(), int(time.time()) - 1000 + e, PR_COMMIT, len(pv.tree), POLICY))
    log = tlog.MemoryHashes.empty()
    for r in records:
        log.append(r.entry())
    return log, records


def publish_fork(pv: SimPV, directory: Path, log: tlog.MemoryHashes, records: list[EpochRecord]) -> None:
    for tile in tlog.tiles_for_size(log.size):
        target = directory / tile.path()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(tlog.read_tile_data(tile, log))
    (directory / "checkpoint").write_bytes(pv.sign_checkpoint_at(log.size, log, records[-1]))


def check_evidence_cli(path: Path, vkey: str) -> dict:
    result = run(*PDS, "note", "verify", path, vkey, "--json", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("held", [3, 4])  # 4: a power of two, whose proof omits the old root
def test_a_fork_is_equivocation_with_evidence_note_verify_accepts(tmp_path, servers, held):
    pv = make_pv(tmp_path, epochs=held)
    trust = trust_file(tmp_path, {"pv1": (pv.vkey, [servers(pv.out).url])})
    assert verify(trust, tmp_path)[0] == 0
    fork_dir = pv.copy(tmp_path / "fork")
    log, records = forked_log(pv, keep=2, size=held + 5)
    publish_fork(pv, fork_dir, log, records)
    trust = trust_file(tmp_path, {"pv1": (pv.vkey, [servers(fork_dir).url, servers(pv.out).url])})
    code, verdict = verify(trust, tmp_path)
    r = pv_report(verdict)
    assert code == 1 and r["status"] == "invalid" and "equivocation" in r["reason"], r
    assert len(r["attempts"]) == 1  # fatal: the honest second mirror cannot make up for it
    evidence = Path(r["evidence"])
    doc = json.loads(evidence.read_text())
    assert doc["type"] == "pds-checkpoint-equivocation" and doc["path"]
    found = check_evidence_cli(evidence, pv.vkey)
    assert found["kind"] == "checkpoint-equivocation" and found["sizes"] == [held, held + 5]
    assert run(*PDS, "witness", "check-evidence", evidence, pv.vkey).returncode == 0
    assert state_of(tmp_path)["epoch"] == held


def test_same_size_another_root_is_equivocation(tmp_path, servers):
    pv = make_pv(tmp_path, epochs=3)
    trust = trust_file(tmp_path, {"pv1": (pv.vkey, [servers(pv.out).url])})
    assert verify(trust, tmp_path)[0] == 0
    fork_dir = pv.copy(tmp_path / "fork")
    log, records = forked_log(pv, keep=1, size=3)
    publish_fork(pv, fork_dir, log, records)
    trust = trust_file(tmp_path, {"pv1": (pv.vkey, [servers(fork_dir).url])})
    code, verdict = verify(trust, tmp_path)
    r = pv_report(verdict)
    assert code == 1 and "equivocation" in r["reason"] and r["evidence"], r
    found = check_evidence_cli(Path(r["evidence"]), pv.vkey)
    assert found["sizes"] == [3, 3]


def test_gossip_proves_a_v2_split_view_served_as_the_checkpoint(tmp_path, servers):
    """A mirror whose latest.note is the honest one but whose cosigned `checkpoint` (what v2
    peers read) is another log of the same size: gossip sees both and writes checkpoint
    evidence that `pds note verify` accepts; the honest mirror alone is consistent."""
    witness = CosignatureSigner.generate("witness.example/w1")
    pv = make_pv(tmp_path, epochs=3, witnesses=(witness,))
    fork_dir = pv.copy(tmp_path / "fork")
    log, records = forked_log(pv, keep=1, size=3)
    publish_fork(pv, fork_dir, log, records)
    (fork_dir / "checkpoint").write_bytes(pv.cosign((fork_dir / "checkpoint").read_bytes()))
    honest, forked = servers(pv.out), servers(fork_dir)

    def gossip(urls: list[str], label: str):
        trust = trust_file(tmp_path / label, {"pv1": (pv.vkey, urls)})
        return run(*PDS, "gossip", "--trust", trust, "--out", tmp_path / label / "evidence", "--state",
                   tmp_path / label / "state.json", check=False)

    (tmp_path / "alone").mkdir()
    alone = gossip([honest.url], "alone")
    assert alone.returncode == 0 and "pv1.sim epoch 3: consistent" in alone.stdout, alone.stdout + alone.stderr
    (tmp_path / "both").mkdir()
    both = gossip([honest.url, forked.url], "both")
    assert both.returncode == 1 and "pv1.sim epoch 3: EQUIVOCATION" in both.stdout, both.stdout + both.stderr
    assert "Traceback" not in both.stderr
    evidence = tmp_path / "both" / "evidence" / "equivocation-pv1.sim-epoch3.json"
    assert json.loads(evidence.read_text())["type"] == "pds-checkpoint-equivocation"
    found = check_evidence_cli(evidence, pv.vkey)
    assert found["kind"] == "checkpoint-equivocation" and found["sizes"] == [3, 3]


def test_tampered_tiles_fail_that_mirror_only(tmp_path, servers):
    pv = make_pv(tmp_path, epochs=2)
    trust = trust_file(tmp_path, {"pv1": (pv.vkey, [servers(pv.out).url])})
    assert verify(trust, tmp_path)[0] == 0
    for _ in range(5):
        pv.next_epoch()
    bad = pv.copy(tmp_path / "bad")
    for tile in (bad / "tile" / "0").rglob("*"):
        if tile.is_file():
            data = bytearray(tile.read_bytes())
            data[5] ^= 1
            tile.write_bytes(bytes(data))
    trust = trust_file(tmp_path, {"pv1": (pv.vkey, [servers(bad).url])})
    code, verdict = verify(trust, tmp_path, "--no-cache")
    r = pv_report(verdict)
    assert code == 1 and r["chain_ok"] is False and not r["evidence"], r
    assert state_of(tmp_path)["epoch"] == 2
    trust = trust_file(tmp_path, {"pv1": (pv.vkey, [servers(bad).url, servers(pv.out).url])})
    code, verdict = verify(trust, tmp_path, "--no-cache")
    assert code == 0, pv_report(verdict)
    assert state_of(tmp_path)["epoch"] == 7


def test_a_stale_checkpoint_is_refused(tmp_path, servers):
    pv = make_pv(tmp_path, epochs=0)
    pv.next_epoch({NAME: binding_for(NAME, FILES)}, at=int(time.time()) - 7200)
    trust = trust_file(tmp_path, {"pv1": (pv.vkey, [servers(pv.out).url])})
    code, verdict = verify(trust, tmp_path)
    r = pv_report(verdict)
    assert code == 1 and r["fresh"] is False and "stale" in r["reason"], r


def test_witness_quorum_from_trust_yaml(tmp_path, servers):
    w1, w2, w3 = (CosignatureSigner.generate(f"witness.sim/w{i}") for i in (1, 2, 3))
    pv = make_pv(tmp_path, epochs=2, witnesses=(w1,))
    url = servers(pv.out).url
    witnesses = {"witnesses": {"w1": str(w1.verifier()), "w2": str(w2.verifier()), "w3": str(w3.verifier())}}
    trust = trust_file(tmp_path, {"pv1": (pv.vkey, [url])}, {**witnesses, "cosigned_by": "2 of w1, w2, w3"})
    code, verdict = verify(trust, tmp_path)
    r = pv_report(verdict)
    assert code == 1 and r["fresh"] is False, r
    assert "1 of the 2 required witness cosignatures" in r["reason"] and "w2 (witness.sim/w2)" in r["reason"], r
    assert not (tmp_path / "state.json").exists()
    # a PV-level quorum overrides the global one
    trust = trust_file(tmp_path, {"pv1": (pv.vkey, [url])}, {**witnesses, "cosigned_by": "2 of w1, w2, w3"},
                       {"pv1": {"cosigned_by": "1 of w1"}})
    code, verdict = verify(trust, tmp_path)
    assert code == 0 and pv_report(verdict)["witnessed"] == ["w1"], pv_report(verdict)
    # cosigned by w1 and w3: 2 of 3
    pv.witnesses = (w1, w3)
    pv.next_epoch()
    trust = trust_file(tmp_path, {"pv1": (pv.vkey, [url])}, {**witnesses, "cosigned_by": "2 of w1, w2, w3"})
    code, verdict = verify(trust, tmp_path)
    assert code == 0 and pv_report(verdict)["witnessed"] == ["w1", "w3"], pv_report(verdict)
    # a forged cosignature line by a required witness rejects the checkpoint
    data = (pv.out / "checkpoint").read_bytes()
    line = [x for x in data.split(b"\n") if b"witness.sim/w3" in x][0]
    forged = line[:-20] + (b"A" if line[-20:-19] != b"A" else b"B") + line[-19:]
    (pv.out / "checkpoint").write_bytes(data.replace(line, forged))
    code, verdict = verify(trust, tmp_path, "--no-cache")
    r = pv_report(verdict)
    assert code == 1 and "invalid cosignature by witness.sim/w3" in r["reason"], r


def test_a_v1_pv_cannot_meet_a_witness_quorum(tmp_path, servers):
    w1 = CosignatureSigner.generate("witness.sim/w1")
    pv = SimPV(tmp_path / "pv1.sim", "pv1.sim")
    pv.next_epoch({NAME: binding_for(NAME, FILES)})
    trust = trust_file(tmp_path, {"pv1": (pv.vkey, [servers(pv.out).url])},
                       {"witnesses": {"w1": str(w1.verifier())}, "cosigned_by": "1 of w1"})
    code, verdict = verify(trust, tmp_path)
    r = pv_report(verdict)
    assert code == 1 and "v1 STR cannot be witnessed" in r["reason"], r


@pytest.mark.parametrize("doc, message", [
    ({"witnesses": {"w1": "nope"}}, "witnesses.w1"),
    ({"witnesses": {"w 1": "x"}}, "label"),
    ({"cosigned_by": "1 of w9"}, "unknown witness 'w9'"),
    ({"cosigned_by": "3 of w1"}, "quorum must be 1 to 1"),
    ({"cosigned_by": "two of w1"}, "expected \"<k> of"),
])
def test_bad_witness_settings_are_one_line_errors(tmp_path, doc, message):
    w1 = CosignatureSigner.generate("witness.sim/w1")
    pv = SimPV(tmp_path / "pv1.sim", "pv1.sim")
    extra = {"witnesses": {"w1": str(w1.verifier())}, **doc}
    trust = trust_file(tmp_path, {"pv1": (pv.vkey, [str(pv.out)])}, extra)
    result = run(*PDS, "peer", "verify", NAME, "--trust", trust, "--metadata-only", check=False)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_cached_checkpoint_is_a_conditional_get(tmp_path, servers):
    pv = make_pv(tmp_path, epochs=2)
    server = servers(pv.out)
    trust = trust_file(tmp_path, {"pv1": (pv.vkey, [server.url])})
    assert verify(trust, tmp_path)[0] == 0
    server.reset()
    assert verify(trust, tmp_path)[0] == 0
    assert server.requests == [("checkpoint", 304)], server.requests
    pv.next_epoch()
    server.reset()
    code, verdict = verify(trust, tmp_path)
    assert code == 0 and pv_report(verdict)["epoch"] == 3
    assert ("checkpoint", 200) in server.requests and len(server.requests) <= 4, server.requests


def test_partial_tile_gone_falls_back_to_the_full_tile(tmp_path, servers):
    """A mirror that dropped tile/0/000.p/10 once tile/0/000 was full still serves size 10."""
    pv = make_pv(tmp_path, epochs=10)
    head = (pv.out / "checkpoint").read_bytes()
    for _ in range(250):
        pv.next_epoch()
    (pv.out / "checkpoint").write_bytes(head)
    shutil.rmtree(pv.out / "tile" / "0" / "000.p")
    server = servers(pv.out)
    trust = trust_file(tmp_path, {"pv1": (pv.vkey, [server.url])})
    code, verdict = verify(trust, tmp_path)
    assert code == 0 and pv_report(verdict)["epoch"] == 10, pv_report(verdict)
    assert ("tile/0/000.p/10", 404) in server.requests and ("tile/0/000", 200) in server.requests


# ---------------------------------------------------------------------------- offline bundles
def bundle_and_check(tmp_path: Path, sender: Path, receiver: Path, *bundle_args) -> tuple[int, dict, dict]:
    out = tmp_path / "bundle.json"
    bytecode = write_dir(tmp_path / "bytecode", FILES)
    run(*PDS, "peer", "bundle", NAME, "--trust", sender, "-o", out, "--bytecode", bytecode, *bundle_args)
    result = run(*PDS, "peer", "check-bundle", out, "--trust", receiver, "--bytecode", bytecode, "--json", check=False)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    return result.returncode, json.loads(result.stdout), json.loads(out.read_text())


def two_peers(tmp_path: Path, pv: SimPV, url: str, **kw) -> tuple[Path, Path]:
    (tmp_path / "sender").mkdir()
    (tmp_path / "receiver").mkdir()
    return (trust_file(tmp_path / "sender", {"pv1": (pv.vkey, [url])}, **kw),
            trust_file(tmp_path / "receiver", {"pv1": (pv.vkey, [url])}, **kw))


def test_bundle_carries_the_cosigned_checkpoint_and_the_log_proofs(tmp_path, servers):
    w1 = CosignatureSigner.generate("witness.sim/w1")
    pv = make_pv(tmp_path, epochs=3, witnesses=(w1,))
    url = servers(pv.out).url
    witnessed = {"witnesses": {"w1": str(w1.verifier())}, "cosigned_by": "1 of w1"}
    sender, receiver = two_peers(tmp_path, pv, url, extra=witnessed)
    assert verify(receiver, tmp_path)[0] == 0  # the receiver holds size 3
    for _ in range(7):
        pv.next_epoch()
    code, verdict, bundle = bundle_and_check(tmp_path, sender, receiver, "--from-size", "3")
    r = pv_report(verdict)
    assert code == 0 and r["epoch"] == 10 and "consistent with size 3" in r["chain"], r
    assert r["witnessed"] == ["w1"] and "witness.sim/w1" in bundle["pvs"]["pv1.sim"]["str"]
    assert set(bundle["pvs"]["pv1.sim"]["log"]["from"]) == {"3"}
    assert state_of(tmp_path / "receiver")["epoch"] == 10


def test_bundle_without_a_proof_from_the_size_held_does_not_advance_the_state(tmp_path, servers):
    pv = make_pv(tmp_path, epochs=3)
    sender, receiver = two_peers(tmp_path, pv, servers(pv.out).url)
    assert verify(receiver, tmp_path)[0] == 0
    for _ in range(2):
        pv.next_epoch()
    code, verdict, _ = bundle_and_check(tmp_path, sender, receiver)
    r = pv_report(verdict)
    assert code == 0 and "no consistency proof from size 3" in r["chain"], r
    assert state_of(tmp_path / "receiver")["epoch"] == 3


def test_bundle_with_bad_log_proofs_is_refused(tmp_path, servers):
    pv = make_pv(tmp_path, epochs=3)
    sender, receiver = two_peers(tmp_path, pv, servers(pv.out).url)
    out = tmp_path / "bundle.json"
    bytecode = write_dir(tmp_path / "bytecode", FILES)
    run(*PDS, "peer", "bundle", NAME, "--trust", sender, "-o", out, "--bytecode", bytecode)
    doc = json.loads(out.read_text())
    for bad, message in ((["AAAA"], "malformed"), (["A" * 43 + "="], "does not include this STR's own record")):
        doc["pvs"]["pv1.sim"]["log"]["inclusion"] = bad
        out.write_text(json.dumps(doc))
        result = run(*PDS, "peer", "check-bundle", out, "--trust", receiver, "--bytecode", bytecode, "--json",
                     check=False)
        r = json.loads(result.stdout)["pvs"]["pv1"]
        assert result.returncode == 1 and message in r["reason"] and r["chain_ok"] is False, r


def test_hostile_checkpoints_are_refused_with_a_reason(tmp_path, servers):
    pv = make_pv(tmp_path, epochs=2)
    trust = trust_file(tmp_path, {"pv1": (pv.vkey, [servers(pv.out).url])})
    good = (pv.out / "checkpoint").read_bytes()
    huge = EpochRecord(10**12, pv.tree.root(), int(time.time()), PR_COMMIT, 1, POLICY)
    cases = [
        (b"\xff\xfe garbage\n\n", "checkpoint rejected"),
        (good.replace(b"\nsize 1\n", b"\nsize 01\n"), "checkpoint rejected"),
        (pv.sign_checkpoint_at(2, pv.log, huge), "epoch log: cannot fetch its tiles"),  # size 10**12
    ]
    for data, message in cases:
        (pv.out / "checkpoint").write_bytes(data)
        (pv.out / "latest.note").write_bytes(data)
        code, verdict = verify(trust, tmp_path, "--no-cache")
        r = pv_report(verdict)
        assert code == 1 and message in r["reason"], (data[:80], r)
        assert not (tmp_path / "state.json").exists()

