"""Proofs: every present name proves inclusion, every absent name absence; tampering fails."""

import hashlib
import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pds_log.core.binding import Binding
from pds_log.core.errors import FormatError, VerificationError
from pds_log.core.names import name_key
from pds_log.core.proof import ABSENCE, INCLUSION, Proof, make_proof, proof_root, verify_proof
from pds_log.core.tree import PrefixTree

HEX = "ab" * 32
COMMIT = "0123456789abcdef" * 2 + "01234567"


def binding_for(name: str, n: int = 0) -> Binding:
    return Binding.create(name, "x.plugin", hashlib.sha256(name.encode()).hexdigest(),
                          {"a.o": hashlib.sha256(f"{name}{n}".encode()).hexdigest()}, COMMIT,
                          ["reproducible", "safety"][: n % 3])


def build(names):
    bindings = {n: binding_for(n, i) for i, n in enumerate(names)}
    tree = PrefixTree.from_items({name_key(n): b.value() for n, b in bindings.items()})
    return tree, bindings


names_st = st.lists(st.from_regex(r"[a-z]{1,6}\.[a-z0-9_-]{1,8}", fullmatch=True), max_size=30, unique=True)


@pytest.mark.slow
@settings(max_examples=120, deadline=None)
@given(names_st, st.lists(st.from_regex(r"[a-z]{1,6}\.[a-z]{1,8}", fullmatch=True), max_size=10))
def test_present_names_include_absent_names_exclude(present, probes):
    tree, bindings = build(present)
    root = tree.root()
    for name in present:
        proof = make_proof(tree, name, 3, bindings.__getitem__)
        assert verify_proof(Proof.from_json(proof.to_json()), root, 3) == INCLUSION
    for name in probes:
        if name in bindings:
            continue
        proof = make_proof(tree, name, 3, bindings.__getitem__)
        assert proof.binding is None
        assert verify_proof(Proof.from_json(proof.to_json()), root, 3) == ABSENCE


def _sample_proofs():
    rnd = random.Random(11)
    names = [f"org.n{i}" for i in range(200)]
    tree, bindings = build(names)
    proofs = [make_proof(tree, n, 5, bindings.__getitem__) for n in rnd.sample(names, 5)]
    proofs += [make_proof(tree, f"org.absent{i}", 5, bindings.__getitem__) for i in range(10)]
    kinds = {("other" if p.other else "empty" if p.binding is None else "incl") for p in proofs}
    assert kinds == {"other", "empty", "incl"}, kinds
    return tree.root(), proofs


ROOT, PROOFS = _sample_proofs()


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(PROOFS), st.data())
def test_any_flipped_bit_of_the_proof_bytes_is_rejected(proof, data):
    raw = bytearray(proof.to_json())
    pos = data.draw(st.integers(0, len(raw) - 1))
    bit = data.draw(st.integers(0, 7))
    raw[pos] ^= 1 << bit
    try:
        flipped = Proof.from_json(bytes(raw))
        verify_proof(flipped, ROOT, 5)
    except (FormatError, VerificationError):
        return
    # A flip in the name can make the proof of an absent name a valid proof of absence of
    # another name whose key shares the same path (org.absent8 -> orc.absent8 in a small
    # tree). That is a true statement about the tree, not a forgery; what must never happen is
    # a proof that still verifies for the name it was made for (readers check the name first,
    # peer/trusted.py `_verify_proof`).
    assert flipped.name != proof.name and flipped.kind == "absence", (pos, bit)


def test_a_flipped_name_can_only_prove_another_names_absence():
    """The case hypothesis found: one bit of `org.absent8` makes `orc.absent8`, whose key takes
    the same empty path, so the proof verifies -- for another name, which a reader refuses."""
    proof = next(p for p in PROOFS if p.name == "org.absent8")
    raw = proof.to_json()
    at = raw.index(b"org.absent8") + 2
    flipped = Proof.from_json(raw[:at] + bytes([raw[at] ^ 4]) + raw[at + 1:])
    assert flipped.name == "orc.absent8"
    assert verify_proof(flipped, ROOT, 5) == "absence"


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(PROOFS), st.data())
def test_any_flipped_bit_of_a_hash_is_rejected(proof, data):
    obj = proof.to_obj()
    targets = [("siblings", i) for i, s in enumerate(obj["siblings"]) if s]
    if obj["other"]:
        targets += [("other", "key"), ("other", "value")]
    field, idx = data.draw(st.sampled_from(targets))
    holder = obj[field]
    value = bytearray(bytes.fromhex(holder[idx]))
    value[data.draw(st.integers(0, 31))] ^= 1 << data.draw(st.integers(0, 7))
    holder[idx] = value.hex()
    with pytest.raises((FormatError, VerificationError)):
        verify_proof(Proof.from_obj(obj), ROOT, 5)


