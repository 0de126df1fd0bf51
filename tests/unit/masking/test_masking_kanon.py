"""k-anonymity: the result is k-anonymous, suppression stays in bound, and the chosen
generalisation is the least lossy, checked against a naive search written plainly."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pyarrow as pa
import pytest

from privet.governance.errors import FailedPrecondition, InvalidArgument
from privet.governance.masking import Hierarchy, is_k_anonymous, k_anonymise, plan_k_anonymity
from privet.governance.masking.hierarchy_defaults import derive_hierarchies

HIERARCHIES = {
    "age": Hierarchy.parse({"bins": [5, 10, 20]}, "age"),
    "zip": Hierarchy.parse({"prefix": [4, 3, 2]}, "zip"),
    "dob": Hierarchy.parse({"date": ["month", "year"]}, "dob"),
    "gender": Hierarchy.parse({"suppress": True}, "gender"),
}


def _table(pii_faker, n: int, seed: int = 1) -> pa.Table:
    f = pii_faker.faker("en_US")
    rng = np.random.default_rng(seed)
    return pa.table({
        "id": list(range(n)),
        "age": rng.integers(18, 90, n),
        "zip": [f"{z:05d}" for z in rng.integers(10000, 10600, n)],
        "dob": [f.date_of_birth(minimum_age=18, maximum_age=90).isoformat() for _ in range(n)],
        "gender": rng.choice(["F", "M", "X"], n, p=[0.49, 0.49, 0.02]),
        "diagnosis": rng.choice(["flu", "asthma", "diabetes", "none"], n),
    })


@pytest.mark.parametrize(("k", "l", "bound"), [(2, 1, 0.0), (5, 1, 0.05), (10, 2, 0.02), (25, 3, 0.1)])
def test_result_is_k_anonymous_within_the_suppression_bound(pii_faker, k, l, bound):
    table = _table(pii_faker, 3000)
    sensitive = "diagnosis" if l > 1 else None
    out, report = k_anonymise(table, HIERARCHIES, k, max_suppression=bound, sensitive=sensitive, l=l)
    assert is_k_anonymous(out, list(HIERARCHIES), k, sensitive=sensitive, l=l)
    assert report.rows_in == 3000 and report.rows_out == out.num_rows
    assert report.suppressed_rows == 3000 - out.num_rows <= bound * 3000
    assert report.smallest_class >= k
    assert set(report.levels) == set(HIERARCHIES)
    assert 0 <= report.ncp <= report.information_loss <= 1
    assert out.column("id").to_pylist() == sorted(out.column("id").to_pylist())  # order kept


def _naive_loss(table: pa.Table, node: dict[str, int], k: int, bound: float,
                hierarchies: dict[str, Hierarchy] = HIERARCHIES) -> float | None:
    """Loss of one node computed row by row, without any of the fast path's machinery."""
    n = table.num_rows
    gen = {q: (table.column(q).to_pylist() if lv == 0 else hierarchies[q].generalise(table.column(q), lv).to_pylist())
           for q, lv in node.items()}
    ncp = {q: hierarchies[q].ncp(table.column(q), lv) for q, lv in node.items()}
    keys = list(zip(*(gen[q] for q in node)))
    sizes = Counter(keys)
    kept = [sizes[key] >= k for key in keys]
    suppressed = kept.count(False)
    if suppressed > bound * n:
        return None
    penalty = sum(ncp[q][i] for q in node for i in range(n) if kept[i])
    return (penalty + suppressed * len(node)) / (n * len(node))


def test_chosen_node_is_the_least_lossy(pii_faker):
    table = _table(pii_faker, 400, seed=7)
    qis = {q: HIERARCHIES[q] for q in ("age", "zip", "gender")}
    _, report = k_anonymise(table, qis, 4, max_suppression=0.05, local_recoding=False)
    losses = {}
    for levels in itertools.product(*(range(len(h.labels)) for h in qis.values())):
        node = dict(zip(qis, levels))
        loss = _naive_loss(table, node, 4, 0.05)
        if loss is not None:
            losses[levels] = loss
    best = min(losses.values())
    assert report.information_loss == pytest.approx(best, abs=1e-6)
    chosen = tuple(qis[q].labels.index(report.levels[q]) for q in qis)
    assert losses[chosen] == pytest.approx(best, abs=1e-6)
    assert report.nodes_evaluated <= report.lattice_size


