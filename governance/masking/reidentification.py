"""Re-identification risk of a released table, by the three attacker models ARX reports
(after El Emam and Dankar, JAMIA 2008). Records that share every quasi-identifier value
form an equivalence class; an attacker who links a person to the right class picks one of
its records at random.

- prosecutor: knows the person is in the table; a record's risk is 1 / its class size.
  `highest` is the largest such risk, `average` the mean over records (which equals the
  number of classes over the number of records), `records_at_risk` the share of records
  whose risk exceeds the threshold.
- journalist: does not know whether the person is in the table, so links against the
  population the table was drawn from: a record's risk is 1 / its class's size in that
  population. With no population table given the table is taken as its own population,
  and the journalist's risk equals the prosecutor's (`journalist_model` says which).
- marketer: wants to re-identify as many records as possible, not one person: the
  expected share of records re-identified, Σ (class size / population class size) / n —
  without a population, the number of classes over the number of records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from privet.governance.errors import InvalidArgument
from privet.governance.masking._columns import as_numpy

__all__ = ["DEFAULT_THRESHOLD", "POPULATION_MODEL", "SAMPLE_MODEL", "AttackerRisk", "ReidentificationRisk", "reidentification_risk",
           "risk_of_classes"]

DEFAULT_THRESHOLD = 0.2  # a record 1 in 5 or more likely to be re-identified is at risk
SAMPLE_MODEL = "sample: no population table given, so equal to the prosecutor risk"
POPULATION_MODEL = "population: class sizes in the population table given"


@dataclass(frozen=True)
class AttackerRisk:
    highest: float
    average: float
    records_at_risk: float  # share of records whose risk exceeds the threshold


@dataclass(frozen=True)
class ReidentificationRisk:
    records: int
    classes: int
    threshold: float
    prosecutor: AttackerRisk
    journalist: AttackerRisk
    journalist_model: str
    marketer: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def risk_of_classes(sizes: npt.ArrayLike, *, population_sizes: npt.ArrayLike | None = None,
                    threshold: float = DEFAULT_THRESHOLD) -> ReidentificationRisk:
    """The risks of a table whose equivalence classes hold `sizes` records (each ≥ 1), and
    with `population_sizes` the same classes' sizes in the population (each taken as at
    least the table's: the table is part of its population). Raises InvalidArgument for a
    threshold outside [0, 1] or population sizes of another length."""
    if not 0 <= threshold <= 1:
        raise InvalidArgument("threshold", "must be a share in [0, 1]")
    f = np.asarray(sizes, dtype=np.float64).reshape(-1)
    n = float(f.sum())
    prosecutor = _attacker(f, f, n, threshold)
    if population_sizes is None:
        journalist, model, marketer = prosecutor, SAMPLE_MODEL, len(f) / n if n else 0.0
    else:
        big_f = np.asarray(population_sizes, dtype=np.float64).reshape(-1)
        if big_f.shape != f.shape:
            raise InvalidArgument("population", "needs one size per equivalence class of the table")
        big_f = np.maximum(big_f, f)
        journalist, model = _attacker(f, big_f, n, threshold), POPULATION_MODEL
        marketer = float((f / big_f).sum() / n) if n else 0.0
    return ReidentificationRisk(int(n), len(f), threshold, prosecutor, journalist, model, round(marketer, 6))


def _attacker(f: npt.NDArray[np.float64], big_f: npt.NDArray[np.float64], n: float, threshold: float) -> AttackerRisk:
    """Record risk 1/F for the f records of each class."""
    if not n:
        return AttackerRisk(0.0, 0.0, 0.0)
    risk = 1.0 / big_f
    return AttackerRisk(highest=round(float(risk.max()), 6), average=round(float((f * risk).sum() / n), 6),
                        records_at_risk=round(float(f[risk > threshold].sum() / n), 6))


def reidentification_risk(table: pa.Table, quasi_identifiers: Sequence[str], *, population: pa.Table | None = None,
                          threshold: float = DEFAULT_THRESHOLD) -> ReidentificationRisk:
    """The risks of `table` over `quasi_identifiers`, with `population` (holding those
    columns, generalised as `table` is) for the journalist and marketer models. Raises
    InvalidArgument for a missing column or a bad threshold."""
    qis = list(quasi_identifiers)
    for name in qis:
        for what, t in (("quasi_identifiers", table), ("population", population)):
            if t is not None and name not in t.column_names:
                raise InvalidArgument(what, f"no column {name!r}")
    if not qis or table.num_rows == 0:
        return risk_of_classes([table.num_rows] if table.num_rows else [], threshold=threshold)
    if population is None:
        grouped = table.select(qis).group_by(qis, use_threads=False).aggregate([([], "count_all")])
        return risk_of_classes(as_numpy(grouped.column("count_all")), threshold=threshold)
    # One grouping over both tables, each row marked by where it came from: nulls group
    # together as they do within one table (a join would never match them).
    sample = table.select(qis).append_column("_in_table", pa.repeat(pa.scalar(1, pa.int64()), table.num_rows))
    others = population.select(qis).cast(sample.schema.remove(len(qis)))
    others = others.append_column("_in_table", pa.repeat(pa.scalar(0, pa.int64()), population.num_rows))
    grouped = pa.concat_tables([sample, others]).group_by(qis, use_threads=False).aggregate(
        [("_in_table", "sum"), ([], "count_all")])
    in_table = as_numpy(grouped.column("_in_table_sum"))
    present = in_table > 0
    in_population = as_numpy(grouped.column("count_all"))[present] - in_table[present]
    return risk_of_classes(in_table[present], population_sizes=in_population, threshold=threshold)
