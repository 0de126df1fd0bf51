"""A training job's data, made ready for DP-SGD without publishing any exact statistic.

`prepare_data(table, spec)`:
0. with a `person_key` (a column naming the person a row is about, e.g. a pseudonymised
   customer id), keeps one row per person, chosen by a secret coin among that person's
   rows (rows without a key are dropped). Every later step then sees each person at most
   once, so the whole guarantee holds per person, not merely per row;
1. splits the rows: each row independently goes to the held-out split with probability
   `VALID_SHARE`, drawn from a secret CSPRNG. A row's side depends on nothing else — not
   on other rows, their order, nor the public seed — so adding or removing one row never
   moves another between the splits. Nothing is refused for how many rows are left on a
   side (none, even): that refusal would itself be an exact count;
2. plans the job's privacy (`governance.privacy.plan`): declared public parameters cost
   nothing, every other one is a DP release with its own (ε, δ);
3. computes those releases on the training split: DP bounds of undeclared numeric
   features, DP domains of undeclared string features, the DP class list of an
   undeclared target (`governance.privacy.dp_statistics`);
4. builds the preprocessor and class labels (whole numbers, or text for a string target)
   from them, and drops rows whose label is not a class (a row-by-row filter; it costs
   nothing more).

The evaluation share is spent later, by the worker, on the held-out split.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from privet.governance.architectures import TextInputs, input_kind, text_preprocessor_for
from privet.governance.architectures.finetuned import is_causal_lm
from privet.governance.architectures.tabular import MAX_CATEGORIES, ClassLabels, TabularPreprocessor, check_bounds, check_domain, column_kind, numeric_values
from privet.governance.errors import InvalidArgument
from privet.governance.privacy.dp_statistics import exponential_quantile, laplace, laplace_partition_selection
from privet.governance.privacy.plan import PrivacyPlan, plan_job
from privet.governance.privacy.releases import Release
from privet.governance.privacy.secure_random import SecureRandom

__all__ = ["VALID_SHARE", "PreparationRefused", "PreparedData", "prepare_data"]

VALID_SHARE = 0.2
#: The DP bounds of a numeric feature: these quantiles of its training values.
LOWER_QUANTILE, UPPER_QUANTILE = 0.05, 0.95


class PreparationRefused(InvalidArgument):
    """The job cannot train on what its DP releases left (e.g. fewer than two classes
    survived selection). `releases` were already computed and must be charged: the
    refusal itself is a function of them."""

    def __init__(self, field: str, message: str, releases: tuple[Release, ...]) -> None:
        super().__init__(field, message)
        self.releases = releases


@dataclass
class PreparedData:
    tensors: dict[str, torch.Tensor]
    preprocessor: TabularPreprocessor | TextInputs
    labels: ClassLabels | None  # None for a causal language model (its labels are its tokens)
    n_train: int  # exact: stays inside the job (the worker's tensors)
    public_rows: int  # the DP count of training rows: what sampling rate and steps are set from
    plan: PrivacyPlan
    releases: tuple[Release, ...]  # the preprocessing releases made (evaluation is the worker's)


def _split(n: int, random: SecureRandom) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, held-out indices), one secret coin per row. Either side may be empty:
    the job then runs on noise alone rather than refuse, which would tell how few rows it had."""
    held_out = random.bernoulli_mask(n, VALID_SHARE).numpy()
    return np.nonzero(~held_out)[0], np.nonzero(held_out)[0]


def one_row_per_person(table: pa.Table, key: str, random: SecureRandom) -> pa.Table:
    """One row of each person (`key`'s value), chosen uniformly among theirs by secret
    coins; rows with no key are dropped. A person's kept row depends on their own rows
    only, so this filter never lets one person's data influence another's presence."""
    if key not in table.column_names:
        raise InvalidArgument("person_key", f"no column {key!r} in the dataset")
    encoded = pc.dictionary_encode(pc.cast(table.column(key), pa.string()).combine_chunks())
    codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    priority = random.uniform(table.num_rows)
    order = np.lexsort((-priority, codes))  # by person, highest coin first
    sorted_codes = codes[order]
    first = np.ones(order.size, dtype=bool)
    first[1:] = sorted_codes[1:] != sorted_codes[:-1]
    keep = order[first & (sorted_codes >= 0)]
    return table.take(np.sort(keep))


