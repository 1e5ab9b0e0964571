"""The typed log records (pds_log.core.records, log_layout.EpochRecord) against bytes from a real
log: the files under vectors/records_v1/ were copied from a log made by the PV *before* these
models existed (two plugins, one accepted and one rejected, then the accepted one deleted), so
a model that changed a byte of the wire format fails here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pds_log.core.errors import FormatError
from pds_log.core.log_layout import EpochRecord
from pds_log.core.records import PluginStatus, PvDescriptor, ResultRecord, VerifierOutcome, policy_hash

VECTORS = Path(__file__).parent / "vectors" / "records_v1"
RESULTS = sorted(VECTORS.glob("result_*.json"))
STATUSES = sorted(VECTORS.glob("status_*.json"))


def test_vectors_are_there():
    assert len(RESULTS) == 3 and len(STATUSES) == 2
    assert {ResultRecord.decode(p.read_bytes()).status for p in RESULTS} == {"accepted", "rejected", "removed"}


@pytest.mark.parametrize("path", RESULTS, ids=lambda p: p.stem)
def test_result_record_round_trips_byte_for_byte(path):
    data = path.read_bytes()
    assert ResultRecord.decode(data, path.name).encode() == data


def test_result_record_encodes_known_fields_to_the_logged_bytes():
    """The encoder, given the values the PV had, makes exactly the bytes the old PV wrote."""
    record = ResultRecord(
        name="org.pds.rtt", epoch=1, status="accepted", reason="",
        commit="0d7319ce3e9532417a1de2a8c6518844428f9d84",
        files_sha256="37f6d741743718f5e5fbba390d3a2bbc74699d9c160b482282f5b10b7f852639",
        binding_value="65fd7fa686a937a8512027751d30fb31db90ba9b2bac7782d681afa35204aad1",
        verifiers={
            "side_effects": VerifierOutcome("side_effects", "pass", "every write is allowed by its protoop's spec",
                                            {}, 1.5563, "815ea1d21c43064b114b07a37a4389a70e83364ae3844d53bdee843418b42c3e"),
            "safety": VerifierOutcome("safety", "pass", "1 pluglet(s): every instruction checked", {}, 1.5351,
                                      "0b557099751830e3ff2ff45db1844d72353f076bb605ea2a9040c7d35355786b"),
        })
    assert record.encode() == (VECTORS / "result_org.pds.rtt_e1.json").read_bytes()
    assert record.verdicts == {"safety": True, "side_effects": True}
    removed = ResultRecord("org.pds.rtt", 2, "removed", "deleted from the PR", None, None, None, {})
    assert removed.encode() == (VECTORS / "result_org.pds.rtt_e2.json").read_bytes()


def test_verifier_outcome_from_a_verifier_result_as_the_pv_writes_it():
    from verifier_runners.base import VerifierResult

    result = VerifierResult("safety", "pass", "1 pluglet(s):  every instruction checked", log="long log",
                            duration_s=1.53512345)
    outcome = VerifierOutcome.of(result, "0b557099751830e3ff2ff45db1844d72353f076bb605ea2a9040c7d35355786b")
    logged = ResultRecord.decode((VECTORS / "result_org.pds.rtt_e1.json").read_bytes()).verifiers["safety"]
    assert outcome == logged


@pytest.mark.parametrize("path", STATUSES, ids=lambda p: p.stem)
def test_status_file_round_trips_and_is_made_from_its_results_record(path):
    data = path.read_bytes()
    status = PluginStatus.decode(data, path.name)
    assert status.encode() == data
    epoch = status.epoch
    record = ResultRecord.decode((VECTORS / f"result_{status.name}_e{epoch}.json").read_bytes()) \
        if (VECTORS / f"result_{status.name}_e{epoch}.json").exists() \
        else ResultRecord.decode((VECTORS / f"result_{status.name}_e1.json").read_bytes())
    assert PluginStatus.of(record, status.result).encode() == data


@pytest.mark.parametrize("name", ["epoch_1.json", "epoch_2.json"])
def test_epoch_record_round_trips_byte_for_byte(name):
    data = (VECTORS / name).read_bytes()
    assert EpochRecord.decode(data, name).encode() == data


def test_policy_hash_is_the_one_the_str_and_pv_json_carry():
    desc = PvDescriptor.decode((VECTORS / "pv.json").read_bytes())
    record = EpochRecord.decode((VECTORS / "epoch_1.json").read_bytes())
    assert policy_hash(desc.acceptance, desc.verifiers) == desc.policy == desc.computed_policy() == record.policy


def test_pv_descriptor_round_trips_and_adds_log_urls_only_when_set():
    data = (VECTORS / "pv.json").read_bytes()
    desc = PvDescriptor.decode(data)
    assert desc.encode() == data and desc.log_urls == () and desc.mirrors == ()
    rebuilt = PvDescriptor.build(origin=desc.origin, vkey=desc.vkey, pr_url=desc.pr_url, pr_branch=desc.pr_branch,
                                 pr_root=desc.pr_root, acceptance=desc.acceptance, verifiers=desc.verifiers,
                                 epoch_interval=desc.epoch_interval)
    assert rebuilt.encode() == data
    fields = {k: v for k, v in rebuilt.__dict__.items() if k != "policy"}
    with_urls = PvDescriptor.build(**{**fields, "log_urls": ("https://pv1.example/log.git",),
                                      "mirrors": ("https://m.example/pv1/",)})
    obj = json.loads(with_urls.encode())
    assert obj["log"] == {"urls": ["https://pv1.example/log.git"], "mirrors": ["https://m.example/pv1/"]}
    assert PvDescriptor.decode(with_urls.encode()) == with_urls


def _mutated(path: Path, change) -> bytes:
    obj = json.loads(path.read_bytes())
    change(obj)
    return json.dumps(obj).encode()


@pytest.mark.parametrize("change, message", [
    (lambda o: o.update(extra=1), "unknown key(s) extra"),
    (lambda o: o.pop("taint"), "missing key(s) taint"),
    (lambda o: o.update(v=2), "not a v1 results record"),
    (lambda o: o.update(v=True), "not a v1 results record"),
    (lambda o: o.update(status="maybe"), "status must be one of"),
    (lambda o: o.update(epoch=-1), "epoch must be an integer >= 0"),
    (lambda o: o.update(epoch="1"), "epoch must be an integer >= 0"),
    (lambda o: o.update(commit=7), "commit must be a string or null"),
    (lambda o: o.update(verifiers=[]), "verifiers must map names to objects"),
    (lambda o: o["verifiers"]["safety"].update(status="ok"), "verifiers.safety: status must be one of"),
    (lambda o: o["verifiers"]["safety"].pop("log_sha256"), "verifiers.safety: missing key(s) log_sha256"),
    (lambda o: o["verifiers"]["safety"].update(duration_s=True), "duration_s must be a number"),
    (lambda o: o["verifiers"]["safety"].update(tool_versions={"cc": 1}), "tool_versions must map"),
])
def test_results_record_parser_is_strict(change, message):
    data = _mutated(VECTORS / "result_org.pds.rtt_e1.json", change)
    with pytest.raises(FormatError, match="where: .*" + message.replace("(", r"\(").replace(")", r"\)")):
        ResultRecord.decode(data, "where")


@pytest.mark.parametrize("data", [b"", b"[]", b"{", b"\xff", b'{"v":1' + b"," * 10 + b"}", b"[" * 100 + b"]" * 100])
def test_malformed_bytes_are_format_errors(data):
    for decode in (ResultRecord.decode, PluginStatus.decode, PvDescriptor.decode):
        with pytest.raises(FormatError):
            decode(data, "x")


@pytest.mark.parametrize("change, message", [
    (lambda o: o.update(extra=1), "unknown key(s) extra"),
    (lambda o: o.pop("vkey"), "missing key(s) vkey"),
    (lambda o: o["pr"].update(url=None), "pr: url must be a string"),
    (lambda o: o.update(verifiers={"a": 1}), "verifiers must map names to objects"),
    (lambda o: o.update(log={"urls": ["u"]}), "log: missing key(s) mirrors"),
    (lambda o: o.update(log={"urls": [1], "mirrors": []}), "log.urls: must be a list of strings"),
])
def test_pv_descriptor_parser_is_strict(change, message):
    data = _mutated(VECTORS / "pv.json", change)
    with pytest.raises(FormatError, match=message.replace("(", r"\(").replace(")", r"\)")):
        PvDescriptor.decode(data, "pv.json")
