"""The privacy budget ledger: each body of data's (ε, δ) budget, never overspent.

A budget belongs to the data, not to a dataset record: it is keyed by the raw upload's
SHA-256 digest (`sha256:<hex>`) of the first dataset made from that data, and every dataset
made from those bytes, or from the same content in other bytes (`open_budget`'s
`same_data_as`), is linked to it (`DatasetBudget`). Deleting a dataset never touches its
budget, so re-creating it from the same data resumes what was spent. Callers still name datasets; the ledger resolves each
to its budget.

The ledger, not the trainer, owns the accounting:

- a reservation is taken atomically at submit: one conditional UPDATE (reserved + spent +
  new ≤ total), so no interleaving of concurrent submits on SQLite or PostgreSQL can
  overshoot. Reservations are linear: a job's target ε, whole;
- a job's end charges what it spent: its DP-SGD run and its DP releases, each stored as its
  own entry with what it was computed from. The budget's spent ε is then the composition of
  every charged mechanism at the budget's δ (a pessimistic PLD, `composition`), and never
  more than their plain sum where that sum is a valid bound at the budget's δ (see
  `_spend`). The rest of the reservation is released;
- every entry is audited in the same transaction.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from privet.governance.audit.log import AuditLog, Event
from privet.governance.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from privet.governance.privacy.accounting import Mechanism, conservative_epsilon
from privet.governance.privacy.composition import composed_epsilon
from privet.governance.privacy.guarantee import PRIVACY_UNIT
from privet.governance.privacy.limits import MAX_EPSILON, check_delta, check_epsilon, from_micro, representable, to_micro
from privet.governance.privacy.releases import Release
from privet.governance.store.privacy_tables import DatasetBudget, LedgerEntry, PrivacyBudgetRow

__all__ = ["Budget", "BudgetLedger", "MAX_EPSILON", "SUBSAMPLED_GAUSSIAN", "budget_key", "check_epsilon", "from_micro", "to_micro"]

# The `mechanism` of a DP-SGD run's charge entry (its σ, q, steps and δ are on the entry).
SUBSAMPLED_GAUSSIAN = "subsampled-gaussian"


def budget_key(raw_digest: str) -> str:
    """The budget id of the data whose raw upload has SHA-256 `raw_digest` (hex)."""
    return f"sha256:{raw_digest}"


@dataclass(frozen=True)
class Budget:
    """A budget as callers see it. `epsilon_spent` is the composed ε of every charge at
    `delta`; `budget_id` names the data it belongs to."""

    epsilon_total: float
    delta: float
    epsilon_reserved: float
    epsilon_spent: float
    budget_id: str = ""

    @property
    def epsilon_remaining(self) -> float:
        return self.epsilon_total - self.epsilon_reserved - self.epsilon_spent


def _budget(row: PrivacyBudgetRow) -> Budget:
    return Budget(from_micro(row.epsilon_total_micro), row.delta, from_micro(row.reserved_micro), from_micro(row.spent_micro), row.budget_id)


class BudgetLedger:
    def __init__(self, audit: AuditLog, clock: Callable[[], float] = time.time) -> None:
        self._audit = audit
        self._clock = clock

    # -- entries --------------------------------------------------------------------------
    def _entry(
        self, session: Session, budget_id: str, dataset_id: str, job_id: str, kind: str, eps_micro: int, delta: float, principal: str, *,
        accountant: str = "", mechanism: Mechanism | None = None, release: Release | None = None, details: dict[str, Any] | None = None,
    ) -> None:
        name = SUBSAMPLED_GAUSSIAN if mechanism else (release.mechanism if release else "")
        purpose = release.purpose if release else ""
        session.add(LedgerEntry(
            budget_id=budget_id, dataset_id=dataset_id, job_id=job_id, kind=kind, epsilon_micro=eps_micro, delta=delta, mechanism=name, purpose=purpose,
            noise_multiplier=mechanism.noise_multiplier if mechanism else None, sample_rate=mechanism.sample_rate if mechanism else None,
            steps=mechanism.steps if mechanism else None, accountant=accountant, privacy_unit=PRIVACY_UNIT, principal=principal, time_us=int(self._clock() * 1e6),
        ))
        audited = {"dataset_id": dataset_id, "budget_id": budget_id, "job_id": job_id, "epsilon": from_micro(eps_micro), "delta": delta, "accountant": accountant}
        if mechanism:
            audited |= {"mechanism": name, "noise_multiplier": mechanism.noise_multiplier, "sample_rate": mechanism.sample_rate, "steps": mechanism.steps}
        if release:
            audited |= {"mechanism": name, "purpose": purpose}
        self._audit.append(Event(principal=principal, action=f"privacy.{kind}", resource=f"dataset/{dataset_id}", decision="allow", details=audited | (details or {})))

    # -- budgets --------------------------------------------------------------------------
    def open_budget(self, session: Session, dataset_id: str, epsilon: float, delta: float, principal: str, *, raw_digest: str = "",
                    same_data_as: Sequence[str] = (), match: dict[str, Any] | None = None) -> Budget:
        """Link `dataset_id` to the budget of its data, opening that budget with (`epsilon`,
        `delta`) if the data has none yet. `raw_digest` is the SHA-256 (hex) of the raw
        upload the dataset was made from (or that it derives from); `same_data_as` names
        datasets (live or erased) whose data this dataset's is by content, in other bytes
        (`governance/datasets/fingerprint.py`). The data has a budget if the raw digest has
        one or any of those datasets is linked to one; if several, the one with the least ε
        left, the most spent of them. Without any, a new budget is opened under the raw
        digest (`sha256:<hex>`), or without one as the dataset's own (`dataset:<id>`).

        If the data already has a budget, it stands as it is: never raised, never lowered,
        whatever was asked; the link is audited ("privacy.link") with what was asked and
        `match` (how the data was recognised). Returns the budget the dataset draws on.
        InvalidArgument("epsilon"/"delta") for a budget the ledger cannot hold;
        FailedPrecondition if the dataset is already linked."""
        check_epsilon("epsilon", epsilon)
        check_delta("delta", delta)
        if session.get(DatasetBudget, dataset_id) is not None:
            raise FailedPrecondition(f"dataset {dataset_id} already has a privacy budget")
        budget_id = budget_key(raw_digest) if raw_digest else f"dataset:{dataset_id}"
        row = self._existing_budget(session, budget_id, same_data_as)
        if row is None:
            try:
                # A savepoint: on PostgreSQL a concurrent ingestion of the same bytes may open
                # it first, and then this one links to that budget instead.
                with session.begin_nested():
                    session.add(PrivacyBudgetRow(budget_id=budget_id, dataset_id=dataset_id, epsilon_total_micro=to_micro(epsilon), delta=delta, reserved_micro=0, spent_micro=0))
                    session.flush()
            except IntegrityError:
                row = self._row(session, budget_id)
                if row is None:
                    raise
            else:
                session.add(DatasetBudget(dataset_id=dataset_id, budget_id=budget_id))
                self._entry(session, budget_id, dataset_id, "", "open", to_micro(epsilon), delta, principal)
                return Budget(from_micro(to_micro(epsilon)), delta, 0.0, 0.0, budget_id)
        session.add(DatasetBudget(dataset_id=dataset_id, budget_id=row.budget_id))
        details = {"requested_epsilon": epsilon, "requested_delta": delta, "epsilon_spent": from_micro(row.spent_micro)}
        self._entry(session, row.budget_id, dataset_id, "", "link", row.epsilon_total_micro, row.delta, principal, details=details | ({"match": match} if match else {}))
        return _budget(row)

    def _existing_budget(self, session: Session, budget_id: str, same_data_as: Sequence[str]) -> PrivacyBudgetRow | None:
        """The budget `budget_id`, or of a dataset in `same_data_as`, with the least ε left."""
        ids = {budget_id}
        if same_data_as:
            ids |= set(session.execute(select(col(DatasetBudget.budget_id)).where(col(DatasetBudget.dataset_id).in_(list(same_data_as)))).scalars())
        rows = [row for b in sorted(ids) if (row := self._row(session, b)) is not None]
        return min(rows, key=lambda r: (r.epsilon_total_micro - r.reserved_micro - r.spent_micro, r.budget_id), default=None)

    def budget_id(self, session: Session, dataset_id: str) -> str:
        """The budget `dataset_id` draws on. NotFound if it has none."""
        link = session.get(DatasetBudget, dataset_id)
        if link is None:
            raise NotFound(f"no privacy budget for dataset {dataset_id}")
        return link.budget_id

    def budget(self, session: Session, dataset_id: str) -> Budget:
        row = self._row(session, self.budget_id(session, dataset_id))
        if row is None:
            raise NotFound(f"no privacy budget for dataset {dataset_id}")
        return _budget(row)

    @staticmethod
    def _row(session: Session, budget_id: str, *, lock: bool = False) -> PrivacyBudgetRow | None:
        # Always read the row afresh: the conditional UPDATEs below bypass the session.
        query = select(PrivacyBudgetRow).where(col(PrivacyBudgetRow.budget_id) == budget_id).execution_options(populate_existing=True)
        if lock:
            query = query.with_for_update()  # PostgreSQL; SQLite's writer holds the lock already
        return session.execute(query).scalar_one_or_none()

    # -- reservations -----------------------------------------------------------------------
    def reserve(self, session: Session, dataset_id: str, job_id: str, epsilon: float, delta: float, principal: str, *, release_delta: float = 0.0) -> None:
        """Reserve `epsilon` for a job, atomically. ResourceExhausted (saying what is left) if
        it does not fit, or if the δ its releases will spend (`release_delta`, spent for good:
        see `release_delta_spent`) does not fit beside what earlier releases spent;
        FailedPrecondition if δ exceeds the budget's δ."""
        check_epsilon("epsilon", epsilon)
        need = to_micro(epsilon)
        budget_id = self.budget_id(session, dataset_id)
        row = self._row(session, budget_id)
        if row is None:
            raise NotFound(f"no privacy budget for dataset {dataset_id}")
        if delta > row.delta:
            raise FailedPrecondition(f"δ {delta:g} exceeds the dataset's δ {row.delta:g}")
        if release_delta > 0:
            spent_delta = self.release_delta_spent(session, dataset_id)
            # Keep half the δ for the DP-SGD runs, whose composed ε grows as the releases' δ
            # eats into the budget's (settling enforces the whole; this refuses early).
            if spent_delta + release_delta > row.delta / 2:
                raise ResourceExhausted(
                    f"privacy budget's δ exhausted by earlier DP selections (δ {spent_delta:.3g} of {row.delta:g} spent): "
                    "declare the categories and classes (they then cost no δ)"
                )
        t = PrivacyBudgetRow
        result = cast(CursorResult[Any], session.execute(
            update(t)
            .where(col(t.budget_id) == budget_id, col(t.epsilon_total_micro) - col(t.reserved_micro) - col(t.spent_micro) >= need)
            .values(reserved_micro=col(t.reserved_micro) + need)
            .execution_options(synchronize_session=False)
        ))  # an UPDATE's result: it has a row count
        if result.rowcount != 1:
            row = self._row(session, budget_id)
            assert row is not None
            left = from_micro(row.epsilon_total_micro - row.reserved_micro - row.spent_micro)
            raise ResourceExhausted(f"privacy budget exhausted: ε {epsilon:g} requested, {left:g} of {from_micro(row.epsilon_total_micro):g} left")
        self._entry(session, budget_id, dataset_id, job_id, "reserve", need, delta, principal)

    def settle(
        self, session: Session, dataset_id: str, job_id: str, reserved: float, mechanism: Mechanism | None, principal: str, *,
        releases: Sequence[Release] = (), within_reservation: bool = False,
    ) -> float:
        """End a job: charge its DP-SGD run `mechanism` (None, or 0 steps, if it took no noisy
        step) and its DP `releases`, each as its own "charge" entry, and release the rest of
        the reservation. Returns the ε charged for the job: the increase of the budget's
        spent ε, which is the composition of every mechanism ever charged to it (see
        `_spend`), so it is at most the job's own figure (its run's conservative ε plus its
        releases' ε) and usually well below it when the budget has been charged before.

        If the increase exceeds the reservation, the excess is taken from the remaining
        budget; if even that cannot cover it, FailedPrecondition. Each charged mechanism's δ
        must be at most the budget's δ (FailedPrecondition).

        `within_reservation`: the caller vouches that `mechanism` is a prefix of the run whose
        noise was calibrated to the reservation (a lease within the planned steps), with the
        releases included in what the reservation covers, so the reservation bounds the
        job's spend too: the run's own figure and the increase are then capped at the
        reservation, and an accountant's numerical slack never pushes a charge past it."""
        run = mechanism if mechanism is not None and mechanism.steps > 0 else None
        releases = tuple(releases)
        budget_id = self.budget_id(session, dataset_id)
        row = self._row(session, budget_id, lock=True)
        if row is None:
            raise NotFound(f"no privacy budget for dataset {dataset_id}")
        for what, d in ([("mechanism", run.delta)] if run else []) + [(f"release {r.purpose}", r.delta) for r in releases]:
            if d > row.delta:
                raise FailedPrecondition(f"job {job_id}'s {what} has δ {d:g}, above the budget's δ {row.delta:g}")
        held = to_micro(reserved)
        run_eps, accountant = (0.0, "") if run is None else conservative_epsilon(run)
        if within_reservation and run_eps > reserved:
            run_eps, accountant = reserved, "reservation"
        own = run_eps + math.fsum(r.epsilon for r in releases)
        if not representable(own):
            raise FailedPrecondition(f"job {job_id} spent ε {own:g}, more than any budget can hold")

        before = row.spent_micro
        after = before
        if run is not None or releases:
            after = max(before, self._spend(session, budget_id, row.delta, [(run, to_micro(run_eps))] if run else [], releases))
            # The reservation bounds the job's own spend, and composition never adds more
            # than that while the releases' δ leave the Gaussians their room; past numerical
            # slack, a larger increase is real (the budget's δ is running out) and is charged.
            if within_reservation and after - (before + held) <= max(1, held // 10**6):
                after = min(after, before + held)
        increase = after - before
        t = PrivacyBudgetRow
        result = cast(CursorResult[Any], session.execute(
            update(t)
            .where(col(t.budget_id) == budget_id, col(t.spent_micro) == before, col(t.reserved_micro) >= held,
                   col(t.epsilon_total_micro) - col(t.reserved_micro) - col(t.spent_micro) + held >= increase)
            .values(reserved_micro=col(t.reserved_micro) - held, spent_micro=col(t.spent_micro) + increase)
            .execution_options(synchronize_session=False)
        ))  # an UPDATE's result: it has a row count
        if result.rowcount != 1:
            raise FailedPrecondition(f"job {job_id} spent ε {from_micro(increase):g}, more than its reservation and the budget left")
        spend = {"budget_epsilon_spent_before": from_micro(before), "budget_epsilon_spent_after": from_micro(after), "job_epsilon_charged": from_micro(increase)}
        if run is not None:
            self._entry(session, budget_id, dataset_id, job_id, "charge", to_micro(run_eps), run.delta, principal, accountant=accountant, mechanism=run, details=spend)
        for r in releases:
            self._entry(session, budget_id, dataset_id, job_id, "charge", to_micro(r.epsilon), r.delta, principal, release=r, details=spend)
        if held - increase > 0:
            self._entry(session, budget_id, dataset_id, job_id, "release", held - increase, 0.0, principal)
        return from_micro(increase)

    # -- composition ----------------------------------------------------------------------
    def _spend(self, session: Session, budget_id: str, delta: float, runs: list[tuple[Mechanism, int]], releases: tuple[Release, ...]) -> int:
        """Micro-ε spent by everything charged to the budget so far plus `runs` (each with
        its own micro-ε) and `releases`, at the budget's `delta`:

        - composed: a pessimistic PLD of every mechanism, at `delta` — always valid;
        - linear: the plain sum of each mechanism's own ε. By basic composition it holds at
          the sum of their own δs, so it is a valid bound at the budget's δ only when those
          δs add up to at most `delta` (one DP-SGD run at the budget's δ with pure-ε
          releases, say); then the lesser of the two is charged, so composing never costs
          more than summing. Otherwise the composed figure alone holds at `delta`.

        FailedPrecondition if no finite ε holds at `delta` (releases whose δs exceed it)."""
        past = list(session.execute(select(LedgerEntry).where(col(LedgerEntry.budget_id) == budget_id, col(LedgerEntry.kind) == "charge")).scalars())
        all_runs = [Mechanism(e.noise_multiplier, e.sample_rate, int(e.steps), e.delta) for e in past if e.mechanism == SUBSAMPLED_GAUSSIAN and e.steps]
        all_runs += [m for m, _ in runs]
        # A release's ε is stored rounded up to micro-ε: recomputing from entries overstates it, never understates it.
        all_releases = [Release(e.purpose or "?", e.mechanism, from_micro(e.epsilon_micro), e.delta) for e in past if e.mechanism not in ("", SUBSAMPLED_GAUSSIAN)]
        all_releases += list(releases)
        linear = sum(e.epsilon_micro for e in past) + sum(eps for _, eps in runs) + sum(to_micro(r.epsilon) for r in releases)
        deltas = math.fsum([e.delta for e in past] + [m.delta for m, _ in runs] + [r.delta for r in releases])
        try:
            composed = composed_epsilon(mechanisms=all_runs, releases=all_releases, delta=delta)
        except InvalidArgument:
            composed = math.inf  # too little noise to compose: only the linear bound can speak
        best = min(to_micro(composed) if representable(composed) else math.inf, linear if deltas <= delta else math.inf)
        if not math.isfinite(best):
            raise FailedPrecondition(f"the charges on budget {budget_id} compose to no finite ε at the budget's δ {delta:g}")
        return int(best)

    def release_delta_spent(self, session: Session, dataset_id: str) -> float:
        """Σ δ of the DP releases charged to the budget `dataset_id` draws on. A release's δ
        is spent for good: composition adds it to whatever δ the budget's ε is read at."""
        budget_id = self.budget_id(session, dataset_id)
        deltas = session.execute(
            select(col(LedgerEntry.delta)).where(col(LedgerEntry.budget_id) == budget_id, col(LedgerEntry.kind) == "charge", col(LedgerEntry.mechanism) != SUBSAMPLED_GAUSSIAN)
        ).scalars()
        return math.fsum(deltas)

    def history(self, session: Session, dataset_id: str) -> list[LedgerEntry]:
        """Every entry of the budget `dataset_id` draws on (those of other datasets made from
        the same data included: they spend the same budget), oldest first."""
        link = session.get(DatasetBudget, dataset_id)
        where = or_(col(LedgerEntry.budget_id) == link.budget_id, col(LedgerEntry.dataset_id) == dataset_id) if link else col(LedgerEntry.dataset_id) == dataset_id
        return list(session.execute(select(LedgerEntry).where(where).order_by(col(LedgerEntry.id))).scalars())
