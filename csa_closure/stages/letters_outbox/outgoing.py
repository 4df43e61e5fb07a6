"""Letters on their way out: read a batch's letters with the facts they need, check each is
still due, and compose it for its recipient only.

Reading is keyset-paged (``letter_id > last``) so a batch of hundreds of thousands of letters
is never in memory at once. The recipient's name and address are read (with a join on the
letter's own ``party_ref``) only when the letter is about to be composed, and go no further
than the composed letter handed to the channel.

**Still due at send time.** A batch may be sent days after it was built; by then a parent may
have answered, a deadline passed, a caseworker re-decided the debt, or a re-pull recorded a
death. :func:`still_due` says, for every letter at once, why it must no longer go (null: it
goes):

- ``RECIPIENT_CHANGED``: the case's parent is no longer the party the letter is addressed to
  (held for a caseworker: never guessed);
- ``NOT_DUE:RECIPIENT_DECEASED``: the recipient died on or before the as-of date;
- ``NOT_DUE:RESPONSE_RECEIVED`` / ``NOT_DUE:DEADLINE_PASSED`` (reminders) and
  ``NOT_DUE:DEBT_MOVED``: what the letter would say is no longer so.

A notice stays true once its fact is (the collection request was made; the write-off is
pending or done; the transfer was acknowledged), so it is not cancelled because resolve has
since moved its debt on. A final-chance letter being sent again (a resend after Notify's
technical failure) stays due while its own window is open and no answer has come.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import polars as pl
from sqlalchemy.engine import Connection

from csa_closure.domain.states import DebtState, Outcome
from csa_closure.letters import (
    AddressNotUsable,
    LetterFacts,
    LetterNotAllowed,
    LettersConfig,
    OutgoingLetter,
    RecipientParty,
    prepare_letter,
)
from csa_closure.letters.address import PARTY_COLUMNS
from csa_closure.letters.compose import compose_frame
from csa_closure.store.dialect import read_frame
from csa_closure.store.letters import LETTER_KEY_COLUMNS

LETTER_SCHEMA: dict[str, pl.DataType] = {
    "letter_id": pl.Int64(),
    "reference": pl.String(),
    "batch_id": pl.Int64(),
    "debt_id": pl.Int64(),
    "case_ref": pl.String(),
    "purpose": pl.String(),
    "recipient": pl.String(),
    "party_ref": pl.String(),
    "status": pl.String(),
    "letter_date": pl.Date(),
    "attempts": pl.Int64(),
    "attempted_at": pl.Datetime("us", "UTC"),
    "notify_id": pl.String(),
    "channel": pl.String(),
    "creditor": pl.String(),
    "state": pl.String(),
    "outcome": pl.String(),
    "response": pl.String(),
    "reminder_due": pl.Date(),
    "response_deadline": pl.Date(),
    "debt_letter_date": pl.Date(),
    "opening_pence": pl.Int64(),
    "decided_as_of": pl.Date(),
    "pwc_party_ref": pl.String(),
    "nrp_party_ref": pl.String(),
    "pwc_deceased_on": pl.Date(),
    "nrp_deceased_on": pl.Date(),
}
ADDRESS_SCHEMA: dict[str, pl.DataType] = {
    "given_names": pl.String(),
    "family_name": pl.String(),
    "address_line_1": pl.String(),
    "address_line_2": pl.String(),
    "address_line_3": pl.String(),
    "address_line_4": pl.String(),
    "address_line_5": pl.String(),
    "postcode": pl.String(),
    "recipient_deceased_on": pl.Date(),
}

_SELECT = """
SELECT l.letter_id, l.reference, l.batch_id, l.debt_id, l.case_ref, l.purpose, l.recipient,
       l.party_ref, l.status, l.letter_date, l.attempts, l.attempted_at, l.notify_id, l.channel,
       d.creditor, d.state, d.outcome, d.response, d.reminder_due, d.response_deadline,
       d.letter_date AS debt_letter_date, d.opening_pence, d.decided_as_of,
       c.pwc_party_ref, c.nrp_party_ref,
       pwc.deceased_on AS pwc_deceased_on, nrp.deceased_on AS nrp_deceased_on{address}
