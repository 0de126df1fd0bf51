"""RFC 9162 §2.1 Merkle tree, computed incrementally from stored perfect subtrees.

A *perfect node* ``(level, index)`` is the hash of the complete subtree of ``2**level``
leaves that starts at leaf ``index * 2**level``. Once written it never changes, so a log
stores each one exactly once, when its last leaf arrives (`nodes_to_store_on_append`).
Every tree head and proof below reads O(log n) of them: the RFC's tree for ``n`` leaves is
a right fold over the perfect subtrees named by the set bits of ``n``, and a proof's
only non-perfect node (on the right edge) is folded from those parts.

Everything here is pure: storage is whatever implements `NodeReader` (a dict in tests,
SQL rows in the service). Proof generation and verification follow RFC 9162 §2.1.3 and
§2.1.4 node for node, so proofs interoperate with Certificate Transparency tooling.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from privet.governance.audit.hashing import EMPTY_ROOT, HASH_SIZE, leaf_hash, node_hash

__all__ = [
    "MemoryNodeStore",
    "MerkleFrontier",
    "NodeReader",
    "consistency_proof",
    "frontier_keys",
    "inclusion_proof",
    "nodes_to_store_on_append",
    "perfect_root",
    "root",
    "verify_consistency",
    "verify_inclusion",
]


class NodeReader(Protocol):
    """Read access to stored perfect nodes."""

    def get_node(self, level: int, index: int) -> bytes:
        """The hash of the perfect subtree of ``2**level`` leaves starting at leaf
        ``index * 2**level``. Raises LookupError when that node is not stored."""
        ...


def _require_size(name: str, value: int) -> None:
    # bool is an int subclass; a True "size" is always a caller bug.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")


def _require_hash(name: str, value: bytes) -> None:
    if not isinstance(value, (bytes, bytearray)) or len(value) != HASH_SIZE:
        raise ValueError(f"{name} must be {HASH_SIZE} bytes")


def _largest_power_of_two_below(n: int) -> int:
    """The k of RFC 9162 §2.1.1: the largest power of two smaller than n. Requires n > 1."""
    return 1 << ((n - 1).bit_length() - 1)


def _perfect_subtrees(start: int, size: int) -> list[tuple[int, int]]:
    """The (level, index) of the perfect subtrees that [start, start+size) splits into,
    largest (leftmost) first: one per set bit of `size`. Requires `start` aligned to a power
    of two >= size. The one home of the right-edge rule (`frontier_keys` is its start-0 case)."""
    nodes = []
    offset = start
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            nodes.append((level, offset >> level))
            offset += 1 << level
    return nodes


def frontier_keys(size: int) -> list[tuple[int, int]]:
    """The (level, index) of each perfect subtree on the right edge of a tree of `size`
    leaves (its "frontier"), largest first: all a log needs to keep appending and to compute
    its root. Requires size >= 0; raises ValueError otherwise."""
    _require_size("size", size)
    return _perfect_subtrees(0, size)


def _range_hash(start: int, size: int, reader: NodeReader) -> bytes:
    """MTH(D[start:start+size]) for a range that is a node of the RFC tree.

    Requires size > 0 and start aligned to a power of two >= size (true of every node
    the RFC recursion visits), so the range splits into perfect subtrees, largest first.
    Reads popcount(size) nodes.
    """
    peaks = [reader.get_node(level, index) for level, index in _perfect_subtrees(start, size)]
    # The RFC splits off the largest power of two on the left, so fold from the right.
    acc = peaks[-1]
    for left in reversed(peaks[:-1]):
        acc = node_hash(left, acc)
    return acc


def _node_hash_of(start: int, size: int, reader: NodeReader) -> bytes:
    """One read when [start, start+size) is a perfect subtree, else a right-edge fold."""
    if size & (size - 1) == 0:
        level = size.bit_length() - 1
        return reader.get_node(level, start >> level)
    return _range_hash(start, size, reader)


def nodes_to_store_on_append(size_before: int, leaf: bytes, reader: NodeReader) -> list[tuple[int, int, bytes]]:
    """The perfect nodes completed by appending leaf hash `leaf` at index `size_before`.

    Returns ``[(0, size_before, leaf), (1, ..., ...), ...]``, lowest level first: the leaf
    itself plus one node for every trailing 1 bit of `size_before`. Reads only the left
    siblings on that path (O(log n)).

    Requires: `size_before` >= 0; `leaf` is a 32-byte leaf hash (not leaf data); `reader`
    holds every perfect node of the tree of size `size_before`. Raises ValueError otherwise
    (the last condition surfaces as the reader's LookupError).
    """
    _require_size("size_before", size_before)
    _require_hash("leaf", leaf)
    new_nodes = [(0, size_before, bytes(leaf))]
    level, index, acc = 0, size_before, bytes(leaf)
    # A node completes its parent exactly when it is a right child (odd index).
    while index & 1:
        acc = node_hash(reader.get_node(level, index - 1), acc)
        level, index = level + 1, index >> 1
        new_nodes.append((level, index, acc))
    return new_nodes


def perfect_root(leaf_hashes: Sequence[bytes]) -> bytes:
    """The hash of the perfect subtree over `leaf_hashes` (a power-of-two count of 32-byte
    leaf hashes, in order). Raises ValueError on any other count."""
    n = len(leaf_hashes)
    if n == 0 or n & (n - 1):
        raise ValueError(f"a perfect subtree needs a power-of-two number of leaves, got {n}")
    level = list(leaf_hashes)
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return bytes(level[0])


def root(size: int, reader: NodeReader) -> bytes:
    """MTH(D[0:size]); EMPTY_ROOT for size 0. Reads popcount(size) nodes.

    Requires: `size` >= 0 and `reader` holds the perfect nodes of a tree of at least
    `size` leaves. Raises ValueError on a negative size.
    """
    _require_size("size", size)
    if size == 0:
        return EMPTY_ROOT
    return _range_hash(0, size, reader)


def inclusion_proof(index: int, size: int, reader: NodeReader) -> list[bytes]:
    """PATH(index, D[0:size]) of RFC 9162 §2.1.3.1, the sibling nearest the leaf first.

    Requires: 0 <= index < size, and `reader` holds the perfect nodes of a tree of at
    least `size` leaves. Raises ValueError otherwise. Reads O(log size) nodes: every
    sibling is perfect except at most one right-edge subtree, which is folded.
    """
    _require_size("index", index)
    _require_size("size", size)
    if index >= size:
        raise ValueError(f"index {index} is not below tree size {size}")
    top_down: list[bytes] = []
    start, n, m = 0, size, index
    while n > 1:
        k = _largest_power_of_two_below(n)
        if m < k:
            top_down.append(_node_hash_of(start + k, n - k, reader))
            n = k
        else:
            top_down.append(_node_hash_of(start, k, reader))
            start, n, m = start + k, n - k, m - k
    return top_down[::-1]


def consistency_proof(old_size: int, new_size: int, reader: NodeReader) -> list[bytes]:
    """PROOF(old_size, D[0:new_size]) of RFC 9162 §2.1.4.1, deepest node first.

    Empty when old_size is 0 or equal to new_size (nothing to prove; CT does the same).
    Requires: 0 <= old_size <= new_size, and `reader` holds the perfect nodes of a tree of
    at least `new_size` leaves. Raises ValueError otherwise. Reads O(log new_size) nodes.
    """
    _require_size("old_size", old_size)
    _require_size("new_size", new_size)
    if old_size > new_size:
        raise ValueError(f"old_size {old_size} exceeds new_size {new_size}")
    if old_size == 0 or old_size == new_size:
        return []
    top_down: list[bytes] = []
    start, n, m = 0, new_size, old_size
    # `whole_old_tree` is the RFC's flag b: true while [start, start+n) still contains the
    # old tree as its left-aligned prefix, whose root the verifier already has.
    whole_old_tree = True
    while m != n:
        k = _largest_power_of_two_below(n)
        if m <= k:
            top_down.append(_node_hash_of(start + k, n - k, reader))
            n = k
        else:
            top_down.append(_node_hash_of(start, k, reader))
            start, n, m = start + k, n - k, m - k
            whole_old_tree = False
    if not whole_old_tree:
        top_down.append(_node_hash_of(start, n, reader))
    return top_down[::-1]


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2: does `proof` show leaf hash `leaf_hash` at `index` in the tree
    of `size` leaves whose head is `root`?

    Returns False for any proof that does not verify, including index >= size and hashes
    of the wrong length (those come from untrusted input). Requires `index` and `size` to
    be non-negative ints; raises ValueError otherwise.
    """
    _require_size("index", index)
    _require_size("size", size)
    if index >= size or not _all_hashes([leaf_hash, root, *proof]):
        return False
    fn, sn, r = index, size - 1, bytes(leaf_hash)
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # Skip the levels where this node has no right sibling (right edge).
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> bool:
    """RFC 9162 §2.1.4.2: is the tree of `new_size` leaves with head `new_root` an
    append-only extension of the tree of `old_size` leaves with head `old_root`?

    Beyond the RFC (which covers 0 < old_size < new_size): equal sizes verify iff the proof
    is empty and the roots are equal; old_size 0 verifies iff the proof is empty and
    `old_root` is EMPTY_ROOT (stricter than CT, which ignores that root).
    Returns False for any proof that does not verify, including old_size > new_size.
    Requires both sizes to be non-negative ints; raises ValueError otherwise.
    """
    _require_size("old_size", old_size)
    _require_size("new_size", new_size)
    if old_size > new_size or not _all_hashes([old_root, new_root, *proof]):
        return False
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if old_size == new_size:
        return not proof and old_root == new_root
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        # The old tree is a perfect subtree of the new one; its root starts the path.
        path.insert(0, bytes(old_root))
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


def _all_hashes(values: Sequence[object]) -> bool:
    return all(isinstance(v, (bytes, bytearray)) and len(v) == HASH_SIZE for v in values)


class MemoryNodeStore:
    """Every perfect node in a dict: for tests, and for proofs over a whole export.

    Memory grows with the log (about 2n nodes); to recompute only tree heads over a long
    stream, use `MerkleFrontier`.
    """

    def __init__(self) -> None:
        self._nodes: dict[tuple[int, int], bytes] = {}
        self.size = 0

    def get_node(self, level: int, index: int) -> bytes:
        """See `NodeReader.get_node`. Raises LookupError (KeyError) for an unstored node."""
        return self._nodes[(level, index)]

    def append(self, leaf_data: bytes) -> int:
        """Hash `leaf_data` as a leaf, store the nodes it completes, return its index."""
        return self.append_leaf_hash(leaf_hash(leaf_data))

    def append_leaf_hash(self, leaf: bytes) -> int:
        """Append an already computed 32-byte leaf hash; return its index."""
        for level, index, value in nodes_to_store_on_append(self.size, leaf, self):
            self._nodes[(level, index)] = value
        self.size += 1
        return self.size - 1


class MerkleFrontier:
    """Only the right-edge perfect nodes (at most one per level, `frontier_keys`): enough to
    keep appending and to compute the current root in O(log n) memory, e.g. while streaming
    an export, or in the audit log's append path.
    """

    def __init__(self) -> None:
        self._peaks: dict[int, tuple[int, bytes]] = {}  # level -> (index, hash)
        self.size = 0

    @classmethod
    def load(cls, size: int, reader: NodeReader) -> MerkleFrontier:
        """The frontier of the tree of `size` leaves, read from `reader` (popcount(size)
        reads). Requires size >= 0 (ValueError); the reader's LookupError passes through
        when it lacks a right-edge node."""
        frontier = cls()
        for level, index in frontier_keys(size):
            frontier._peaks[level] = (index, reader.get_node(level, index))
        frontier.size = size
        return frontier

    def copy(self) -> MerkleFrontier:
        """An independent frontier at the same size (appending to one leaves the other)."""
        other = MerkleFrontier()
        other._peaks = dict(self._peaks)
        other.size = self.size
        return other

    def keys(self) -> list[tuple[int, int]]:
        """The (level, index) of the nodes held: always `frontier_keys(self.size)`."""
        return sorted(((level, index) for level, (index, _) in self._peaks.items()), reverse=True)

    def get_node(self, level: int, index: int) -> bytes:
        """See `NodeReader.get_node`; only current peaks are held (LookupError otherwise)."""
        peak = self._peaks.get(level)
        if peak is None or peak[0] != index:
            raise LookupError(f"node ({level}, {index}) is not on the frontier")
        return peak[1]

    def append(self, leaf_data: bytes) -> bytes:
        """Hash `leaf_data` as a leaf, append it, and return its leaf hash."""
        leaf = leaf_hash(leaf_data)
        self.append_leaf_hash(leaf)
        return leaf

    def append_leaf_hash(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Append a 32-byte leaf hash; returns the perfect nodes it completed, as
        `nodes_to_store_on_append` does (the leaf itself first)."""
        new_nodes = nodes_to_store_on_append(self.size, leaf, self)
        top_level, top_index, top_hash = new_nodes[-1]
        # The peaks below the new top were its left descendants' siblings: merged away.
        for level in range(top_level):
            self._peaks.pop(level, None)
        self._peaks[top_level] = (top_index, top_hash)
        self.size += 1
        return new_nodes

    def root(self) -> bytes:
        """MTH of everything appended so far (EMPTY_ROOT when nothing was)."""
        return root(self.size, self)
