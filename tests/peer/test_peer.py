"""Peers against real PVs published to real HTTP mirrors on 127.0.0.1."""

import json
import shutil
import time

import pytest

from pds_log.core import static_layout as site
from pds_log.pv.config import load_config
from pds_log.pv.publish import publish
from tests.support import StaticServer, World, epoch, run, write_trust

PLUGIN = "org.pds.demo.rtt"
FAST = {"safety": {"runner": "bytecode_safety"}, "side_effects": {"runner": "side_effects"}}


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    """Three PVs (pv2 rejects everything), two epochs, each PV published to two mirrors,
    six HTTP servers."""
    root = tmp_path_factory.mktemp("peer")
    world = World(root)
    configs = {
        "pv1": world.add_pv("pv1.example", verifiers=FAST, acceptance="safety & side_effects"),
        "pv2": world.add_pv("pv2.example", verifiers={**FAST, "strict": {"runner": "always_fail",
                                                                         "reason": "pv2 accepts nothing yet"}},
                            acceptance="safety & strict"),
        "pv3": world.add_pv("pv3.example", verifiers=FAST, acceptance="safety"),
    }
    world.push_plugins({PLUGIN: "org.pds.examples.rtt_monitor", "org.pds.demo.loop": "org.pds.examples.spin_wait"})
    for config in configs.values():
        epoch(config)
    world.push_plugins({PLUGIN: "org.pds.examples.state_logger"}, message="new version")
    for config in configs.values():
        epoch(config)
    servers, mirrors, vkeys = [], {}, {}
    for name, config in configs.items():
        cfg = load_config(config)
        vkeys[name] = str(cfg.signer().verifier())
        mirrors[name] = []
        for m in ("a", "b"):
            out = root / "mirrors" / f"{name}-{m}"
            publish(cfg.log_repo, out, human_site=False)
            server = StaticServer(out)
            servers.append(server)
            mirrors[name].append((out, server.url))
    yield {"root": root, "world": world, "configs": configs, "mirrors": mirrors, "vkeys": vkeys,
           "bytecode": world.built / "org.pds.examples.state_logger" / PLUGIN}
    for server in servers:
        server.stop()


def trust_for(net, tmp_path, require="pv1 & (pv2 | pv3)", urls=None, **kw):
    pvs = {n: (net["vkeys"][n], (urls or {}).get(n) or [u for _, u in net["mirrors"][n]]) for n in ("pv1", "pv2", "pv3")}
    return write_trust(tmp_path / "trust.yaml", pvs, require, state=tmp_path / "state.json", **kw)


def verify(trust, *extra, check=False):
    return run("pds", "peer", "verify", *extra, "--trust", trust, check=check)


def test_formula_accepts_through_pv3_when_pv2_rejects(net, tmp_path):
    trust = trust_for(net, tmp_path)
    result = verify(trust, PLUGIN, "--bytecode", net["bytecode"], "--json")
    verdict = json.loads(result.stdout)
    assert result.returncode == 0 and verdict["accepted"], result.stdout
    assert verdict["pvs"]["pv1"]["status"] == "included" and verdict["pvs"]["pv1"]["bytecode"] == "match"
    assert verdict["pvs"]["pv3"]["status"] == "included"
    pv2 = verdict["pvs"]["pv2"]
    assert pv2["status"] == "absent" and "absence proof verified" in pv2["reason"]
    assert "pv2 accepts nothing yet" in pv2["explanation"]
    strict = verify(trust_for(net, tmp_path, require="pv1 & pv2"), PLUGIN)
    assert strict.returncode == 1 and "verdict: REJECT" in strict.stdout


def test_property_atoms(net, tmp_path):
    ok = verify(trust_for(net, tmp_path, require="pv1.side_effects & pv3.safety"), PLUGIN)
    assert ok.returncode == 0, ok.stdout
    missing = verify(trust_for(net, tmp_path, require="pv3.termination"), PLUGIN)  # pv3 runs no such check
    assert missing.returncode == 1


