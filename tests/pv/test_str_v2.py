"""STR v2 from the PV side, for real: a PV signs two v1 epochs, is switched to `str_version: 2`
(the migration epoch rebuilds the epoch log from the v1 STRs), submits every checkpoint to two
real `pds witness serve` processes over HTTP, one of which is down for two epochs and is caught
up later by `pds pv cosign`; `pds pv publish` writes the C2SP tlog-tiles files and a checkpoint
that Go's sumdb/note opens with both cosignatures; `pds audit` recomputes the epoch log and
names the epoch of a forged one."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pygit2
import pytest
import yaml

from pds_log.core import checkpoint as cp
from pds_log.core import log_layout as layout
from pds_log.core import note as notes
from pds_log.core import tlog
from pds_log.core.strs import TreeHeadV2, open_any, parse_head
from pds_log.pv.config import load_config
from tests.support import PDS, World, epoch, run
from tests.witness.conftest import WitnessProcess

VERIFIERS = {"safety": {"runner": "bytecode_safety"}}
GOPATH = Path("/usr/share/gocode")
GO_SOURCE = Path(__file__).resolve().parents[1] / "witness" / "gointerop"


def set_config(path: Path, **values) -> None:
    doc = yaml.safe_load(path.read_text())
    doc.update(values)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def witness_entry(w: WitnessProcess) -> dict:
    return {"name": w.name, "vkey": str(w.verifier), "url": w.url}


def cosigners(note: bytes, witnesses: list[WitnessProcess]) -> list[str]:
    parsed = notes.parse(note)
    got = []
    for w in witnesses:
        for sig in parsed.signatures:
            if (sig.name, sig.key_id) == (w.verifier.name, w.verifier.key_id):
                w.verifier.verify(parsed.text, sig)  # raises unless valid
                got.append(w.name)
    return got


def b64(h: bytes) -> str:
    return base64.b64encode(h).decode()


def witness_size(w: WitnessProcess, origin: str) -> int:
    out = run(*PDS, "witness", "status", w.directory, "--json")
    return {e["origin"]: e["size"] for e in json.loads(out.stdout)["logs"]}.get(origin, 0)


@pytest.fixture(scope="module")
def v2(tmp_path_factory):
    root = tmp_path_factory.mktemp("strv2")
    world = World(root)
    config_path = world.add_pv("pv1.example", verifiers=VERIFIERS, acceptance="safety")
    vkey = str(load_config(config_path).signer().verifier())
    world.push_plugins({"org.pds.a.rtt": "org.pds.examples.rtt_monitor"})
    summaries = [epoch(config_path), epoch(config_path)]  # v1
    w1 = WitnessProcess(root / "w1", "witness.example/w1", [vkey]).start()
    w2 = WitnessProcess(root / "w2", "witness.example/w2", [vkey]).start()
    set_config(config_path, str_version=2, witnesses=[witness_entry(w1), witness_entry(w2)], witness_timeout=3)
    world.push_plugins({"org.pds.b.cwin": "org.pds.examples.cwin_total"})
    summaries.append(epoch(config_path))  # 3: the migration epoch, both witnesses up
    w2.kill()
    world.push_plugins({"org.pds.c.logger": "org.pds.examples.state_logger"})
    summaries.append(epoch(config_path))  # 4: w2 down
    summaries.append(epoch(config_path))  # 5: w2 down
    out = root / "site"
    publish_5 = json.loads(run(*PDS, "pv", "publish", "--config", config_path, "--out", out, "--json").stdout)
    checkpoint_5 = (out / "checkpoint").read_bytes()
    w2.start()  # same port, same state: it last cosigned epoch 3
    cosign = json.loads(run(*PDS, "pv", "cosign", "--config", config_path, "--out", out, "--json").stdout)
    checkpoint_5_later = (out / "checkpoint").read_bytes()
    summaries.append(epoch(config_path))  # 6: both up
    summaries.append(epoch(config_path))  # 7
    publish_7 = json.loads(run(*PDS, "pv", "publish", "--config", config_path, "--out", out, "--json").stdout)
    yield {"world": world, "config_path": config_path, "vkey": vkey, "summaries": summaries, "w": [w1, w2],
           "out": out, "publish_5": publish_5, "checkpoint_5": checkpoint_5, "cosign": cosign,
           "checkpoint_5_later": checkpoint_5_later, "publish_7": publish_7}
    for w in (w1, w2):
        if w.proc is not None:
            w.kill()


@pytest.mark.slow
def test_epochs_switch_to_v2_and_the_migration_log_holds_the_v1_records(v2):
    summaries, vkey = v2["summaries"], v2["vkey"]
    assert [s["epoch"] for s in summaries] == [1, 2, 3, 4, 5, 6, 7]
    assert [s["str_version"] for s in summaries] == [1, 1, 2, 2, 2, 2, 2]
    log = pygit2.Repository(str(load_config(v2["config_path"]).log_repo))
    head = log.revparse_single("main")
    verifier = notes.NoteVerifier.from_string(vkey)
    strs = [open_any(log.revparse_single(f"main:{layout.str_path(e)}").data, verifier) for e in range(1, 8)]
    hashes = tlog.MemoryHashes.empty()
    for signed in strs:
        hashes.append(signed.head.record.entry() if isinstance(signed.head, TreeHeadV2) else
                      cp.EpochRecord(signed.head.epoch, signed.head.root, signed.head.time, signed.head.pr,
                                     signed.head.size, signed.head.policy).entry())
    for signed in strs[2:]:
        assert isinstance(signed.head, TreeHeadV2)
        assert signed.head.log_root == hashes.root(signed.head.epoch)  # epochs 1, 2 are entries 0, 1
        # the STR's own record is the log's last entry (what a peer checks)
        proof = tlog.prove_inclusion(signed.head.epoch, signed.head.epoch - 1, hashes)
        cp.check_str_record(signed.head.checkpoint(), proof)
    # the head commit holds the partials of size 7 only; the history has every epoch's own
    stored = {p for p in _tree_paths(log, head.tree) if p.startswith("tlog/")}
    assert stored == {"tlog/tile/0/000.p/7", "tlog/tile/entries/000.p/7"}
    entries = tlog.decode_entry_bundle(log.revparse_single("main:tlog/tile/entries/000.p/7").data)
    assert [tlog.leaf_hash(e) for e in entries] == [hashes.read_hashes([tlog.stored_hash_index(0, i)])[0]
                                                     for i in range(7)]


def _tree_paths(repo, tree, prefix=""):
    for entry in tree:
        path = prefix + entry.name
        if entry.type_str == "tree":
            yield from _tree_paths(repo, repo[entry.id], path + "/")
        else:
            yield path


@pytest.mark.slow
def test_a_down_witness_never_fails_the_epoch_and_is_caught_up(v2):
    s = v2["summaries"]
    w1, w2 = v2["w"]
    assert s[2]["witnesses"] == {w1.name: "cosigned", w2.name: "cosigned"}
    for down in (s[3], s[4]):
        assert down["witnesses"][w1.name] == "cosigned"
        assert down["witnesses"][w2.name].startswith("not cosigned (no answer")
    assert v2["publish_5"]["checkpoint_cosigners"] == [w1.name]
    assert cosigners(v2["checkpoint_5"], [w1, w2]) == [w1.name]
    # pds pv cosign: only the missing witness is asked, from the size it last cosigned (3)
    assert v2["cosign"]["epoch"] == 5
    assert v2["cosign"]["witnesses"] == {w1.name: "cosigned (earlier)", w2.name: "cosigned"}
    assert v2["cosign"]["published"]["checkpoint_cosigners"] == [w1.name, w2.name]
    assert cosigners(v2["checkpoint_5_later"], [w1, w2]) == [w1.name, w2.name]
    assert s[5]["witnesses"] == {w1.name: "cosigned", w2.name: "cosigned"}
    assert v2["publish_7"]["checkpoint_cosigners"] == [w1.name, w2.name]
    assert witness_size(w1, "pv1.example") == witness_size(w2, "pv1.example") == 7


@pytest.mark.slow
def test_publication_is_c2sp_tlog_tiles(v2):
    out, vkey = v2["out"], v2["vkey"]
    files = sorted(p.relative_to(out).as_posix() for p in (out / "tile").rglob("*") if p.is_file())
    # a partial tile per signed checkpoint size (3..7), none for the v1 sizes 1 and 2
    assert files == [f"tile/0/000.p/{w}" for w in range(3, 8)] + [f"tile/entries/000.p/{w}" for w in range(3, 8)]
    checkpoint = (out / "checkpoint").read_bytes()
    assert (out / "latest.note").read_bytes() == open_any(checkpoint, notes.NoteVerifier.from_string(vkey)).note
    head = parse_head(notes.parse(checkpoint).text)
    assert isinstance(head, TreeHeadV2) and head.epoch == 7
    reader = tlog.TileHashReader(7, lambda t: (out / t.path()).read_bytes())
    assert tlog.tree_hash(7, reader) == head.log_root
    for old in range(1, 7):  # a peer at any earlier size catches up with one proof
        tlog.check_consistency(tlog.prove_consistency(7, old, reader), 7, head.log_root, old,
                               tlog.tree_hash(old, reader))


@pytest.mark.slow
def test_go_sumdb_note_opens_the_published_checkpoint_with_both_cosignatures(v2, tmp_path):
    if shutil.which("go") is None or not (GOPATH / "src/golang.org/x/mod/sumdb").is_dir():
        pytest.skip("needs Debian's golang-go and golang-golang-x-mod-dev")
    binary = tmp_path / "gointerop"
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": str(GOPATH), "GOCACHE": str(tmp_path / "cache"),
           "GOFLAGS": "", "GOPROXY": "off", "CGO_ENABLED": "0"}
    subprocess.run(["go", "build", "-o", str(binary), "."], cwd=GO_SOURCE, env=env, check=True, timeout=600)
    directory = tmp_path / "published"
    shutil.copytree(v2["out"], directory)
    w1, w2 = v2["w"]
    (directory / "log.vkey").write_text(v2["vkey"] + "\n")
    (directory / "witnesses.vkey").write_text(f"{w1.verifier}\n{w2.verifier}\n")
    reader = tlog.TileHashReader(7, lambda t: (directory / t.path()).read_bytes())
    entries = tlog.decode_entry_bundle((directory / "tile/entries/000.p/7").read_bytes())
    claims = {"roots": {str(n): b64(tlog.tree_hash(n, reader)) for n in range(1, 8)},
              "inclusion": [{"size": 7, "index": i, "entry": b64(entries[i]),
                             "proof": [b64(h) for h in tlog.prove_inclusion(7, i, reader)]} for i in range(7)],
              "consistency": [{"size": 7, "old": m, "proof": [b64(h) for h in tlog.prove_consistency(7, m, reader)]}
                              for m in range(1, 8)],
              "tile_paths": sorted(p.relative_to(directory).as_posix() for p in (directory / "tile").rglob("*")
                                   if p.is_file())}
    (directory / "claims.json").write_text(json.dumps(claims))
    result = subprocess.run([str(binary), str(directory)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "ok note: 3 signatures verified (log + 2 cosignatures)"
    assert lines[-1] == "ok entries: 7 entries hash to their level-0 tile hashes"


@pytest.mark.slow
def test_audit_recomputes_the_epoch_log_and_names_a_forged_epoch(v2, tmp_path):
    log_repo = load_config(v2["config_path"]).log_repo
    clean = run(*PDS, "audit", log_repo, "--json", check=False)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert json.loads(clean.stdout)["epochs"] == 7
    # a PV whose migration epoch (3) leaves out the v1 records: its log holds only epoch 3's
    # record, and it signs that log's root. Every signature is valid; the audit names epoch 3.
    forged = tmp_path / "forged.git"
    run("git", "clone", "-q", "--bare", log_repo, forged)
    repo = pygit2.Repository(str(forged))
    signer = load_config(v2["config_path"]).signer()
    chain = []
    commit = repo.revparse_single("main")
    while commit.parents:
        chain.append(commit)
        commit = commit.parents[0]
    chain.append(commit)
    third = chain[::-1][2]
    old = parse_head(notes.parse(repo.revparse_single(f"{third.id}:{layout.str_path(3)}").data).text)
    assert isinstance(old, TreeHeadV2)
    lie = TreeHeadV2(old.origin, old.record, tlog.leaf_hash(old.record.entry()))
    note = notes.sign(lie.text(), [signer])
    builder = repo.TreeBuilder(third.tree)
    epochs = repo.TreeBuilder(repo[third.tree["epochs"].id])
    shard = repo.TreeBuilder(repo[repo[third.tree["epochs"].id]["0"].id])
    shard.insert("3.note", repo.create_blob(note), pygit2.enums.FileMode.BLOB)
    epochs.insert("0", shard.write(), pygit2.enums.FileMode.TREE)
    builder.insert("epochs", epochs.write(), pygit2.enums.FileMode.TREE)
    builder.insert("latest.note", repo.create_blob(note), pygit2.enums.FileMode.BLOB)
    new = repo.create_commit(None, third.author, third.committer, third.message, builder.write(), list(third.parent_ids))
    repo.references.create("refs/heads/forged", new)
    result = run(*PDS, "audit", forged, "--ref", "forged", "--json", check=False)
    assert result.returncode != 0
    findings = json.loads(result.stdout)["findings"]
    assert any(f["epoch"] == 3 and f["check"] == "epoch log" and "v1 -> v2 migration" in f["message"]
               for f in findings), findings


@pytest.mark.slow
def test_a_stalled_witness_is_bounded_by_the_timeout(v2, tmp_path):
    """A witness that accepts the connection and never answers costs at most the timeout."""
    config_path = v2["config_path"]
    stall = socket.socket()
    stall.bind(("127.0.0.1", 0))
    stall.listen(8)  # never accept(): the kernel completes the handshake, nobody answers
    try:
        w1, w2 = v2["w"]
        ghost = cp.CosignatureSigner.generate("witness.example/stalled").verifier()
        set_config(config_path, witness_timeout=1,
                   witnesses=[witness_entry(w1), witness_entry(w2),
                              {"name": ghost.name, "vkey": str(ghost),
                               "url": f"http://127.0.0.1:{stall.getsockname()[1]}"}])
        t0 = time.monotonic()
        summary = epoch(config_path)
        took = time.monotonic() - t0
    finally:
        stall.close()
        set_config(config_path, witness_timeout=3, witnesses=[witness_entry(w) for w in v2["w"]])
    assert summary["epoch"] == 8
    assert summary["witnesses"][w1.name] == summary["witnesses"][w2.name] == "cosigned"
    assert summary["witnesses"][ghost.name].startswith("not cosigned")
    assert took < 30
