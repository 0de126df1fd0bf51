"""What a training job may ask for, checked against its dataset before anything is reserved.

`JobSpec` is the request; `validate` refuses (InvalidArgument naming the field) what the
dataset or the limits do not allow — a target that does not exist, is neither numeric nor
text, or has no values; a feature no model takes; an ε that no noise can meet for the
planned steps on this many rows — and fills in what the request left to defaults;
`planned_selections` says how many DP partition selections (each spending δ) the job will
make, so that `jobs.submit_job` can reserve their δ up front.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from privet.governance.architectures.finetuned import is_causal_lm
from privet.governance.architectures.models import architectures, input_kind
from privet.governance.architectures.tabular import MAX_CATEGORIES, check_bounds, check_domain
from privet.governance.errors import InvalidArgument
from privet.governance.identity.spiffe import check_name
from privet.governance.privacy.accounting import accountant_names, noise_multiplier_for
from privet.governance.privacy.limits import check_delta_for_rows, check_epsilon
from privet.governance.privacy.plan import plan_job
from privet.governance.training.preparation import VALID_SHARE

__all__ = ["DEVICES", "MAX_LEARNING_RATE", "MAX_PHYSICAL_BATCH", "MAX_WORKERS", "MAX_PLANNED_STEPS", "JobSpec", "planned_selections", "validate"]

DEVICES = ("auto", "cpu", "cuda")
# The most noisy steps a job may plan (epochs × batches an epoch). Calibrating σ and
# accounting cost grows with it, in the service's own process, before any cancel can take
# effect: 10⁵ steps is far beyond any useful DP-SGD run on one dataset.
MAX_PLANNED_STEPS = 100_000
MAX_LEARNING_RATE = 10.0  # far above any that trains; beyond it the weights overflow
MAX_PHYSICAL_BATCH = 65_536  # rows per forward pass (memory), whatever the logical batch
MAX_WORKERS = 8  # data-parallel ranks of one job (the GPUs of a machine)
NUMERIC_TYPES = ("int", "uint", "float", "double", "bool", "decimal")
TEXT_TYPES = ("string", "large_string", "dictionary<values=string", "dictionary<values=large_string")


def _numeric(type_name: str) -> bool:
    """Whether a dataset column's listed Arrow type is numeric."""
    return type_name.startswith(NUMERIC_TYPES)


def _text(type_name: str) -> bool:
    """Whether a dataset column's listed Arrow type is text."""
    return type_name.startswith(TEXT_TYPES)


@dataclass(frozen=True)
class JobSpec:
    dataset: str
    target: str
    features: tuple[str, ...] = ()
    arch: str = "mlp"
    epochs: int = 3
    batch_size: int = 256
    learning_rate: float = 1e-3
    target_epsilon: float = 3.0
    delta: float = 1e-5
    max_grad_norm: float = 1.0
    device: str = "auto"
    seed: int = 0
    accountant: str = "prv"
    model_name: str = ""
    max_physical_batch_size: int = 1024
    hparams: dict[str, Any] = field(default_factory=dict)
    # Declared public by the job's owner (so not DP-released, nothing charged): bounds of
    # numeric features {column: [lower, upper]}, domains of string features
    # {column: [values]}, and the classifier's classes [labels]. Anything undeclared is
    # computed with DP from the job's share (governance.privacy.plan).
    feature_bounds: dict[str, Any] = field(default_factory=dict)
    categories: dict[str, Any] = field(default_factory=dict)
    classes: tuple[int | str, ...] = ()  # whole numbers, or text for a text target
    # A column naming the person each row is about: the job then keeps one row per person
    # and its guarantee holds per person (governance.training.preparation).
    person_key: str = ""
    # Data-parallel ranks (torch.distributed): the rows are sharded, the noise drawn once a step.
    workers: int = 1



