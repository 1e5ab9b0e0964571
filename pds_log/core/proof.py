"""Inclusion and absence proofs (DESIGN.md "Formats (v1)").

    {"v":1,"name":n,"epoch":e,"binding":{..}|null,"other":{"key":hex,"value":hex}|null,
     "siblings":[hex|null, ...]}

`siblings[i]` is the hash of the sibling at depth i+1 on the path of ``k = SHA-256(name)``
(null = empty subtree). Verification starts from

* the leaf hash of (k, SHA-256(binding))      -> inclusion;
* the leaf hash of `other`                    -> absence: another single leaf sits where k
  would be (its key differs from k and shares k's first len(siblings) bits);
* 32 zero bytes (binding and other both null) -> absence: k's subtree is empty,

then folds upward: at depth i+1 (i from len-1 down to 0) bit i of k says whether the running
hash is the right (1) or left (0) child. The proof is valid when the result is the STR root.

A proof from a canonical tree never ends on a null sibling (a leaf alone with an empty
sibling would have been compressed one level up), so such proofs are rejected as malformed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from . import jsondoc
from .binding import Binding, canonical_json
from .errors import FormatError, VerificationError
from .names import name_key, validate_name
from .tree import KEY_BITS, ZERO, PrefixTree, common_prefix_bits, key_bit, leaf_hash, node_hash

PROOF_VERSION = 1
_HEX64 = re.compile(r"[0-9a-f]{64}")

INCLUSION = "inclusion"
ABSENCE = "absence"


def _hex32(value: object, where: str) -> bytes:
    if not isinstance(value, str):
        raise FormatError(f"{where}: expected a hex string, got {type(value).__name__}")
    if len(value) != 64:
        raise FormatError(f"{where}: expected 64 hex characters (32 bytes), got {len(value)}")
    if not _HEX64.fullmatch(value):
        raise FormatError(f"{where}: not lowercase hex")
    return bytes.fromhex(value)


@dataclass(frozen=True)
class Proof:
    name: str
    epoch: int
    binding: Binding | None
    other: tuple[bytes, bytes] | None
    siblings: tuple[bytes | None, ...]

    @property
    def key(self) -> bytes:
        return name_key(self.name)

    @property
    def kind(self) -> str:
        return INCLUSION if self.binding is not None else ABSENCE

    # ------------------------------------------------------------------ JSON
    def to_obj(self) -> dict[str, Any]:
        return {
            "v": PROOF_VERSION,
            "name": self.name,
            "epoch": self.epoch,
            "binding": self.binding.to_obj() if self.binding else None,
            "other": {"key": self.other[0].hex(), "value": self.other[1].hex()} if self.other else None,
            "siblings": [s.hex() if s is not None else None for s in self.siblings],
        }

    def to_json(self) -> bytes:
        """Canonical JSON bytes of the proof."""
        return canonical_json(self.to_obj())

    @classmethod
    def from_obj(cls, obj: object) -> "Proof":
        if not isinstance(obj, dict):
            raise FormatError("proof: must be a JSON object")
        keys = {"v", "name", "epoch", "binding", "other", "siblings"}
        if set(obj) != keys:
            raise FormatError(
                f"proof: wrong keys (missing: {sorted(keys - set(obj))}, "
                f"unexpected: {sorted(set(obj) - keys, key=repr)})")
        if obj["v"] != PROOF_VERSION or isinstance(obj["v"], bool):
            raise FormatError(f"proof: unsupported version {obj['v']!r} (this is v{PROOF_VERSION})")
        try:
            name = validate_name(obj["name"])
        except FormatError as exc:
            raise FormatError(f"proof: {exc}") from None
        epoch = obj["epoch"]
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise FormatError("proof: epoch must be an integer >= 0")
        binding = None if obj["binding"] is None else Binding.from_obj(obj["binding"], "proof binding")
        other = None
        if obj["other"] is not None:
            o = obj["other"]
            if not isinstance(o, dict) or set(o) != {"key", "value"}:
                raise FormatError("proof: other must be {\"key\": hex, \"value\": hex}")
            other = (_hex32(o["key"], "proof other.key"), _hex32(o["value"], "proof other.value"))
        sibs = obj["siblings"]
        if not isinstance(sibs, list):
            raise FormatError("proof: siblings must be a list")
        if len(sibs) > KEY_BITS:
            raise FormatError(f"proof: {len(sibs)} siblings, at most {KEY_BITS}")
        siblings = tuple(None if s is None else _hex32(s, f"proof siblings[{i}]") for i, s in enumerate(sibs))
        return cls(name, epoch, binding, other, siblings)

    @classmethod
    def from_json(cls, data: bytes | str) -> "Proof":
        return cls.from_obj(jsondoc.loads(data, "proof"))


def make_proof(tree: PrefixTree, name: str, epoch: int, binding_of: Callable[[str], Binding]) -> Proof:
    """Build the proof for `name` from a tree; `binding_of(name)` returns the binding whose
    value is at the leaf (called only for inclusion)."""
    validate_name(name)
    siblings, leaf = tree.prove(name_key(name))
    return make_proof_from_leaf(name, epoch, siblings, leaf, binding_of)


def make_proof_from_leaf(name: str, epoch: int, siblings: list[bytes | None], leaf: tuple[bytes, bytes] | None,
                         binding_of: Callable[[str], Binding]) -> Proof:
    """A proof from a path found by `PrefixTree.prove` or `tiles.prove_from_tiles`."""
    key = name_key(validate_name(name))
    binding = other = None
    if leaf is not None:
        if leaf[0] == key:
            binding = binding_of(name)
            if binding.value() != leaf[1]:
                raise VerificationError(f"binding of {name} does not hash to the value in the tree")
        else:
            other = leaf
    return Proof(name, epoch, binding, other, tuple(siblings))


def proof_root(proof: Proof) -> bytes:
    """The root a proof commits to; raises FormatError when the proof is malformed."""
    key = proof.key
    sibs = proof.siblings
    if proof.binding is not None and proof.other is not None:
        raise FormatError("proof: binding and other cannot both be set")
    if proof.binding is not None:
        if proof.binding.name != proof.name:
            raise FormatError(f"proof: binding is for {proof.binding.name!r}, not {proof.name!r}")
        h = leaf_hash(key, proof.binding.value())
    elif proof.other is not None:
        okey, ovalue = proof.other
        if okey == key:
            raise FormatError("proof: other.key equals the key of the name (that would be inclusion)")
        shared = common_prefix_bits(okey, key)
        if shared < len(sibs):
            raise FormatError(
                f"proof: other.key shares only {shared} leading bits with the name's key; "
                f"it must share all {len(sibs)} bits of the path")
        h = leaf_hash(okey, ovalue)
    else:
        h = ZERO
        if not sibs:
            return ZERO  # the empty tree
    if sibs and sibs[-1] is None:
        raise FormatError("proof: last sibling is empty (not a canonical proof)")
    for depth in range(len(sibs) - 1, -1, -1):
        sib = sibs[depth] or ZERO
        h = node_hash(sib, h) if key_bit(key, depth) else node_hash(h, sib)
    return h


def verify_proof(proof: Proof, root: bytes, epoch: int | None = None) -> str:
    """Check `proof` against a tree root (and, given one, the epoch of the STR that carries
    the root: the epoch is not covered by the hashes, only by the STR); returns "inclusion"
    or "absence".

    Raises FormatError for malformed proofs and VerificationError when it does not match."""
    if epoch is not None and proof.epoch != epoch:
        raise VerificationError(f"proof for {proof.name} is for epoch {proof.epoch}, the STR is epoch {epoch}")
    computed = proof_root(proof)
    if computed != root:
        raise VerificationError(
            f"proof for {proof.name} does not match the root: computes {computed.hex()[:16]}..., "
            f"root is {root.hex()[:16]}...")
    return proof.kind


def describe(proof: Proof) -> str:
    """One line saying what a (verified) proof proves."""
    if proof.binding is not None:
        return f"inclusion of {proof.name} at depth {len(proof.siblings)}"
    if proof.other is not None:
        return f"absence of {proof.name}: another leaf ({proof.other[0].hex()[:16]}...) at depth {len(proof.siblings)}"
    return f"absence of {proof.name}: empty subtree at depth {len(proof.siblings)}"
