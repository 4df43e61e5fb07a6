"""``notify build``: a batch of the letters due on the as-of date, one outbox row per letter.

1. Every debt some letter may be due for (in a state that kind of letter can be due in, and
   without that kind's letter, or with it held or cancelled) is read once with the facts
   :func:`~csa_closure.letters.letters_due` decides on (states, responses, dates, the parents'
   party references and dates of death: no names or addresses), with those debts' letters, and
   the rules run over them all at once.
2. Letters already in the outbox are left out (the unique debt/purpose/recipient constraint is
   the backstop), except *held* ones: a held letter whose address is now usable (a re-pull
   fixed it) is put into this batch as ``pending``; one still unusable stays held. A letter
   cancelled at send time because it was no longer due is put into a batch the same way if it
   has become due again.
3. Each recipient's address is checked against Notify's rules (:func:`check_address`, applied
   to the whole chunk at once by :func:`address_problems`). A letter
   with an unusable address is made ``held`` with the problem code (``ADDRESS:BAD_POSTCODE``),
   in no batch, and its debt is flagged for tracing (``LETTER_HELD:ADDRESS:…``); a re-batched
   letter's debt has that flag cleared.
4. The rest are ``pending`` in the new batch (``built``, built by the actor), each with an
   opaque random reference. ``limit`` caps the letters put in the batch (held ones do not count):
   operators build within the day's sending quota, and the next build takes the rest.

Written in chunks of ``settings.chunk_size`` letters, each one transaction with its history rows
and events, under the ``stage:notify-build`` lease. A build killed part-way leaves a smaller
batch (its ``letter_count`` is kept right chunk by chunk); building again puts the letters not
yet in the outbox into a new batch. Nothing is sent until a second person approves the batch.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import polars as pl
from sqlalchemy.engine import Connection

from csa_closure.context import Context
from csa_closure.domain.events import EventType
from csa_closure.domain.states import BatchStatus, LetterStatus
from csa_closure.errors import UsageError
from csa_closure.letters import (
    ALLOWED_LETTERS,
    AddressProblem,
    AddressProblemCode,
    LetterPurpose,
    address_problems,
    letters_due,
    new_references,
)
from csa_closure.letters.address import PARTY_COLUMNS
from csa_closure.letters.due import DUE_CREDITOR, DUE_NOT_BEFORE, DUE_STATES
from csa_closure.progress import NO_PROGRESS, Progress
from csa_closure.stages.letters_outbox.common import (
    BUILD_LEASE,
    BUILD_STAGE,
    HELD_PREFIX,
    TOOLKIT,
    flag_debts,
    read_in,
)
from csa_closure.store import events
from csa_closure.store.debts import update_debts
from csa_closure.store.dialect import driver_value, read_frame
from csa_closure.store.letters import (
    add_to_batch,
    change_letters,
    create_batch,
    insert_letters,
    letter_changes,
)
from csa_closure.store.runs import Run, stage_run

# Letters that may be in a batch again (``_revivable``) are held or cancelled ones: a kind
# whose one letter (the outbox holds at most one per debt, purpose and recipient) is in any
# other status is never due again, so the store is asked only for debts in a state some kind
# is due in (DUE_STATES), on or after its date (DUE_NOT_BEFORE), owed to its creditor
# (DUE_CREDITOR), and lacking that kind's letter. letters_due then decides on exactly the rows
# it always did; the outbox read is only of those debts' letters. A build with little left to
# do reads little (an empty one read the whole book and every letter).
_REVIVABLE_STATUSES = (LetterStatus.HELD.value, LetterStatus.CANCELLED.value)


def _candidates(conn: Connection, as_of: date) -> tuple[str, list[Any]]:
    """The SQL condition on ``debts d`` (and its parameters) choosing the debts some letter
    may be due for on ``as_of`` (see above)."""
    clauses, params = [], []
    for kind, states in DUE_STATES.items():
        since, creditor = DUE_NOT_BEFORE.get(kind), DUE_CREDITOR.get(kind)
        clauses.append(
            f"(d.state IN ({', '.join('?' for _ in states)})"
            + (f" AND d.{since} <= ?" if since else "")
            + (" AND d.creditor = ?" if creditor else "")
            + " AND NOT EXISTS (SELECT 1 FROM letters l WHERE l.debt_id = d.debt_id"
            " AND l.purpose = ? AND l.recipient = ? AND l.status NOT IN (?, ?)))"
        )
        params += [*states, *([driver_value(conn, as_of)] if since else [])]
        params += [creditor] if creditor else []
        params += [kind.purpose.value, kind.recipient.value, *_REVIVABLE_STATUSES]
    return "(" + "\n    OR ".join(clauses) + ")", params


_DUE_SQL = """
SELECT d.debt_id, d.case_ref, d.creditor, d.state, d.outcome, d.response,
       d.reminder_due, d.response_deadline,
       c.pwc_party_ref, c.nrp_party_ref,
       pwc.deceased_on AS pwc_deceased_on, nrp.deceased_on AS nrp_deceased_on