def test_one_mirror_down_fails_over(net, tmp_path):
    urls = {"pv1": ["http://127.0.0.1:9/dead/", net["mirrors"]["pv1"][1][1]]}
    result = verify(trust_for(net, tmp_path, urls=urls), PLUGIN)
    assert result.returncode == 0, result.stdout
    assert "127.0.0.1:9/dead/: unreachable" in result.stdout


def test_unreachable_pv_counts_false(net, tmp_path):
    urls = {"pv1": ["http://127.0.0.1:9/dead/"]}
    result = verify(trust_for(net, tmp_path, urls=urls, require="pv1 | pv2"), PLUGIN)
    assert result.returncode == 1 and "unreachable" in result.stdout and "verdict: REJECT" in result.stdout


def tampered_mirror(net, tmp_path, pv, mutate):
    src = net["mirrors"][pv][0][0]
    dst = tmp_path / f"tampered-{pv}"
    shutil.copytree(src, dst)
    mutate(dst)
    server = StaticServer(dst)
    return server


def flip_last_byte(path):
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("via, mutate, message", [
    ("tiles", lambda d: [flip_last_byte(p) for p in (d / "tiles" / "0").rglob("*") if p.is_file()],
     "does not hash"),
    ("proof", lambda d: (d / "proofs/2" / f"{PLUGIN}.json").write_text(
        (d / "proofs/2" / f"{PLUGIN}.json").read_text().replace('"siblings":["', '"siblings":["0')[:-1] + "\n"),
     "proof rejected"),
    ("proof", lambda d: shutil.copy(d / "proofs/1" / f"{PLUGIN}.json", d / "proofs/2" / f"{PLUGIN}.json"),
     "is for epoch 1, the STR is epoch 2"),
    ("tiles", lambda d: [p.write_text("{}") for p in (d / "bindings").rglob("*.json")], "proof rejected"),
])
def test_tampered_mirror_is_rejected_with_the_reason(net, tmp_path, via, mutate, message):
    server = tampered_mirror(net, tmp_path, "pv1", mutate)
    try:
        result = verify(trust_for(net, tmp_path, urls={"pv1": [server.url]}), PLUGIN, "--via", via)
        assert result.returncode == 1, result.stdout
        assert message in result.stdout, result.stdout
    finally:
        server.stop()


def test_rollback_is_refused(net, tmp_path):
    trust = trust_for(net, tmp_path)
    assert verify(trust, PLUGIN).returncode == 0  # the peer now remembers epoch 2 of each PV

    def old_str(d):
        shutil.copy(d / site.str_path(1), d / site.LATEST)

    server = tampered_mirror(net, tmp_path, "pv1", old_str)
    try:
        result = verify(trust_for(net, tmp_path, urls={"pv1": [server.url]}), PLUGIN)
        assert result.returncode == 1
        assert "rollback: the mirror serves epoch 1, this peer already verified epoch 2" in result.stdout
    finally:
        server.stop()


def test_expired_str_is_rejected(net, tmp_path):
    later = str(int(time.time()) + 7200)
    result = verify(trust_for(net, tmp_path, max_age=3600), PLUGIN, "--now", later)
    assert result.returncode == 1 and "stale STR" in result.stdout and "over max_age 3600 s" in result.stdout


def test_swapped_bytecode_is_rejected(net, tmp_path):
    swapped = tmp_path / "bytecode"
    shutil.copytree(net["bytecode"], swapped)
    other = net["world"].built / "org.pds.examples.rtt_monitor" / PLUGIN / "record_progress.o"
    shutil.copy(other, swapped / "log_state.o")
    result = verify(trust_for(net, tmp_path), PLUGIN, "--bytecode", swapped)
    assert result.returncode == 1
    assert "bytecode does not match the binding: log_state.o hashes to" in result.stdout