def validate(spec: JobSpec, columns: list[dict[str, Any]], rows: int) -> JobSpec:
    """Check the request against the dataset up front: InvalidArgument names the field."""
    by_name = {c["name"]: c for c in columns if c["action"] != "drop"}
    causal = is_causal_lm(spec.arch, spec.hparams)
    if causal:
        # A language model learns its text column itself: there is nothing to predict.
        if spec.target or spec.classes:
            raise InvalidArgument("target" if spec.target else "classes", "a causal language model has no target column or classes")
    elif spec.target not in by_name:
        raise InvalidArgument("target", f"no column {spec.target!r} in dataset {spec.dataset!r}")
    else:
        _check_target(spec, by_name[spec.target], rows)
    features = spec.features or tuple(n for n in by_name if n != spec.target)
    for i, name in enumerate(features):
        if name not in by_name:
            raise InvalidArgument(f"features[{i}]", f"no column {name!r} in dataset {spec.dataset!r}")
        if name == spec.target:
            raise InvalidArgument(f"features[{i}]", "the target cannot be a feature")
    if spec.arch not in architectures():
        raise InvalidArgument("arch", f"unknown architecture {spec.arch!r} (known: {', '.join(architectures())})")
    if input_kind(spec.arch) == "tokens" and (len(features) != 1 or not by_name[features[0]]["type"].startswith(("string", "large_string"))):
        raise InvalidArgument("features", f"{spec.arch} takes exactly one text column")
    if input_kind(spec.arch) != "tokens":
        for i, name in enumerate(features):
            kind = by_name[name]["type"]
            if not (_numeric(kind) or _text(kind)):
                raise InvalidArgument(f"features[{i}]", f"{name!r} is {kind or 'of no type'}: a tabular model takes numeric or text columns only")
    if spec.epochs < 1:
        raise InvalidArgument("epochs", "must be at least 1")
    if spec.batch_size < 1:
        raise InvalidArgument("batch_size", "must be at least 1")
    if spec.batch_size > rows:
        raise InvalidArgument("batch_size", f"{spec.batch_size} is larger than the dataset ({rows} rows)")
    if spec.epochs * math.ceil(rows / spec.batch_size) > MAX_PLANNED_STEPS:
        raise InvalidArgument("epochs", f"{spec.epochs} epochs of {math.ceil(rows / spec.batch_size)} batches is more than the {MAX_PLANNED_STEPS} steps a job may take")
    if not 0 < spec.learning_rate <= MAX_LEARNING_RATE:
        raise InvalidArgument("learning_rate", f"must be in (0, {MAX_LEARNING_RATE:g}]")
    if not 1 <= spec.max_physical_batch_size <= MAX_PHYSICAL_BATCH:
        raise InvalidArgument("max_physical_batch_size", f"must be in 1..{MAX_PHYSICAL_BATCH}")
    check_epsilon("target_epsilon", spec.target_epsilon)
    check_delta_for_rows("delta", spec.delta, rows)
    if not 0 < spec.max_grad_norm < math.inf:
        raise InvalidArgument("max_grad_norm", "must be positive and finite")
    if spec.device not in DEVICES:
        raise InvalidArgument("device", f"must be one of {', '.join(DEVICES)}")
    if isinstance(spec.workers, bool) or not isinstance(spec.workers, int) or not 1 <= spec.workers <= MAX_WORKERS:
        raise InvalidArgument("workers", f"an integer in 1..{MAX_WORKERS} (data-parallel ranks)")
    if spec.workers > spec.batch_size:
        raise InvalidArgument("workers", f"{spec.workers} ranks cannot share a batch of {spec.batch_size} rows")
    if spec.accountant not in accountant_names():
        raise InvalidArgument("accountant", f"must be one of {', '.join(accountant_names())}")
    model_name = spec.model_name or f"{spec.dataset}-{spec.arch}"
    check_name(model_name, "model_name")
    declared = _validate_declared(spec, features, by_name)
    if spec.person_key and (spec.person_key not in by_name or spec.person_key == spec.target or spec.person_key in features):
        raise InvalidArgument("person_key", f"must name a column of {spec.dataset!r} that is neither the target nor a feature")
    checked = JobSpec(**(asdict(spec) | {"features": tuple(features), "model_name": model_name} | declared))
    _check_calibration(checked, by_name, rows)
    return checked


def _check_target(spec: JobSpec, column: dict[str, Any], rows: int) -> None:
    """The target holds class labels: numbers or text, and at least one row has one. What
    ingestion recorded decides (its type; its count of missing values, where recorded)."""
    kind = column["type"]
    if kind == "null" or (isinstance(column.get("nulls"), int) and column["nulls"] >= rows):
        raise InvalidArgument("target", f"{spec.target!r} has no values in dataset {spec.dataset!r}: every row's target is missing")
    if not (_numeric(kind) or _text(kind)):
        raise InvalidArgument("target", f"a classifier's target must be numeric or text; {spec.target!r} is {kind or 'of no type'}")