FROM debts d
JOIN cases c ON c.case_ref = d.case_ref
JOIN parties pwc ON pwc.party_ref = c.pwc_party_ref
JOIN parties nrp ON nrp.party_ref = c.nrp_party_ref
WHERE {candidates}
ORDER BY d.debt_id
"""
_EXISTING_SQL = """
SELECT l.letter_id, l.debt_id, l.purpose, l.recipient, l.status, l.reference, l.failure_reason
FROM letters l
WHERE l.debt_id IN (SELECT d.debt_id FROM debts d WHERE {candidates})
"""
_DUE_SCHEMA: dict[str, pl.DataType] = {
    "debt_id": pl.Int64(),
    "case_ref": pl.String(),
    "creditor": pl.String(),
    "state": pl.String(),
    "outcome": pl.String(),
    "response": pl.String(),
    "reminder_due": pl.Date(),
    "response_deadline": pl.Date(),
    "pwc_party_ref": pl.String(),
    "nrp_party_ref": pl.String(),
    "pwc_deceased_on": pl.Date(),
    "nrp_deceased_on": pl.Date(),
}
_EXISTING_SCHEMA: dict[str, pl.DataType] = {
    "letter_id": pl.Int64(),
    "debt_id": pl.Int64(),
    "purpose": pl.String(),
    "recipient": pl.String(),
    "status": pl.String(),
    "reference": pl.String(),
    "failure_reason": pl.String(),
}
MISSING_PARTY = AddressProblem(AddressProblemCode.MISSING_NAME).reason
_PARTY_SCHEMA: dict[str, pl.DataType] = {
    "party_ref": pl.String(),
    **{name: pl.String() for name in PARTY_COLUMNS},
}


@dataclass
class BuildResult:
    """What a build did. JSON keys are these names (runbooks/03-letters.md)."""

    run_id: int | None
    batch_id: int | None  # None: nothing to send was due
    as_of: str
    letter_type: str | None
    limit: int | None
    pending: int = 0  # letters in the batch, to send
    rebatched: int = 0  # of which were held before and now have a usable address
    held: int = 0  # new letters held for an unusable address (in no batch)
    still_held: int = 0  # letters held before whose address is still unusable
    left_for_later: int = 0  # due, but over the limit: the next build takes them
    debts_flagged: int = 0  # debts flagged for tracing because a letter is held
    debts_unflagged: int = 0  # held-letter flags cleared: the address is usable now
    by_kind: dict[str, int] = field(default_factory=dict)  # pending letters per kind
    held_by_reason: dict[str, int] = field(default_factory=dict)  # new and still held


def parse_letter_type(value: str | None) -> tuple[str | None, str | None]:
    """``representation`` or ``write_off_notice.NRP`` (purpose, or purpose.recipient)."""
    if value is None:
        return None, None
    purpose, _, recipient = value.partition(".")
    try:
        LetterPurpose(purpose)
    except ValueError:
        raise UsageError(
            f"unknown letter type {value!r}: one of "
            + ", ".join(p.value for p in LetterPurpose)
            + " (optionally .PWC or .NRP)"
        ) from None
    if recipient:
        if not any(k.key == value for k in ALLOWED_LETTERS):
            raise UsageError(f"there is no {purpose} letter to the {recipient}")
        return purpose, recipient
    return purpose, None


def build_batch(
    ctx: Context,
    *,
    letter_type: str | None = None,
    limit: int | None = None,
    progress: Progress = NO_PROGRESS,
) -> BuildResult:
    """Build a batch of the letters due on ``ctx.as_of`` (see the module doc)."""
    purpose, recipient = parse_letter_type(letter_type)
    if limit is not None and limit < 1:
        raise UsageError("--limit must be at least 1")
    parameters = {"letter_type": letter_type, "limit": limit}
    result = BuildResult(None, None, ctx.as_of.isoformat(), letter_type, limit)
    with stage_run(ctx, BUILD_STAGE, parameters, claims=[BUILD_LEASE]) as run:
        result.run_id = run.run_id
        progress.start("notify build: finding letters", None)
        with ctx.engine.connect() as conn:
            due = _due(conn, ctx, purpose, recipient)
        progress.finish("notify build: finding letters")
        _write(run, due, result, progress)
        run.counts.update(_summary(result))
    return result


def _summary(result: BuildResult) -> dict[str, Any]:
    return {
        "batch_id": result.batch_id,
        "pending": result.pending,
        "rebatched": result.rebatched,
        "held": result.held,
        "still_held": result.still_held,
        "left_for_later": result.left_for_later,
        "held_by_reason": dict(result.held_by_reason),
        "by_kind": dict(result.by_kind),
    }


def _due(
    conn: Connection, ctx: Context, purpose: str | None, recipient: str | None
) -> pl.DataFrame:
    """Letters due and not yet in the outbox (or held), ordered by debt then kind, with the id
    of the held letter each one would re-batch (``held_letter_id``)."""
    candidates, params = _candidates(conn, ctx.as_of)
    debts = read_frame(conn, (_DUE_SQL.format(candidates=candidates), params), _DUE_SCHEMA)
    existing = read_frame(
        conn, (_EXISTING_SQL.format(candidates=candidates), params), _EXISTING_SCHEMA
    )
    held = existing.filter(_revivable())
    due = letters_due(debts, ctx.as_of, existing=existing.filter(~_revivable()))
    if purpose is not None:
        due = due.filter(pl.col("purpose") == purpose)
    if recipient is not None:
        due = due.filter(pl.col("recipient") == recipient)
    return due.join(
        held.select(
            pl.col("letter_id").alias("held_letter_id"),
            pl.col("status").alias("held_status"),
            "debt_id",
            "purpose",
            "recipient",
            pl.col("reference").alias("held_reference"),
        ),
        on=["debt_id", "purpose", "recipient"],
        how="left",
        maintain_order="left",
    )


def _revivable() -> pl.Expr:
    """Letters that may go into a batch again when they are due: held ones (their address may
    have been fixed since), and ones cancelled at send time because they were no longer due
    (the debt has come back to where the letter is due, e.g. a caseworker decided a write-off
    with notice again). Never one cancelled because its recipient died."""
    cancelled = (
        (pl.col("status") == LetterStatus.CANCELLED.value)
        & pl.col("failure_reason").fill_null("").str.starts_with("NOT_DUE:")
        & (pl.col("failure_reason") != "NOT_DUE:RECIPIENT_DECEASED")
    )
    return (pl.col("status") == LetterStatus.HELD.value) | cancelled.fill_null(False)


def _problems(conn: Connection, due: pl.DataFrame) -> pl.DataFrame:
    """``due`` with ``problem``: why the recipient's address is unusable (null: usable).
    Addresses are read here and go no further than this check."""
    parties = read_in(
        conn,
        f"SELECT party_ref, {', '.join(PARTY_COLUMNS)} FROM parties WHERE party_ref IN ({{marks}})",
        due["party_ref"].unique().to_list(),
        _PARTY_SCHEMA,
    )
    reasons = parties.select(
        "party_ref", address_problems(parties).alias("problem"), pl.lit(True).alias("_found")
    ).unique("party_ref", keep="first")
    return (
        due.drop("problem", strict=False)
        .join(reasons, on="party_ref", how="left", maintain_order="left")
        .with_columns(
            # no such party: nobody to address the letter to
            pl.when(pl.col("_found"))
            .then(pl.col("problem"))
            .otherwise(pl.lit(MISSING_PARTY))
            .alias("problem")
        )
        .drop("_found")
    )


def _write(run: Run, due: pl.DataFrame, result: BuildResult, progress: Progress) -> None:
    ctx = run.ctx
    size = ctx.settings.chunk_size
    progress.start("notify build: writing letters", due.height)
    offset = 0
    while offset < due.height:
        room = None if result.limit is None else result.limit - result.pending
        if room is not None and room <= 0:
            break
        part = due.slice(offset, size)
        with ctx.engine.connect() as conn:
            part = _problems(conn, part)
        if room is not None:
            # up to the letter that fills the batch (held ones before it are recorded too)
            counted = part["problem"].is_null().cast(pl.Int64).cum_sum()
            full = (counted >= room).arg_true()
            if full.len():
                part = part.head(int(full[0]) + 1)
        with run.chunk() as conn:
            _write_chunk(conn, run, part, result)
        offset += part.height
        progress.advance("notify build: writing letters", part.height)
    result.left_for_later = due.height - offset
    progress.finish("notify build: writing letters")


def _ensure_batch(conn: Connection, run: Run, result: BuildResult) -> int:
    if result.batch_id is None:
        ctx = run.ctx
        result.batch_id = create_batch(
            conn,
            letter_type=result.letter_type,
            as_of=ctx.as_of,
            built_by=ctx.actor,
            built_at=ctx.clock(),
            built_run_id=run.run_id,
        )
        # in the transaction that creates the batch, so a build killed later still leaves
        # its (smaller) batch on record; what the build put in it is in the run's counts
        events.record(
            conn,
            run,
            EventType.BATCH_BUILT,
            entity=f"batch:{result.batch_id}",
            to_state=BatchStatus.BUILT.value,
            detail={
                "batch_id": result.batch_id,
                "letter_type": result.letter_type,
                "limit": result.limit,
            },
        )
    return result.batch_id


def _write_chunk(conn: Connection, run: Run, part: pl.DataFrame, result: BuildResult) -> None:
    usable = pl.col("problem").is_null()
    was_held = pl.col("held_letter_id").is_not_null()
    fresh = part.filter(~was_held)
    rebatch = part.filter(was_held & usable)
    still_held = part.filter(was_held & ~usable)
    sendable = fresh.filter(usable).height + rebatch.height
    batch_id = _ensure_batch(conn, run, result) if sendable else None
    _insert_letters(conn, run, fresh, batch_id)
    if rebatch.height:
        result.debts_unflagged += _rebatch(conn, run, rebatch, batch_id)
    # a cancelled letter due again whose address is unusable is held now, like a new one
    _hold_revived(conn, run, still_held.filter(pl.col("held_status") != LetterStatus.HELD.value))
    new_held = pl.concat(
        [
            fresh.filter(~usable),
            still_held.filter(pl.col("held_status") != LetterStatus.HELD.value),
        ],
        how="diagonal_relaxed",
    )
    still_held = still_held.filter(pl.col("held_status") == LetterStatus.HELD.value)
    result.debts_flagged += flag_debts(
        conn,
        run,
        new_held.select("debt_id", (pl.lit(HELD_PREFIX) + pl.col("problem")).alias("reason")),
        tracing=True,
        caseworker=False,
    )
    if batch_id is not None:
        add_to_batch(conn, batch_id, sendable)
    result.pending += sendable
    result.rebatched += rebatch.height
    result.held += new_held.height
    result.still_held += still_held.height
    kinds = pl.concat([fresh.filter(usable), rebatch], how="diagonal_relaxed")
    counted = (
        kinds.select(pl.concat_str("purpose", pl.lit("."), "recipient").alias("kind"))
        .group_by("kind", maintain_order=True)  # in the order the kinds first appear
        .len()
    )
    for key, n in counted.iter_rows():
        result.by_kind[key] = result.by_kind.get(key, 0) + n
    for reason, n in Counter(
        pl.concat([new_held, still_held], how="diagonal_relaxed")["problem"].to_list()
    ).items():
        result.held_by_reason[reason] = result.held_by_reason.get(reason, 0) + n


def _insert_letters(conn: Connection, run: Run, fresh: pl.DataFrame, batch_id: int | None) -> None:
    if fresh.height == 0:
        return
    ctx = run.ctx
    usable = pl.col("problem").is_null()
    rows = fresh.select(
        pl.Series("reference", new_references(fresh.height, ctx.random_bytes), dtype=pl.String),
        pl.when(usable).then(pl.lit(batch_id, dtype=pl.Int64)).alias("batch_id"),
        "debt_id",
        "case_ref",
        "purpose",
        "recipient",
        "party_ref",
        pl.when(usable)
        .then(pl.lit(LetterStatus.PENDING.value))
        .otherwise(pl.lit(LetterStatus.HELD.value))
        .alias("status"),
        pl.col("problem").alias("held_reason"),
        pl.lit(0, dtype=pl.Int64).alias("attempts"),
        pl.lit(ctx.clock()).alias("created_at"),
        pl.lit(ctx.clock()).alias("status_at"),
    )
    insert_letters(conn, run, rows, source=TOOLKIT)


def _held_letters(rows: pl.DataFrame, batch_id: int | None, held_reason: pl.Expr) -> pl.DataFrame:
    """The held (or cancelled) letters ``rows`` would revive, as letters read (``status``),
    going into ``batch_id`` with ``held_reason`` and no failure reason."""
    return rows.select(
        pl.col("held_letter_id").alias("letter_id"),
        pl.col("held_reference").alias("reference"),
        pl.lit(batch_id, dtype=pl.Int64).alias("batch_id"),
        "debt_id",
        "case_ref",
        "purpose",
        "recipient",
        "party_ref",
        pl.col("held_status").alias("status"),
        held_reason.cast(pl.String).alias("held_reason"),
        pl.lit(None, dtype=pl.String).alias("failure_reason"),
    )


_REVIVED_COLUMNS = ["batch_id", "held_reason", "failure_reason", "party_ref"]


def _hold_revived(conn: Connection, run: Run, rows: pl.DataFrame) -> None:
    if rows.height == 0:
        return
    change_letters(
        conn,
        run,
        letter_changes(
            _held_letters(rows, None, pl.col("problem")),
            LetterStatus.HELD.value,
            pl.col("held_reason"),
        ),
        source=TOOLKIT,
        set_columns=_REVIVED_COLUMNS,
    )


def _rebatch(conn: Connection, run: Run, rebatch: pl.DataFrame, batch_id: int | None) -> int:
    change_letters(
        conn,
        run,
        letter_changes(
            _held_letters(rebatch, batch_id, pl.lit(None)),
            LetterStatus.PENDING.value,
            pl.when(pl.col("status") == LetterStatus.HELD.value)
            .then(pl.lit("ADDRESS_USABLE_NOW"))
            .otherwise(pl.lit("DUE_AGAIN")),
        ),
        source=TOOLKIT,
        set_columns=_REVIVED_COLUMNS,
    )
    return _clear_held_flags(conn, run, rebatch["debt_id"].unique().to_list())


_CLEARABLE_SQL = """
SELECT d.debt_id, d.case_ref, d.state, d.needs_caseworker, d.review_reason FROM debts d
WHERE d.needs_tracing = ? AND d.review_reason LIKE ?
  AND NOT EXISTS (SELECT 1 FROM letters l WHERE l.debt_id = d.debt_id AND l.status = ?)
  AND d.debt_id IN ({marks})
"""


def _clear_held_flags(conn: Connection, run: Run, debt_ids: list[int]) -> int:
    """A debt flagged only because a letter was held for its address, with no letter held
    any more, is no longer waiting for tracing."""
    clearable = read_in(
        conn,
        _CLEARABLE_SQL,
        debt_ids,
        {
            "debt_id": pl.Int64(),
            "case_ref": pl.String(),
            "state": pl.String(),
            "needs_caseworker": pl.Boolean(),
            "review_reason": pl.String(),
        },
        params=[driver_value(conn, True), f"{HELD_PREFIX}ADDRESS:%", LetterStatus.HELD.value],
    )
    if clearable.height == 0:
        return 0
    frame = clearable.select(
        "debt_id",
        "case_ref",
        "state",
        pl.lit(False).alias("needs_tracing"),
        pl.when(pl.col("needs_caseworker"))
        .then(pl.col("review_reason"))
        .otherwise(pl.lit(None, dtype=pl.String))
        .alias("review_reason"),
        pl.struct(pl.col("review_reason").alias("cleared")).alias("detail"),
    )
    return update_debts(
        conn,
        run,
        frame,
        columns=["needs_tracing", "review_reason"],
        event_type=EventType.DEBT_FLAG_CLEARED,
    )
