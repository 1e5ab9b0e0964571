"""Regenerate tree_v1.json and str_v1.json. Run only when the v1 format is meant to change
(it must not): the tests compare the code against the committed files, not against this script."""

import json
from pathlib import Path

from pds_log.core.binding import Binding
from pds_log.core.names import name_key
from pds_log.core.note import NoteSigner
from pds_log.core.proof import make_proof
from pds_log.core.signed_root import ZERO_HASH, TreeHead, sign_str
from pds_log.core.tree import PrefixTree

HERE = Path(__file__).parent
COMMIT = "89abcdef" * 5


def binding(name: str, i: int) -> Binding:
    h = lambda s: __import__("hashlib").sha256(s.encode()).hexdigest()  # noqa: E731
    return Binding.create(name, f"{name.split('.')[-1]}.plugin", h(name + "m"), {f"p{i}.o": h(name + str(i))},
                          COMMIT, ["reproducible", "safety", "termination"][: i % 4])


def main() -> None:
    sets = {
        "empty": [],
        "one": ["be.example.a"],
        "two": ["be.example.a", "be.example.b"],
        "five": [f"org.pds.p{i}" for i in range(5)],
        "forty": [f"org.pds.vec{i}" for i in range(40)],
    }
    cases = []
    for label, names in sets.items():
        bindings = {n: binding(n, i) for i, n in enumerate(names)}
        tree = PrefixTree.from_items({name_key(n): b.value() for n, b in bindings.items()})
        probes = names[:3] + ["be.example.absent", "org.pds.zzz"]
        cases.append({
            "label": label,
            "bindings": [json.loads(b.encode()) for b in bindings.values()],
            "root": tree.root().hex(),
            "proofs": {p: json.loads(make_proof(tree, p, 0, bindings.__getitem__).to_json()) for p in probes},
        })
    (HERE / "tree_v1.json").write_text(json.dumps(cases, indent=1, sort_keys=True) + "\n")

    signer = NoteSigner("pv1.example", bytes(range(32)))
    head1 = TreeHead("pv1.example", 1, bytes.fromhex(cases[3]["root"]), ZERO_HASH, 1767225600, COMMIT, 5, "00" * 32)
    s1 = sign_str(head1, signer)
    head2 = TreeHead("pv1.example", 2, bytes.fromhex(cases[4]["root"]), s1.hash, 1767226200, COMMIT, 40, "00" * 32)
    s2 = sign_str(head2, signer)
    (HERE / "str_v1.json").write_text(json.dumps({
        "signer": signer.to_string(), "vkey": str(signer.verifier()),
        "notes": [s1.note.decode(), s2.note.decode()], "hashes": [s1.hash.hex(), s2.hash.hex()],
    }, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
