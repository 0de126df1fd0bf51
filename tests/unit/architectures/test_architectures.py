"""Model architectures: tabular preprocessing, architectures, safetensors weights."""

from __future__ import annotations

import io
import json
import pickle

import pyarrow as pa
import pytest
import torch
from opacus.validators import ModuleValidator

from privet.governance.architectures import (
    ClassLabels,
    ModelSpec,
    TabularPreprocessor,
    architectures,
    build_model,
    export_weights,
    load_model,
)
from privet.governance.errors import InvalidArgument


def _table() -> pa.Table:
    return pa.table(
        {
            "age": pa.array([30, 40, None, 50, 60], pa.int64()),
            "income": pa.array([1.5, float("nan"), 3.0, 4.5, 6.0], pa.float64()),
            "member": pa.array([True, False, True, None, False]),
            "city": pa.array(["paris", "oslo", None, "paris", "rome"]),
            "plan": pa.array(["a", "b", "a", "b", "a"]).dictionary_encode(),
            "ignored": pa.array([1, 2, 3, 4, 5]),
            "label": pa.array([0, 1, 1, 0, 1]),
        }
    )


FEATURES = ["age", "income", "member", "city", "plan"]
BOUNDS = {"age": (20.0, 60.0), "income": (0.0, 10.0), "member": (0.0, 1.0)}
DOMAINS = {"city": ["rome", "paris", "oslo"], "plan": ["a", "b"]}


def _build(table: pa.Table, features: list[str], **kw) -> TabularPreprocessor:  # type: ignore[no-untyped-def]
    return TabularPreprocessor.build(
        table, features, bounds=kw.get("bounds", BOUNDS), domains=kw.get("domains", DOMAINS), sources=kw.get("sources", {})
    )


def test_numeric_columns_are_clipped_to_their_bounds_and_strings_one_hot_encoded() -> None:
    pre = _build(_table(), FEATURES)
    assert pre.features == tuple(FEATURES)
    assert pre.feature_names == ("age", "income", "member", "city=oslo", "city=paris", "city=rome", "plan=a", "plan=b")
    out = pre.transform(_table())
    assert out.dtype == torch.float32 and out.shape == (5, 8)
    # age in [20, 60] → [-1, 1]; 60 is the upper bound; a missing value becomes 0.
    assert torch.allclose(out[:, 0], torch.tensor([-0.5, 0.0, 0.0, 0.5, 1.0]))
    assert out[1, 1] == 0.0  # NaN income → 0, the middle of its bounds
    clipped = pre.transform(pa.table({"age": [5, 1000], "income": [-3.0, 99.0], "member": [True, False], "city": ["oslo", "x"], "plan": ["a", "b"]}))
    assert clipped[:, 0].tolist() == [-1.0, 1.0] and clipped[:, 1].tolist() == [-1.0, 1.0]
    # city one-hot, sorted vocabulary; null → all zeros.
    assert out[:, 3:6].tolist() == [[0, 1, 0], [1, 0, 0], [0, 0, 0], [0, 1, 0], [0, 0, 1]]
    assert out[:, 6:8].tolist() == [[1, 0], [0, 1], [1, 0], [0, 1], [1, 0]]


def test_nothing_in_the_metadata_is_an_exact_statistic_of_the_rows() -> None:
    """Declared bounds and domains are what travel, not the table's mean or vocabulary:
    a value held by one row ("rome") and not declared never appears."""
    pre = _build(_table(), FEATURES, domains={"city": ["paris", "oslo"], "plan": ["a", "b"]})
    meta = json.dumps(pre.to_metadata())
    assert "rome" not in meta and "mean" not in meta and "std" not in meta
    assert pre.to_metadata()["version"] == 2


def test_unknown_category_encodes_as_zeros() -> None:
    pre = _build(_table(), ["city"])
    out = pre.transform(pa.table({"city": ["berlin", "oslo"]}))
    assert out.tolist() == [[0, 0, 0], [1, 0, 0]]


