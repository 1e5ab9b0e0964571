"""The peer against a real PV signing STR v2: `pds pv epoch` (v1, then `str_version: 2` with two
real `pds witness serve` witnesses), `pds pv publish` to a directory served over HTTP on
127.0.0.1, `pds peer verify` through the CLI requiring both witnesses' cosignatures. The peer
holds the v1 STR of epoch 1, catches up across the migration, then across more v2 epochs in a
handful of GETs; a third witness it requires but the PV does not use makes it refuse, naming it."""

from __future__ import annotations

import json

import pytest
import yaml

from pds_log.core.checkpoint import CosignatureSigner
from pds_log.pv.config import load_config
from tests.support import PDS, World, epoch, run
from tests.witness.conftest import WitnessProcess

from .test_warm import CountingServer

PLUGIN = "org.pds.demo.rtt"


def publish(config, out):
    run(*PDS, "pv", "publish", "--config", config, "--out", out)


def trust_for(tmp_path, vkey, url, witnesses, quorum):
    doc = {"version": 1, "pvs": {"pv1": {"vkey": vkey, "mirrors": [url]}}, "require": "pv1", "max_age": 3600,
           "state": str(tmp_path / "state.json"),
           "witnesses": {f"w{i}": str(w) for i, w in enumerate(witnesses, 1)},
           "cosigned_by": f"{quorum} of " + ", ".join(f"w{i}" for i in range(1, len(witnesses) + 1))}
    path = tmp_path / "trust.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def peer_verify(trust, bytecode):
    result = run(*PDS, "peer", "verify", PLUGIN, "--trust", trust, "--bytecode", bytecode, "--json", check=False)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    return result.returncode, json.loads(result.stdout)["pvs"]["pv1"]


@pytest.mark.slow
def test_peer_follows_a_real_pv_into_str_v2_with_a_witness_quorum(tmp_path):
    world = World(tmp_path / "world")
    config = world.add_pv("pv1.example", verifiers={"safety": {"runner": "bytecode_safety"}}, acceptance="safety")
    vkey = str(load_config(config).signer().verifier())
    world.push_plugins({PLUGIN: "org.pds.examples.rtt_monitor"})
    assert epoch(config)["str_version"] == 1
    out = tmp_path / "site"
    publish(config, out)
    server = CountingServer(out)
    w1 = WitnessProcess(tmp_path / "w1", "witness.example/w1", [vkey]).start()
    w2 = WitnessProcess(tmp_path / "w2", "witness.example/w2", [vkey]).start()
    try:
        bytecode = world.built / "org.pds.examples.rtt_monitor" / PLUGIN
        (tmp_path / "peer").mkdir()
        v1_trust = tmp_path / "peer" / "trust.yaml"
        v1_trust.write_text(yaml.safe_dump({"version": 1, "pvs": {"pv1": {"vkey": vkey, "mirrors": [server.url]}},
                                            "require": "pv1", "state": str(tmp_path / "peer" / "state.json")}))
        code, r = peer_verify(v1_trust, bytecode)
        assert code == 0 and r["str_version"] == 1, r
        doc = yaml.safe_load(config.read_text())
        doc.update(str_version=2, witness_timeout=5, witnesses=[{"name": w.name, "vkey": str(w.verifier), "url": w.url}
                                                                 for w in (w1, w2)])
        config.write_text(yaml.safe_dump(doc, sort_keys=False))
        for _ in range(3):
            assert epoch(config)["str_version"] == 2
        publish(config, out)
        trust = trust_for(tmp_path / "peer", vkey, server.url, [w1.verifier, w2.verifier], 2)
        server.reset()
        code, r = peer_verify(trust, bytecode)
        assert code == 0, r
        assert r["str_version"] == 2 and r["epoch"] == 4 and "holds the v1 STR of epoch 1" in r["chain"], r
        assert r["witnessed"] == ["w1", "w2"], r
        for _ in range(4):
            epoch(config)
        publish(config, out)
        server.reset()
        code, r = peer_verify(trust, bytecode)
        assert code == 0 and r["epoch"] == 8 and "consistent with size 4" in r["chain"], r
        gets = [p for p, _ in server.requests]
        assert gets[0] == "checkpoint" and len(gets) <= 6, gets
        # a quorum that names a witness this PV does not use is not met: refused, naming it
        w3 = CosignatureSigner.generate("witness.example/w3").verifier()
        trust = trust_for(tmp_path / "peer", vkey, server.url, [w1.verifier, w2.verifier, w3], 3)
        code, r = peer_verify(trust, bytecode)
        assert code == 1 and r["fresh"] is False and "missing: w3 (witness.example/w3)" in r["reason"], r
    finally:
        server.stop()
        for w in (w1, w2):
            w.kill()