def test_absent_plugin_gets_verified_absence_and_reason(net, tmp_path):
    result = verify(trust_for(net, tmp_path, require="pv2"), "org.pds.demo.loop", "--json")
    verdict = json.loads(result.stdout)
    assert result.returncode == 1
    pv2 = verdict["pvs"]["pv2"]
    assert pv2["status"] == "absent" and pv2["proof"] == "absence"
    assert "rejected at epoch 1" in pv2["explanation"] and "pv2 accepts nothing yet" in pv2["explanation"]
    text = verify(trust_for(net, tmp_path, require="pv2"), "org.pds.demo.loop").stdout
    assert "the PV says (unauthenticated): rejected at epoch 1" in text
    never = verify(trust_for(net, tmp_path, require="pv1"), "org.pds.never.pushed", "--json")
    report = json.loads(never.stdout)["pvs"]["pv1"]
    assert report["status"] == "absent" and report["explanation"] is None


def test_bundle_round_trip_offline(net, tmp_path):
    trust = trust_for(net, tmp_path)
    bundle = tmp_path / "bundle.json"
    run("pds", "peer", "bundle", PLUGIN, "--trust", trust, "-o", bundle)
    receiver = tmp_path / "receiver"
    receiver.mkdir()
    rtrust = trust_for(net, receiver, urls={n: ["http://127.0.0.1:9/offline/"] for n in ("pv1", "pv2", "pv3")})
    ok = run("pds", "peer", "check-bundle", bundle, "--trust", rtrust, "--bytecode", net["bytecode"], check=False)
    assert ok.returncode == 0, ok.stdout
    doc = json.loads(bundle.read_text())
    # tamper: a proof from another PV, a swapped STR, an old bundle, other bytecode
    bad = json.loads(json.dumps(doc))
    bad["pvs"]["pv1.example"]["str"] = doc["pvs"]["pv3.example"]["str"]
    (tmp_path / "bad1.json").write_text(json.dumps(bad))
    out = run("pds", "peer", "check-bundle", tmp_path / "bad1.json", "--trust", rtrust, "--bytecode",
              net["bytecode"], check=False)
    assert out.returncode == 1 and "no valid signature from a trusted key" in out.stdout
    late = run("pds", "peer", "check-bundle", bundle, "--trust", rtrust, "--bytecode", net["bytecode"],
               "--now", str(int(time.time()) + 10_000), check=False)
    assert late.returncode == 1 and "stale STR" in late.stdout
    wrong = tmp_path / "wrong"
    shutil.copytree(net["world"].built / "org.pds.examples.rtt_monitor" / PLUGIN, wrong)
    out = run("pds", "peer", "check-bundle", bundle, "--trust", rtrust, "--bytecode", wrong, check=False)
    assert out.returncode == 1 and "bytecode does not match" in out.stdout


@pytest.mark.parametrize("text, message", [
    ("version: 2\n", "version must be 1"),
    ("version: 1\npvs: {}\n", "pvs must name at least one PV"),
    ("version: 1\npvs: {pv1: {vkey: nope, mirrors: [x]}}\nrequire: pv1\n", "pvs.pv1.vkey"),
    ("version: 1\npvs: {pv1: {vkey: 'a+00000000+AQ==', mirrors: []}}\nrequire: pv1\n", "pvs.pv1.vkey"),
    ("version: 1\npvs: {pv1: {vkey: 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW', "
     "mirrors: []}}\nrequire: pv1\n", "pvs.pv1.mirrors"),
    ("version: 1\npvs: {pv1: {vkey: 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW', "
     "mirrors: [x]}}\nrequire: pv1 & pv9\n", "unknown PV(s) pv9"),
])
def test_bad_trust_files(tmp_path, text, message):
    path = tmp_path / "trust.yaml"
    path.write_text(text)
    result = run("pds", "peer", "verify", "a.b", "--trust", path, check=False)
    assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr
