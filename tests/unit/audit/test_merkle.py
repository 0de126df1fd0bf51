"""governance.audit.merkle against CT known answers, a naive RFC 9162 reference, and
hypothesis properties (every generated proof verifies; any single flipped bit fails)."""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privet.governance.audit.hashing import EMPTY_ROOT, leaf_hash, node_hash
from privet.governance.audit.merkle import (
    MemoryNodeStore,
    MerkleFrontier,
    consistency_proof,
    inclusion_proof,
    nodes_to_store_on_append,
    perfect_root,
    root,
    verify_consistency,
    verify_inclusion,
)

VECTORS = json.loads((Path(__file__).parent / "testdata" / "rfc6962_vectors.json").read_text())
CT_LEAVES = [bytes.fromhex(h) for h in VECTORS["leaves"]]
CT_ROOTS = [bytes.fromhex(h) for h in VECTORS["roots"]]


def _store_of(leaves: list[bytes]) -> MemoryNodeStore:
    store = MemoryNodeStore()
    for data in leaves:
        store.append(data)
    return store


CT_STORE = _store_of(CT_LEAVES)

# One shared tree for the reference comparison and the properties: nodes never change
# once written, so a store of N leaves answers for every size <= N.
BIG_N = 1100
BIG_LEAVES = [i.to_bytes(4, "big") for i in range(BIG_N)]
BIG_STORE = _store_of(BIG_LEAVES)


# --- naive reference: the RFC 9162 §2.1 recursive definitions, word for word -------------


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


@functools.cache
def ref_mth(start: int, end: int) -> bytes:
    """MTH(D[start:end]) over BIG_LEAVES."""
    n = end - start
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + BIG_LEAVES[start]).digest()
    k = _k(n)
    return hashlib.sha256(b"\x01" + ref_mth(start, start + k) + ref_mth(start + k, end)).digest()


def ref_path(m: int, start: int, end: int) -> list[bytes]:
    n = end - start
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return ref_path(m, start, start + k) + [ref_mth(start + k, end)]
    return ref_path(m - k, start + k, end) + [ref_mth(start, start + k)]


def ref_subproof(m: int, start: int, end: int, b: bool) -> list[bytes]:
    n = end - start
    if m == n:
        return [] if b else [ref_mth(start, end)]
    k = _k(n)
    if m <= k:
        return ref_subproof(m, start, start + k, b) + [ref_mth(start + k, end)]
    return ref_subproof(m - k, start + k, end, False) + [ref_mth(start, start + k)]


def ref_consistency(m: int, n: int) -> list[bytes]:
    return [] if m in (0, n) else ref_subproof(m, 0, n, True)


# --- known answers --------------------------------------------------------------------


def test_empty_tree_root_is_sha256_of_nothing():
    assert root(0, MemoryNodeStore()) == EMPTY_ROOT == bytes.fromhex(VECTORS["empty_root"])


@pytest.mark.parametrize("size", range(1, 9))
def test_ct_roots(size):
    assert root(size, CT_STORE) == CT_ROOTS[size - 1]


@pytest.mark.parametrize("case", VECTORS["inclusion"], ids=lambda c: f"{c['leaf_index']}-of-{c['tree_size']}")
def test_ct_inclusion_proofs(case):
    index, size = case["leaf_index"], case["tree_size"]
    want = [bytes.fromhex(h) for h in case["proof"]]
    assert inclusion_proof(index, size, CT_STORE) == want
    assert verify_inclusion(leaf_hash(CT_LEAVES[index]), index, size, want, CT_ROOTS[size - 1])


@pytest.mark.parametrize("case", VECTORS["consistency"], ids=lambda c: f"{c['old_size']}-to-{c['new_size']}")
def test_ct_consistency_proofs(case):
    old, new = case["old_size"], case["new_size"]
    want = [bytes.fromhex(h) for h in case["proof"]]
    assert consistency_proof(old, new, CT_STORE) == want
    assert verify_consistency(old, new, CT_ROOTS[old - 1], CT_ROOTS[new - 1], want)


