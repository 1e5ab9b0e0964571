"""Checkpoints, cosignatures, epoch records / STR v2, quorum policies, equivocation evidence."""

import base64
import struct

import pytest

from pds_log.core import checkpoint as cp
from pds_log.core import note as notes
from pds_log.core import tlog
from pds_log.core.errors import FormatError, VerificationError

LOG_KEY = notes.NoteSigner("pv1.example/log", bytes(range(32)))
W1 = cp.CosignatureSigner("witness.example/w1", bytes(range(1, 33)))
W2 = cp.CosignatureSigner("witness.example/w2", bytes(range(2, 34)))
W3 = cp.CosignatureSigner("witness.example/w3", bytes(range(3, 35)))


def record(epoch):
    return cp.EpochRecord(epoch, bytes([epoch % 256]) * 32, 1700000000 + epoch, "ab" * 20, epoch, "cd" * 32)


def epoch_log(epochs):
    log = tlog.MemoryHashes.empty()
    for e in range(1, epochs + 1):
        log.append(record(e).entry())
    return log


def str_note(log, epoch):
    return cp.sign_checkpoint(cp.str_v2(LOG_KEY.name, record(epoch), log.root(epoch)), LOG_KEY)


def test_checkpoint_text_round_trip_and_strictness():
    c = cp.Checkpoint("example.com/log", 20852163, bytes(32), ("ext one",))
    assert c.text() == "example.com/log\n20852163\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\next one\n"
    assert cp.Checkpoint.parse(c.text()) == c
    for bad in ["example.com/log\n012\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
                "example.com/log\n1\nAAAA\n", "\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
                "example.com/log\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n", "example.com/log\n1\n"]:
        with pytest.raises(FormatError):
            cp.Checkpoint.parse(bad)


def test_cosignature_spec_layout():
    text = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    sig = W1.cosign(text, 1679315147)
    raw = base64.b64decode(sig.line().split(" ")[2])
    assert raw[:4] == W1.verifier().key_id and len(raw) == 4 + 8 + 64
    assert struct.unpack(">Q", raw[4:12])[0] == 1679315147
    assert cp.cosigned_message(text, 1679315147) == (
        b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n"
        b"CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n")
    v = W1.verifier()
    import hashlib
    assert v.key_id == hashlib.sha256(b"witness.example/w1\n\x04" + W1.public_key).digest()[:4]
    assert cp.CosignatureVerifier.from_string(str(v)) == v
    assert str(v).split("+", 2)[2].startswith("B")  # base64 of 0x04 || key
    assert cp.CosignatureSigner.from_string(W1.to_string()) == W1
    assert v.verify(text, sig) == 1679315147
    with pytest.raises(VerificationError):
        v.verify(text.replace("20852163", "20852164"), sig)
    with pytest.raises(FormatError):  # a note (0x01) key is not a cosigner key
        cp.CosignatureVerifier.from_string(str(LOG_KEY.verifier()))


def test_epoch_record_bytes_and_str_v2():
    r = record(3)
    assert r.entry() == (b"pds-epoch/v1\nepoch 3\nmap AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=\n"
                         b"time 1700000003\npr " + b"ab" * 20 + b"\nsize 3\npolicy " + b"cd" * 32 + b"\n")
    assert cp.EpochRecord.parse_entry(r.entry()) == r
    log = epoch_log(5)
    c, _ = cp.open_checkpoint(str_note(log, 3), LOG_KEY.verifier())
    assert c.size == 3 and c.root == log.root(3)
    assert cp.str_v2_record(c) == r
    assert cp.check_str_record(c, tlog.prove_inclusion(3, 2, log)) == r
    lying = cp.Checkpoint(c.origin, 3, c.root, record(2).extension_lines())
    with pytest.raises(VerificationError):
        cp.check_str_record(lying, tlog.prove_inclusion(3, 2, log))
    with pytest.raises(FormatError):
        cp.EpochRecord.parse_entry(r.entry().replace(b"size 3", b"size 03"))


