"""The append path's leaf encoder and right-edge bookkeeping agree with the reference ones."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from privet.governance.audit.leaf import EventRecord, canonical_json, encode_leaf, encode_leaf_fast
from privet.governance.audit.log import AuditLog, Event, frontier_keys
from privet.governance.audit.merkle import MemoryNodeStore, MerkleFrontier, root

text = st.text(max_size=30)
details = st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**63) | text, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3), max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(seq=st.integers(0, 2**40), time_us=st.integers(0, 2**62), principal=text, action=text, resource=text, decision=text, policy_ids=st.lists(text, max_size=3), d=st.dictionaries(text, details, max_size=4))
def test_fast_encoder_is_byte_identical(seq, time_us, principal, action, resource, decision, policy_ids, d) -> None:  # type: ignore[no-untyped-def]
    record = EventRecord(seq, time_us, principal, action, resource, decision, tuple(policy_ids), d)
    assert encode_leaf_fast(seq, time_us, principal, action, resource, decision, tuple(policy_ids), canonical_json(d)) == encode_leaf(record)


def test_right_edge_stays_exactly_the_frontier_and_roots_match() -> None:
    log = AuditLog()
    log._edge = MerkleFrontier()  # an empty log, as a begin() on an empty database leaves it
    memory = MemoryNodeStore()
    for n in range(1, 300):
        log.append(Event("user/a", "x", "r", "allow", details={"n": n}))
        memory.append(log._events[-1]["leaf"])
        assert log._edge.keys() == frontier_keys(n)
        assert root(n, log) == root(n, memory)