def _inclusion_mutations(index, size, proof, root_, leaf):
    """Expected failures, after the corruptions of the CT reference tests."""
    some_hash = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")
    yield "index - 1", (leaf, index - 1, size, proof, root_)
    yield "index + 1", (leaf, index + 1, size, proof, root_)
    yield "index ^ 2", (leaf, index ^ 2, size, proof, root_)
    yield "size * 2", (leaf, index, size * 2, proof, root_)
    yield "size // 2", (leaf, index, size // 2, proof, root_)
    yield "wrong leaf", (b"WrongLeaf", index, size, proof, root_)
    yield "empty root", (leaf, index, size, proof, EMPTY_ROOT)
    yield "random root", (leaf, index, size, proof, some_hash)
    yield "trailing garbage", (leaf, index, size, [*proof, b""], root_)
    yield "trailing root", (leaf, index, size, [*proof, root_], root_)
    yield "preceding garbage", (leaf, index, size, [b"", *proof], root_)
    yield "preceding root", (leaf, index, size, [root_, *proof], root_)
    if proof:
        yield "removed component", (leaf, index, size, proof[:-1], root_)
    if len(proof) > 1:
        yield "inserted component", (leaf, index, size, [proof[0], some_hash, *proof[1:]], root_)


@pytest.mark.parametrize("case", VECTORS["inclusion"][1:], ids=lambda c: f"{c['leaf_index']}-of-{c['tree_size']}")
def test_ct_inclusion_mutations_fail(case):
    index, size = case["leaf_index"], case["tree_size"]
    proof = [bytes.fromhex(h) for h in case["proof"]]
    for desc, (leaf, i, n, p, r) in _inclusion_mutations(index, size, proof, CT_ROOTS[size - 1], leaf_hash(CT_LEAVES[index])):
        if i < 0:
            continue
        assert not verify_inclusion(leaf, i, n, p, r), desc


@pytest.mark.parametrize("case", VECTORS["consistency"][1:], ids=lambda c: f"{c['old_size']}-to-{c['new_size']}")
def test_ct_consistency_mutations_fail(case):
    m, n = case["old_size"], case["new_size"]
    proof = [bytes.fromhex(h) for h in case["proof"]]
    r1, r2 = CT_ROOTS[m - 1], CT_ROOTS[n - 1]
    probes = {
        "size1 - 1": (m - 1, n, r1, r2, proof),
        "size1 + 1": (m + 1, n, r1, r2, proof),
        "size1 ^ 2": (m ^ 2, n, r1, r2, proof),
        "size2 * 2": (m, n * 2, r1, r2, proof),
        "size2 // 2": (m, n // 2, r1, r2, proof),
        "wrong root1": (m, n, b"WrongRoot", r2, proof),
        "wrong root2": (m, n, r1, b"WrongRoot", proof),
        "swapped roots": (m, n, r2, r1, proof),
        "empty proof": (m, n, r1, r2, []),
        "trailing garbage": (m, n, r1, r2, [*proof, b""]),
        "trailing root1": (m, n, r1, r2, [*proof, r1]),
        "trailing root2": (m, n, r1, r2, [*proof, r2]),
        "preceding garbage": (m, n, r1, r2, [b"", *proof]),
        "preceding root1": (m, n, r1, r2, [r1, *proof]),
        "preceding root2": (m, n, r1, r2, [r2, *proof]),
        "preceding proof[0]": (m, n, r1, r2, [proof[0], *proof]),
        "truncated proof": (m, n, r1, r2, proof[:-1]),
    }
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([flipped[i][0] ^ 16]) + flipped[i][1:]
        probes[f"modified proof[{i}] bit 4"] = (m, n, r1, r2, flipped)
    for desc, args in probes.items():
        assert not verify_consistency(*args), desc


def test_trivial_consistency_rules():
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert verify_consistency(0, 5, EMPTY_ROOT, CT_ROOTS[4], [])
    assert not verify_consistency(0, 5, CT_ROOTS[0], CT_ROOTS[4], [])  # stricter than CT
    assert not verify_consistency(0, 5, EMPTY_ROOT, CT_ROOTS[4], [EMPTY_ROOT])
    assert verify_consistency(3, 3, CT_ROOTS[2], CT_ROOTS[2], [])
    assert not verify_consistency(3, 3, CT_ROOTS[2], CT_ROOTS[3], [])
    assert not verify_consistency(3, 3, CT_ROOTS[2], CT_ROOTS[2], [CT_ROOTS[2]])
    assert not verify_consistency(4, 3, CT_ROOTS[3], CT_ROOTS[2], [])


def test_single_leaf_inclusion():
    h = leaf_hash(b"data")
    assert verify_inclusion(h, 0, 1, [], h)
    assert not verify_inclusion(h, 0, 1, [], b"")
    assert not verify_inclusion(b"", 0, 1, [], h)
    for index, size in [(0, 0), (1, 0), (2, 1), (1, 1)]:
        assert not verify_inclusion(h, index, size, [], h)


# --- the incremental tree against the naive reference -----------------------------------


def test_roots_match_reference_for_sizes_0_to_70_and_larger():
    for size in [*range(71), 127, 128, 129, 511, 512, 513, 1000, 1023, 1024, 1025, BIG_N]:
        assert root(size, BIG_STORE) == ref_mth(0, size), size


def test_all_inclusion_proofs_match_reference_up_to_70():
    for size in range(1, 71):
        r = ref_mth(0, size)
        for index in range(size):
            proof = inclusion_proof(index, size, BIG_STORE)
            assert proof == ref_path(index, 0, size), (index, size)
            assert verify_inclusion(leaf_hash(BIG_LEAVES[index]), index, size, proof, r)


def test_all_consistency_proofs_match_reference_up_to_70():
    for new in range(0, 71):
        for old in range(0, new + 1):
            proof = consistency_proof(old, new, BIG_STORE)
            assert proof == ref_consistency(old, new), (old, new)
            assert verify_consistency(old, new, ref_mth(0, old), ref_mth(0, new), proof)


def test_larger_proofs_match_reference():
    for size in (1000, 1023, 1024, 1025, BIG_N):
        for index in (0, 1, size // 3, size - 2, size - 1):
            assert inclusion_proof(index, size, BIG_STORE) == ref_path(index, 0, size)
        for old in (1, 2, 511, 512, 513, size - 1, size):
            assert consistency_proof(old, size, BIG_STORE) == ref_consistency(old, size)


def test_nodes_to_store_on_append_completes_exactly_the_perfect_subtrees():
    store = MemoryNodeStore()
    for i in range(40):
        new = nodes_to_store_on_append(i, leaf_hash(BIG_LEAVES[i]), store)
        # the leaf plus one node per trailing 1 bit of i
        trailing_ones = (i ^ (i + 1)).bit_length() - 1
        assert [(lvl, idx) for lvl, idx, _ in new] == [(lvl, i >> lvl) for lvl in range(trailing_ones + 1)]
        for lvl, idx, h in new:
            assert h == ref_mth(idx << lvl, (idx + 1) << lvl)
        store.append(BIG_LEAVES[i])


def test_frontier_keeps_one_node_per_level_and_matches_roots():
    frontier = MerkleFrontier()
    assert frontier.root() == EMPTY_ROOT
    for i in range(300):
        assert frontier.append(BIG_LEAVES[i]) == leaf_hash(BIG_LEAVES[i])
        assert frontier.root() == ref_mth(0, i + 1)
        assert len(frontier._peaks) == bin(i + 1).count("1")


# --- O(log n): count the reads on a huge, synthetic tree ---------------------------------


class CountingReader:
    """Answers any node with a made-up hash; only the number of reads matters here."""

    def __init__(self) -> None:
        self.reads = 0

    def get_node(self, level: int, index: int) -> bytes:
        self.reads += 1
        return hashlib.sha256(f"{level}/{index}".encode()).digest()


@pytest.mark.parametrize("size", [10**3, 10**6, 2**40 - 1, 2**40 + 1, 3 * 2**50 + 12345])
def test_reads_grow_with_log_n(size):
    bound = 2 * size.bit_length() + 2
    reader = CountingReader()
    root(size, reader)
    assert reader.reads <= size.bit_length()
    for index in (0, size // 2, size - 1):
        reader = CountingReader()
        proof = inclusion_proof(index, size, reader)
        assert len(proof) <= size.bit_length() and reader.reads <= bound
    for old in (1, size // 3, size - 1):
        reader = CountingReader()
        proof = consistency_proof(old, size, reader)
        assert len(proof) <= 2 * size.bit_length() and reader.reads <= bound
    reader = CountingReader()
    nodes_to_store_on_append(size, bytes(32), reader)
    assert reader.reads <= size.bit_length()


# --- preconditions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda: root(-1, CT_STORE),
        lambda: inclusion_proof(8, 8, CT_STORE),
        lambda: inclusion_proof(-1, 8, CT_STORE),
        lambda: inclusion_proof(0, 0, CT_STORE),
        lambda: consistency_proof(5, 4, CT_STORE),
        lambda: consistency_proof(-1, 4, CT_STORE),
        lambda: nodes_to_store_on_append(-1, bytes(32), CT_STORE),
        lambda: nodes_to_store_on_append(0, b"short", CT_STORE),
        lambda: verify_inclusion(bytes(32), -1, 1, [], bytes(32)),
        lambda: verify_consistency(True, 2, bytes(32), bytes(32), []),
    ],
)
def test_violated_preconditions_raise_value_error(call):
    with pytest.raises(ValueError):
        call()


def test_missing_node_is_a_lookup_error():
    with pytest.raises(LookupError):
        root(9, CT_STORE)


# --- properties -------------------------------------------------------------------------


def _flip(data: bytes, bit: int) -> bytes:
    bit %= len(data) * 8
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@st.composite
def index_and_size(draw):
    size = draw(st.integers(min_value=1, max_value=BIG_N))
    return draw(st.integers(min_value=0, max_value=size - 1)), size


@st.composite
def old_and_new_size(draw):
    new = draw(st.integers(min_value=1, max_value=BIG_N))
    return draw(st.integers(min_value=1, max_value=new)), new


@settings(max_examples=300, deadline=None)
@given(index_and_size(), st.integers(min_value=0, max_value=255), st.data())
def test_inclusion_proof_verifies_and_any_bit_flip_fails(case, bit, data):
    index, size = case
    leaf, proof, r = leaf_hash(BIG_LEAVES[index]), inclusion_proof(index, size, BIG_STORE), root(size, BIG_STORE)
    assert verify_inclusion(leaf, index, size, proof, r)
    assert not verify_inclusion(_flip(leaf, bit), index, size, proof, r)
    assert not verify_inclusion(leaf, index, size, proof, _flip(r, bit))
    if proof:
        i = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
        bad = [*proof[:i], _flip(proof[i], bit), *proof[i + 1 :]]
        assert not verify_inclusion(leaf, index, size, bad, r)


@settings(max_examples=300, deadline=None)
@given(old_and_new_size(), st.integers(min_value=0, max_value=255), st.data())
def test_consistency_proof_verifies_and_any_bit_flip_fails(case, bit, data):
    old, new = case
    proof = consistency_proof(old, new, BIG_STORE)
    r1, r2 = root(old, BIG_STORE), root(new, BIG_STORE)
    assert verify_consistency(old, new, r1, r2, proof)
    assert not verify_consistency(old, new, _flip(r1, bit), r2, proof)
    assert not verify_consistency(old, new, r1, _flip(r2, bit), proof)
    if proof:
        i = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
        bad = [*proof[:i], _flip(proof[i], bit), *proof[i + 1 :]]
        assert not verify_consistency(old, new, r1, r2, bad)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=40), min_size=1, max_size=60), st.data())
