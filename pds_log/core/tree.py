"""Compressed sparse Merkle prefix tree keyed by 256-bit keys (DESIGN.md "Formats (v1)").

Hashing (v1), with H = SHA-256 and depth 0 = the root, key bit i (MSB first) choosing the child
at depth i+1:

    hash(empty subtree)                  = 32 zero bytes
    hash(subtree holding exactly 1 leaf) = H(0x00 || key || value)      wherever it sits
    hash(any other subtree)              = H(0x01 || hash(left) || hash(right))

So a subtree of one leaf is "compressed" to the leaf, but a subtree of two or more leaves is
hashed level by level: where its leaves share a long prefix, each level of that unary chain
costs one hash with a zero sibling. The encoding of a set of (key, value) pairs is therefore
unique, which is what makes absence proofs sound.

Representation: a PATRICIA trie. Only branching nodes (both sides non-empty) and leaves are
stored; the unary chain above a branching node is re-hashed ("folded") when its parent needs
the child's hash at the parent's child depth. Each node caches its own hash; an update marks
the nodes on its path dirty and `root()` re-hashes only dirty nodes, so k changes in an N-leaf
tree cost O(k log N) hashes, never a rebuild.

Nodes are plain tuples and lists (cheaper than objects in CPython, which matters at 1M leaves):
    leaf   = (key: bytes, value: bytes, hash: bytes)      a tuple: leaves never change in place
    branch = [depth: int, left, right, rep: int, hash: bytes | None]
    stub   = (depth: int, hash: bytes, rep: int, 0)       a subtree not loaded (partial trees)
where `depth` is the branch's position depth (its children sit at depth + 1, split on key bit
`depth`), `rep` is any key below it as an int (all keys below share its first `depth` bits) and
`hash` is its own hash at its position, or None when dirty.

A *partial* tree (`PrefixTree.partial`, filled by core.tiles.load_path) holds some subtrees as
stubs: the position (depth, rep's first `depth` bits) and the hash of a subtree of two or more
leaves, known from a verified parent but not loaded. Hashing treats a stub as that hash, so the
root stays exact; any operation that needs to go inside a stub (get, prove, set, delete, items
of a key below it) raises `NotLoaded` naming it, and `replace_stub` puts the loaded subtree in
its place after checking that it hashes to the stub's hash.
"""

from __future__ import annotations

import gc
import hashlib
from typing import Any, Iterable, Iterator, Mapping, TypeAlias

from .errors import FormatError, PdsError, VerificationError

# A node is a leaf tuple or a branch list (see above): plain sequences with positional fields,
# kept untyped on purpose (a class per node costs measurably at 1M leaves); their shapes are
# pinned by tests/core/test_tree.py against the reference implementation below.
Node: TypeAlias = Any

ZERO = bytes(32)
KEY_BITS = 256
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_sha256 = hashlib.sha256
_from_bytes = int.from_bytes


def leaf_hash(key: bytes, value: bytes) -> bytes:
    """H(0x00 || key || value): the hash of any subtree holding exactly this one leaf."""
    return _sha256(_LEAF_PREFIX + key + value).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """H(0x01 || left || right): the hash of a subtree holding two or more leaves."""
    return _sha256(_NODE_PREFIX + left + right).digest()


def key_bit(key: bytes, index: int) -> int:
    """Bit `index` of `key`, MSB first (index 0 chooses the child at depth 1)."""
    return (key[index >> 3] >> (7 - (index & 7))) & 1


def common_prefix_bits(a: bytes, b: bytes) -> int:
    """How many leading bits two 32-byte keys share (256 when equal)."""
    return KEY_BITS - (_from_bytes(a, "big") ^ _from_bytes(b, "big")).bit_length()


def check_key(key: object, what: str = "key") -> bytes:
    if not isinstance(key, (bytes, bytearray)) or len(key) != 32:
        raise FormatError(f"{what} must be 32 bytes")
    return bytes(key)


