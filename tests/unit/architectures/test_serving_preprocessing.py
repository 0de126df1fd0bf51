"""What serving sees is what training saw: k-anonymity's generalisation travels with the
preprocessing, unknown categories are reported, and text class labels are classes."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
import torch

from privet.governance.architectures import ClassLabels, TabularPreprocessor, preprocessor_from_metadata
from privet.governance.architectures.consistency import check_metadata_matches_weights
from privet.governance.errors import InvalidArgument
from privet.governance.masking.hierarchy import Hierarchy

AGES = ["[30, 35)", "[35, 40)", "[40, 45)", "[45, 50)"]
TRAIN = pa.table({"age": AGES, "zip": ["123**", "123**", "456**", "456**"], "plan": ["basic", "plus", "basic", "plus"]})


def _pre() -> TabularPreprocessor:
    built = TabularPreprocessor.build(TRAIN, ["age", "zip", "plan"], bounds={}, sources={},
                                      domains={"age": AGES, "zip": ["123**", "456**"], "plan": ["basic", "plus"]})
    return built.generalised({"age": "bins:5", "zip": "prefix:3", "plan": "original", "not-a-feature": "*"})


def test_a_raw_value_encodes_as_the_generalised_value_it_falls_in() -> None:
    pre = _pre()
    raw = pa.table({"age": ["40", "44.5", "[40, 45)", "31"], "zip": ["45678", "456**", "12399", "12300"], "plan": ["basic"] * 4})
    generalised = pa.table({"age": ["[40, 45)", "[40, 45)", "[40, 45)", "[30, 35)"], "zip": ["456**", "456**", "123**", "123**"], "plan": ["basic"] * 4})
    assert torch.equal(pre.transform(raw), pre.transform(generalised))
    assert pre.unknown_categories(raw) == {}
    # The same generaliser ingestion used (governance.masking), not a copy of it.
    assert Hierarchy.parse({"bins": [5]}, "age").generalise(pa.array([40]), 1).to_pylist() == ["[40, 45)"]


def test_a_value_outside_the_categories_is_counted_and_named() -> None:
    pre = _pre()
    table = pa.table({"age": ["banana", "99", None, "40"], "zip": ["456**"] * 4, "plan": ["gold", "basic", "basic", None]})
    assert pre.unknown_categories(table) == {"age": (2, "banana"), "plan": (1, "gold")}
    out = pre.transform(table)
    assert out[0, :4].tolist() == [0, 0, 0, 0] and out[1, :4].tolist() == [0, 0, 0, 0]  # as missing, as before


def test_the_generalisation_is_in_the_metadata_and_round_trips() -> None:
    pre = _pre()
    meta = json.loads(json.dumps(pre.to_metadata()))
    by_name = {c["name"]: c for c in meta["columns"]}
    assert by_name["age"]["generalisation"] == "bins:5" and by_name["age"]["vocabulary"] == AGES
    assert by_name["zip"]["generalisation"] == "prefix:3" and "generalisation" not in by_name["plan"]
    assert preprocessor_from_metadata(meta) == pre
    raw = pa.table({"age": ["41"], "zip": ["45600"], "plan": ["plus"]})
    assert torch.equal(preprocessor_from_metadata(meta).transform(raw), pre.transform(raw))


def test_metadata_without_a_generalisation_still_loads_and_takes_values_as_they_are() -> None:
    old = {"version": 2, "columns": [{"name": "age", "kind": "categorical", "vocabulary": AGES, "source": "dp"}]}
    pre = TabularPreprocessor.from_metadata(old)
    assert pre.to_metadata() == old
    assert pre.unknown_categories(pa.table({"age": ["40"]})) == {"age": (1, "40")}


# A tree level names no tree: the tree lives in the profile, not the report.
@pytest.mark.parametrize("label", ["bins:x", "bins:-5", "prefix:two", "tree:1", "prefix:"])
def test_a_generalisation_it_cannot_apply_is_refused(label: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        TabularPreprocessor.build(TRAIN, ["age"], bounds={}, domains={"age": AGES}, sources={}).generalised({"age": label})
    assert caught.value.field == "age"
    meta = {"version": 2, "columns": [{"name": "age", "kind": "categorical", "vocabulary": AGES, "generalisation": label}]}
    with pytest.raises(InvalidArgument) as caught:
        TabularPreprocessor.from_metadata(meta)
    assert caught.value.field == "preprocessing"


@pytest.mark.parametrize(("label", "raw", "expected"), [("month", "2021-03-17", "2021-03"), ("year", "2021-03-17", "2021"),
                                                        ("decade", "1987-03-17", "1980s"), ("*", "anything", "*")])
def test_dates_and_suppression_generalise_as_ingestion_did(label: str, raw: str, expected: str) -> None:
    pre = TabularPreprocessor.build(pa.table({"d": [expected]}), ["d"], bounds={}, domains={"d": [expected]}, sources={}).generalised({"d": label})
    assert pre.transform(pa.table({"d": [raw]})).tolist() == [[1.0]]


def test_text_class_labels_are_classes_with_names() -> None:
    table = pa.table({"y": ["stayed", "churned", "stayed", "moved"]})
    labels = ClassLabels("y", ["stayed", "churned"])
    assert labels.classes == ("churned", "stayed") and labels.names == ("churned", "stayed") and labels.text
    assert labels.known(table).tolist() == [True, True, True, False]
    assert labels.encode(table.slice(0, 3)).tolist() == [1, 0, 1]
    assert labels.decode(torch.tensor([0, 1])) == ["churned", "stayed"]
    assert labels.to_metadata() == {"column": "y", "classes": ["churned", "stayed"]}
    assert ClassLabels.from_metadata(json.loads(json.dumps(labels.to_metadata()))) == labels
    with pytest.raises(InvalidArgument) as caught:
        labels.encode(table)
    assert caught.value.field == "y" and "'moved'" in caught.value.message
    with pytest.raises(InvalidArgument):
        ClassLabels("y", ["a", 1])
    # Numeric labels are as they were: numbers, named by their text.
    assert ClassLabels("y", [1, 0]).names == ("0", "1") and ClassLabels.from_metadata({"column": "y", "classes": [0, 1]}).classes == (0, 1)
    assert ClassLabels.valid(pa.table({"y": ["a", None]}), "y").tolist() == [True, False]


def test_the_registry_accepts_metadata_with_a_generalisation_and_text_classes() -> None:
    from safetensors.torch import load

    from privet.governance.architectures.models import ModelSpec, export_weights

    pre = _pre()
    spec = ModelSpec.create("logreg", pre.n_features, 2)
    weights = export_weights(spec.build())

    class _T:
        def __init__(self, name: str, t: torch.Tensor) -> None:
            self.name, self.shape, self.dtype = name, tuple(t.shape), "F32"
    tensors = [_T(n, t) for n, t in load(weights).items()]
    meta = json.dumps({"model": spec.to_metadata(), "preprocessor": pre.to_metadata(), "labels": ClassLabels("y", ["no", "yes"]).to_metadata()})
    check_metadata_matches_weights("logreg", meta, tensors, ["age", "zip", "plan"])