FROM ({letters}) l
JOIN debts d ON d.debt_id = l.debt_id
JOIN cases c ON c.case_ref = d.case_ref
JOIN parties pwc ON pwc.party_ref = c.pwc_party_ref
JOIN parties nrp ON nrp.party_ref = c.nrp_party_ref{address_join}
"""
_ADDRESS_SELECT = (
    ",\n       p.given_names, p.family_name, p.address_line_1, p.address_line_2,"
    " p.address_line_3, p.address_line_4, p.address_line_5, p.postcode,"
    " p.deceased_on AS recipient_deceased_on"
)
_ADDRESS_JOIN = "\nJOIN parties p ON p.party_ref = l.party_ref"


def _select(letters_sql: str, with_address: bool) -> tuple[str, dict[str, pl.DataType]]:
    """The letters chosen by ``letters_sql`` (a query on ``letters``) with their facts. The
    letters are chosen first, so each page joins only its own rows (primary-key lookups)."""
    sql = _SELECT.format(
        letters=letters_sql,
        address=_ADDRESS_SELECT if with_address else "",
        address_join=_ADDRESS_JOIN if with_address else "",
    )
    schema = {**LETTER_SCHEMA, **(ADDRESS_SCHEMA if with_address else {})}
    return sql, schema


def read_batch_letters(
    conn: Connection,
    batch_id: int,
    statuses: Sequence[str],
    *,
    after: int = 0,
    limit: int | None = None,
    with_address: bool = False,
) -> pl.DataFrame:
    """The batch's letters in ``statuses`` with ``letter_id > after``, in id order."""
    marks = ", ".join("?" for _ in statuses)
    chosen = (
        f"SELECT * FROM letters WHERE batch_id = ? AND status IN ({marks}) AND letter_id > ?"
        " ORDER BY letter_id"
    )
    params: list[Any] = [batch_id, *statuses, after]
    if limit is not None:
        chosen += " LIMIT ?"
        params.append(limit)
    sql, schema = _select(chosen, with_address)
    return read_frame(conn, (sql + "\nORDER BY l.letter_id", params), schema)


OUTBOX_COLUMNS = (
    *LETTER_KEY_COLUMNS,
    "party_ref",
    "status",
    "letter_date",
)


def read_batch_outbox(conn: Connection, batch_id: int, statuses: Sequence[str]) -> pl.DataFrame:
    """The batch's letters in ``statuses``, in id order, with their own columns only
    (:data:`OUTBOX_COLUMNS`: enough to record a change of status, no facts of the debt)."""
    marks = ", ".join("?" for _ in statuses)
    sql = (
        f"SELECT {', '.join(OUTBOX_COLUMNS)} FROM letters"
        f" WHERE batch_id = ? AND status IN ({marks}) ORDER BY letter_id"
    )
    return read_frame(
        conn, (sql, [batch_id, *statuses]), {c: LETTER_SCHEMA[c] for c in OUTBOX_COLUMNS}
    )


def read_letters_by_id(
    conn: Connection, letter_ids: Sequence[int], *, with_address: bool = False
) -> pl.DataFrame:
    frames = []
    for start in range(0, len(letter_ids), 5_000):
        part = list(letter_ids[start : start + 5_000])
        marks = ", ".join("?" for _ in part)
        sql, schema = _select(f"SELECT * FROM letters WHERE letter_id IN ({marks})", with_address)
        frames.append(read_frame(conn, (sql + "\nORDER BY l.letter_id", part), schema))
    if not frames:
        return pl.DataFrame(schema=_select("", with_address)[1])
    return pl.concat(frames)


# What composing a letter reads (facts_for, RecipientParty.from_row): the letter, its debt's
# amount and dates, and its own recipient's name, address and date of death.
_COMPOSING_SELECT = """
SELECT l.letter_id, l.reference, l.purpose, l.recipient, l.case_ref, l.letter_date,
       d.opening_pence, d.decided_as_of, d.response_deadline, d.letter_date AS debt_letter_date,
       p.given_names, p.family_name, p.address_line_1, p.address_line_2, p.address_line_3,
       p.address_line_4, p.address_line_5, p.postcode, p.deceased_on AS recipient_deceased_on
FROM letters l
JOIN debts d ON d.debt_id = l.debt_id
JOIN parties p ON p.party_ref = l.party_ref
WHERE l.letter_id IN ({marks})
ORDER BY l.letter_id
"""
_COMPOSING_SCHEMA: dict[str, pl.DataType] = {
    **{
        c: LETTER_SCHEMA[c]
        for c in (
            "letter_id",
            "reference",
            "purpose",
            "recipient",
            "case_ref",
            "letter_date",
            "opening_pence",
            "decided_as_of",
            "response_deadline",
        )
    },
    "debt_letter_date": pl.Date(),
    **ADDRESS_SCHEMA,
}


