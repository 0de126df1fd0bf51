"""The privacy budget ledger: each dataset's (ε, δ) budget, never overspent.

The ledger, not the trainer, owns the accounting: a reservation is taken atomically at submit
(one conditional UPDATE, so no interleaving of concurrent submits on SQLite or PostgreSQL can
overshoot), a job's end charges what its recorded mechanism spent by the most conservative
accountant and releases the rest. Every entry is audited in the same transaction.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlmodel import Session

from governance.audit.log import AuditLog, Event
from governance.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from governance.privacy.accounting import Mechanism, conservative_epsilon
from governance.store.privacy_tables import LedgerEntry, PrivacyBudgetRow

__all__ = ["Budget", "BudgetLedger", "MAX_EPSILON", "check_epsilon", "to_micro", "from_micro"]

MICRO = 1_000_000
PRIVACY_UNIT = "row"
# ε is stored as micro-ε in BIGINT columns: the largest whole ε whose micro-ε (even
# rounded up through a double) still fits in a signed 64-bit integer.
MAX_EPSILON = (2**63 - 1) // MICRO


def to_micro(epsilon: float) -> int:
    """ε to integer micro-ε, rounding up: the ledger errs on the side of spending more."""
    return -int(-epsilon * MICRO // 1)


def from_micro(value: int) -> float:
    return value / MICRO


def representable(epsilon: float) -> bool:
    """Whether the ledger can hold `epsilon`: finite, not negative, within the columns."""
    return math.isfinite(epsilon) and 0 <= epsilon <= MAX_EPSILON


def check_epsilon(field: str, epsilon: float) -> None:
    """InvalidArgument naming `field` unless `epsilon` is a budget the ledger can hold."""
    if not (representable(epsilon) and epsilon > 0):
        raise InvalidArgument(field, f"must be finite, positive and at most {MAX_EPSILON:g}, got {epsilon!r}")


@dataclass(frozen=True)
class Budget:
    epsilon_total: float
    delta: float
    epsilon_reserved: float
    epsilon_spent: float

    @property
    def epsilon_remaining(self) -> float:
        return self.epsilon_total - self.epsilon_reserved - self.epsilon_spent


class BudgetLedger:
    def __init__(self, audit: AuditLog, clock=time.time) -> None:  # type: ignore[no-untyped-def]
        self._audit = audit
        self._clock = clock

    def _entry(self, session: Session, dataset_id: str, job_id: str, kind: str, eps_micro: int, delta: float, principal: str, accountant: str = "", mechanism: Mechanism | None = None) -> None:
        session.add(LedgerEntry(
            dataset_id=dataset_id, job_id=job_id, kind=kind, epsilon_micro=eps_micro, delta=delta,
            noise_multiplier=mechanism.noise_multiplier if mechanism else None, sample_rate=mechanism.sample_rate if mechanism else None,
            steps=mechanism.steps if mechanism else None, accountant=accountant, privacy_unit=PRIVACY_UNIT, principal=principal, time_us=int(self._clock() * 1e6),
        ))
        details = {"dataset_id": dataset_id, "job_id": job_id, "epsilon": from_micro(eps_micro), "delta": delta, "accountant": accountant}
        if mechanism:
            details |= {"noise_multiplier": mechanism.noise_multiplier, "sample_rate": mechanism.sample_rate, "steps": mechanism.steps}
        self._audit.append(Event(principal=principal, action=f"privacy.{kind}", resource=f"dataset/{dataset_id}", decision="allow", details=details))

    def open_budget(self, session: Session, dataset_id: str, epsilon: float, delta: float, principal: str) -> None:
        """Create the dataset's budget (in the dataset's own creation unit)."""
        check_epsilon("epsilon", epsilon)
        session.add(PrivacyBudgetRow(dataset_id=dataset_id, epsilon_total_micro=to_micro(epsilon), delta=delta, reserved_micro=0, spent_micro=0))
        self._entry(session, dataset_id, "", "open", to_micro(epsilon), delta, principal)

    def budget(self, session: Session, dataset_id: str) -> Budget:
        row = session.get(PrivacyBudgetRow, dataset_id)
        if row is None:
            raise NotFound(f"no privacy budget for dataset {dataset_id}")
        return Budget(from_micro(row.epsilon_total_micro), row.delta, from_micro(row.reserved_micro), from_micro(row.spent_micro))

    def reserve(self, session: Session, dataset_id: str, job_id: str, epsilon: float, delta: float, principal: str) -> None:
        """Reserve `epsilon` for a job, atomically. ResourceExhausted (saying what is left) if
        it does not fit; FailedPrecondition if δ exceeds the dataset's δ."""
        check_epsilon("epsilon", epsilon)
        need = to_micro(epsilon)
        row = session.get(PrivacyBudgetRow, dataset_id)
        if row is None:
            raise NotFound(f"no privacy budget for dataset {dataset_id}")
        if delta > row.delta:
            raise FailedPrecondition(f"δ {delta:g} exceeds the dataset's δ {row.delta:g}")
        t = PrivacyBudgetRow
        result = session.execute(
            update(t)
            .where(t.dataset_id == dataset_id, t.epsilon_total_micro - t.reserved_micro - t.spent_micro >= need)
            .values(reserved_micro=t.reserved_micro + need)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            session.refresh(row)
            left = from_micro(row.epsilon_total_micro - row.reserved_micro - row.spent_micro)
            raise ResourceExhausted(f"privacy budget exhausted: ε {epsilon:g} requested, {left:g} of {from_micro(row.epsilon_total_micro):g} left")
        self._entry(session, dataset_id, job_id, "reserve", need, delta, principal)

    def settle(self, session: Session, dataset_id: str, job_id: str, reserved: float, mechanism: Mechanism | None, principal: str, *, within_reservation: bool = False) -> float:
        """End a job: charge what `mechanism` spent (0 if it took no noisy step), release the
        rest of the reservation. Returns the ε charged.

        The charge is the most conservative accountant's figure. If that exceeds the job's
        reservation, the excess is taken from the remaining budget; if even that cannot cover
        it, FailedPrecondition (the trainer must never run past its reservation).

        `within_reservation`: the caller vouches that `mechanism` is a prefix of the run whose
        noise was calibrated to the reservation (a lease within the planned steps), so the
        reservation bounds the spend too and the charge is the lesser bound: an accountant's
        numerical slack can then never push the charge past the reservation."""
        held = to_micro(reserved)
        spent_eps, accountant = (0.0, "") if mechanism is None or mechanism.steps == 0 else conservative_epsilon(mechanism)
        if within_reservation and spent_eps > reserved:
            spent_eps, accountant = reserved, "reservation"
        if not representable(spent_eps):
            raise FailedPrecondition(f"job {job_id} spent ε {spent_eps:g}, more than any budget can hold")
        charge = to_micro(spent_eps)
        t = PrivacyBudgetRow
        result = session.execute(
            update(t)
            .where(t.dataset_id == dataset_id, t.reserved_micro >= held, t.epsilon_total_micro - t.reserved_micro - t.spent_micro + held >= charge)
            .values(reserved_micro=t.reserved_micro - held, spent_micro=t.spent_micro + charge)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            raise FailedPrecondition(f"job {job_id} spent ε {spent_eps:g}, more than its reservation and the budget left")
        if charge:
            self._entry(session, dataset_id, job_id, "charge", charge, mechanism.delta if mechanism else 0.0, principal, accountant, mechanism)
        if held - charge > 0:
            self._entry(session, dataset_id, job_id, "release", held - charge, 0.0, principal)
        return from_micro(charge)

    def history(self, session: Session, dataset_id: str) -> list[LedgerEntry]:
        return list(session.execute(select(LedgerEntry).where(LedgerEntry.dataset_id == dataset_id).order_by(LedgerEntry.id)).scalars())