class NotLoaded(PdsError):
    """An operation needs the inside of a subtree a partial tree holds as a stub only."""

    def __init__(self, depth: int, rep: int, subtree_hash: bytes, what: str) -> None:
        self.depth, self.rep, self.hash = depth, rep, subtree_hash
        prefix = format(rep >> (KEY_BITS - depth), f"0{depth}b") if depth else ""
        super().__init__(f"{what}: the subtree at depth {depth} (prefix bits {prefix or '(root)'}, hash "
                         f"{subtree_hash.hex()[:16]}...) is not loaded in this partial tree; load its tiles first")

    @property
    def prefix(self) -> int:
        """The stub's position: its first `depth` key bits."""
        return self.rep >> (KEY_BITS - self.depth) if self.depth else 0


def stub(depth: int, rep: int, subtree_hash: bytes) -> Node:
    """A stub node: the subtree of two or more leaves at position (depth, rep) with that hash."""
    return (depth, subtree_hash, rep, 0)


def _not_loaded(node: Node, what: str) -> NotLoaded:
    return NotLoaded(node[0], node[2], node[1], what)


def _under(kint: int, node: Node) -> bool:
    """Whether key `kint` lies below the position of stub `node`."""
    depth: int = node[0]
    rep: int = node[2]
    return depth == 0 or (kint >> (KEY_BITS - depth)) == (rep >> (KEY_BITS - depth))


def _fold(h: bytes, rep: int, from_depth: int, to_depth: int) -> bytes:
    """Re-hash the unary chain above a node: its hash `h` at `from_depth` -> at `to_depth`."""
    sha = _sha256
    for d in range(from_depth - 1, to_depth - 1, -1):
        if (rep >> (255 - d)) & 1:
            h = sha(b"\x01" + ZERO + h).digest()
        else:
            h = sha(b"\x01" + h + ZERO).digest()
    return h


def _is_leaf(node: Node) -> bool:
    return len(node) == 3


def _top_hash(node: Node, depth: int) -> bytes:
    """The hash of `node`'s subtree seen at position depth `depth` (<= its own depth)."""
    if len(node) == 3:
        leaf_h: bytes = node[2]
        return leaf_h
    if len(node) == 4:  # a stub: its hash at its own depth
        return _fold(node[1], node[2], node[0], depth) if node[0] > depth else node[1]
    own: bytes | None = node[4]
    if own is None:
        own = _rehash(node)
    return _fold(own, node[3], node[0], depth) if node[0] > depth else own


def _rehash(node: Node) -> bytes:
    """Recompute a dirty branch's own hash (recursing only into dirty children)."""
    d1 = node[0] + 1
    own = node_hash(_top_hash(node[1], d1), _top_hash(node[2], d1))
    node[4] = own
    return own