def test_metadata_round_trip_reproduces_outputs_exactly() -> None:
    torch.manual_seed(0)
    rows = 200
    table = pa.table(
        {
            "x": pa.array((torch.randn(rows) * 1e3 + 7).tolist()),
            "n": pa.array(torch.randint(-5, 5, (rows,)).tolist()),
            "c": pa.array([["red", "green", "blue", None][i % 4] for i in range(rows)]),
        }
    )
    pre = _build(table, ["x", "n", "c"], bounds={"x": (-2e3, 2e3), "n": (-5, 5)}, domains={"c": ["red", "green", "blue"]}, sources={"x": "dp"})
    rebuilt = TabularPreprocessor.from_metadata(json.loads(json.dumps(pre.to_metadata())))
    assert rebuilt == pre
    probe = table.append_column("extra", pa.array(range(rows)))
    probe = pa.concat_tables([probe, pa.table({"x": [1e9], "n": [3], "c": ["purple"], "extra": [0]})])
    assert torch.equal(rebuilt.transform(probe), pre.transform(probe))


def test_version_1_metadata_still_serves() -> None:
    """Models registered with standardisation (mean, std) keep loading and encoding as before."""
    meta = {"version": 1, "columns": [{"name": "age", "kind": "numeric", "mean": 45.0, "std": 10.0}, {"name": "city", "kind": "categorical", "vocabulary": ["oslo"]}]}
    pre = TabularPreprocessor.from_metadata(meta)
    out = pre.transform(pa.table({"age": [55, None], "city": ["oslo", None]}))
    assert out.tolist() == [[1.0, 1.0], [0.0, 0.0]]
    assert pre.to_metadata()["columns"][0] == meta["columns"][0]


@pytest.mark.parametrize(
    ("features", "field"),
    [
        (["missing"], "missing"),
        ([], "features"),
        (["age", "age"], "features"),
    ],
)
def test_build_errors_name_the_field(features: list[str], field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        _build(_table(), features)
    assert caught.value.field == field


@pytest.mark.parametrize(("bounds", "domains", "field"), [({}, DOMAINS, "age"), (BOUNDS, {}, "city"), ({**BOUNDS, "age": (5, 5)}, DOMAINS, "age")])
def test_a_column_without_valid_public_parameters_is_refused(bounds: dict, domains: dict, field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        _build(_table(), ["age", "city"], bounds=bounds, domains=domains)
    assert caught.value.field == field


def test_unsupported_type_and_wrong_type_at_transform_are_refused() -> None:
    table = pa.table({"when": pa.array([1, 2], pa.timestamp("s"))})
    with pytest.raises(InvalidArgument) as caught:
        _build(table, ["when"])
    assert caught.value.field == "when"
    pre = _build(_table(), ["age"])
    with pytest.raises(InvalidArgument) as caught:
        pre.transform(pa.table({"age": ["thirty"]}))
    assert caught.value.field == "age"


def test_malformed_metadata_is_refused() -> None:
    with pytest.raises(InvalidArgument) as caught:
        TabularPreprocessor.from_metadata({"version": 1, "columns": [{"name": "x", "kind": "numeric", "std": 0}]})
    assert caught.value.field == "preprocessing"
    with pytest.raises(InvalidArgument) as caught:
        TabularPreprocessor.from_metadata({"version": 2, "columns": [{"name": "x", "kind": "numeric", "lower": 1, "upper": 1}]})
    assert caught.value.field == "preprocessing"


def test_class_labels() -> None:
    table = pa.table({"y": [3, 7, 3, 9]})
    labels = ClassLabels("y", [9, 3, 7])
    assert labels.classes == (3, 7, 9)
    assert labels.encode(table).tolist() == [0, 1, 0, 2]
    assert labels.decode(torch.tensor([2, 0])) == [9, 3]
    assert ClassLabels.from_metadata(json.loads(json.dumps(labels.to_metadata()))) == labels
    assert ClassLabels("y", [3, 9]).known(table).tolist() == [True, False, True, True]
    with pytest.raises(InvalidArgument) as caught:
        labels.encode(pa.table({"y": [4]}))
    assert caught.value.field == "y"
    with pytest.raises(InvalidArgument) as caught:
        ClassLabels.values(pa.table({"y": pa.array([1, 2], pa.timestamp("s"))}), "y")
    assert caught.value.field == "y"


@pytest.mark.parametrize("arch", ["logreg", "mlp"])
def test_architectures_are_opacus_compatible(arch: str) -> None:
    assert arch in architectures()
    model = build_model(arch, 12, 3)
    assert ModuleValidator.validate(model, strict=False) == []
    assert model(torch.randn(4, 12)).shape == (4, 3)


def test_mlp_with_layer_norm_is_opacus_compatible() -> None:
    model = build_model("mlp", 5, 2, hidden=[8, 4], layer_norm=True, dropout=0.1)
    assert ModuleValidator.validate(model, strict=False) == []
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"arch": "resnet"}, "arch"),
        ({"n_classes": 1}, "n_classes"),
        ({"n_features": 0}, "n_features"),
        ({"hidden": [0]}, "hparams.hidden"),
        ({"hidden": 8}, "hparams.hidden"),
        ({"dropout": 1.0}, "hparams.dropout"),
        ({"depth": 3}, "hparams.depth"),
    ],
)
def test_build_model_errors_name_the_field(kwargs: dict, field: str) -> None:
    args = {"arch": "mlp", "n_features": 4, "n_classes": 2}
    hparams = {k: v for k, v in kwargs.items() if k not in args}
    args.update({k: v for k, v in kwargs.items() if k in args})
    with pytest.raises(InvalidArgument) as caught:
        build_model(args["arch"], args["n_features"], args["n_classes"], **hparams)
    assert caught.value.field == field