def test_quorum_policy():
    log = epoch_log(4)
    note = str_note(log, 4)
    text = notes.parse(note).text
    sigs = [W1.cosign(text, 10), W2.cosign(text, 11)]
    policy = cp.WitnessPolicy((W1.verifier(), W2.verifier(), W3.verifier()), 2)
    with pytest.raises(VerificationError, match="0 of the 2"):
        cp.verify_cosigned(note, LOG_KEY.verifier(), policy)
    with pytest.raises(VerificationError, match="1 of the 2"):
        cp.verify_cosigned(cp.add_signatures(note, sigs[:1]), LOG_KEY.verifier(), policy)
    ok = cp.verify_cosigned(cp.add_signatures(note, sigs), LOG_KEY.verifier(), policy)
    assert ok.cosigned_by == {"witness.example/w1": 10, "witness.example/w2": 11}
    # a cosignature of another checkpoint moved onto this one is invalid, and rejects it
    other = W3.cosign(notes.parse(str_note(log, 3)).text, 12)
    with pytest.raises(VerificationError, match="invalid cosignature"):
        cp.verify_cosigned(cp.add_signatures(note, sigs + [other]), LOG_KEY.verifier(), policy)
    with pytest.raises(FormatError):
        cp.WitnessPolicy((W1.verifier(),), 2)


def forked_log(epochs, fork_at):
    log = tlog.MemoryHashes.empty()
    for e in range(1, epochs + 1):
        r = record(e)
        if e >= fork_at:
            r = cp.EpochRecord(e, bytes(32), r.time, r.pr, r.size, r.policy)
        log.append(r.entry())
    return log


def fork_str(log, epoch):
    r = record(epoch)
    r = cp.EpochRecord(epoch, bytes(32), r.time, r.pr, r.size, r.policy)
    return cp.sign_checkpoint(cp.str_v2(LOG_KEY.name, r, log.root(epoch)), LOG_KEY)


def test_equivocation_same_size():
    honest, fork = epoch_log(30), forked_log(30, 30)
    ev = cp.detect_equivocation(str_note(honest, 30), fork_str(fork, 30), LOG_KEY.verifier())
    again = cp.check_evidence(ev.to_json(), LOG_KEY.verifier())
    assert again.a.size == again.b.size == 30 and "different roots" in again.describe()
    with pytest.raises(VerificationError):
        cp.detect_equivocation(str_note(honest, 30), str_note(honest, 30), LOG_KEY.verifier())


def test_equivocation_different_sizes():
    honest, fork = epoch_log(30), forked_log(31, 30)
    proof = tlog.prove_consistency(31, 30, fork)  # what a forked log sends a witness holding size 30
    ev = cp.detect_equivocation(str_note(honest, 30), fork_str(fork, 31), LOG_KEY.verifier(), proof)
    checked = cp.check_evidence(ev.to_json(), LOG_KEY.verifier())
    assert "not a prefix" in checked.describe()
    # an honest extension with its true proof is no evidence
    honest31 = epoch_log(31)
    with pytest.raises(VerificationError, match="consistent"):
        cp.detect_equivocation(str_note(honest, 30), str_note(honest31, 31), LOG_KEY.verifier(),
                               tlog.prove_consistency(31, 30, honest31))
    # a garbage path proves nothing
    with pytest.raises(VerificationError, match="proves nothing"):
        cp.detect_equivocation(str_note(honest, 30), fork_str(fork, 31), LOG_KEY.verifier(), [bytes(32)] * len(proof))
    # another key cannot make evidence against this log
    with pytest.raises(VerificationError):
        cp.check_evidence(ev.to_json(), notes.NoteSigner("pv1.example/log", bytes(32)).verifier())


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from pds_log.witness.state import parse_request  # noqa: E402

_LINES = st.lists(st.sampled_from(["pv1.example/log", "3", "012", "", " x", "map AAAA", "—", "\u00e9",
                                   "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "old 3", "old 0", "epoch 1"]), max_size=9)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), _LINES.map(lambda ls: "\n".join(ls) + "\n")))
def test_hostile_checkpoint_text_fails_cleanly(text):
    try:
        c = cp.Checkpoint.parse(text)
    except FormatError:
        return
    assert c.text() == text  # whatever parses is canonical


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300), _LINES.map(lambda ls: "\n".join(ls).encode() + b"\n\n")))
def test_hostile_witness_requests_and_records_fail_cleanly(data):
    for parse in (parse_request, cp.EpochRecord.parse_entry):
        try:
            parse(data)
        except FormatError:
            pass


def test_evidence_documents_fail_cleanly():
    for bad in [b"", b"{}", b'{"v":1,"type":"pds-checkpoint-equivocation","notes":["a","b"]}',
                b'{"v":1,"type":"pds-checkpoint-equivocation","notes":["a"],"path":[]}',
                b'{"v":1,"type":"pds-checkpoint-equivocation","notes":["a","b"],"path":["x"]}', b"\xff" * 10]:
        with pytest.raises((FormatError, VerificationError)):
            cp.check_evidence(bad, LOG_KEY.verifier())