def test_flipping_a_bit_of_leaf_data_changes_root_and_breaks_its_proof(leaves, data):
    store = _store_of(leaves)
    size = len(leaves)
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    r = root(size, store)
    proof = inclusion_proof(index, size, store)
    tampered_leaf = leaves[index] + b"\x00" if not leaves[index] else _flip(leaves[index], data.draw(st.integers(0, 10**6)))
    assert not verify_inclusion(leaf_hash(tampered_leaf), index, size, proof, r)
    tampered = _store_of([*leaves[:index], tampered_leaf, *leaves[index + 1 :]])
    assert root(size, tampered) != r


def test_node_hash_is_domain_separated_from_leaf_hash():
    # A two-leaf root must not equal the leaf hash of the concatenated children.
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert node_hash(a, b) != leaf_hash(a + b)


@pytest.mark.parametrize("count", [1, 2, 4, 8, 16])
def test_perfect_root_equals_the_stored_perfect_node(count: int) -> None:
    store = MemoryNodeStore()
    hashes = [leaf_hash(bytes([i])) for i in range(count)]
    for h in hashes:
        store.append_leaf_hash(h)
    assert perfect_root(hashes) == store.get_node(count.bit_length() - 1, 0) == root(count, store)


@pytest.mark.parametrize("count", [0, 3, 6])
def test_perfect_root_refuses_a_count_that_is_not_a_power_of_two(count: int) -> None:
    with pytest.raises(ValueError, match="power-of-two"):
        perfect_root([leaf_hash(b"x")] * count)
