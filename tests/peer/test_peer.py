"""Peers against real PVs (`pds pv epoch` + publish) served by real HTTP mirrors on 127.0.0.1."""

import json
import shutil
import time

import pytest

from pds_log.core import static_layout as site
from pds_log.peer.errors import BadProof, BadSignature, Rollback, Stale
from pds_log.peer.trust import PeerState, load_trust
from pds_log.peer.verify import verify_plugin
from tests.support import PDS, StaticServer, run

from .conftest import PLUGIN, REJECTED, net_trust

pytestmark = pytest.mark.slow  # the session's PV network: three PVs, epochs, six HTTP servers

DEAD = "http://127.0.0.1:9/dead/"  # the discard port: connection refused


def verify(trust, *extra):
    """`pds peer verify`; these tests are about the PVs' evidence, so without --bytecode they
    accept on the metadata alone (test_without_bytecode_nothing_is_accepted shows the default)."""
    if "--bytecode" not in extra:
        extra = (*extra, "--metadata-only")
    return run(*PDS, "peer", "verify", *extra, "--trust", trust, check=False)


def test_without_bytecode_nothing_is_accepted(net, tmp_path):
    """The footgun: without --bytecode the formula holds but no byte the peer holds was checked."""
    trust = net_trust(net, tmp_path)
    bare = run(*PDS, "peer", "verify", PLUGIN, "--trust", trust, check=False)
    lines = bare.stdout.splitlines()
    assert bare.returncode == 1, bare.stdout + bare.stderr
    assert lines[-2] == f"verdict: INCOMPLETE (bytecode not checked) {PLUGIN} (require: pv1 & (pv2 | pv3))"
    assert "bytecode: not checked" in bare.stdout and "verdict: ACCEPT" not in bare.stdout
    assert "--metadata-only" in lines[-1]
    doc = json.loads(run(*PDS, "peer", "verify", PLUGIN, "--trust", trust, "--json", check=False).stdout)
    assert (doc["accepted"], doc["outcome"], doc["formula_satisfied"], doc["bytecode_checked"]) == \
        (False, "incomplete", True, False)
    # asked for: the verdict says what it rests on, in the table and in --json
    meta = run(*PDS, "peer", "verify", PLUGIN, "--trust", trust, "--metadata-only", check=False)
    assert meta.returncode == 0, meta.stdout + meta.stderr
    assert meta.stdout.splitlines()[-1] == (f"verdict: ACCEPT (metadata only: bytecode not checked) {PLUGIN} "
                                            f"(require: pv1 & (pv2 | pv3))")
    doc = json.loads(run(*PDS, "peer", "verify", PLUGIN, "--trust", trust, "--metadata-only", "--json").stdout)
    assert (doc["accepted"], doc["outcome"], doc["verdict"]) == \
        (True, "accept-metadata-only", "ACCEPT (metadata only: bytecode not checked)")
    # --metadata-only never turns a rejection into an accept
    strict = verify(net_trust(net, tmp_path, require="pv1 & pv2"), PLUGIN)
    assert strict.returncode == 1 and strict.stdout.splitlines()[-1].startswith("verdict: REJECT")
    both = run(*PDS, "peer", "verify", PLUGIN, "--trust", trust, "--metadata-only", "--bytecode", net["bytecode"],
               check=False)
    assert both.returncode == 2 and "not both" in both.stderr


def test_formula_accepts_through_pv3_when_pv2_rejects(net, tmp_path):
    trust = net_trust(net, tmp_path)
    result = verify(trust, PLUGIN, "--bytecode", net["bytecode"], "--json")
    verdict = json.loads(result.stdout)
    assert result.returncode == 0 and verdict["accepted"], result.stdout
    for pv in ("pv1", "pv3"):
        r = verdict["pvs"][pv]
        assert (r["status"], r["approved"], r["bytecode"], r["epoch"]) == ("included", True, "match", 2)
        assert r["signature_ok"] and r["chain_ok"] and r["fresh"] and r["reachable"]
        assert r["proof"] == "inclusion" and r["proof_source"] == "tiles"
        assert r["mirror"] == net["mirrors"][pv][0][1]  # the first mirror answered
    pv2 = verdict["pvs"]["pv2"]
    assert pv2["status"] == "absent" and pv2["approved"] is False and "absence proof verified" in pv2["reason"]
    assert "pv2 accepts nothing yet" in pv2["explanation"] and pv2["explanation_authenticated"] is False
    # the table: one row per PV with each check, then the verdict line
    table = verify(trust, PLUGIN, "--bytecode", net["bytecode"]).stdout
    lines = table.splitlines()
    assert lines[0].split() == ["PV", "reach", "epoch", "age", "sig", "chain", "fresh", "proof", "bytecode",
                                "properties", "status"]
    row = next(line for line in lines if line.startswith("pv1 "))
    assert row.split()[:9] == ["pv1", "yes", "2", row.split()[3], "ok", "ok", "ok", "inclusion", "match"]
    assert lines[-1] == f"verdict: ACCEPT {PLUGIN} (require: pv1 & (pv2 | pv3))"
    strict = verify(net_trust(net, tmp_path, require="pv1 & pv2"), PLUGIN)
    assert strict.returncode == 1 and strict.stdout.splitlines()[-1].startswith("verdict: REJECT")