def test_logreg_takes_no_hyperparameters() -> None:
    with pytest.raises(InvalidArgument) as caught:
        build_model("logreg", 4, 2, hidden=[3])
    assert caught.value.field == "hparams.hidden"


@pytest.mark.parametrize("arch", ["logreg", "mlp"])
def test_weights_round_trip_through_safetensors_gives_identical_outputs(arch: str) -> None:
    torch.manual_seed(3)
    spec = ModelSpec.create(arch, 9, 4, **({"hidden": [16, 8], "layer_norm": True} if arch == "mlp" else {}))
    model = spec.build().eval()
    weights = export_weights(model)
    assert isinstance(weights, bytes)
    loaded = load_model(arch, json.loads(json.dumps(spec.to_metadata())), weights)
    x = torch.randn(32, 9)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_pickled_weights_are_refused() -> None:
    spec = ModelSpec.create("logreg", 3, 2)
    model = spec.build()
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    for blob in (buffer.getvalue(), pickle.dumps({"x": 1})):
        with pytest.raises(InvalidArgument) as caught:
            load_model("logreg", spec.to_metadata(), blob)
        assert caught.value.field == "weights"


def test_weights_of_another_shape_are_refused() -> None:
    small = export_weights(build_model("mlp", 3, 2, hidden=[4]))
    with pytest.raises(InvalidArgument) as caught:
        load_model("mlp", ModelSpec.create("mlp", 3, 2, hidden=[5]).to_metadata(), small)
    assert caught.value.field == "weights"
    with pytest.raises(InvalidArgument) as caught:
        load_model("logreg", ModelSpec.create("mlp", 3, 2).to_metadata(), small)
    assert caught.value.field == "arch"


@pytest.mark.parametrize("bounds", [(0.0, 5e-324), (0.0, 1e-308), (-1.7e308, 1.7e308)])
def test_bounds_the_encoding_cannot_divide_by_are_refused(bounds: tuple[float, float]) -> None:
    """A half-width that underflows made every value inside encode as NaN or infinity, and the
    worker's refusal of non-finite features answered a membership question exactly."""
    with pytest.raises(InvalidArgument) as caught:
        _build(_table(), ["age"], bounds={"age": bounds})
    assert caught.value.field == "age"


def test_the_encoding_is_always_finite() -> None:
    pre = _build(_table(), ["age"], bounds={"age": (0.0, 1e-300)})
    out = pre.transform(pa.table({"age": pa.array([0.0, 5e-301, 1e308, float("nan"), float("-inf")])}))
    assert bool(torch.isfinite(out).all()) and out.abs().max() <= 1