class PrefixTree:
    """A mutable compressed sparse Merkle prefix tree of 32-byte keys to 32-byte values."""

    __slots__ = ("_root", "_size")

    def __init__(self) -> None:
        self._root: Node | None = None
        self._size = 0

    # ------------------------------------------------------------------ building
    @classmethod
    def from_items(cls, items: "Iterable[tuple[bytes, bytes]] | dict[bytes, bytes]") -> "PrefixTree":
        """Bulk build from a dict or (key, value) pairs (a repeated key keeps its last value)."""
        pairs = items if isinstance(items, dict) else dict(items)
        tree = cls()
        if not pairs:
            return tree
        try:
            tree._root = _build_sorted(sorted(pairs), pairs)
        except TypeError:  # a key or value that is not bytes
            raise FormatError("every key and value must be 32 bytes") from None
        tree._size = len(pairs)
        return tree

    @classmethod
    def partial(cls, root: bytes, size: int) -> "PrefixTree":
        """A tree known only by its root hash and size (e.g. from a signed STR): one stub, to be
        loaded path by path (core.tiles.load_path). A tree of one leaf has no stub form: its
        root is that leaf's hash, and its root tile is loaded like any other."""
        tree = cls()
        if size < 0 or (size == 0) != (root == ZERO):
            raise FormatError(f"partial tree: size {size} does not fit root {root.hex()[:16]}...")
        if size:
            tree._root = stub(0, 0, bytes(root))
            tree._size = size
        return tree

    def stub_on_path(self, key: bytes) -> NotLoaded | None:
        """The stub `key`'s path enters (what to load before using that key), or None."""
        node = self._root
        kint = _from_bytes(check_key(key), "big")
        while node is not None:
            n = len(node)
            if n == 3:
                return None
            if n == 4:
                return _not_loaded(node, "key path") if _under(kint, node) else None
            if (KEY_BITS - (kint ^ node[3]).bit_length()) < node[0]:
                return None  # the path leaves this subtree above its branch
            node = node[2] if (kint >> (255 - node[0])) & 1 else node[1]
        return None

    def replace_stub(self, depth: int, rep: int, node: Node) -> None:
        """Put the loaded subtree `node` where the stub at (depth, rep) is. VerificationError if
        it does not hash to the stub's hash there (the tree is then unchanged)."""
        parent: Node | None = None
        side = 0
        cur = self._root
        while cur is not None and len(cur) == 5 and cur[0] < depth:
            parent, side = cur, (rep >> (255 - cur[0])) & 1
            cur = cur[2] if side else cur[1]
        if cur is None or len(cur) != 4 or cur[0] != depth or not _under(rep, cur):
            raise FormatError(f"no stub at depth {depth} to replace")
        got = _top_hash(node, depth)
        if got != cur[1]:
            raise VerificationError(f"loaded subtree at depth {depth} hashes to {got.hex()[:16]}..., "
                                    f"its parent says {cur[1].hex()[:16]}...")
        self._replace(parent, side, node)

    def __len__(self) -> int:
        return self._size

    def __contains__(self, key: bytes) -> bool:
        return self.get(key) is not None

    # ------------------------------------------------------------------ queries
    def root(self) -> bytes:
        """The root hash (32 zero bytes for the empty tree)."""
        node = self._root
        if node is None:
            return ZERO
        return _top_hash(node, 0)

    def get(self, key: bytes) -> bytes | None:
        node = self._root
        if node is None:
            return None
        while len(node) != 3:
            if len(node) == 4:
                if _under(_from_bytes(key, "big"), node):
                    raise _not_loaded(node, "get")
                return None
            node = node[2] if key_bit(key, node[0]) else node[1]
        return node[1] if node[0] == key else None

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """All (key, value) pairs in key order."""
        stack = [self._root] if self._root is not None else []
        while stack:
            node = stack.pop()
            if len(node) == 3:
                yield node[0], node[1]
            elif len(node) == 4:
                raise _not_loaded(node, "items")
            else:
                stack.append(node[2])
                stack.append(node[1])

    def prove(self, key: bytes) -> tuple[list[bytes | None], tuple[bytes, bytes] | None]:
        """Siblings (depth 1 downward, None = empty) and the leaf found at `key`'s position.

        The leaf is `(key, value)` itself for inclusion, another leaf `(k2, v2)` sharing the
        first len(siblings) bits for an absence proof of the "other leaf" kind, or None for an
        absence proof ending in an empty subtree. See `pds_log.core.proof` for the JSON form."""
        check_key(key)
        siblings: list[bytes | None] = []
        node = self._root
        if node is None:
            return siblings, None
        kint = _from_bytes(key, "big")
        while True:
            if len(node) == 3:
                return siblings, (node[0], node[1])
            depth, rep = node[0], node[3 if len(node) == 5 else 2]
            shared = KEY_BITS - (kint ^ rep).bit_length()
            if len(node) == 4 and shared >= depth:
                raise _not_loaded(node, "prove")
            if shared < depth:
                # The path leaves this subtree above its branch: key's side at depth shared+1
                # is empty and the subtree is the sibling there.
                siblings.extend([None] * (shared - len(siblings)))
                siblings.append(_top_hash(node, shared + 1))
                return siblings, None
            siblings.extend([None] * (depth - len(siblings)))
            if (kint >> (255 - depth)) & 1:
                siblings.append(_top_hash(node[1], depth + 1))
                node = node[2]
            else:
                siblings.append(_top_hash(node[2], depth + 1))
                node = node[1]

    # ------------------------------------------------------------------ updates
    def set(self, key: bytes, value: bytes) -> None:
        """Insert or update one leaf: O(depth) work; hashes are recomputed lazily by root()."""
        check_key(key)
        check_key(value, "value")
        new_leaf = (bytes(key), bytes(value), leaf_hash(key, value))
        node = self._root
        if node is None:
            self._root = new_leaf
            self._size = 1
            return
        kint = _from_bytes(key, "big")
        parent: Node | None = None
        side = 0
        while True:
            if len(node) == 3:
                if node[0] == key:
                    if node[1] == value:
                        return
                    self._replace(parent, side, new_leaf)
                    return
                shared = common_prefix_bits(key, node[0])
                self._insert_branch(parent, side, node, new_leaf, kint, shared)
                return
            if len(node) == 4:
                shared = KEY_BITS - (kint ^ node[2]).bit_length()
                if shared >= node[0]:
                    raise _not_loaded(node, "set")
                self._insert_branch(parent, side, node, new_leaf, kint, shared)
                return
            depth, rep = node[0], node[3]
            shared = KEY_BITS - (kint ^ rep).bit_length()
            if shared < depth:
                self._insert_branch(parent, side, node, new_leaf, kint, shared)
                return
            node[4] = None  # on the path of a change: dirty
            parent = node
            side = (kint >> (255 - depth)) & 1
            node = node[2] if side else node[1]

    def _replace(self, parent: Node | None, side: int, node: Node) -> None:
        if parent is None:
            self._root = node
        else:
            parent[2 if side else 1] = node

    def _insert_branch(self, parent: Node | None, side: int, old: Node, leaf: Node, kint: int, shared: int) -> None:
        """Put a new branch at depth `shared` above `old`, with `leaf` on the other side."""
        if (kint >> (255 - shared)) & 1:
            branch = [shared, old, leaf, kint, None]
        else:
            branch = [shared, leaf, old, kint, None]
        self._replace(parent, side, branch)
        self._size += 1

    def delete(self, key: bytes) -> bool:
        """Remove a leaf; returns False when the key was absent (nothing changes then)."""
        check_key(key)
        node = self._root
        if node is None:
            return False
        path: list[tuple[Node, int]] = []
        kint = _from_bytes(key, "big")
        while len(node) != 3:
            if len(node) == 4:
                if _under(kint, node):
                    raise _not_loaded(node, "delete")
                return False
            side = (kint >> (255 - node[0])) & 1
            path.append((node, side))
            node = node[2] if side else node[1]
        if node[0] != key:
            return False
        self._size -= 1
        if not path:
            self._root = None
            return True
        parent, side = path.pop()
        sibling = parent[1] if side else parent[2]
        if path:
            grand, gside = path[-1]
            grand[2 if gside else 1] = sibling
        else:
            self._root = sibling
        for branch, _ in path:
            branch[4] = None
        return True

    def update(self, changes: Iterable[tuple[bytes, bytes | None]]) -> None:
        """Apply (key, value) sets and (key, None) deletes; hashes shared by several changed
        paths are recomputed once, at the next root()."""
        for key, value in changes:
            if value is None:
                self.delete(key)
            else:
                self.set(key, value)

    # ------------------------------------------------------------------ tiles support
    def node_at(self, prefix_int: int, depth: int) -> Node | None:
        """The stored node whose subtree is the position (prefix of `depth` bits), if that
        subtree is non-empty: a leaf, or the highest branch at or below that position."""
        node = self._root
        while node is not None:
            if len(node) == 3:
                ok = depth == 0 or (_from_bytes(node[0], "big") >> (256 - depth)) == prefix_int
                return node if ok else None
            nd = node[0]
            rep = node[3] if len(node) == 5 else node[2]
            if nd >= depth:
                if depth == 0 or (rep >> (256 - depth)) == prefix_int:
                    return node
                return None
            if depth and (rep >> (256 - nd)) != (prefix_int >> (depth - nd)):
                return None
            if len(node) == 4:
                raise _not_loaded(node, "node_at")
            side = (prefix_int >> (depth - nd - 1)) & 1
            node = node[2] if side else node[1]
        return None