def test_derived_hierarchies_lose_no_better_node(pii_faker):
    """The search drops derived levels that cannot pass alone and thins the rest to fit
    the lattice budget: on a lattice within budget, it still finds the naive optimum
    over every derived level."""
    table = _table(pii_faker, 400, seed=11).select(["age", "zip", "dob"])
    full = derive_hierarchies(table, {q: Hierarchy.parse({"auto": True}, q) for q in table.column_names})
    _, report = k_anonymise(table, {q: Hierarchy("auto") for q in table.column_names}, 3, max_suppression=0.05,
                            local_recoding=False)
    losses = {}
    for levels in itertools.product(*(range(len(h.labels)) for h in full.values())):
        loss = _naive_loss(table, dict(zip(full, levels)), 3, 0.05, full)
        if loss is not None:
            losses[levels] = loss
    assert report.information_loss == pytest.approx(min(losses.values()), abs=1e-6)


def test_no_feasible_generalisation_is_a_failed_precondition(pii_faker):
    table = _table(pii_faker, 8)
    with pytest.raises(FailedPrecondition, match="10-anonymous"):
        k_anonymise(table, HIERARCHIES, 10, max_suppression=0.0)
    single = pa.table({"age": [30, 31, 32], "diagnosis": ["flu", "flu", "flu"]})
    with pytest.raises(FailedPrecondition, match="2-diverse"):
        k_anonymise(single, {"age": HIERARCHIES["age"]}, 2, sensitive="diagnosis", l=2, max_suppression=0.5)


def test_k_of_one_changes_nothing(pii_faker):
    table = _table(pii_faker, 50)
    out, report = k_anonymise(table, HIERARCHIES, 1)
    assert out.equals(table) and report.suppressed_rows == 0


@pytest.mark.parametrize(("spec", "field"), [
    ({"bins": [10, 5]}, "qi.bins"),
    ({"bins": []}, "qi.bins"),
    ({"prefix": [2, 3]}, "qi.prefix"),
    ({"date": ["year", "month"]}, "qi.date"),
    ({"date": ["week"]}, "qi.date"),
    ({"suppress": "yes"}, "qi.suppress"),
    ({"buckets": [1]}, "qi"),
    ({"bins": [5], "prefix": [2]}, "qi"),
])
def test_bad_hierarchies_name_the_field(spec, field):
    with pytest.raises(InvalidArgument) as err:
        Hierarchy.parse(spec, "qi")
    assert err.value.field == field


def test_bad_arguments(pii_faker):
    table = _table(pii_faker, 20)
    with pytest.raises(InvalidArgument, match="k"):
        k_anonymise(table, HIERARCHIES, 0)
    with pytest.raises(InvalidArgument) as err:
        k_anonymise(table, {"nope": HIERARCHIES["age"]}, 2)
    assert err.value.field == "quasi_identifiers"
    with pytest.raises(InvalidArgument) as err:
        k_anonymise(table, HIERARCHIES, 2, sensitive="age", l=2)
    assert err.value.field == "l_diversity"


def test_is_k_anonymous_detects_small_classes():
    table = pa.table({"a": [1, 1, 2], "s": ["x", "y", "x"]})
    assert not is_k_anonymous(table, ["a"], 2)
    assert is_k_anonymous(table.slice(0, 2), ["a"], 2, sensitive="s", l=2)
    assert not is_k_anonymous(table.slice(0, 2), ["a"], 2, sensitive="s", l=3)


def test_plan_on_quasi_identifiers_then_apply_per_batch(pii_faker):
    table = _table(pii_faker, 1000, seed=3)
    whole, report = k_anonymise(table, HIERARCHIES, 5, max_suppression=0.05)
    plan = plan_k_anonymity(table.select(list(HIERARCHIES)), HIERARCHIES, 5, max_suppression=0.05)
    assert plan.report == report
    parts, offset = [], 0
    for batch in table.to_batches(max_chunksize=300):
        parts.append(plan.apply(batch, offset))
        offset += batch.num_rows
    assert pa.concat_tables(parts).equals(whole)
    with pytest.raises(InvalidArgument) as err:
        plan.apply(table.slice(0, 10), offset=995)
    assert err.value.field == "offset"
