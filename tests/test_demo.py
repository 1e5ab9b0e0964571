"""`pds demo --dir DIR`: the whole system, end to end, with the artifacts described in demo.json."""

import json

import pytest

from pds_log.core.note import NoteVerifier, open_note
from tests.support import PDS, run

pytestmark = pytest.mark.slow  # the whole demo: PR, two PVs, developer and peer


def test_demo(tmp_path):
    root = tmp_path / "demo"
    result = run(*PDS, "demo", "--dir", root)
    assert "peer verdict under pv1 & pv2: ACCEPT" in result.stdout
    doc = json.loads((root / "demo.json").read_text())
    assert set(doc) >= {"pr", "trust", "pvs", "plugins"}
    assert doc["plugins"]["org.pds.examples.rtt_monitor"] == "accept"
    assert doc["plugins"]["org.pds.examples.spin_wait"] == "reject"
    assert set(doc["plugins"].values()) == {"accept", "reject"}
    for pv in doc["pvs"].values():
        verifier = NoteVerifier.from_string(pv["vkey"])
        open_note(open(pv["str_latest"], "rb").read(), [verifier])
        assert run(*PDS, "audit", pv["log_repo"], "--pr", doc["pr"]).returncode == 0
    # the artifacts outlive the demo's HTTP servers: the peer fails over to the site directories
    again = run(*PDS, "peer", "verify", "org.pds.examples.rtt_monitor", "--trust", doc["trust"],
                "--bytecode", doc["bytecode"]["org.pds.examples.rtt_monitor"])
    assert "verdict: ACCEPT org.pds.examples.rtt_monitor" in again.stdout
    refused = run(*PDS, "demo", "--dir", root, check=False)
    assert refused.returncode == 1 and "is not empty" in refused.stderr