def test_property_atoms(net, tmp_path):
    ok = verify(net_trust(net, tmp_path, require="pv1.side_effects & pv3.safety"), PLUGIN)
    assert ok.returncode == 0, ok.stdout
    missing = verify(net_trust(net, tmp_path, require="pv3.termination"), PLUGIN)  # pv3 runs no such check
    assert missing.returncode == 1


def test_one_mirror_down_fails_over(net, tmp_path):
    # a real mirror that goes down: started on a copy, then stopped
    copy = shutil.copytree(net["mirrors"]["pv1"][0][0], tmp_path / "copy")
    server = StaticServer(copy)
    down = server.url
    server.stop()
    urls = {"pv1": [down, net["mirrors"]["pv1"][1][1]]}
    result = verify(net_trust(net, tmp_path, urls=urls), PLUGIN, "--json")
    verdict = json.loads(result.stdout)
    assert result.returncode == 0, result.stdout
    pv1 = verdict["pvs"]["pv1"]
    assert pv1["mirror"] == net["mirrors"]["pv1"][1][1] and pv1["status"] == "included"
    assert pv1["attempts"][0].startswith(f"{down}: unreachable: connection failed")


def test_unreachable_pv_counts_false_never_accepts(net, tmp_path):
    urls = {"pv1": [DEAD, "http://127.0.0.1:9/also-dead/"]}
    result = verify(net_trust(net, tmp_path, urls=urls, require="pv1 | pv2"), PLUGIN)
    assert result.returncode == 1, result.stdout
    assert "no mirror answered" in result.stdout and "verdict: REJECT" in result.stdout
    ok = verify(net_trust(net, tmp_path, urls=urls, require="pv1 | pv3"), PLUGIN)
    assert ok.returncode == 0  # monotone: pv3 alone suffices for pv1 | pv3


def flip_last_byte(path):
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))


def tamper_root_tile(d):
    for p in (d / "tiles" / "0").rglob("*"):
        if p.is_file():
            flip_last_byte(p)


def tamper_proof_sibling(d):
    path = d / site.proof_path(2, PLUGIN)
    proof = json.loads(path.read_text())
    proof["siblings"][0] = "0" * 64 if proof["siblings"][0] != "0" * 64 else "1" * 64
    path.write_text(json.dumps(proof))


def old_epoch_proof(d):
    shutil.copy(d / site.proof_path(1, PLUGIN), d / site.proof_path(2, PLUGIN))


def other_plugin_proof(d):
    shutil.copy(d / site.proof_path(1, REJECTED), d / site.proof_path(2, PLUGIN))


def tamper_bindings(d):
    for p in (d / "bindings").rglob("*.json"):
        p.write_bytes(p.read_bytes().replace(b'"properties":[', b'"properties":["termination",'))


def bad_signature(d):
    note = (d / site.LATEST).read_bytes()
    (d / site.LATEST).write_bytes(note.replace(b"\ntime ", b"\ntime 1"))