def read_for_composing(conn: Connection, letter_ids: Sequence[int]) -> pl.DataFrame:
    """The letters ``letter_ids`` with what composing them reads and nothing more (every
    letter has its debt and its party), in id order: for :func:`compose_rows` and
    :func:`compose_frame_rows`."""
    frames = []
    for start in range(0, len(letter_ids), 5_000):
        part = list(letter_ids[start : start + 5_000])
        sql = _COMPOSING_SELECT.format(marks=", ".join("?" for _ in part))
        frames.append(read_frame(conn, (sql, part), _COMPOSING_SCHEMA))
    return pl.concat(frames) if frames else pl.DataFrame(schema=_COMPOSING_SCHEMA)


# --- still due? ---------------------------------------------------------------------------


def still_due(as_of: date) -> pl.Expr:
    """Why each letter must no longer go, or null (see the module doc)."""
    purpose, state, response = pl.col("purpose"), pl.col("state"), pl.col("response")
    to_pwc = pl.col("recipient") == "PWC"
    case_party = pl.when(to_pwc).then(pl.col("pwc_party_ref")).otherwise(pl.col("nrp_party_ref"))
    died = pl.when(to_pwc).then(pl.col("pwc_deceased_on")).otherwise(pl.col("nrp_deceased_on"))
    day = pl.lit(as_of)
    no_answer = response.is_null()
    own_window_open = (
        (state == DebtState.AWAITING_RESPONSE.value)
        & no_answer
        & (pl.col("debt_letter_date") == pl.col("letter_date"))
        & (day <= pl.col("response_deadline"))
    )
    reminder_window = (
        (pl.col("reminder_due") <= day) & (day < pl.col("response_deadline"))
    ).fill_null(False)
    true_now = (
        pl.when(purpose == "representation")
        .then((state == DebtState.AWAITING_LETTER.value) | own_window_open.fill_null(False))
        .when(purpose == "reminder")
        .then((state == DebtState.AWAITING_RESPONSE.value) & no_answer & reminder_window)
        .when(purpose == "collection_requested")
        .then(response == "COLLECT")
        .when(purpose == "write_off_notice")
        .then(
            state.is_in([DebtState.WRITE_OFF_PENDING.value, DebtState.WRITTEN_OFF.value])
            & (pl.col("outcome").fill_null("") != Outcome.WRITE_OFF_SILENT.value)
        )
        .when(purpose == "transfer_notice")
        .then(state == DebtState.TRANSFERRED.value)
        .otherwise(pl.lit(False))
        .fill_null(False)
    )
    return (
        pl.when(pl.col("party_ref") != case_party)
        .then(pl.lit("RECIPIENT_CHANGED"))
        .when((died <= day).fill_null(False))
        .then(pl.lit("NOT_DUE:RECIPIENT_DECEASED"))
        .when(true_now)
        .then(pl.lit(None, dtype=pl.String))
        .when((purpose == "reminder") & response.is_not_null())
        .then(pl.lit("NOT_DUE:RESPONSE_RECEIVED"))
        .when((purpose == "reminder") & (day >= pl.col("response_deadline")).fill_null(False))
        .then(pl.lit("NOT_DUE:DEADLINE_PASSED"))
        .otherwise(pl.lit("NOT_DUE:DEBT_MOVED"))
        .alias("not_due")
    )


# --- composing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Composed:
    """A letter ready for its channel, with the row it was read from (for recording)."""

    row: dict[str, Any]
    letter: OutgoingLetter

    def __repr__(self) -> str:  # the row holds the address: never shown
        return f"Composed(reference={self.letter.reference!r}, kind={self.letter.kind.key!r})"


@dataclass(frozen=True)
class Unsendable:
    letter_id: int
    reason: str  # ADDRESS:BAD_POSTCODE, DECEASED, MISSING_RESPONSE_DEADLINE ...
    tracing: bool  # an address problem: the debt needs tracing (else a caseworker)


def letter_date_of(row: dict[str, Any], as_of: date) -> date:
    """The date the letter is (or was first) sent with: kept on the letter from its first send
    intent, so a letter sent again says exactly what it said the first time."""
    stored: date | None = row["letter_date"]
    return stored if stored is not None else as_of


