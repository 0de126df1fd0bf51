"""t-closeness: Earth Mover's Distance as Li et al. (2007) define it, worked by hand; the
fast per-class distances against a plain one; and k-anonymity with t, checked class by
class against the whole table's distribution."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pyarrow as pa
import pytest

from privet.governance.errors import FailedPrecondition, InvalidArgument
from privet.governance.masking import Hierarchy, MaskingKeys, apply_profile, k_anonymise, parse_profile
from privet.governance.masking.closeness import SensitiveDistribution, earth_movers_distance

KEYS = MaskingKeys.derive(b"test-secret-of-32-bytes-at-least!", key_id="test/v1")
SALARIES = [3, 4, 5, 6, 7, 8, 9, 10, 11]  # thousands, the paper's example


def _distribution(values: list[int], domain: list[int]) -> list[float]:
    return [values.count(v) / len(values) for v in domain]


def test_ordered_emd_of_the_papers_example():
    # Whole table: one of each salary 3k..11k. Class {3k, 4k, 5k}: the cumulative
    # differences are 2/9, 4/9, 6/9, 5/9, 4/9, 3/9, 2/9, 1/9 (and 0): sum 27/9, over m-1 = 8.
    q = _distribution(SALARIES, SALARIES)
    assert earth_movers_distance(_distribution([3, 4, 5], SALARIES), q, ordered=True) == pytest.approx(0.375)
    # Class {6k, 8k, 11k}: cumulative differences −1/9, −2/9, −3/9, −1/9, −2/9, 0, −1/9, −2/9:
    # 12/9 over 8 = 1/6, the paper's 0.167.
    assert earth_movers_distance(_distribution([6, 8, 11], SALARIES), q, ordered=True) == pytest.approx(1 / 6)


def test_categorical_emd_is_half_the_l1_distance():
    # {flu, flu, asthma, asthma} against thirds of flu, asthma, none: ½ (1/6 + 1/6 + 1/3) = 1/3.
    assert earth_movers_distance([0.5, 0.5, 0.0], [1 / 3] * 3, ordered=False) == pytest.approx(1 / 3)
    assert earth_movers_distance([1.0, 0.0, 0.0], [1 / 3] * 3, ordered=False) == pytest.approx(2 / 3)
    assert earth_movers_distance([1.0], [1.0], ordered=True) == 0.0


def test_per_class_distances_match_the_plain_ones():
    rng = np.random.default_rng(4)
    for ordered in (True, False):
        values = rng.integers(0, 7, 500)
        column = pa.array([None if v == 6 else (int(v) if ordered else f"v{v}") for v in values])
        classes = rng.integers(0, 25, 500).astype(np.int64)
        sd = SensitiveDistribution.of(column)
        assert sd.ordered is ordered and len(sd.overall) == 7  # null counts as one more value
        fast = sd.distances(classes, 25)
        for c in range(25):
            p = np.bincount(sd.codes[classes == c], minlength=7) / (classes == c).sum()
            assert fast[c] == pytest.approx(earth_movers_distance(p, sd.overall, ordered=ordered), abs=1e-12)


def test_per_class_distances_of_the_papers_example():
    column = pa.array(SALARIES)
    classes = np.array([0, 0, 0, 1, 2, 1, 2, 2, 1], dtype=np.int64)  # {3,4,5}, {6,8,11}, {7,9,10}
    got = SensitiveDistribution.of(column).distances(classes, 3)
    np.testing.assert_allclose(got[:2], [0.375, 1 / 6])


def _people(n: int = 1500, seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 91, n)
    # Salary rises with age, so grouping by age bands skews each class's salaries.
    salary = (age * 700 + rng.integers(0, 20_000, n)) // 1000
    return pa.table({"age": age, "zip": [f"{z:05d}" for z in rng.integers(0, 100_000, n)], "salary": salary,
                     "diagnosis": rng.choice(["flu", "asthma", "none", "diabetes"], n, p=[.1, .2, .6, .1])})


def _class_distances(out: pa.Table, whole: pa.Table, sensitive: str, ordered: bool) -> list[float]:
    """Each released class's distance from the whole input table's distribution, by hand."""
    domain = sorted(set(whole.column(sensitive).to_pylist()))
    q = _distribution(whole.column(sensitive).to_pylist(), domain)
    classes: dict[tuple[object, ...], list[object]] = defaultdict(list)
    for row in out.to_pylist():
        classes[(row["age"], row["zip"])].append(row[sensitive])
    return [earth_movers_distance(_distribution(v, domain), q, ordered=ordered) for v in classes.values()]


@pytest.mark.parametrize(("sensitive", "ordered", "t"), [("salary", True, 0.15), ("diagnosis", False, 0.2)])
def test_every_released_class_is_t_close(sensitive, ordered, t):
    table = _people()
    hierarchies = {"age": Hierarchy("auto"), "zip": Hierarchy("auto")}
    out, report = k_anonymise(table, hierarchies, 5, sensitive=sensitive, t=t)
    distances = _class_distances(out, table, sensitive, ordered)
    assert max(distances) <= t + 1e-9
    assert report.max_distance == pytest.approx(max(distances), abs=1e-6) and report.t_closeness == t
    assert report.suppressed_rows <= 0.05 * table.num_rows
    # Without t the same search releases classes farther from the table than t.
    _, free = k_anonymise(table, hierarchies, 5, sensitive=sensitive)
    assert free.max_distance is not None and free.max_distance > t
    assert report.information_loss >= free.information_loss


def test_t_closeness_through_the_profile():
    table = _people()
    profile = parse_profile({"rules": [{"column": "salary", "action": "keep"}, {"column": "diagnosis", "action": "keep"}],
                             "t_closeness": 0.2})
    _, report = apply_profile(table, profile, KEYS, quasi_identifiers=["age", "zip"], k=5,
                              l_diversity=("diagnosis", 1))
    kr = report.k_anonymity
    assert kr is not None and kr.t_closeness == 0.2 and kr.max_distance is not None and kr.max_distance <= 0.2


def test_t_closeness_needs_a_sensitive_column_and_a_sane_t():
    table = _people(50)
    for kwargs in ({"t": 0.2}, {"t": 0.0, "sensitive": "salary"}, {"t": 1.5, "sensitive": "salary"}):
        with pytest.raises(InvalidArgument) as err:
            k_anonymise(table, {"age": Hierarchy("auto")}, 2, **kwargs)
        assert err.value.field == "t_closeness"


def test_t_makes_the_search_climb_until_classes_are_close():
    # Two people, two diagnoses: kept apart, each class is ½ from the table; together, 0.
    table = pa.table({"age": [30, 40], "diagnosis": ["flu", "none"]})
    out, report = k_anonymise(table, {"age": Hierarchy("suppress")}, 1, sensitive="diagnosis", t=0.1,
                              max_suppression=0)
    assert report.levels == {"age": "*"} and report.max_distance == 0.0 and out.num_rows == 2
    with pytest.raises(FailedPrecondition, match="0.1-close"):
        k_anonymise(table, {"age": Hierarchy("suppress")}, 3, sensitive="diagnosis", t=0.1, max_suppression=0)
