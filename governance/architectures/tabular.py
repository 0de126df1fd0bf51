"""Preprocessing for tabular models: the mapping from Arrow columns to model inputs.

A `TabularPreprocessor` is built once per training job and then travels with the model as
JSON (`to_metadata()`), so the inference service rebuilds the very same mapping
(`from_metadata()`) and a row is encoded identically at training and at serving.

Everything in it is published with the model, so none of it may be an exact function of
the private rows (a mean reconstructs chosen rows; a one-row category names its row).
Each column's parameters are either *declared* public by the job's owner or *DP*,
computed by a mechanism in `governance.privacy.dp_statistics` and charged:

- Numeric columns (integers, floats, booleans) are clipped to [lower, upper] and mapped
  linearly onto [-1, 1]; a missing or non-finite value becomes 0. The bounds are the
  declared ones, or the DP 5th and 95th percentiles.
- String columns are one-hot encoded over a vocabulary: the declared domain, or the values
  that survive DP partition selection; a missing value or one outside the vocabulary
  encodes as all zeros (`unknown_categories` counts those).
- A quasi-identifier that k-anonymity generalised at ingestion (age as "[40, 45)") keeps
  its generalisation (`generalised(levels)`, the dataset's chosen level, e.g. "bins:5"):
  a raw value (40) is generalised exactly as ingestion did before it is looked up, and a
  value already in generalised form passes as is. So serving sees what training saw.

`ClassLabels` holds a classifier's classes, numbers or text: declared, or those that
survive DP partition selection over the target; rows whose label is not a class are left
out of training and evaluation (a row-by-row filter, which costs no privacy of its own).

Models registered before this (metadata version 1, exact means and deviations; version 2
without generalisations or text classes) still load.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from privet.governance.errors import InvalidArgument
from privet.governance.masking.hierarchy import Hierarchy

__all__ = ["MAX_CATEGORIES", "ClassLabels", "TabularPreprocessor", "check_bounds", "check_domain", "column_kind", "numeric_values"]

#: The largest vocabulary a categorical column may have. A column with more distinct
#: values is almost always an identifier, and one-hot encoding it would memorise rows.
MAX_CATEGORIES = 1000

_METADATA_VERSION = 2
_SOURCES = ("declared", "dp")


@dataclass(frozen=True)
class _Numeric:
    """A numeric column clipped to [lower, upper] and mapped onto [-1, 1]. Version 1
    models stored a (mean, std) standardisation instead: kept so they still serve."""

    name: str
    lower: float
    upper: float
    source: str = "declared"
    standardised: bool = False  # version 1: lower = mean, upper = std, no clipping

    @property
    def width(self) -> int:
        return 1

    def encode(self, values: np.ndarray) -> np.ndarray:
        if self.standardised:
            mean, std = self.lower, self.upper
            return (np.where(np.isnan(values), mean, values) - mean) / std
        centre, half = (self.lower + self.upper) / 2.0, (self.upper - self.lower) / 2.0
        with np.errstate(all="ignore"):
            scaled = np.clip((np.clip(values, self.lower, self.upper) - centre) / half, -1.0, 1.0)
        # Never a non-finite feature, whatever the value: a refusal for one would tell it exists.
        finite: np.ndarray = np.nan_to_num(scaled, nan=0.0, posinf=1.0, neginf=-1.0)
        return finite

    def to_metadata(self) -> dict[str, Any]:
        if self.standardised:
            return {"name": self.name, "kind": "numeric", "mean": self.lower, "std": self.upper}
        return {"name": self.name, "kind": "numeric", "lower": self.lower, "upper": self.upper, "source": self.source}


# A number as a client sends it in text ("40", "40.0", "-1e3"); anything else is not binned.
_NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
_ORIGINAL = "original"


@dataclass(frozen=True)
class _Categorical:
    name: str
    vocabulary: tuple[str, ...]
    source: str = "declared"
    generalisation: str = ""  # k-anonymity's level at ingestion ("bins:5"), "" for none

    @property
    def width(self) -> int:
        return len(self.vocabulary)

    def categories(self, column: pa.ChunkedArray) -> pa.ChunkedArray:
        """The column as the strings the vocabulary is made of: each value generalised as
        ingestion generalised it, unless it is in the vocabulary already; a value the
        generalisation cannot read (not a number, for bins) is left as it is."""
        text = _as_string(self.name, column)
        if not self.generalisation:
            return text
        hierarchy, level = Hierarchy.at_label(self.generalisation, self.name)
        known = pc.is_in(text, value_set=pa.array(self.vocabulary, pa.string()))
        readable = pc.and_(pc.invert(known), pc.match_substring_regex(text, _NUMBER)) if hierarchy.kind == "bins" else pc.invert(known)
        readable = pc.fill_null(readable, False)
        candidates = pc.if_else(readable, text, pa.scalar(None, pa.string()))
        if hierarchy.kind == "bins":
            candidates = pc.cast(candidates, pa.float64())
        generalised = pc.if_else(readable, hierarchy.generalise(candidates, level), pa.scalar(None, pa.string()))
        out: pa.ChunkedArray = pc.coalesce(pc.cast(generalised, pa.string()), text)
        return out

    def to_metadata(self) -> dict[str, Any]:
        out = {"name": self.name, "kind": "categorical", "vocabulary": list(self.vocabulary), "source": self.source}
        if self.generalisation:
            out["generalisation"] = self.generalisation
        return out


def check_bounds(name: str, bounds: Sequence[float]) -> tuple[float, float]:
    """(lower, upper) from a declared pair. InvalidArgument naming the column unless both
    are finite and lower < upper."""
    try:
        lower, upper = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise InvalidArgument(name, f"bounds must be a pair [lower, upper], got {bounds!r}") from None
    if not (math.isfinite(lower) and math.isfinite(upper) and lower < upper):
        raise InvalidArgument(name, f"bounds must be finite with lower < upper, got [{lower!r}, {upper!r}]")
    half = (upper - lower) / 2.0
    # The encoding divides by the half-width: it must be a normal number whose inverse is
    # finite, or a value inside the bounds would encode as infinity or NaN.
    if not (math.isfinite(half) and half >= sys.float_info.min and math.isfinite(1.0 / half)):
        raise InvalidArgument(name, f"bounds [{lower!r}, {upper!r}] are too close together or too far apart to scale by")
    return lower, upper


def check_domain(name: str, values: Sequence[str], *, max_categories: int = MAX_CATEGORIES) -> tuple[str, ...]:
    """A declared category domain: distinct strings, at most `max_categories`, sorted."""
    domain = tuple(sorted({str(v) for v in values}))
    if not domain:
        raise InvalidArgument(name, "a declared category domain needs at least one value")
    if len(domain) > max_categories:
        raise InvalidArgument(name, f"{len(domain)} declared categories, more than {max_categories}")
    return domain


def _is_numeric(dtype: pa.DataType) -> bool:
    return bool(pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_boolean(dtype))


def _is_string(dtype: pa.DataType) -> bool:
    if pa.types.is_dictionary(dtype):
        return _is_string(dtype.value_type)
    return bool(pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype))


def column_kind(dtype: pa.DataType) -> str | None:
    """"numeric", "string", or None for a type no tabular model takes."""
    if _is_numeric(dtype):
        return "numeric"
    if _is_string(dtype):
        return "string"
    return None


def _column(table: pa.Table, name: str) -> pa.ChunkedArray:
    if name not in table.column_names:
        raise InvalidArgument(name, "column not in the table")
    return table.column(name)


def _as_float64(name: str, column: pa.ChunkedArray) -> np.ndarray:
    """The column as float64 with NaN wherever the value is missing or not finite."""
    if not _is_numeric(column.type):
        raise InvalidArgument(name, f"expected a numeric column, got {column.type}")
    values = np.array(_floats(column), dtype=np.float64, copy=True)
    values[~np.isfinite(values)] = np.nan
    return values


def _floats(column: pa.ChunkedArray) -> np.ndarray:
    """float64 values, NaN where missing. Unsafe on purpose: an integer past 2⁵³ is rounded
    rather than failing the cast, so that no single value can make a job crash."""
    return np.asarray(pc.cast(column, pa.float64(), safe=False).to_numpy(zero_copy_only=False), dtype=np.float64)


def _as_string(name: str, column: pa.ChunkedArray) -> pa.ChunkedArray:
    if not _is_string(column.type):
        raise InvalidArgument(name, f"expected a string column, got {column.type}")
    return pc.cast(column, pa.string())


class TabularPreprocessor:
    """Standardise numeric columns, one-hot encode string columns, in a fixed order.

    Build one with `fit(table, features)` or `from_metadata(...)`; never mutate it.
    """

    def __init__(self, columns: Sequence[_Numeric | _Categorical]) -> None:
        self._columns = tuple(columns)
        names = [c.name for c in self._columns]
        if len(set(names)) != len(names):
            raise InvalidArgument("features", "a column is listed twice")

    # -- construction ----------------------------------------------------------------

    @classmethod
    def build(
        cls,
        table: pa.Table,
        features: Sequence[str],
        *,
        bounds: Mapping[str, tuple[float, float]],
        domains: Mapping[str, Sequence[str]],
        sources: Mapping[str, str],
    ) -> TabularPreprocessor:
        """The encoding of `features` (in that order) from public or DP parameters: each
        numeric column needs `bounds[name]`, each string column `domains[name]`;
        `sources[name]` says which ("declared" or "dp"). `table` is read only for column
        types. Raises InvalidArgument naming the column when a column is missing, of
        another type, or lacks its parameters; naming `features` when the list is empty
        or repeats a column."""
        if not features:
            raise InvalidArgument("features", "at least one feature column is needed")
        if len(set(features)) != len(features):
            raise InvalidArgument("features", "a column is listed twice")
        columns: list[_Numeric | _Categorical] = []
        for name in features:
            column = _column(table, name)
            source = sources.get(name, "declared")
            if source not in _SOURCES:
                raise InvalidArgument(name, f"unknown parameter source {source!r}")
            if _is_numeric(column.type):
                if name not in bounds:
                    raise InvalidArgument(name, "a numeric feature needs declared or DP bounds")
                lower, upper = check_bounds(name, bounds[name])
                columns.append(_Numeric(name, lower, upper, source))
            elif _is_string(column.type):
                if name not in domains:
                    raise InvalidArgument(name, "a string feature needs a declared or DP category domain")
                vocabulary = tuple(sorted({str(v) for v in domains[name]}))
                if len(vocabulary) > MAX_CATEGORIES:
                    raise InvalidArgument(name, f"{len(vocabulary)} categories, more than {MAX_CATEGORIES}")
                columns.append(_Categorical(name, vocabulary, source))
            else:
                raise InvalidArgument(name, f"unsupported column type {column.type} (numeric or string only)")
        return cls(columns)

    def to_metadata(self) -> dict[str, Any]:
        """A JSON-serialisable description that `from_metadata` turns back into an equal
        preprocessor (floats survive a JSON round trip exactly)."""
        return {"version": _METADATA_VERSION, "columns": [c.to_metadata() for c in self._columns]}

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> TabularPreprocessor:
        """Rebuild from `to_metadata()` output. Raises InvalidArgument("preprocessing", ...)
        on anything malformed."""
        try:
            version = metadata["version"]
            if version not in (1, _METADATA_VERSION):
                raise InvalidArgument("preprocessing", f"unknown metadata version {version!r}")
            columns: list[_Numeric | _Categorical] = []
            for entry in metadata["columns"]:
                name = str(entry["name"])
                if entry["kind"] == "numeric" and version == 1:
                    mean, std = float(entry["mean"]), float(entry["std"])
                    if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
                        raise InvalidArgument("preprocessing", f"column {name}: bad mean/std")
                    columns.append(_Numeric(name, mean, std, "declared", standardised=True))
                elif entry["kind"] == "numeric":
                    lower, upper = check_bounds("preprocessing", (entry["lower"], entry["upper"]))
                    columns.append(_Numeric(name, lower, upper, str(entry.get("source", "declared"))))
                elif entry["kind"] == "categorical":
                    vocabulary = tuple(str(v) for v in entry["vocabulary"])
                    if len(set(vocabulary)) != len(vocabulary):
                        raise InvalidArgument("preprocessing", f"column {name}: repeated vocabulary entry")
                    generalisation = str(entry.get("generalisation", ""))
                    if generalisation:
                        Hierarchy.at_label(generalisation, "preprocessing")
                    columns.append(_Categorical(name, vocabulary, str(entry.get("source", "declared")), generalisation))
                else:
                    raise InvalidArgument("preprocessing", f"column {name}: unknown kind {entry['kind']!r}")
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArgument("preprocessing", f"malformed metadata ({exc!r})") from None
        return cls(columns)

    def generalised(self, levels: Mapping[str, str]) -> TabularPreprocessor:
        """This preprocessor, with each string feature that k-anonymity generalised at
        ingestion (`levels`: column → its chosen level, the dataset masking report's
        `levels`, e.g. {"age": "bins:5"}) generalising raw values the same way. Columns
        not among the features, numeric ones and those kept at "original" are as they
        were. InvalidArgument naming the column for a level it cannot apply."""
        columns: list[_Numeric | _Categorical] = []
        for c in self._columns:
            label = str(levels.get(c.name, _ORIGINAL))
            if isinstance(c, _Categorical) and label != _ORIGINAL:
                Hierarchy.at_label(label, c.name)
                c = _Categorical(c.name, c.vocabulary, c.source, label)
            columns.append(c)
        return TabularPreprocessor(columns)

    # -- use -------------------------------------------------------------------------

    @property
    def features(self) -> tuple[str, ...]:
        """The input columns, in encoding order."""
        return tuple(c.name for c in self._columns)

    @property
    def n_features(self) -> int:
        """Width of the encoded matrix (what the model's first layer takes)."""
        return sum(c.width for c in self._columns)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """One name per output column: `col` for numeric, `col=value` for one-hot."""
        names: list[str] = []
        for c in self._columns:
            if isinstance(c, _Numeric):
                names.append(c.name)
            else:
                names.extend(f"{c.name}={v}" for v in c.vocabulary)
        return tuple(names)

    def transform(self, table: pa.Table) -> torch.Tensor:
        """Encode `table` as a float32 tensor of shape (rows, n_features).

        Columns not used by the preprocessor are ignored. Raises InvalidArgument naming
        the column when one is missing or has the wrong kind of type.
        """
        out = np.zeros((table.num_rows, self.n_features), dtype=np.float32)
        offset = 0
        for c in self._columns:
            column = _column(table, c.name)
            if isinstance(c, _Numeric):
                out[:, offset] = c.encode(_as_float64(c.name, column)).astype(np.float32)
            elif c.vocabulary:
                index = pc.index_in(c.categories(column), value_set=pa.array(c.vocabulary, pa.string()))
                index = pc.fill_null(index, -1).to_numpy(zero_copy_only=False).astype(np.int64)
                rows = np.nonzero(index >= 0)[0]
                out[rows, offset + index[rows]] = 1.0
            else:
                _as_string(c.name, column)  # still check the type
            offset += c.width
        return torch.from_numpy(out)

    def unknown_categories(self, table: pa.Table) -> dict[str, tuple[int, str]]:
        """For each string feature with values outside its vocabulary (after generalisation;
        a missing value is not one): (how many, the first of them). These encode as all
        zeros: the model answers as if the value were missing. InvalidArgument as `transform`."""
        found: dict[str, tuple[int, str]] = {}
        for c in self._columns:
            if not isinstance(c, _Categorical):
                continue
            values = c.categories(_column(table, c.name))
            unknown = pc.and_(pc.is_valid(values), pc.invert(pc.is_in(values, value_set=pa.array(c.vocabulary, pa.string()))))
            count = int(pc.sum(pc.cast(unknown, pa.int64())).as_py() or 0)
            if count:
                found[c.name] = (count, str(pc.filter(values, unknown)[0].as_py()))
        return found

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TabularPreprocessor) and self._columns == other._columns

    def __hash__(self) -> int:
        return hash(self._columns)

    def __repr__(self) -> str:
        return f"TabularPreprocessor(features={list(self.features)!r}, n_features={self.n_features})"


