"""Closure progress: how far the book has come, what is due, and when it should be finished.

Every figure is an aggregate computed in SQL (counts and pence per group), so the report costs
a handful of grouped scans however large the book is. No personal data is read.

**Expected finish date.** At the as-of date D, with ``L`` letters still to send, a daily letter
limit ``M`` (Notify's 20,000 a day by default) and a response window of ``W`` days (60):

- letters bound = D + ceil(L / M) days, plus W + 1 days when a final-chance letter is among
  them (its window must run out, and resolve acts the day after the deadline);
- deadline bound = the latest response deadline of a debt awaiting a response, plus 1 day;
- pace bound = D + ceil(open debts x 30 / debts closed in the 30 days to D) days, when any
  were closed in that time (unknown otherwise);
- expected finish = the latest of the bounds that are known; D itself when nothing is open.

``L`` = debts waiting for their final-chance letter (``awaiting_letter``) plus letters in the
outbox not yet sent (``pending``, ``sending``, ``unknown``) for other debts. It assumes every
working day sends up to the limit, that parents' answers and CMS acknowledgements keep pace,
and it cannot count notices and reminders that later decisions will need.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.engine import Connection

from csa_closure.context import Context
from csa_closure.domain.reconciliation import open_pence as book_open_pence
from csa_closure.domain.states import CLOSED_STATES, DebtState, LetterStatus, QuarantineStatus
from csa_closure.store.schema import debts, events, letters, quarantine, response_imports
from csa_closure.store.schema import responses as responses_table

# The funnel, in the order a debt normally travels it.
STATE_ORDER: tuple[DebtState, ...] = (
    DebtState.PULLED,
    DebtState.REVIEW,
    DebtState.AWAITING_LETTER,
    DebtState.AWAITING_RESPONSE,
    DebtState.COLLECT_REQUESTED,
    DebtState.WRITE_OFF_PENDING,
    DebtState.TRANSFER_READY,
    DebtState.TRANSFER_SENT,
    DebtState.CLOSED,
    DebtState.WRITTEN_OFF,
    DebtState.TRANSFERRED,
)
CLOSED_VALUES = sorted(s.value for s in CLOSED_STATES)
UNSENT_LETTER_STATUSES = (LetterStatus.PENDING, LetterStatus.SENDING, LetterStatus.UNKNOWN)

DEFAULT_DAILY_LETTER_LIMIT = 20_000
DEFAULT_RESPONSE_WINDOW_DAYS = 60
DEFAULT_CHART_DAYS = 14
PACE_DAYS = 30


def phase(state: str) -> str:
    """The funnel phase of a state: to decide, in progress, or closed."""
    if state == DebtState.PULLED:
        return "to decide"
    if state in CLOSED_STATES:
        return "closed"
    return "in progress"


def _state_rank(state: str) -> int:
    try:
        return STATE_ORDER.index(DebtState(state))
    except ValueError:
        return len(STATE_ORDER)


@dataclass(frozen=True)
class Tally:
    debts: int = 0
    pence: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(self.debts + other.debts, self.pence + other.pence)


@dataclass(frozen=True)
class StateCount:
    state: str
    system: str
    creditor: str
    debts: int
    pence: int


@dataclass(frozen=True)
class LetterCount:
    purpose: str
    status: str
    letters: int


@dataclass(frozen=True)
class ResponseCount:
    party: str
    response: str
    responses: int


@dataclass(frozen=True)
class ImportCount:
    kind: str
    files: int
    rows: int
    accepted: int
    duplicates: int
    rejected: int


@dataclass(frozen=True)
class Deadlines:
    """Debts awaiting a response, by when their window closes (from D, inclusive)."""

    overdue: Tally  # deadline before D, not yet expired by the responses stage
    next_7_days: Tally  # D <= deadline <= D + 7
    next_30_days: Tally  # D <= deadline <= D + 30 (includes the 7)


@dataclass(frozen=True)
class DayClosures:
    as_of: date
    debts: int  # moves into a closed state (from an open one) on that as-of date
    pence: int
    reopened: int  # moves out of a closed state (a reversed write-off)
    reopened_pence: int = 0


@dataclass(frozen=True)
class FinishEstimate:
    letters_to_send: int
    final_chance_letters_to_send: int
    daily_letter_limit: int
    sending_days: int
    response_window_days: int
    letters_bound: date
    last_response_deadline: date | None
    deadline_bound: date | None
    open_debts: int
    closed_last_30_days: int
    pace_bound: date | None
    expected_finish: date
    finished: bool
    formula: str
    assumptions: tuple[str, ...]


@dataclass(frozen=True)
class SystemCreditorProgress:
    system: str
    creditor: str
    loaded: Tally
    decided: Tally
    closed: Tally

    @property
    def open(self) -> Tally:
        return Tally(self.loaded.debts - self.closed.debts, self.loaded.pence - self.closed.pence)


@dataclass
class ProgressReport:
    as_of: date
    states: list[StateCount]
    quarantined: Tally  # held cases (debts = items) and their pence
    letters: list[LetterCount]
    responses: list[ResponseCount]
    imports: list[ImportCount]
    deadlines: Deadlines
    closures: list[DayClosures]
    finish: FinishEstimate
    by_state: list[tuple[str, Tally]] = field(init=False)

    def __post_init__(self) -> None:
        totals: dict[str, Tally] = {}
        for s in self.states:
            totals[s.state] = totals.get(s.state, Tally()) + Tally(s.debts, s.pence)
        self.by_state = sorted(totals.items(), key=lambda kv: _state_rank(kv[0]))

    def total(self, phases: Iterable[str] | None = None) -> Tally:
        wanted = set(phases) if phases is not None else None
        result = Tally()
        for state, tally in self.by_state:
            if wanted is None or phase(state) in wanted:
                result = result + tally
        return result

    def by_system_creditor(self) -> list[SystemCreditorProgress]:
        groups: dict[tuple[str, str], dict[str, Tally]] = {}
        for s in self.states:
            g = groups.setdefault((s.system, s.creditor), {})
            t = Tally(s.debts, s.pence)
            g["loaded"] = g.get("loaded", Tally()) + t
            if s.state != DebtState.PULLED:
                g["decided"] = g.get("decided", Tally()) + t
            if s.state in CLOSED_STATES:
                g["closed"] = g.get("closed", Tally()) + t
        return [
            SystemCreditorProgress(
                system=system,
                creditor=creditor,
                loaded=g.get("loaded", Tally()),
                decided=g.get("decided", Tally()),
                closed=g.get("closed", Tally()),
            )
            for (system, creditor), g in sorted(groups.items())
        ]

    def to_json(self) -> dict[str, Any]:
        def tally(t: Tally) -> dict[str, int]:
            return {"debts": t.debts, "pence": t.pence}

        return {
            "as_of": self.as_of,
            "funnel": {
                "loaded": tally(self.total()),
                "decided": tally(self.total({"in progress", "closed"})),
                "closed": tally(self.total({"closed"})),
                "open": tally(self.total({"to decide", "in progress"})),
                "quarantined": {
                    "items": self.quarantined.debts,
                    "pence": self.quarantined.pence,
                },
            },
            "states": [
                {"state": state, "phase": phase(state), **tally(t)} for state, t in self.by_state
            ],
            "by_system_creditor": [
                {
                    "system": g.system,
                    "creditor": g.creditor,
                    "loaded": tally(g.loaded),
                    "decided": tally(g.decided),
                    "closed": tally(g.closed),
                    "open": tally(g.open),
                }
                for g in self.by_system_creditor()
            ],
            "states_by_system_creditor": self.states,
            "letters": self.letters,
            "responses": self.responses,
            "imports": self.imports,
            "deadlines": {
                "overdue": tally(self.deadlines.overdue),
                "next_7_days": tally(self.deadlines.next_7_days),
                "next_30_days": tally(self.deadlines.next_30_days),
            },
            "closures_per_day": self.closures,
            "finish": self.finish,
            "headline": headline(self),
            "burndown": burndown(self),
        }


# --- headline and burndown -----------------------------------------------------------------


@dataclass(frozen=True)
class Headline:
    """The three figures a manager reads first."""

    closed_debts: int
    loaded_debts: int
    closed_pence: int
    loaded_pence: int
    open_pence: int
    expected_finish: date
    finished: bool


def headline(report: ProgressReport) -> Headline:
    closed, loaded = report.total({"closed"}), report.total()
    return Headline(
        closed_debts=closed.debts,
        loaded_debts=loaded.debts,
        closed_pence=closed.pence,
        loaded_pence=loaded.pence,
        open_pence=book_open_pence(loaded.pence, closed.pence),
        expected_finish=report.finish.expected_finish,
        finished=report.finish.finished,
    )


@dataclass(frozen=True)
class BurndownPoint:
    as_of: date
    open_debts: int
    open_pence: int


@dataclass(frozen=True)
class PaceNeeded:
    """What it takes to finish by ``target``: the open debts and pounds spread evenly over the
    days left (rounded up), and whether the expected finish is on or before it."""

    target: date
    days_left: int
    debts_per_day: int
    pence_per_day: int
    on_track: bool


def burndown(report: ProgressReport) -> list[BurndownPoint]:
    """Debts and pence still open at the end of each as-of day from the first closure to the
    report's as-of date: everything loaded now, less the net closures up to that day (a debt
    pulled later, by a re-pull, counts as open from the start). The last point is the open
    book as it stands."""
    loaded = report.total()
    by_day = {c.as_of: c for c in report.closures if c.as_of <= report.as_of}
    if not by_day:
        return [BurndownPoint(report.as_of, loaded.debts, loaded.pence)]
    day, points = min(by_day), []
    open_debts, open_pence = loaded.debts, loaded.pence
    while day <= report.as_of:
        c = by_day.get(day)
        if c is not None:
            open_debts -= c.debts - c.reopened
            open_pence -= c.pence - c.reopened_pence
        points.append(BurndownPoint(day, open_debts, open_pence))
        day += timedelta(days=1)
    return points


def pace_needed(report: ProgressReport, target: date) -> PaceNeeded:
    """The pace that finishes the open book by ``target`` (see :class:`PaceNeeded`)."""
    open_tally = report.total({"to decide", "in progress"})
    days_left = (target - report.as_of).days
    per = max(days_left, 1)
    return PaceNeeded(
        target=target,
        days_left=days_left,
        debts_per_day=_ceil_div(open_tally.debts, per),
        pence_per_day=_ceil_div(open_tally.pence, per),
        on_track=report.finish.expected_finish <= target,
    )


# --- queries ----------------------------------------------------------------------------


def _states(conn: Connection) -> list[StateCount]:
    rows = conn.execute(
        select(
            debts.c.state,
            debts.c.source_system,
            debts.c.creditor,
            func.count(),
            func.coalesce(func.sum(debts.c.opening_pence), 0),
        ).group_by(debts.c.state, debts.c.source_system, debts.c.creditor)
    ).all()
    counts = [StateCount(r[0], r[1], r[2], int(r[3]), int(r[4])) for r in rows]
    return sorted(counts, key=lambda s: (_state_rank(s.state), s.state, s.system, s.creditor))


def _quarantined(conn: Connection) -> Tally:
    row = conn.execute(
        select(
            func.count(),
            func.coalesce(
                func.sum(
                    quarantine.c.pwc_pence + quarantine.c.sos_pence + quarantine.c.unreadable_pence
                ),
                0,
            ),
        ).where(quarantine.c.status == QuarantineStatus.HELD.value)
    ).one()
    return Tally(int(row[0]), int(row[1]))


def _letters(conn: Connection) -> list[LetterCount]:
    rows = conn.execute(
        select(letters.c.purpose, letters.c.status, func.count())
        .group_by(letters.c.purpose, letters.c.status)
        .order_by(letters.c.purpose, letters.c.status)
    ).all()
    return [LetterCount(r[0], r[1], int(r[2])) for r in rows]


def _responses(conn: Connection) -> list[ResponseCount]:
    r = responses_table
    rows = conn.execute(
        select(r.c.party, r.c.response, func.count())
        .group_by(r.c.party, r.c.response)
        .order_by(r.c.party, r.c.response)
    ).all()
    return [ResponseCount(row[0], row[1], int(row[2])) for row in rows]


def _imports(conn: Connection) -> list[ImportCount]:
    ri = response_imports
    rows = conn.execute(
        select(
            ri.c.kind,
            func.count(),
            func.sum(ri.c.row_count),
            func.sum(ri.c.accepted),
            func.sum(ri.c.duplicates),
            func.sum(ri.c.rejected),
        )
        .group_by(ri.c.kind)
        .order_by(ri.c.kind)
    ).all()
    return [ImportCount(r[0], *(int(v or 0) for v in r[1:])) for r in rows]


def _deadlines(conn: Connection, as_of: date) -> Deadlines:
    deadline = debts.c.response_deadline
    pence = debts.c.opening_pence

    def within(condition: Any) -> tuple[Any, Any]:
        return (
            func.coalesce(func.sum(case((condition, 1), else_=0)), 0),
            func.coalesce(func.sum(case((condition, pence), else_=0)), 0),
        )

    overdue = deadline < as_of
    week = and_(deadline >= as_of, deadline <= as_of + timedelta(days=7))
    month = and_(deadline >= as_of, deadline <= as_of + timedelta(days=30))
    row = conn.execute(
        select(*within(overdue), *within(week), *within(month)).where(
            debts.c.state == DebtState.AWAITING_RESPONSE.value, deadline.is_not(None)
        )
    ).one()
    values = [int(v) for v in row]
    return Deadlines(
        overdue=Tally(values[0], values[1]),
        next_7_days=Tally(values[2], values[3]),
        next_30_days=Tally(values[4], values[5]),
    )


def _closures(conn: Connection) -> list[DayClosures]:
    # a move into a closed state, or out of one; an event that flags a closed debt without
    # moving it (from_state = to_state) is neither
    closing = events.c.to_state.in_(CLOSED_VALUES) & func.coalesce(events.c.from_state, "").not_in(
        CLOSED_VALUES
    )
    reopening = events.c.from_state.in_(CLOSED_VALUES) & events.c.to_state.not_in(CLOSED_VALUES)
    rows = conn.execute(
        select(
            events.c.as_of,
            func.sum(case((closing, 1), else_=0)),
            func.sum(case((closing, debts.c.opening_pence), else_=0)),
            func.sum(case((reopening, 1), else_=0)),
            func.sum(case((reopening, debts.c.opening_pence), else_=0)),
        )
        .select_from(events.join(debts, debts.c.debt_id == events.c.debt_id))
        .where(or_(closing, reopening))
        .group_by(events.c.as_of)
        .order_by(events.c.as_of)
    ).all()
    return [
        DayClosures(r[0], int(r[1] or 0), int(r[2] or 0), int(r[3] or 0), int(r[4] or 0))
        for r in rows
    ]


def _unsent_letters_for_other_debts(conn: Connection) -> int:
    return int(
        conn.execute(
            select(func.count())
            .select_from(letters.join(debts, debts.c.debt_id == letters.c.debt_id))
            .where(
                letters.c.status.in_([s.value for s in UNSENT_LETTER_STATUSES]),
                debts.c.state != DebtState.AWAITING_LETTER.value,
            )
        ).scalar_one()
    )


def _last_deadline(conn: Connection) -> date | None:
    return conn.execute(  # type: ignore[no-any-return]
        select(func.max(debts.c.response_deadline)).where(
            debts.c.state == DebtState.AWAITING_RESPONSE.value
        )
    ).scalar_one()


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def estimate_finish(
    *,
    as_of: date,
    awaiting_letter: int,
    other_unsent_letters: int,
    last_deadline: date | None,
    open_debts: int,
    closures: list[DayClosures],
    daily_letter_limit: int,
    response_window_days: int,
) -> FinishEstimate:
    """The expected finish date by the formula in this module's docstring."""
    if daily_letter_limit <= 0:
        raise ValueError("the daily letter limit must be at least 1")
    letters_to_send = awaiting_letter + other_unsent_letters
    sending_days = _ceil_div(letters_to_send, daily_letter_limit)
    letters_bound = as_of + timedelta(days=sending_days)
    if awaiting_letter:
        letters_bound += timedelta(days=response_window_days + 1)
    deadline_bound = last_deadline + timedelta(days=1) if last_deadline else None
    since = as_of - timedelta(days=PACE_DAYS - 1)
    recent = sum(c.debts for c in closures if since <= c.as_of <= as_of)
    pace_bound = (
        as_of + timedelta(days=_ceil_div(open_debts * PACE_DAYS, recent)) if recent else None
    )
    finished = open_debts == 0
    bounds = [b for b in (letters_bound, deadline_bound, pace_bound) if b is not None]
    expected = as_of if finished else max(bounds)
    return FinishEstimate(
        letters_to_send=letters_to_send,
        final_chance_letters_to_send=awaiting_letter,
        daily_letter_limit=daily_letter_limit,
        sending_days=sending_days,
        response_window_days=response_window_days,
        letters_bound=letters_bound,
        last_response_deadline=last_deadline,
        deadline_bound=deadline_bound,
        open_debts=open_debts,
        closed_last_30_days=recent,
        pace_bound=pace_bound,
        expected_finish=expected,
        finished=finished,
        formula=(
            "latest of: D + ceil(letters to send / daily limit) days (+ response window + 1 "
            "when final-chance letters are among them); last response deadline + 1; "
            f"D + ceil(open debts x {PACE_DAYS} / debts closed in the last {PACE_DAYS} days)"
        ),
        assumptions=(
            "every day sends letters up to the daily limit",
            "parents' answers, resolve runs and CMS acknowledgements keep pace with the letters",
            "notices and reminders that later decisions will need are not yet counted",
            f"closures continue at the pace of the last {PACE_DAYS} days",
        ),
    )


def progress_report(
    ctx: Context,
    *,
    daily_letter_limit: int = DEFAULT_DAILY_LETTER_LIMIT,
    response_window_days: int = DEFAULT_RESPONSE_WINDOW_DAYS,
) -> ProgressReport:
    """The progress of the closure as the store stands, for the context's as-of date."""
    with ctx.engine.connect() as conn:
        states = _states(conn)
        closures = _closures(conn)
        finish = estimate_finish(
            as_of=ctx.as_of,
            awaiting_letter=sum(
                s.debts for s in states if s.state == DebtState.AWAITING_LETTER.value
            ),
            other_unsent_letters=_unsent_letters_for_other_debts(conn),
            last_deadline=_last_deadline(conn),
            open_debts=sum(s.debts for s in states if s.state not in CLOSED_STATES),
            closures=closures,
            daily_letter_limit=daily_letter_limit,
            response_window_days=response_window_days,
        )
        return ProgressReport(
            as_of=ctx.as_of,
            states=states,
            quarantined=_quarantined(conn),
            letters=_letters(conn),
            responses=_responses(conn),
            imports=_imports(conn),
            deadlines=_deadlines(conn, ctx.as_of),
            closures=closures,
            finish=finish,
        )
