"""k-anonymity that keeps information: with hierarchies derived from the data, k = 5 and
k = 10 keep age bands and a zip prefix where the old levels wiped a column to `*`; local
recoding releases outliers at a coarser level instead of suppressing them; the loss is
reported per column."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from privet.governance.masking import Hierarchy, MaskingKeys, apply_profile, is_k_anonymous, k_anonymise, parse_profile
from privet.governance.masking.kanon import plan_k_anonymity

KEYS = MaskingKeys.derive(b"test-secret-of-32-bytes-at-least!", key_id="test/v1")
AUTO = {"age": Hierarchy("auto"), "zip": Hierarchy("auto")}
# What policies/masking/default.yaml gave before: zip stops at two digits, age at 20 years.
OLD_DEFAULT = {"age": Hierarchy.parse({"bins": [5, 10, 20]}, "age"), "zip": Hierarchy.parse({"prefix": [4, 3, 2]}, "zip")}


def _people(n: int = 2000, seed: int = 5) -> pa.Table:
    """Ages 18-90 and 5-digit zips, one in ten with a leading zero, as strings."""
    rng = np.random.default_rng(seed)
    return pa.table({"id": np.arange(n), "age": rng.integers(18, 91, n),
                     "zip": [f"{z:05d}" for z in rng.integers(0, 100_000, n)]})


@pytest.mark.parametrize("k", [5, 10])
@pytest.mark.parametrize("seed", [5, 6])
def test_derived_hierarchies_keep_age_bands_and_a_zip_prefix(k, seed):
    table = _people(seed=seed)
    out, report = k_anonymise(table, AUTO, k)
    assert is_k_anonymous(out, ["age", "zip"], k)
    assert report.suppressed_rows <= 0.05 * table.num_rows
    assert report.levels["age"] in ("bins:5", "bins:10")   # at most 10-year bands
    assert report.levels["zip"] == "prefix:1"                # the first digit, leading zero kept
    assert any(z.startswith("0") for z in out.column("zip").to_pylist())
    _, old = k_anonymise(table, OLD_DEFAULT, k)
    assert "*" in old.levels.values() and old.information_loss >= 0.5  # the old levels wipe a column
    # All-`*` loses 1; the new loss is under a third of the old (a quarter, per the issue, give or take).
    assert report.information_loss < 0.2 and report.information_loss < old.information_loss / 3


def test_a_profile_without_hierarchies_derives_them(pii_faker):
    table = _people().drop_columns(["id"])
    masked, report = apply_profile(table, parse_profile({}), KEYS, quasi_identifiers=["age", "zip"], k=10)
    kr = report.k_anonymity
    assert kr is not None and "*" not in kr.levels.values() and is_k_anonymous(masked, ["age", "zip"], 10)
    assert kr.hierarchies["zip"][-2:] == ["prefix:1", "*"]


def test_per_column_loss_adds_up():
    table = _people()
    _, report = k_anonymise(table, AUTO, 10, local_recoding=False)
    assert set(report.column_ncp) == {"age", "zip"}
    assert report.ncp == pytest.approx(sum(report.column_ncp.values()) / 2, abs=1e-6)
    # bins:10 over ages 18..90: every released age costs 10 / 72.
    assert report.levels["age"] == "bins:10" and report.column_ncp["age"] == pytest.approx(10 / 72, abs=1e-6)
    kept = report.rows_out / report.rows_in
    assert report.information_loss == pytest.approx(report.ncp * kept + (1 - kept), abs=1e-5)


def test_local_recoding_releases_rows_that_would_be_suppressed():
    table = _people()
    _, plain = k_anonymise(table, AUTO, 10, local_recoding=False)
    out, recoded = k_anonymise(table, AUTO, 10)
    assert plain.suppressed_rows > 0 and recoded.recoded_rows > 0
    assert recoded.suppressed_rows == plain.suppressed_rows - recoded.recoded_rows
    assert recoded.levels == plain.levels and recoded.recoded_levels and recoded.recoded_levels != recoded.levels
    assert recoded.information_loss < plain.information_loss
    assert is_k_anonymous(out, ["age", "zip"], 10) and recoded.smallest_class >= 10
    assert out.column("id").to_pylist() == sorted(out.column("id").to_pylist())


def _families(text: bool) -> pa.Table:
    """Twelve people with a number of children nobody else has, all in zips 1xxxx: kept
    as they are, each would be alone in its class."""
    rng = np.random.default_rng(0)
    n = 2000
    children = rng.choice([0, 1, 2, 3], n)
    children[:12] = np.arange(5, 17)
    zips = [f"1{i:04d}" if i < 12 else f"{z:05d}" for i, z in enumerate(rng.integers(0, 100_000, n))]
    return pa.table({"id": np.arange(n), "children": [str(c) for c in children] if text else children, "zip": zips})


def test_a_recoded_plan_applies_batch_by_batch():
    table = _families(text=True)
    hierarchies = {"children": Hierarchy("suppress"), "zip": Hierarchy("auto")}
    whole, report = k_anonymise(table, hierarchies, 10)
    # The twelve are released with their number of children withheld, rather than dropped.
    assert report.levels["children"] == "original" and report.recoded_levels["children"] == "*"
    assert report.recoded_rows == 12 and report.suppressed_rows == 0
    assert whole.column("children").to_pylist()[:13] == ["*"] * 12 + [table.column("children")[12].as_py()]
    plan = plan_k_anonymity(table.select(["children", "zip"]), hierarchies, 10)
    parts, offset = [], 0
    for batch in table.to_batches(max_chunksize=128):  # all but the first batch hold no recoded row
        parts.append(plan.apply(batch, offset))
        offset += batch.num_rows
    assert {p.schema for p in parts} == {whole.schema}
    assert pa.concat_tables(parts).equals(whole)
    assert is_k_anonymous(whole, ["children", "zip"], 10)


def test_recoding_never_turns_an_exact_number_column_into_text():
    table = _families(text=False)
    whole, report = k_anonymise(table, {"children": Hierarchy("suppress"), "zip": Hierarchy("auto")}, 10)
    assert report.levels["children"] == "original" and whole.schema.field("children").type == pa.int64()
    assert report.recoded_levels.get("children", "original") == "original"
    assert report.suppressed_rows >= 12 and is_k_anonymous(whole, ["children", "zip"], 10)


def test_recoding_keeps_l_diversity():
    table = _people(seed=9)
    rng = np.random.default_rng(9)
    table = table.append_column("diagnosis", pa.array(rng.choice(["flu", "asthma", "none"], table.num_rows)))
    out, report = k_anonymise(table, AUTO, 5, sensitive="diagnosis", l=2)
    assert is_k_anonymous(out, ["age", "zip"], 5, sensitive="diagnosis", l=2)
    assert report.rows_out + report.suppressed_rows == table.num_rows


def test_many_quasi_identifiers_stay_within_the_derived_lattice_budget():
    rng = np.random.default_rng(3)
    n = 3000
    table = pa.table({"age": rng.integers(18, 91, n), "zip": [f"{z:05d}" for z in rng.integers(0, 100_000, n)],
                      "income": rng.integers(10_000, 250_000, n), "visits": rng.integers(0, 60, n),
                      "area": [f"{z:03d}" for z in rng.integers(0, 1000, n)], "sex": rng.choice(["F", "M"], n)})
    out, report = k_anonymise(table, {q: Hierarchy("auto") for q in table.column_names}, 5)
    from privet.governance.masking.kanon import MAX_DERIVED_LATTICE
    assert report.lattice_size <= MAX_DERIVED_LATTICE
    assert is_k_anonymous(out, table.column_names, 5)