@pytest.mark.parametrize("via, mutate, kind, message", [
    ("tiles", tamper_root_tile, BadProof, "proof rejected: tile at level 0 does not hash to"),
    ("proof", tamper_proof_sibling, BadProof, "proof rejected: proof for org.pds.demo.rtt does not match the root"),
    ("proof", old_epoch_proof, BadProof,
     "proof rejected: proof for org.pds.demo.rtt is for epoch 1, the STR is epoch 2"),
    ("proof", other_plugin_proof, BadProof,
     "proof rejected: the one-file proof is for org.pds.demo.loop, not org.pds.demo.rtt"),
    ("tiles", tamper_bindings, BadProof, "does not hash to the value at the leaf (tampered binding)"),
    ("tiles", bad_signature, BadSignature, "latest STR rejected: invalid signature by pv1.example"),
])
def test_tampered_mirror_is_rejected_with_the_reason(net, tmp_path, serve, via, mutate, kind, message):
    bad = shutil.copytree(net["mirrors"]["pv1"][0][0], tmp_path / "tampered")
    mutate(bad)
    url = serve(bad)
    trust = net_trust(net, tmp_path, urls={"pv1": [url]})
    result = verify(trust, PLUGIN, "--via", via, "--json")
    pv1 = json.loads(result.stdout)["pvs"]["pv1"]
    assert result.returncode == 1, result.stdout
    assert pv1["status"] == "invalid" and message in pv1["reason"], pv1
    assert not PeerState.load(tmp_path / "state.json").last("pv1.example")  # nothing advanced for pv1
    # the library says which check failed by the problem's type; the CLI prints its message
    report = verify_plugin(PLUGIN, load_trust(trust), via=via, use_state=False).pvs["pv1"]
    assert type(report.problem) is kind and report.reason == pv1["reason"], report
    # the same tampered mirror first, an honest one second: the peer fails over and accepts
    trust = net_trust(net, tmp_path, urls={"pv1": [url, net["mirrors"]["pv1"][1][1]]})
    result = verify(trust, PLUGIN, "--via", via, "--json")
    pv1 = json.loads(result.stdout)["pvs"]["pv1"]
    assert result.returncode == 0 and pv1["mirror"] == net["mirrors"]["pv1"][1][1], result.stdout
    assert message in pv1["attempts"][0]


def test_via_proof_uses_one_file_proofs_and_falls_back_to_tiles(net, tmp_path):
    trust = load_trust(net_trust(net, tmp_path, require="pv1"))
    changed = verify_plugin(PLUGIN, trust, via="proof").pvs["pv1"]  # updated at epoch 2: a proof file exists
    assert changed.proof_source == "one-file proof" and changed.status == "included"
    unchanged = verify_plugin(REJECTED, trust, via="proof").pvs["pv1"]  # last changed at epoch 1
    assert unchanged.proof_source == "tiles (no one-file proof at epoch 2)" and unchanged.status == "included"


def test_rollback_is_refused(net, tmp_path, serve):
    trust = net_trust(net, tmp_path)
    assert verify(trust, PLUGIN).returncode == 0  # the peer now remembers epoch 2 of each PV
    state = json.loads((tmp_path / "state.json").read_text())
    assert {o: e["epoch"] for o, e in state["pvs"].items()} == {"pv1.example": 2, "pv2.example": 2,
                                                                 "pv3.example": 2}
    old = shutil.copytree(net["mirrors"]["pv1"][0][0], tmp_path / "old")
    shutil.copy(old / site.str_path(1), old / site.LATEST)  # a mirror serving epoch 1 (validly signed)
    result = verify(net_trust(net, tmp_path, urls={"pv1": [serve(old)]}), PLUGIN)
    assert result.returncode == 1
    assert "rollback: the mirror serves epoch 1, this peer already verified epoch 2" in result.stdout
    report = verify_plugin(PLUGIN, load_trust(net_trust(net, tmp_path, urls={"pv1": [serve(old)]})),
                           metadata_only=True).pvs["pv1"]
    assert isinstance(report.problem, Rollback) and report.chain_ok is False
    assert json.loads((tmp_path / "state.json").read_text())["pvs"]["pv1.example"]["epoch"] == 2


def test_first_contact_at_epoch_1_then_chain_to_epoch_2(net, tmp_path, serve):
    old = shutil.copytree(net["mirrors"]["pv1"][0][0], tmp_path / "old")
    shutil.copy(old / site.str_path(1), old / site.LATEST)
    first = verify(net_trust(net, tmp_path, urls={"pv1": [serve(old)]}, require="pv1"), PLUGIN, "--json")
    assert json.loads(first.stdout)["pvs"]["pv1"]["chain"] == "first STR seen (nothing to chain to)"
    then = json.loads(verify(net_trust(net, tmp_path, require="pv1"), PLUGIN, "--json").stdout)["pvs"]["pv1"]
    assert then["chain"] == "chained link by link from epoch 1 (1 new)" and then["epoch"] == 2


