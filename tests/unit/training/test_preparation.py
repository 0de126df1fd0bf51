"""prepare_data and the DP statistics behind it: nothing exact about the rows is published."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pytest

from privet.governance.errors import InvalidArgument
from privet.governance.privacy.dp_statistics import (
    QUANTILE_GRID,
    exponential_quantile,
    laplace,
    laplace_partition_selection,
    noisy_histogram,
    partition_threshold,
)
from privet.governance.privacy.plan import COUNT_SHARE, EVALUATION_SHARE, PREPROCESSING_SHARE, plan_job
from privet.governance.privacy.secure_random import SecureRandom
from privet.governance.training.preparation import PreparationRefused, prepare_data
from privet.services.training.evaluation import BINS, metrics_from_histogram

ROWS = 3000


def _table(rows: int = ROWS) -> pa.Table:
    rng = np.random.default_rng(1)
    plans = rng.choice(["basic", "plus", "pro"], size=rows).astype(object)
    plans[17] = "hiv-clinic-referral"  # one row's category
    age = rng.integers(18, 90, size=rows)
    return pa.table(
        {
            "age": pa.array(age),
            "spend": pa.array(rng.gamma(2.0, 40.0, size=rows)),
            "plan": pa.array(plans.tolist()),
            "label": pa.array((age > 50).astype(np.int64)),
        }
    )


SPEC = {"features": ["age", "spend", "plan"], "target": "label", "arch": "mlp", "target_epsilon": 3.0, "delta": 1e-5}


def test_a_category_held_by_one_row_and_the_exact_statistics_never_reach_the_model() -> None:
    table = _table()
    data = prepare_data(table, SPEC)
    meta = json.dumps({"pre": data.preprocessor.to_metadata(), "labels": data.labels.to_metadata()})
    assert "hiv-clinic-referral" not in meta
    columns = {c["name"]: c for c in data.preprocessor.to_metadata()["columns"]}
    assert columns["plan"]["vocabulary"] == ["basic", "plus", "pro"] and columns["plan"]["source"] == "dp"
    for name in ("age", "spend"):
        values = table.column(name).to_numpy().astype(float)
        c = columns[name]
        assert c["source"] == "dp" and "mean" not in c and "std" not in c
        # DP bounds are points of the public grid, not the column's exact quantiles or extremes.
        assert c["lower"] in QUANTILE_GRID and c["upper"] in QUANTILE_GRID
        assert c["lower"] not in (values.min(), values.max(), values.mean())
        # ... and still near the 5th and 95th percentiles (ε 0.075 each, 3,000 rows).
        assert np.quantile(values, 0.01) <= c["upper"] and c["lower"] <= np.quantile(values, 0.3)
    assert data.labels.classes == (0, 1)
    purposes = sorted(r.purpose for r in data.releases)
    assert purposes == ["classes:label", "domain:plan", "rows", "scale:age", "scale:spend"]
    assert math.isclose(sum(r.epsilon for r in data.releases), (PREPROCESSING_SHARE + COUNT_SHARE) * 3.0)
    # The sampling rate is set from a DP count of the training rows, not the exact one.
    assert data.public_rows > 0 and abs(data.public_rows - data.n_train) < 200
    assert data.plan.release("evaluation").epsilon == pytest.approx(EVALUATION_SHARE * 3.0)


def test_declared_parameters_are_used_as_declared_and_cost_nothing() -> None:
    spec = SPEC | {"feature_bounds": {"age": [0, 120], "spend": [0, 1000]}, "categories": {"plan": ["basic", "plus", "pro", "gold"]}, "classes": [0, 1]}
    data = prepare_data(_table(), spec)
    assert [r.purpose for r in data.releases] == ["rows"]
    assert data.plan.sgd_epsilon == pytest.approx(3.0 * (1 - EVALUATION_SHARE - COUNT_SHARE)) and data.plan.sgd_delta == 1e-5
    columns = {c["name"]: c for c in data.preprocessor.to_metadata()["columns"]}
    assert (columns["age"]["lower"], columns["age"]["upper"], columns["age"]["source"]) == (0.0, 120.0, "declared")
    assert columns["plan"]["vocabulary"] == ["basic", "gold", "plus", "pro"]


def test_the_split_is_a_secret_coin_per_row() -> None:
    """Each row is held out with probability 0.2 on its own coin: the split's size is
    binomial and two preparations of the same table split it differently."""
    spec = SPEC | {"feature_bounds": {"age": [0, 120], "spend": [0, 1000]}, "categories": {"plan": ["basic"]}, "classes": [0, 1]}
    a, b = (prepare_data(_table(), spec) for _ in range(2))
    n_valid = a.tensors["x_valid"].shape[0]
    assert abs(n_valid - 0.2 * ROWS) < 5 * math.sqrt(ROWS * 0.16)
    assert a.n_train + n_valid == ROWS
    assert not np.array_equal(a.tensors["x_train"][:50].numpy(), b.tensors["x_train"][:50].numpy())


def test_too_few_classes_after_selection_is_refused_and_carries_its_releases() -> None:
    table = _table(200).set_column(3, "label", pa.array([0] * 199 + [1]))
    with pytest.raises(PreparationRefused) as caught:
        prepare_data(table, SPEC)
    assert caught.value.field == "label" and "declare them" in caught.value.message
    assert {r.purpose for r in caught.value.releases} >= {"classes:label"}


def test_bad_target_is_refused_before_any_release() -> None:
    table = _table(50).set_column(3, "label", pa.array([1] * 50, pa.timestamp("s")))  # neither numbers nor text
    with pytest.raises(InvalidArgument) as caught:
        prepare_data(table, SPEC)
    assert not isinstance(caught.value, PreparationRefused) and caught.value.field == "label"


# -- the mechanisms ----------------------------------------------------------------------


def test_partition_selection_keeps_frequent_values_and_drops_a_singleton() -> None:
    random = SecureRandom()
    tau = partition_threshold(1.0, 1e-6)
    assert tau == pytest.approx(1 + math.log(1 / 2e-6))
    kept = [laplace_partition_selection({"common": 500, "single": 1}, epsilon=1.0, delta=1e-6, random=random) for _ in range(200)]
    assert all(k == ["common"] for k in kept)


def test_quantile_is_near_the_truth_with_enough_rows_and_ignores_nan() -> None:
    values = np.concatenate((np.random.default_rng(0).normal(100.0, 10.0, 20_000), [np.nan] * 10))
    q = exponential_quantile(values, 0.5, epsilon=1.0, random=SecureRandom())
    assert 90 < q < 110 and q in QUANTILE_GRID


def test_laplace_and_histogram_noise_have_their_scale() -> None:
    draws = laplace(2.0, 200_000, SecureRandom())
    assert abs(draws.mean()) < 0.05 and np.std(draws) == pytest.approx(2.0 * math.sqrt(2), rel=0.02)
    noisy = noisy_histogram(np.full((2, 5), 100.0), epsilon=0.5, random=SecureRandom())
    assert noisy.shape == (2, 5) and (noisy >= 0).all() and not np.array_equal(noisy, np.full((2, 5), 100.0))


def test_the_plan_divides_the_target_exactly() -> None:
    plan = plan_job(target_epsilon=2.0, delta=1e-6, scaled_columns=["a"], selected_columns=["b", "c"], select_classes_of="y")
    assert plan.sgd_epsilon + sum(r.epsilon for r in plan.releases) == pytest.approx(2.0)
    assert plan.sgd_delta + sum(r.delta for r in plan.releases) == pytest.approx(1e-6)
    assert [r.delta > 0 for r in plan.releases if r.purpose.startswith(("domain", "classes"))] == [True] * 3


def test_metrics_from_an_exact_histogram_are_the_exact_metrics() -> None:
    """The post-processing is right: on noiseless counts it gives the true accuracy,
    baseline and binned AUC."""
    hist = np.zeros((2, BINS))
    hist[0, 0], hist[0, BINS - 2] = 30, 10  # 40 negatives, 10 scored above 0.5
    hist[1, BINS - 1], hist[1, 1] = 50, 10  # 60 positives, 10 scored below 0.5
    m = metrics_from_histogram(hist)
    assert m.accuracy_noise == 0 and m.examples == 100 and m.accuracy == pytest.approx(0.8) and m.baseline_accuracy == pytest.approx(0.6)
    # P(pos > neg): the top bin's positives beat all 40 negatives; bin 1's beat the 30 at bin 0.
    assert m.roc_auc == pytest.approx((50 * 40 + 10 * 30) / (60 * 40), abs=1e-4)  # published to 4 decimals
    three = metrics_from_histogram(np.array([[5.0, 1, 0], [0, 4, 0], [2, 0, 8]]))
    assert three.accuracy == pytest.approx(17 / 20) and three.roc_auc is None and three.loss is None
    assert metrics_from_histogram(np.array([[1.0, 2], [0, 3]]) / 3).accuracy == 0.6667  # never full precision


def test_a_person_key_keeps_one_row_per_person_chosen_in_secret() -> None:
    """Person-level privacy: each person contributes one row (picked by a secret coin among
    theirs) to every statistic and to DP-SGD; rows with no key are dropped."""
    from privet.governance.training.preparation import one_row_per_person

    table = _table(600)
    people = [f"p{i % 100}" for i in range(590)] + [None] * 10  # 100 people, ~6 rows each
    table = table.append_column("customer", pa.array(people))
    spec = SPEC | {"person_key": "customer", "feature_bounds": {"age": [0, 120], "spend": [0, 1000]}, "categories": {"plan": ["basic"]}, "classes": [0, 1]}
    data = prepare_data(table, spec)
    assert data.n_train + data.tensors["x_valid"].shape[0] == 100
    kept = [one_row_per_person(table, "customer", SecureRandom()) for _ in range(2)]
    assert all(sorted(k.column("customer").to_pylist()) == sorted({p for p in people if p}) for k in kept)
    assert kept[0].column("age").to_pylist() != kept[1].column("age").to_pylist()  # the choice is random
    with pytest.raises(InvalidArgument) as caught:
        one_row_per_person(table, "nobody", SecureRandom())
    assert caught.value.field == "person_key"


def test_rows_without_a_usable_label_are_left_out_not_refused() -> None:
    """A missing or fractional target in one row used to refuse the whole job with an exact
    count ("1 rows have no target value"): whether that row exists is private."""
    table = _table(400)
    labels = table.column("label").to_pylist()
    labels[5], labels[9] = None, None
    table = table.set_column(3, "label", pa.array([None if v is None else float(v) for v in labels[:-1]] + [0.5]))
    spec = SPEC | {"feature_bounds": {"age": [0, 120], "spend": [0, 1000]}, "categories": {"plan": ["basic"]}, "classes": [0, 1]}
    data = prepare_data(table, spec)
    assert data.n_train + data.tensors["x_valid"].shape[0] == 397


def test_everything_refused_after_a_release_carries_the_releases() -> None:
    """More categories survive selection than a model may take: refused, and charged."""
    rows = 40_000
    table = pa.table({"code": pa.array([f"c{i % 1200}" for i in range(rows)]), "label": pa.array([i % 2 for i in range(rows)])})
    spec = {"features": ["code"], "target": "label", "arch": "mlp", "target_epsilon": 50.0, "delta": 1e-5, "classes": [0, 1]}
    with pytest.raises(PreparationRefused) as caught:
        prepare_data(table, spec)
    assert caught.value.field == "code" and {r.purpose for r in caught.value.releases} == {"domain:code"}


def test_an_unsupported_feature_is_refused_before_anything_is_spent() -> None:
    table = _table(50).append_column("when", pa.array(list(range(50)), pa.timestamp("s")))
    with pytest.raises(InvalidArgument) as caught:
        prepare_data(table, SPEC | {"features": ["age", "when"]})
    assert not isinstance(caught.value, PreparationRefused) and caught.value.field == "when"


def test_one_huge_value_cannot_crash_a_job() -> None:
    """An integer past 2⁵³ in the target or a feature made the float cast fail: the job
    crashed uncharged, and whether it crashed told whether such a row existed."""
    table = _table(300)
    table = table.set_column(0, "age", pa.array([2**60] + table.column("age").to_pylist()[1:], pa.int64()))
    table = table.set_column(3, "label", pa.array([2**62] + table.column("label").to_pylist()[1:], pa.int64()))
    data = prepare_data(table, SPEC | {"classes": [0, 1]})
    assert data.n_train + data.tensors["x_valid"].shape[0] == 299  # the huge label is not a class
