"""Re-identification risk as ARX reports it (prosecutor, journalist, marketer), on tables
small enough to work out by hand, and in the k-anonymity and ingestion reports."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from privet.governance.datasets.formats import CsvDialect, spool
from privet.governance.datasets.pipeline import AnonymisationSpec, mask_upload
from privet.governance.errors import InvalidArgument
from privet.governance.masking import Hierarchy, MaskingKeys, k_anonymise, parse_profile
from privet.governance.masking.reidentification import (
    POPULATION_MODEL,
    SAMPLE_MODEL,
    AttackerRisk,
    reidentification_risk,
    risk_of_classes,
)

KEYS = MaskingKeys.derive(b"test-secret-of-32-bytes-at-least!", key_id="test/v1")


def _classes(sizes: dict[str, int]) -> pa.Table:
    return pa.table({"zip": [z for z, size in sizes.items() for _ in range(size)]})


def test_prosecutor_and_marketer_by_hand():
    # Classes of 1, 2, 5 and 7 records (15). Record risks 1, 1/2, 1/5, 1/7.
    risk = reidentification_risk(_classes({"a": 1, "b": 2, "c": 5, "d": 7}), ["zip"])
    assert (risk.records, risk.classes, risk.threshold) == (15, 4, 0.2)
    # highest 1/1; average over records (1 + 2·½ + 5·⅕ + 7·⅐) / 15 = 4/15; at risk (> 0.2): the 3
    # records of the classes of 1 and 2 (a class of 5 is at exactly 0.2, not above).
    assert risk.prosecutor == AttackerRisk(highest=1.0, average=round(4 / 15, 6), records_at_risk=0.2)
    assert risk.journalist == risk.prosecutor and risk.journalist_model == SAMPLE_MODEL
    assert risk.marketer == round(4 / 15, 6)  # classes / records


def test_journalist_and_marketer_with_a_population_by_hand():
    sample = _classes({"a": 1, "b": 2, "c": 5, "d": 7})
    # The population the sample was drawn from: a ×4, b ×2, c ×10, d ×70, and people the
    # sample does not hold.
    population = _classes({"a": 4, "b": 2, "c": 10, "d": 70, "e": 100})
    risk = reidentification_risk(sample, ["zip"], population=population)
    # Record risks 1/4, 1/2, 1/10, 1/70: highest ½; average Σ f/F / n = (¼ + 1 + ½ + ⅒) / 15;
    # at risk: a (¼) and b (½), 3 of 15 records.
    expected = AttackerRisk(highest=0.5, average=round(1.85 / 15, 6), records_at_risk=0.2)
    assert risk.journalist == expected and risk.journalist_model == POPULATION_MODEL
    assert risk.marketer == round(1.85 / 15, 6)
    assert risk.prosecutor.highest == 1.0  # the prosecutor knows the person is in the sample


def test_a_population_missing_a_class_counts_the_sample_itself():
    risk = risk_of_classes([2, 3], population_sizes=[0, 30])
    assert risk.journalist.highest == 0.5  # the 2 sample records are part of the population


def test_nulls_form_a_class_in_table_and_population():
    sample = pa.table({"zip": ["a", None, None]})
    population = pa.table({"zip": ["a", "a", None, None, None, None]})
    risk = reidentification_risk(sample, ["zip"], population=population)
    assert risk.journalist.highest == 0.5 and risk.journalist.average == round((1 / 2 + 2 / 4) / 3, 6)


def test_bad_arguments_name_the_field():
    with pytest.raises(InvalidArgument) as err:
        risk_of_classes([1], threshold=2)
    assert err.value.field == "threshold"
    with pytest.raises(InvalidArgument) as err:
        risk_of_classes([1, 2], population_sizes=[3])
    assert err.value.field == "population"
    with pytest.raises(InvalidArgument) as err:
        reidentification_risk(pa.table({"a": [1]}), ["b"])
    assert err.value.field == "quasi_identifiers"


def test_the_report_holds_the_risk_before_and_after():
    # Eight records, ages 20-23 twice each, zips all different: every record unique before.
    # Two-year bands with the zip withheld give two classes of four: [20, 22) and [22, 24).
    table = pa.table({"age": [20, 21, 22, 23] * 2, "zip": [f"0{i}00" for i in range(8)]})
    _, report = k_anonymise(table, {"age": Hierarchy.parse({"bins": [2]}, "age"), "zip": Hierarchy("suppress")}, 4,
                            max_suppression=0)
    assert report.levels == {"age": "bins:2", "zip": "*"}
    before, after = report.risk_before, report.risk_after
    assert before is not None and after is not None
    assert (before.records, before.classes, before.marketer) == (8, 8, 1.0)
    assert before.prosecutor == AttackerRisk(highest=1.0, average=1.0, records_at_risk=1.0)
    assert (after.records, after.classes, after.marketer) == (8, 2, 0.25)
    # 1/4 per record, above the 0.2 threshold for all of them.
    assert after.prosecutor == after.journalist == AttackerRisk(highest=0.25, average=0.25, records_at_risk=1.0)


def test_the_ingestion_report_carries_the_risk(tmp_path: pathlib.Path):
    rng = np.random.default_rng(2)
    n = 600
    table = pa.table({"age": rng.integers(18, 91, n), "zip": [f"{z:05d}" for z in rng.integers(0, 100_000, n)],
                      "score": rng.integers(0, 100, n)})
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink)
    upload = spool([sink.getvalue().to_pybytes()], tmp_path, limit=1 << 30)
    profile = parse_profile({"rules": [{"column": "score", "action": "keep"}]})
    try:
        masked = mask_upload(upload, "csv", CsvDialect(), profile, KEYS, AnonymisationSpec(("age", "zip"), k=5), tmp_path)
    finally:
        upload.discard()
    try:
        stored = json.loads(json.dumps(masked.report.to_dict()))  # as the catalogue stores it
    finally:
        masked.discard()
    kan = stored["k_anonymity"]
    assert kan["risk_before"]["prosecutor"]["highest"] == 1.0
    assert kan["risk_after"]["prosecutor"]["highest"] <= 1 / 5
    assert kan["risk_after"]["journalist_model"] == SAMPLE_MODEL
    assert set(kan["column_ncp"]) == {"age", "zip"} and "*" not in kan["levels"].values()