def test_null_sibling_replaced_or_added_is_rejected():
    proof = next(p for p in PROOFS if p.binding is not None)
    obj = proof.to_obj()
    obj["siblings"].append(None)
    with pytest.raises(FormatError, match="last sibling is empty"):
        verify_proof(Proof.from_obj(obj), ROOT)
    obj = proof.to_obj()
    obj["siblings"] = obj["siblings"][:-1]
    with pytest.raises((FormatError, VerificationError)):
        verify_proof(Proof.from_obj(obj), ROOT)


def test_proof_for_a_different_name_is_rejected():
    proof = next(p for p in PROOFS if p.binding is not None)
    obj = proof.to_obj()
    obj["name"] = "org.someone.else"
    with pytest.raises(FormatError, match="binding is for"):
        verify_proof(Proof.from_obj(obj), ROOT)
    absence = next(p for p in PROOFS if p.other is not None)
    obj = absence.to_obj()
    obj["name"] = proof.name
    with pytest.raises((FormatError, VerificationError)):
        verify_proof(Proof.from_obj(obj), ROOT)


def test_other_leaf_sharing_too_few_bits_or_equal_key():
    absence = next(p for p in PROOFS if p.other is not None)
    obj = absence.to_obj()
    key = bytearray(bytes.fromhex(obj["other"]["key"]))
    key[0] ^= 0x80  # now differs from the name's key at bit 0
    obj["other"]["key"] = key.hex()
    with pytest.raises(FormatError, match="shares only 0 leading bits"):
        proof_root(Proof.from_obj(obj))
    obj = absence.to_obj()
    obj["other"]["key"] = name_key(absence.name).hex()
    with pytest.raises(FormatError, match="equals the key"):
        proof_root(Proof.from_obj(obj))


def test_wrong_epoch_is_rejected():
    with pytest.raises(VerificationError, match="epoch 5, the STR is epoch 6"):
        verify_proof(PROOFS[0], ROOT, 6)


@pytest.mark.parametrize("mutate, message", [
    (lambda o: o.update(siblings=["zz" * 32]), "not lowercase hex"),
    (lambda o: o.update(siblings=["ab" * 31]), "expected 64 hex characters"),
    (lambda o: o.update(siblings=["AB" * 32]), "not lowercase hex"),
    (lambda o: o.update(siblings=[1]), "expected a hex string"),
    (lambda o: o.update(siblings="ab"), "siblings must be a list"),
    (lambda o: o.update(siblings=[None] * 257), "at most 256"),
    (lambda o: o.pop("epoch"), "missing: \\['epoch'\\]"),
    (lambda o: o.update(v=2), "unsupported version"),
    (lambda o: o.update(epoch=-1), "epoch must be"),
    (lambda o: o.update(name="nodots"), "invalid plugin name"),
    (lambda o: o.update(other={"key": HEX}), "other must be"),
    (lambda o: o.update(binding={"v": 1}), "wrong keys"),
])
def test_malformed_proofs_give_clear_errors(mutate, message):
    obj = PROOFS[0].to_obj()
    mutate(obj)
    with pytest.raises(FormatError, match=message):
        Proof.from_obj(obj)


def test_binding_and_other_both_set_is_malformed():
    incl = next(p for p in PROOFS if p.binding is not None)
    obj = incl.to_obj()
    obj["other"] = {"key": HEX, "value": HEX}
    with pytest.raises(FormatError, match="cannot both be set"):
        proof_root(Proof.from_obj(obj))


def test_invalid_json():
    with pytest.raises(FormatError, match="invalid JSON"):
        Proof.from_json(b"{not json")


def test_empty_tree_absence_and_single_leaf():
    empty = PrefixTree()
    proof = make_proof(empty, "a.b", 1, lambda n: None)
    assert proof.siblings == () and verify_proof(proof, empty.root()) == ABSENCE
    tree, bindings = build(["a.b"])
    assert verify_proof(make_proof(tree, "a.b", 1, bindings.__getitem__), tree.root()) == INCLUSION
    other = make_proof(tree, "c.d", 1, bindings.__getitem__)
    assert other.other is not None and verify_proof(other, tree.root()) == ABSENCE


def test_proof_json_is_the_v1_shape():
    obj = json.loads(PROOFS[0].to_json())
    assert list(obj) == ["binding", "epoch", "name", "other", "siblings", "v"]
    assert obj["v"] == 1 and obj["epoch"] == 5