def _check_calibration(spec: JobSpec, by_name: dict[str, dict[str, Any]], rows: int) -> None:
    """DP-SGD's share of ε must be reachable with some noise for the steps the job plans.
    The worker sets them from a DP count of its training split; here, from the dataset's
    recorded rows less the held-out share (public: the submitter reads them in the record).
    The search is the accounting module's, under RDP: its bound is the looser one, so where
    RDP finds a noise multiplier PRV does too (`calibrate_noise_multiplier`, the worker's,
    takes the larger of both), at a fraction of PRV's cost (seconds) inside the RPC."""
    tabular = input_kind(spec.arch) != "tokens"
    scaled = [f for f in spec.features if tabular and _numeric(by_name[f]["type"]) and f not in spec.feature_bounds]
    selected = [f for f in spec.features if tabular and not _numeric(by_name[f]["type"]) and f not in spec.categories]
    plan = plan_job(target_epsilon=spec.target_epsilon, delta=spec.delta, scaled_columns=scaled, selected_columns=selected,
                    select_classes_of=None if spec.classes or is_causal_lm(spec.arch, spec.hparams) else spec.target)
    n_train = max(1, rows - math.ceil(rows * VALID_SHARE))
    sample_rate = 1 / math.ceil(n_train / spec.batch_size)
    steps = int(spec.epochs / sample_rate)  # governance.training.jobs.planned_steps: Poisson sampling's 1/q steps an epoch
    try:
        noise_multiplier_for(target_epsilon=plan.sgd_epsilon, delta=plan.sgd_delta, sample_rate=sample_rate, steps=steps, accountant="rdp")
    except InvalidArgument as exc:
        raise InvalidArgument(
            "target_epsilon",
            f"ε {spec.target_epsilon:g} is too small for {spec.epochs} epochs at batch size {spec.batch_size} on about {n_train} training rows "
            f"(DP-SGD's share, ε {plan.sgd_epsilon:.3g}, cannot be met: {exc.message}); ask for more ε, fewer epochs or a larger batch",
        ) from None


def _validate_declared(spec: JobSpec, features: tuple[str, ...], by_name: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Declared public parameters: each names a feature of the right kind and is well formed."""
    def numeric(name: str) -> bool:
        return _numeric(by_name[name]["type"])

    bounds = {}
    for name, pair in dict(spec.feature_bounds or {}).items():
        if name not in features or not numeric(name):
            raise InvalidArgument(f"feature_bounds[{name}]", "names no numeric feature of this job")
        try:
            bounds[name] = list(check_bounds(name, pair))
        except InvalidArgument as exc:
            raise InvalidArgument(f"feature_bounds[{name}]", exc.message) from None
    domains = {}
    for name, values in dict(spec.categories or {}).items():
        if name not in features or numeric(name):
            raise InvalidArgument(f"categories[{name}]", "names no string feature of this job")
        try:
            domains[name] = list(check_domain(name, list(values)))
        except InvalidArgument as exc:
            raise InvalidArgument(f"categories[{name}]", exc.message) from None
    classes: tuple[int | str, ...] = tuple(spec.classes or ())
    if classes:
        if _text(by_name[spec.target]["type"]):
            # A text target's classes are text; declared numbers (the API's int64 classes) are
            # compared as their text.
            if any(isinstance(c, (bool, float)) or not isinstance(c, (int, str)) for c in classes):
                raise InvalidArgument("classes", "class labels of a text target must be text")
            classes = tuple(str(c) for c in classes)
        elif any(isinstance(c, bool) or not isinstance(c, int) for c in classes):
            raise InvalidArgument("classes", "class labels of a numeric target must be whole numbers")
        if len(set(classes)) != len(classes) or not 2 <= len(classes) <= MAX_CATEGORIES:
            raise InvalidArgument("classes", f"between 2 and {MAX_CATEGORIES} distinct classes are needed")
    return {"feature_bounds": bounds, "categories": domains, "classes": tuple(sorted(classes, key=str) if classes and isinstance(classes[0], str) else sorted(classes, key=int))}


def planned_selections(spec: JobSpec, columns: list[dict[str, Any]]) -> int:
    """How many DP partition selections the job will make (each spends δ): its undeclared
    string features' domains, and its classes unless declared (governance.privacy.plan)."""
    types = {c["name"]: c["type"] for c in columns}
    tabular = input_kind(spec.arch) != "tokens"
    strings = [f for f in spec.features if tabular and not _numeric(types.get(f, ""))]
    return sum(1 for f in strings if f not in spec.categories) + (0 if spec.classes or is_causal_lm(spec.arch, spec.hparams) else 1)
