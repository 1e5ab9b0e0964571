"""C2SP signed notes and STRs."""

import base64
import hashlib

import pytest

from pds_log.core import note as notes
from pds_log.core.errors import FormatError, VerificationError
from pds_log.core.signed_root import ZERO_HASH, TreeHead, check_chain, open_str, sign_str

# Go's golang.org/x/mod/sumdb/note test vector: a note signed by a known key.
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_NOTE = ("If you think cryptography is the answer to your problem,\n"
           "then you don't know what your problem is.\n\n"
           "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n")


def test_go_note_vector_verifies():
    verifier = notes.NoteVerifier.from_string(GO_VKEY)
    note, signers = notes.open_note(GO_NOTE.encode(), [verifier])
    assert signers == [verifier]
    assert note.text.startswith("If you think")
    assert str(verifier) == GO_VKEY


def test_go_signer_key_reproduces_the_signature():
    signer = notes.NoteSigner.from_string(GO_SKEY)
    assert str(signer.verifier()) == GO_VKEY
    text = GO_NOTE.split("\n\n")[0] + "\n"
    assert notes.sign(text, [signer]).decode() == GO_NOTE  # Ed25519 is deterministic


def test_key_id_formula():
    signer = notes.NoteSigner.generate("pv.example")
    expected = hashlib.sha256(b"pv.example\n\x01" + signer.public_key).digest()[:4]
    assert signer.key_id == expected
    vkey = str(signer.verifier())
    name, hex_id, b64 = vkey.split("+", 2)
    assert name == "pv.example" and hex_id == expected.hex()
    assert base64.b64decode(b64) == b"\x01" + signer.public_key
    assert notes.NoteSigner.from_string(signer.to_string()) == signer


def test_unknown_signatures_are_ignored_and_bad_known_rejected():
    a, b = notes.NoteSigner.generate("a.example"), notes.NoteSigner.generate("b.example")
    signed = notes.sign("hello\n", [b, a])
    note, signers = notes.open_note(signed, [a.verifier()])
    assert signers == [a.verifier()]
    # corrupt a's signature: a known key that fails rejects the whole note
    lines = signed.decode().split("\n")
    idx = next(i for i, ln in enumerate(lines) if ln.startswith("— a.example "))
    raw = bytearray(base64.b64decode(lines[idx].split(" ")[2]))
    raw[10] ^= 1
    lines[idx] = "— a.example " + base64.b64encode(bytes(raw)).decode()
    with pytest.raises(VerificationError, match="invalid signature by a.example"):
        notes.open_note("\n".join(lines).encode(), [a.verifier()])
    # only an unknown signer: rejected
    with pytest.raises(VerificationError, match="no valid signature from a trusted key"):
        notes.open_note(notes.sign("hello\n", [b]), [a.verifier()])


def test_same_name_other_key_is_not_trusted():
    a1, a2 = notes.NoteSigner.generate("a.example"), notes.NoteSigner.generate("a.example")
    with pytest.raises(VerificationError, match="no valid signature"):
        notes.open_note(notes.sign("x\n", [a2]), [a1.verifier()])


@pytest.mark.parametrize("data, message", [
    (b"no blank line\n\xe2\x80\x94 a x\n", "no blank line"),
    (b"text\n\n- a AAAAAAAA\n", "em dash"),
    (b"text\n\n\xe2\x80\x94 a AAAA AAAA\n", "expected '. <key name>"),
    (b"text\n\n\xe2\x80\x94 a !!!!\n", "invalid base64"),
    (b"text\n\n\xe2\x80\x94 a AAAA\n", "too short"),
    (b"text\n\n\xe2\x80\x94 a AAAAAAAA", "must end with a newline"),
    (b"te\x01xt\n\n\xe2\x80\x94 a AAAAAAAA\n", "control character"),
    (b"\xff\n\n\xe2\x80\x94 a AAAAAAAA\n", "not valid UTF-8"),
    (b"text\n\n\xe2\x80\x94 a+b AAAAAAAA\n", "invalid key name"),
])
def test_malformed_notes(data, message):
    with pytest.raises(FormatError, match=message):
        notes.parse(data)


@pytest.mark.parametrize("vkey, message", [
    ("nameonly", "malformed verifier key"),
    ("a+zzzzzzzz+AAAA", "8 lowercase hex"),
    ("a+00000000+AQ==", "not an Ed25519 key"),
    (GO_VKEY.replace("c74f20a3", "c74f20a4"), "does not match the key"),
])
def test_malformed_verifier_keys(vkey, message):
    with pytest.raises(FormatError, match=message):
        notes.NoteVerifier.from_string(vkey)


def make_head(epoch=1, prev=ZERO_HASH, time=1700000000, root=b"\x11" * 32, origin="pv1.example"):
    return TreeHead(origin, epoch, root, prev, time, "ab" * 20, 3, "cd" * 32)