def facts_for(row: dict[str, Any], as_of: date) -> LetterFacts:
    reminder = row["purpose"] == "reminder"
    return LetterFacts(
        case_ref=row["case_ref"],
        amount_pence=int(row["opening_pence"]),
        letter_date=letter_date_of(row, as_of),
        decision_date=row["decided_as_of"],
        response_deadline=row["response_deadline"] if reminder else None,
        first_letter_date=row["debt_letter_date"] if reminder else None,
    )


def compose_rows(
    rows: pl.DataFrame, config: LettersConfig, as_of: date
) -> tuple[list[Composed], list[Unsendable]]:
    """Compose each letter (rows read ``with_address``) for its recipient only."""
    ready: list[Composed] = []
    refused: list[Unsendable] = []
    for row in rows.iter_rows(named=True):
        party = RecipientParty.from_row({**row, "deceased_on": row["recipient_deceased_on"]})
        try:
            letter = prepare_letter(
                row["reference"],
                row["purpose"],
                row["recipient"],
                party,
                facts_for(row, as_of),
                config,
            )
        except AddressNotUsable as exc:
            refused.append(Unsendable(row["letter_id"], exc.problem.reason, True))
        except LetterNotAllowed as exc:
            refused.append(Unsendable(row["letter_id"], exc.code, False))
        except ValueError:
            refused.append(Unsendable(row["letter_id"], "BAD_CASE_REFERENCE", False))
        else:
            ready.append(Composed(row, letter))
    return ready, refused


def composing_frame(rows: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """Letters (rows read ``with_address``) as :func:`compose_frame` reads them: the party and
    the facts :func:`compose_rows` gives :func:`prepare_letter` (``facts_for``)."""
    reminder = pl.col("purpose") == "reminder"
    return rows.select(
        "reference",
        "purpose",
        "recipient",
        *PARTY_COLUMNS,
        pl.col("recipient_deceased_on").alias("deceased_on"),
        "case_ref",
        pl.col("opening_pence").alias("amount_pence"),
        pl.coalesce(pl.col("letter_date"), pl.lit(as_of, dtype=pl.Date)).alias("letter_date"),
        pl.col("decided_as_of").alias("decision_date"),
        pl.when(reminder).then(pl.col("response_deadline")).alias("response_deadline"),
        pl.when(reminder).then(pl.col("debt_letter_date")).alias("first_letter_date"),
    )


def compose_frame_rows(
    rows: pl.DataFrame, config: LettersConfig, as_of: date
) -> tuple[pl.DataFrame, list[Unsendable]]:
    """:func:`compose_rows` for a whole frame at once: the letters composed as a frame
    (:func:`compose_frame`'s columns and ``letter_id``, in order), and the letters that cannot
    be composed, with why (from :func:`compose_rows`: compose's reasons are the reference)."""
    composed = compose_frame(composing_frame(rows, as_of), config).with_columns(
        rows.get_column("letter_id")
    )
    composable = composed.get_column("composable")
    refused: list[Unsendable] = []
    if not composable.all():
        ready, refused = compose_rows(rows.filter(~composable), config, as_of)
        # compose_frame must agree with compose: tests/letters/test_letters_compose_frame.py
        if ready:
            raise RuntimeError(
                f"compose_frame refused {len(ready)} letters compose accepts"
                f" (first: {ready[0].letter.reference}); nothing was sent"
            )
    return composed.filter(composable), refused


def unsendable_frame(rows: pl.DataFrame, refused: list[Unsendable]) -> pl.DataFrame:
    """The rows of ``refused`` letters with their ``held_reason`` and ``tracing`` flag."""
    if not refused:
        return rows.clear().with_columns(
            pl.lit(None, dtype=pl.String).alias("held_reason"),
            pl.lit(None, dtype=pl.Boolean).alias("tracing"),
        )
    reasons = pl.DataFrame(
        {
            "letter_id": [u.letter_id for u in refused],
            "held_reason": [u.reason for u in refused],
            "tracing": [u.tracing for u in refused],
        },
        schema={"letter_id": pl.Int64, "held_reason": pl.String, "tracing": pl.Boolean},
    )
    return rows.join(reasons, on="letter_id", how="inner")


def without_address(rows: pl.DataFrame) -> pl.DataFrame:
    """``rows`` with the recipient's name and address dropped, for anything that is kept."""
    return rows.drop([c for c in ADDRESS_SCHEMA if c in rows.columns])