def _build_sorted(keys: list[bytes], values: Mapping[bytes, bytes]) -> Node:
    """Build the trie over sorted distinct keys in one pass, hashing as subtrees complete.

    The branch between neighbours k[i-1] and k[i] sits at depth lcp(k[i-1], k[i]); the trie is
    the Cartesian tree of those depths, built with a stack holding the right spine. One fused
    loop (each pass over a million scattered objects costs ~0.3 s of cache misses), and the
    cyclic GC is paused: it would otherwise rescan the growing structure again and again."""
    sha = _sha256
    fold = _fold
    fb = _from_bytes
    stack: list[Node] = []  # open branches on the right spine, depths increasing
    push, pop = stack.append, stack.pop
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        k0 = keys[0]
        v0 = values[k0]
        if type(k0) is not bytes or len(k0) != 32 or type(v0) is not bytes or len(v0) != 32:
            raise FormatError("every key and value must be 32 bytes")
        node = (k0, v0, sha(b"\x00" + k0 + v0).digest())
        prev_int = fb(k0, "big")
        for i in range(1, len(keys)):
            key = keys[i]
            kint = fb(key, "big")
            shared = 256 - (kint ^ prev_int).bit_length()
            prev_int = kint
            # close every open branch deeper than the new one: its right side is complete
            while stack and stack[-1][0] > shared:
                top = pop()
                top[2] = node
                d1 = top[0] + 1
                left = top[1]
                if len(left) == 3:
                    lh = left[2]
                elif left[0] > d1:
                    lh = fold(left[4], left[3], left[0], d1)
                else:
                    lh = left[4]
                if len(node) == 3:
                    rh = node[2]
                elif node[0] > d1:
                    rh = fold(node[4], node[3], node[0], d1)
                else:
                    rh = node[4]
                top[4] = sha(b"\x01" + lh + rh).digest()
                node = top
            push([shared, node, None, kint, None])
            value = values[key]
            # checked here rather than in separate passes: at a million leaves each pass costs
            if len(key) != 32 or len(value) != 32 or type(value) is not bytes:
                raise FormatError("every key and value must be 32 bytes")
            node = (key, value, sha(b"\x00" + key + value).digest())
        while stack:
            top = pop()
            top[2] = node
            top[4] = None
            top[4] = _rehash(top)
            node = top
    finally:
        if gc_was_enabled:
            gc.enable()
    return node