def test_str_text_is_the_v1_layout():
    text = make_head().text()
    assert text == (
        "pv1.example\n1\n" + base64.b64encode(b"\x11" * 32).decode() + "\n"
        "prev " + base64.b64encode(ZERO_HASH).decode() + "\n"
        "time 1700000000\npr " + "ab" * 20 + "\nsize 3\npolicy " + "cd" * 32 + "\n")
    assert TreeHead.parse_text(text) == make_head()


def test_str_sign_open_and_chain():
    signer = notes.NoteSigner.generate("pv1.example")
    s1 = sign_str(make_head(), signer)
    opened = open_str(s1.note, signer.verifier())
    assert opened == s1
    check_chain(None, s1)
    s2 = sign_str(make_head(epoch=2, prev=s1.hash, time=1700000100), signer)
    check_chain(s1, s2)
    bad_prev = sign_str(make_head(epoch=2, prev=b"\x22" * 32), signer)
    with pytest.raises(VerificationError, match="is not the hash of epoch 1"):
        check_chain(s1, bad_prev)
    skip = sign_str(make_head(epoch=3, prev=s2.hash), signer)
    with pytest.raises(VerificationError, match="does not follow epoch 1"):
        check_chain(s1, skip)
    back = sign_str(make_head(epoch=2, prev=s1.hash, time=1), signer)
    with pytest.raises(VerificationError, match="goes back"):
        check_chain(s1, back)
    with pytest.raises(VerificationError, match="must be epoch 1"):
        check_chain(None, s2)


def test_str_hash_ignores_cosignatures():
    signer, witness = notes.NoteSigner.generate("pv1.example"), notes.NoteSigner.generate("w.example")
    s1 = sign_str(make_head(), signer)
    cosigned = notes.sign(make_head().text(), [signer, witness])
    assert open_str(cosigned, signer.verifier()).hash == s1.hash == hashlib.sha256(s1.note).digest()


def test_str_signed_by_another_key_is_rejected():
    signer, other = notes.NoteSigner.generate("pv1.example"), notes.NoteSigner.generate("pv1.example")
    with pytest.raises(VerificationError):
        open_str(sign_str(make_head(), other).note, signer.verifier())


def test_str_origin_must_be_the_key_name():
    evil = notes.NoteSigner.generate("pv2.example")
    note = notes.sign(make_head(origin="pv1.example").text(), [evil])
    with pytest.raises(VerificationError, match="origin 'pv1.example' is not the key name"):
        open_str(note, evil.verifier())


def _lines():
    return make_head().text().split("\n")


@pytest.mark.parametrize("mutate, message", [
    (lambda ls: ls.pop(4), "has 7 lines"),
    (lambda ls: ls.__setitem__(4, ls[5]) or ls.__setitem__(5, _lines()[4]), "expected 'time <value>'"),
    (lambda ls: ls.__setitem__(1, "01"), "leading zeros"),
    (lambda ls: ls.__setitem__(1, "0"), "epoch must be"),
    (lambda ls: ls.__setitem__(2, "AAAA"), "base64 of 32 bytes"),
    (lambda ls: ls.__setitem__(5, "pr XYZ"), "commit id"),
    (lambda ls: ls.__setitem__(7, "policy 12"), "64 lowercase hex"),
    (lambda ls: ls.insert(8, "extra line"), "lines, expected 8"),
])
def test_reordered_missing_or_bad_str_lines_rejected(mutate, message):
    lines = _lines()
    mutate(lines)
    signer = notes.NoteSigner.generate("pv1.example")
    text = "\n".join(lines)
    if not text.endswith("\n"):
        text += "\n"
    with pytest.raises(FormatError, match=message):
        open_str(notes.sign(text, [signer]), signer.verifier())


def test_equivocation_evidence(tmp_path):
    from pds_log.core import equivocation

    signer = notes.NoteSigner.generate("pv1.example")
    a = sign_str(make_head(epoch=1), signer)
    b = sign_str(make_head(epoch=1, root=b"\x33" * 32), signer)
    found = equivocation.detect(a.note, b.note, signer.verifier())
    assert found is not None and found.epoch == 1
    assert equivocation.detect(a.note, a.note, signer.verifier()) is None
    evidence = found.to_json()
    assert equivocation.check(evidence, signer.verifier()).epoch == 1
    other = notes.NoteSigner.generate("pv1.example")
    with pytest.raises(VerificationError):
        equivocation.check(evidence, other.verifier())
    same = equivocation.Equivocation(signer.verifier(), a, a).to_json()
    with pytest.raises(VerificationError, match="not different STRs"):
        equivocation.check(same, signer.verifier())
    import subprocess
    import sys
    path = tmp_path / "evidence.json"
    path.write_bytes(evidence)
    out = subprocess.run([sys.executable, "-m", "pds_log", "note", "verify", str(path), str(signer.verifier())],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "proof of equivocation" in out.stdout