def test_expired_str_is_rejected(net, tmp_path):
    later = str(int(time.time()) + 7200)
    result = verify(net_trust(net, tmp_path, max_age=3600), PLUGIN, "--now", later)
    assert result.returncode == 1
    assert "stale STR: epoch 2 was signed" in result.stdout and "over max_age 3600 s" in result.stdout
    reports = verify_plugin(PLUGIN, load_trust(net_trust(net, tmp_path, max_age=3600)), now=int(later),
                            use_state=False).pvs
    assert all(isinstance(r.problem, Stale) and r.fresh is False for r in reports.values()), reports


def test_swapped_bytecode_is_rejected(net, tmp_path):
    swapped = shutil.copytree(net["bytecode"], tmp_path / "bytecode")
    other = net["old_bytecode"] / "record_progress.o"
    shutil.copy(other, swapped / "log_state.o")
    result = verify(net_trust(net, tmp_path), PLUGIN, "--bytecode", swapped)
    assert result.returncode == 1
    assert "bytecode does not match the binding: log_state.o hashes to" in result.stdout
    old_version = verify(net_trust(net, tmp_path), PLUGIN, "--bytecode", net["old_bytecode"])
    assert old_version.returncode == 1 and "is missing from the bytecode directory" in old_version.stdout


def test_absent_plugin_gets_verified_absence_and_reason(net, tmp_path):
    result = verify(net_trust(net, tmp_path, require="pv2"), REJECTED, "--json")
    verdict = json.loads(result.stdout)
    assert result.returncode == 1
    pv2 = verdict["pvs"]["pv2"]
    assert pv2["status"] == "absent" and pv2["proof"] == "absence" and "absence proof verified" in pv2["reason"]
    assert "rejected at epoch 1" in pv2["explanation"] and "pv2 accepts nothing yet" in pv2["explanation"]
    text = verify(net_trust(net, tmp_path, require="pv2"), REJECTED).stdout
    assert "the PV says (unauthenticated): rejected at epoch 1" in text
    never = verify(net_trust(net, tmp_path, require="pv1"), "org.pds.never.pushed", "--json")
    report = json.loads(never.stdout)["pvs"]["pv1"]
    assert report["status"] == "absent" and report["proof"] == "absence" and report["explanation"] is None


def test_bundle_round_trip_offline(net, tmp_path):
    trust = net_trust(net, tmp_path)
    bundle = tmp_path / "bundle.json"
    made = run(*PDS, "peer", "bundle", PLUGIN, "--trust", trust, "-o", bundle, "--bytecode", net["bytecode"])
    assert "wrote" in made.stdout
    doc = json.loads(bundle.read_text())
    assert doc["v"] == 1 and doc["name"] == PLUGIN and set(doc["pvs"]) == {"pv1.example", "pv2.example",
                                                                          "pv3.example"}
    assert doc["pvs"]["pv2.example"]["proof"]["binding"] is None  # pv2's verified absence travels too
    assert set(doc["bytecode"]) == {"state_logger.plugin", "count_packet.o", "log_state.o"}  # the binding's files
    # the receiver has no network: every mirror it knows is dead
    receiver = tmp_path / "receiver"
    receiver.mkdir()
    rtrust = net_trust(net, receiver, urls={n: [DEAD] for n in ("pv1", "pv2", "pv3")})
    ok = run(*PDS, "peer", "check-bundle", bundle, "--trust", rtrust, "--bytecode", net["bytecode"], check=False)
    assert ok.returncode == 0, ok.stdout
    assert "from bundle via bundle" in ok.stdout and ok.stdout.splitlines()[-1].startswith("verdict: ACCEPT")
    late = run(*PDS, "peer", "check-bundle", bundle, "--trust", rtrust, "--bytecode", net["bytecode"],
               "--now", str(int(time.time()) + 10_000), check=False)
    assert late.returncode == 1 and "stale STR" in late.stdout
    out = run(*PDS, "peer", "check-bundle", bundle, "--trust", rtrust, "--bytecode", net["old_bytecode"], check=False)
    assert out.returncode == 1 and "bytecode does not match" in out.stdout