def build_from_nodes(items: list[tuple[int, Node]]) -> Node:
    """The trie over `items` = (rep, node) sorted by rep, whose positions are pairwise disjoint
    (leaves, stubs, subtrees): the branches between neighbours at their common-prefix depths.
    Used to rebuild the part of a tree one tile describes (at most 256 items)."""
    if not items:
        raise FormatError("no nodes to build a subtree from")
    stack: list[Node] = []
    prev_rep, node = items[0]
    for rep, nxt in items[1:]:
        if rep <= prev_rep:
            raise FormatError("subtree nodes not in increasing key order")
        shared = KEY_BITS - (rep ^ prev_rep).bit_length()
        prev_rep = rep
        while stack and stack[-1][0] > shared:
            top = stack.pop()
            top[2] = node
            node = top
        stack.append([shared, node, None, rep, None])
        node = nxt
    while stack:
        top = stack.pop()
        top[2] = node
        node = top
    return node


def reference_root(items: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The root computed straight from the definition (slow, recursive): the oracle the tests
    compare the incremental tree against."""
    pairs = sorted(dict(items).items())

    def subtree(entries: list[tuple[bytes, bytes]], depth: int) -> bytes:
        if not entries:
            return ZERO
        if len(entries) == 1:
            return leaf_hash(*entries[0])
        left = [e for e in entries if not key_bit(e[0], depth)]
        right = [e for e in entries if key_bit(e[0], depth)]
        return node_hash(subtree(left, depth + 1), subtree(right, depth + 1))

    return subtree(pairs, 0)