class ClassLabels:
    """The classes of a classifier's target (declared or DP-selected), sorted, as class
    indices 0..k-1: whole numbers, or text (a string target: "churned", "stayed"). `names`
    are the labels as text, what a prediction's classes are called."""

    def __init__(self, column: str, classes: Sequence[int | str]) -> None:
        self.column = column
        given = list(classes)
        self.text = bool(given) and all(isinstance(c, str) for c in given)
        if not self.text and any(isinstance(c, str) for c in given):
            raise InvalidArgument(column, "class labels are all numbers or all text, not both")
        self.classes: tuple[int | str, ...] = tuple(sorted(str(c) for c in given)) if self.text else tuple(sorted(int(c) for c in given))
        if len(self.classes) < 2:
            raise InvalidArgument(column, "a classifier needs at least two classes in the target")
        if len(set(self.classes)) != len(self.classes):
            raise InvalidArgument(column, "repeated class label")

    @property
    def names(self) -> tuple[str, ...]:
        """Each class's label as text, in class-index order."""
        return tuple(str(c) for c in self.classes)

    @staticmethod
    def is_text(table: pa.Table, column: str) -> bool:
        """Whether the target column holds text labels (schema only)."""
        return _is_string(_column(table, column).type)

    @classmethod
    def values(cls, table: pa.Table, column: str) -> np.ndarray:
        """The target column as int64, or as str objects for a text target. InvalidArgument
        naming the column when it is missing, neither numeric nor text, has nulls or
        fractions. Integers are read as integers (no float cast, which fails past 2⁵³ and
        would make one huge label crash the job)."""
        cls.check_type(table, column)
        data = _column(table, column)
        if data.null_count:
            raise InvalidArgument(column, f"{data.null_count} rows have no target value")
        if _is_string(data.type):
            return np.asarray(_as_string(column, data).to_pylist(), dtype=object)
        if not pa.types.is_floating(data.type):
            return np.asarray(pc.cast(data, pa.int64(), safe=False).to_numpy(zero_copy_only=False), dtype=np.int64)
        values = _floats(data)
        if not np.all(np.isfinite(values)) or not np.all(values == np.round(values)):
            raise InvalidArgument(column, "class labels must be whole numbers")
        with np.errstate(invalid="ignore"):
            return values.astype(np.int64)

    @staticmethod
    def check_type(table: pa.Table, column: str) -> None:
        """InvalidArgument naming the column unless it exists and is numeric or text (schema only)."""
        data = _column(table, column)
        if not (pa.types.is_integer(data.type) or pa.types.is_boolean(data.type) or pa.types.is_floating(data.type) or _is_string(data.type)):
            raise InvalidArgument(column, f"a classifier's target must be numeric or text, got {data.type}")

    @classmethod
    def valid(cls, table: pa.Table, column: str) -> np.ndarray:
        """A boolean mask of the rows whose label is present (and, if numeric, a whole number)."""
        cls.check_type(table, column)
        data = _column(table, column)
        if not pa.types.is_floating(data.type):
            return np.asarray(pc.is_valid(data).to_numpy(zero_copy_only=False), dtype=bool)
        values = _floats(data)
        with np.errstate(invalid="ignore"):
            whole: np.ndarray = np.isfinite(values) & (values == np.round(values))
        return whole

    def _index(self, table: pa.Table) -> np.ndarray:
        """Each row's class index, -1 where its label is not a class."""
        if self.text:
            data = _column(table, self.column)
            if not _is_string(data.type):
                raise InvalidArgument(self.column, f"expected text labels, got {data.type}")
            index = pc.index_in(_as_string(self.column, data), value_set=pa.array(self.names, pa.string()))
            return np.asarray(pc.fill_null(index, -1).to_numpy(zero_copy_only=False), dtype=np.int64)
        values = self.values(table, self.column)
        classes = np.asarray(self.classes, dtype=np.int64)
        pos = np.clip(np.searchsorted(classes, values), 0, len(classes) - 1)  # classes are sorted
        return np.where(classes[pos] == values, pos, -1).astype(np.int64)

    def known(self, table: pa.Table) -> np.ndarray:
        """A boolean mask of the rows whose label is one of the classes."""
        mask: np.ndarray = self._index(table) >= 0
        return mask

    def encode(self, table: pa.Table) -> torch.Tensor:
        """Class indices (int64) for each row. Raises InvalidArgument on an unknown label."""
        index = self._index(table)
        unknown = index < 0
        if unknown.any():
            first = _column(table, self.column)[int(np.nonzero(unknown)[0][0])].as_py()
            raise InvalidArgument(self.column, f"label {first!r} was not seen in training")
        return torch.from_numpy(index)

    def decode(self, indices: torch.Tensor) -> list[int | str]:
        """Labels for class indices (the inverse of `encode`)."""
        return [self.classes[int(i)] for i in indices.reshape(-1).tolist()]

    def to_metadata(self) -> dict[str, Any]:
        """{"column", "classes"}: numbers for a numeric target, strings for a text one."""
        return {"column": self.column, "classes": list(self.classes)}

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> ClassLabels:
        try:
            classes = list(metadata["classes"])
            return cls(str(metadata["column"]), classes if all(isinstance(c, str) for c in classes) else [int(c) for c in classes])
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArgument("labels", f"malformed metadata ({exc!r})") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ClassLabels) and (self.column, self.classes) == (other.column, other.classes)

    def __hash__(self) -> int:
        return hash((self.column, self.classes))

    def __repr__(self) -> str:
        return f"ClassLabels(column={self.column!r}, classes={list(self.classes)!r})"


def numeric_values(column: pa.ChunkedArray) -> np.ndarray:
    """A numeric column's values as float64, NaN where missing (see `_floats`)."""
    return _floats(column)
