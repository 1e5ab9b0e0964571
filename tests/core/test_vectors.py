"""Fixed v1 test vectors (tests/core/vectors): the wire format must not drift."""

import json
from pathlib import Path

from pds_log.core.binding import Binding
from pds_log.core.names import name_key
from pds_log.core.note import NoteSigner, NoteVerifier
from pds_log.core.proof import Proof, make_proof, verify_proof
from pds_log.core.signed_root import check_chain, open_str, sign_str
from pds_log.core.tree import PrefixTree

VECTORS = Path(__file__).parent / "vectors"


def test_tree_vectors():
    cases = json.loads((VECTORS / "tree_v1.json").read_text())
    assert [c["label"] for c in cases] == ["empty", "one", "two", "five", "forty"]
    for case in cases:
        bindings = {b["name"]: Binding.from_obj(b) for b in case["bindings"]}
        tree = PrefixTree.from_items({name_key(n): b.value() for n, b in bindings.items()})
        assert tree.root().hex() == case["root"], case["label"]
        for name, expected in case["proofs"].items():
            proof = make_proof(tree, name, 0, bindings.__getitem__)
            assert json.loads(proof.to_json()) == expected, (case["label"], name)
            verify_proof(Proof.from_obj(expected), bytes.fromhex(case["root"]))


def test_str_vectors():
    vec = json.loads((VECTORS / "str_v1.json").read_text())
    verifier = NoteVerifier.from_string(vec["vkey"])
    signer = NoteSigner.from_string(vec["signer"])
    prev = None
    for note, expected_hash in zip(vec["notes"], vec["hashes"], strict=True):
        signed = open_str(note.encode(), verifier)
        assert signed.hash.hex() == expected_hash
        assert sign_str(signed.head, signer).note == note.encode()
        check_chain(prev, signed)
        prev = signed