def _value_counts(column: pa.ChunkedArray) -> dict[str, int]:
    counts = pc.value_counts(pc.cast(column, pa.string()).drop_null())
    return {str(v): int(c) for v, c in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist())}


def _declared(spec: Mapping[str, Any], key: str) -> dict[str, Any]:
    return dict(spec.get(key) or {})


def _undeclared(table: pa.Table, features: list[str], bounds: Mapping[str, Any], domains: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(numeric features without declared bounds, string features without a declared
    domain). InvalidArgument naming a column that is missing or of a type no tabular
    model takes: schema only, so nothing is spent and nothing private is told."""
    scaled, selected = [], []
    for name in features:
        if name not in table.column_names:
            raise InvalidArgument(name, "column not in the table")
        kind = column_kind(table.column(name).type)
        if kind is None:
            raise InvalidArgument(name, f"unsupported column type {table.column(name).type} (numeric or string only)")
        if kind == "numeric" and name not in bounds:
            scaled.append(name)
        elif kind == "string" and name not in domains:
            selected.append(name)
    return scaled, selected


def prepare_data(table: pa.Table, spec: Mapping[str, Any], *, random: SecureRandom | None = None) -> PreparedData:
    """Split, plan, release and encode (see the module docstring). `spec` is a job spec:
    features, target, arch, target_epsilon, delta, and the declared `feature_bounds`
    ({column: [lower, upper]}), `categories` ({column: [values]}), `classes` ([labels])
    and `person_key`.

    Raises InvalidArgument naming the field for what the schema and the request decide,
    before any release is made; after the first release, every refusal is a
    PreparationRefused carrying the releases made, which must be charged."""
    random = random or SecureRandom()
    if is_causal_lm(spec["arch"], spec.get("hparams")):
        return _prepare_corpus(table, spec, random)
    features, target = list(spec["features"]), spec["target"]
    text = input_kind(spec["arch"]) == "tokens"
    bounds = _declared(spec, "feature_bounds")
    domains = _declared(spec, "categories")
    declared_classes = list(spec.get("classes") or [])
    # What the schema and the request decide, before anything is spent.
    ClassLabels.check_type(table, target)
    scaled: list[str]
    selected: list[str]
    if text:
        text_preprocessor_for(spec["arch"], spec.get("hparams") or {}, table.slice(0, 0), features)
        scaled, selected = [], []
    else:
        scaled, selected = _undeclared(table, features, bounds, domains)
    fitted_bounds = {name: check_bounds(name, b) for name, b in bounds.items()}
    fitted_domains = {name: check_domain(name, d) for name, d in domains.items()}
    plan = plan_job(
        target_epsilon=float(spec["target_epsilon"]),
        delta=float(spec["delta"]),
        scaled_columns=scaled,
        selected_columns=selected,
        select_classes_of=None if declared_classes else target,
    )
    # Row-by-row filters, which cost nothing: one row per person, and rows whose label is
    # missing or not a whole number (refusing the job for them would tell that they exist).
    if spec.get("person_key"):
        table = one_row_per_person(table, spec["person_key"], random)
    table = table.filter(pa.array(ClassLabels.valid(table, target)))
    train_rows, valid_rows = _split(table.num_rows, random)
    train, valid = table.take(train_rows), table.take(valid_rows)

    made: list[Release] = []
    try:
        return _release_and_encode(train, valid, spec, plan, scaled, selected, fitted_bounds, fitted_domains, made, random)
    except PreparationRefused:
        raise
    except InvalidArgument as exc:
        raise PreparationRefused(exc.field, exc.message, tuple(made)) from None


def _prepare_corpus(table: pa.Table, spec: Mapping[str, Any], random: SecureRandom) -> PreparedData:
    """A causal language model's data: one text column, tokenized with the base's own
    tokenizer; the labels are the token ids. Nothing but the row count is released before
    training (and the evaluation, by the worker): there are no classes, bounds or domains."""
    features = list(spec["features"])
    pre = text_preprocessor_for(spec["arch"], spec.get("hparams") or {}, table.slice(0, 0), features)
    plan = plan_job(target_epsilon=float(spec["target_epsilon"]), delta=float(spec["delta"]))
    if spec.get("person_key"):
        table = one_row_per_person(table, spec["person_key"], random)
    train_rows, valid_rows = _split(table.num_rows, random)
    train, valid = table.take(train_rows), table.take(valid_rows)
    release = plan.release("rows")
    public_rows = max(1, int(round(train.num_rows + float(laplace(1.0 / release.epsilon, 1, random)[0]))))
    x_train, x_valid = pre.transform(train), pre.transform(valid)
    tensors = {"x_train": x_train, "y_train": x_train.clone(), "x_valid": x_valid, "y_valid": x_valid.clone()}
    return PreparedData({k: v.contiguous() for k, v in tensors.items()}, pre, None, train.num_rows, public_rows, plan, (release,))


def _release_and_encode(
    train: pa.Table,
    valid: pa.Table,
    spec: Mapping[str, Any],
    plan: PrivacyPlan,
    scaled: list[str],
    selected: list[str],
    fitted_bounds: dict[str, tuple[float, float]],
    fitted_domains: dict[str, tuple[str, ...]],
    made: list[Release],
    random: SecureRandom,
) -> PreparedData:
    """The DP releases (appended to `made` as they are made) and the encoding."""
    features, target = list(spec["features"]), spec["target"]
    declared_classes = list(spec.get("classes") or [])
    for name in scaled:
        release = plan.release(f"scale:{name}")
        values = numeric_values(train.column(name))
        half = release.epsilon / 2.0
        made.append(release)
        lower = exponential_quantile(values, LOWER_QUANTILE, epsilon=half, random=random)
        upper = exponential_quantile(values, UPPER_QUANTILE, epsilon=half, random=random)
        if upper <= lower:  # post-processing: a degenerate draw still needs a width
            lower, upper = min(lower, upper) - 0.5, max(lower, upper) + 0.5
        fitted_bounds[name] = (lower, upper)
    for name in selected:
        release = plan.release(f"domain:{name}")
        made.append(release)
        domain = laplace_partition_selection(_value_counts(train.column(name)), epsilon=release.epsilon, delta=release.delta, random=random)
        if len(domain) > MAX_CATEGORIES:
            raise InvalidArgument(name, f"more than {MAX_CATEGORIES} categories survived DP selection (is it an identifier?)")
        fitted_domains[name] = tuple(domain)
    # Text labels are classes as they are; numeric ones are whole numbers. Either way their
    # domain is declared (public, free) or DP-selected (charged), never read off the rows.
    text = ClassLabels.is_text(train, target)
    classes: list[int | str]
    if declared_classes:
        classes = [str(c) if text else int(c) for c in declared_classes]
    else:
        release = plan.release(f"classes:{target}")
        made.append(release)
        counts = _value_counts(train.column(target)) if text else {str(k): int(v) for k, v in zip(*np.unique(ClassLabels.values(train, target), return_counts=True))}
        selected_classes = laplace_partition_selection(counts, epsilon=release.epsilon, delta=release.delta, random=random)
        classes = [str(c) if text else int(c) for c in selected_classes]
        if len(classes) > MAX_CATEGORIES:
            raise InvalidArgument(target, f"more than {MAX_CATEGORIES} classes survived DP selection")
    try:
        labels = ClassLabels(target, classes)
    except InvalidArgument as exc:
        hint = "" if declared_classes else " (after DP selection of the classes: declare them with `classes`)"
        raise InvalidArgument(target, exc.message + hint) from None
    train = train.filter(pa.array(labels.known(train)))
    valid = valid.filter(pa.array(labels.known(valid)))
    # DP-SGD's sampling rate and step count are set from this count, never the exact one.
    release = plan.release("rows")
    made.append(release)
    public_rows = max(1, int(round(train.num_rows + float(laplace(1.0 / release.epsilon, 1, random)[0]))))

    pre: TabularPreprocessor | TextInputs
    if spec.get("arch") and input_kind(spec["arch"]) == "tokens":
        pre = text_preprocessor_for(spec["arch"], spec.get("hparams") or {}, train, features)
    else:
        sources = {n: "dp" for n in (*scaled, *selected)}
        pre = TabularPreprocessor.build(train, features, bounds=fitted_bounds, domains=fitted_domains, sources=sources)
    tensors = {
        "x_train": pre.transform(train),
        "y_train": labels.encode(train),
        "x_valid": pre.transform(valid),
        "y_valid": labels.encode(valid),
    }
    return PreparedData({k: v.contiguous() for k, v in tensors.items()}, pre, labels, train.num_rows, public_rows, plan, tuple(made))
