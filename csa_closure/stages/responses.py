"""Parents' answers to the final chance: import the channels' daily files, record phone calls.

Every row of a response file ends in exactly one of:

- **accepted**: recorded in ``responses`` against the case's debt, and the debt moves;
- **duplicate**: its ``document_id`` is already recorded (or is on an earlier row of the same
  file) with the same values: ignored, counted;
- **rejected** with a reason code (:class:`RejectReason`), written to the rejects file and
  ``import_rejections`` for the contact centre.

The three counts always add up to the rows in the file. A file whose exact bytes were imported
before is recognised by its SHA-256 and changes nothing (its rejects file is written again
from the store, in case it was lost).

What an accepted response does (in time means ``letter_date <= received_on <=
response_deadline``: on the deadline is in time, the day after is late):

==================  ============================  ===========================================
response            debt                          effect
==================  ============================  ===========================================
PWC COLLECT         awaiting_response             -> collect_requested (collectability at the
                                                  next resolve)
PWC DO_NOT_COLLECT  awaiting_response             -> write_off_pending, write_off_notice,
                                                  FINAL_CHANCE_DECLINED
PWC COLLECT         write_off_pending, expired    -> review, IN_TIME_RESPONSE_AFTER_EXPIRY
                    (NO_RESPONSE), in time        (the post was in time; a caseworker decides)
PWC DO_NOT_COLLECT  write_off_pending, expired    stays write_off_pending; reason becomes
                                                  FINAL_CHANCE_DECLINED
PWC COLLECT         written_off as NO_RESPONSE,   recorded; debt flagged needs_caseworker,
                    in time                       IN_TIME_RESPONSE_AFTER_WRITE_OFF (reverse
                                                  the write-off and decide: runbook 05)
PWC DO_NOT_COLLECT  written_off as NO_RESPONSE    recorded (the write-off stands)
NRP DISPUTE_AMOUNT  collect_requested or          -> review, NRP_DISPUTE
                    transfer_ready
NRP DISPUTE_AMOUNT  transfer_sent (in a CMS       recorded; debt flagged needs_caseworker,
                    package, not acknowledged)    NRP_DISPUTE_IN_TRANSFER; no move
==================  ============================  ===========================================

A dispute while the debt sits in a CMS package does not move it: the package has left, and
moving the legacy record now would make it disagree with whatever the CMS answers. The flag
puts it in ``review list``; if the CMS rejects the debt it comes back to review with the flag
still on, and if the CMS accepts it the acknowledgement import lists it under
``disputes_to_forward`` (the dispute is then the CMS's to settle).

An NRP's dispute is about the case: it sends every debt of the case that is awaiting
collection to the caseworker; it is recorded against the PWC debt where that is one of them.

Within one file, responses are taken in order of ``received_on`` then row: the first answer
for a debt wins and later ones are rejected ``ALREADY_ANSWERED``; PWC answers are applied
before NRP disputes, so a dispute in the same file as the COLLECT it answers is accepted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy.engine import Connection

from csa_closure.context import Context
from csa_closure.domain import codes
from csa_closure.domain.codes import DecisionReason, ReviewReason
from csa_closure.domain.events import EventType
from csa_closure.domain.states import DebtState, Outcome
from csa_closure.errors import InputError
from csa_closure.progress import NO_PROGRESS, Progress
from csa_closure.serialise import JsonFields
from csa_closure.stages import intake
from csa_closure.stages.checks import BookCheck, check_book
from csa_closure.stages.contract_import import (
    Applied,
    ContractImport,
    ImportSummary,
    import_contract_file,
)
from csa_closure.store.debts import decision_stamp, move_debts, update_debts
from csa_closure.store.dialect import driver_sql, insert_frame, read_frame
from csa_closure.store.runs import Run, stage_run
from csa_closure.store.schema import responses

RESPONSES_LEASE = "stage:responses"
IMPORT_KIND = "responses"
COLUMNS = ("document_id", "case_ref", "party", "response", "received_on", "channel")
PARTIES = ("PWC", "NRP")
PWC_RESPONSES = ("COLLECT", "DO_NOT_COLLECT")
NRP_RESPONSES = ("DISPUTE_AMOUNT",)
CHANNELS = ("POST", "PHONE", "ONLINE")

# Decision codes this stage writes on debts.
RULE_DECLINED = codes.RULE_DECLINED
REASON_DECLINED = DecisionReason.FINAL_CHANCE_DECLINED.value
REASON_NO_RESPONSE = DecisionReason.NO_RESPONSE.value  # written by resolve's expiry; read here
REVIEW_NRP_DISPUTE = ReviewReason.NRP_DISPUTE.value
REVIEW_NRP_DISPUTE_IN_TRANSFER = ReviewReason.NRP_DISPUTE_IN_TRANSFER.value
REVIEW_AFTER_EXPIRY = ReviewReason.IN_TIME_RESPONSE_AFTER_EXPIRY.value
REVIEW_AFTER_WRITE_OFF = ReviewReason.IN_TIME_RESPONSE_AFTER_WRITE_OFF.value


class RejectReason(StrEnum):
    MALFORMED_ROW = "MALFORMED_ROW"  # wrong number of fields
    MISSING_VALUE = "MISSING_VALUE"
    BAD_DOCUMENT_ID = "BAD_DOCUMENT_ID"
    BAD_CASE_REF = "BAD_CASE_REF"
    BAD_PARTY = "BAD_PARTY"
    BAD_RESPONSE = "BAD_RESPONSE"
    BAD_CHANNEL = "BAD_CHANNEL"
    BAD_DATE = "BAD_DATE"
    FUTURE_DATE = "FUTURE_DATE"  # received after the as-of date
    DOCUMENT_ID_CONFLICT = "DOCUMENT_ID_CONFLICT"  # same id, different values
    UNKNOWN_CASE = "UNKNOWN_CASE"
    NOT_AWAITING = "NOT_AWAITING"  # the case is not waiting for this party's response
    ALREADY_ANSWERED = "ALREADY_ANSWERED"
    BEFORE_LETTER = "BEFORE_LETTER"  # received before the final-chance letter was sent
    LATE = "LATE"  # received after the response deadline


class Action(StrEnum):
    """What an accepted response does to its debt(s)."""

    COLLECT = "collect"
    DECLINE = "decline"
    COLLECT_AFTER_EXPIRY = "collect_after_expiry"
    DECLINE_AFTER_EXPIRY = "decline_after_expiry"
    COLLECT_AFTER_WRITE_OFF = "collect_after_write_off"
    DECLINE_AFTER_WRITE_OFF = "decline_after_write_off"
    DISPUTE = "dispute"
    DISPUTE_IN_TRANSFER = "dispute_in_transfer"


@dataclass
class ResponseImportResult(ImportSummary, JsonFields):
    """The outcome of one import. JSON keys are the field names (see runbooks/04)."""

    actions: dict[str, int]  # Action -> debts affected
    rejects_file: str | None
    ignored_columns: list[str] = field(default_factory=list)
    book: BookCheck | None = None


# --- judging rows -----------------------------------------------------------------------


def _field_checks(as_of: date) -> list[tuple[pl.Expr, RejectReason, pl.Expr]]:
    """(is bad, reason, detail) for one row's own fields, in the order they are reported."""
    received = pl.col("received_on").str.to_date("%Y-%m-%d", strict=False)
    date_shaped = pl.col("received_on").str.contains(intake.ISO_DATE_PATTERN)
    missing = pl.concat_str(
        [pl.when(pl.col(c).is_null()).then(pl.lit(c)) for c in COLUMNS],
        separator=", ",
        ignore_nulls=True,
    )
    party, response = pl.col("party"), pl.col("response")
    response_ok = ((party == "PWC") & response.is_in(PWC_RESPONSES)) | (
        (party == "NRP") & response.is_in(NRP_RESPONSES)
    )
    return [
        (
            pl.col("malformed"),
            RejectReason.MALFORMED_ROW,
            pl.lit("the row does not have one field for each header column"),
        ),
        (
            pl.any_horizontal(pl.col(c).is_null() for c in COLUMNS),
            RejectReason.MISSING_VALUE,
            pl.lit("no value for ") + missing,
        ),
        (
            ~pl.col("document_id").str.contains(intake.DOCUMENT_ID_PATTERN),
            RejectReason.BAD_DOCUMENT_ID,
            pl.lit("document_id must be 1-64 letters, digits or . _ : / - (starting alphanumeric)"),
        ),
        (
            ~pl.col("case_ref").str.contains(intake.CASE_REF_PATTERN),
            RejectReason.BAD_CASE_REF,
            pl.lit("case_ref must be C or S followed by 9 digits"),
        ),
        (
            ~party.is_in(PARTIES),
            RejectReason.BAD_PARTY,
            pl.lit("party must be PWC or NRP"),
        ),
        (
            ~response_ok,
            RejectReason.BAD_RESPONSE,
            pl.lit("a PWC answers COLLECT or DO_NOT_COLLECT; an NRP answers DISPUTE_AMOUNT"),
        ),
        (
            ~pl.col("channel").is_in(CHANNELS),
            RejectReason.BAD_CHANNEL,
            pl.lit("channel must be POST, PHONE or ONLINE"),
        ),
        (
            ~date_shaped | received.is_null(),
            RejectReason.BAD_DATE,
            pl.lit("received_on must be a real date written YYYY-MM-DD"),
        ),
        (
            received > pl.lit(as_of),
            RejectReason.FUTURE_DATE,
            pl.lit(f"received_on is after the as-of date {as_of.isoformat()}"),
        ),
    ]


def _first_failure(checks: list[tuple[pl.Expr, Any, pl.Expr]]) -> tuple[pl.Expr, pl.Expr]:
    """The first failing check's reason and detail (null when none fails)."""
    reason: Any = pl
    detail: Any = pl
    for bad, code, text in checks:
        reason = reason.when(bad.fill_null(False)).then(pl.lit(str(code)))
        detail = detail.when(bad.fill_null(False)).then(text)
    return reason.otherwise(None), detail.otherwise(None)


def _judge_fields(rows: pl.DataFrame, as_of: date) -> pl.DataFrame:
    reason, detail = _first_failure(_field_checks(as_of))
    return rows.with_columns(
        reason.alias("reason_code"),
        detail.alias("detail"),
        pl.col("received_on").str.to_date("%Y-%m-%d", strict=False).alias("received_date"),
    )


def _values_key() -> pl.Expr:
    return pl.concat_str(
        [
            pl.col(c).fill_null("")
            for c in ("case_ref", "party", "response", "received_on", "channel")
        ],
        separator="|",
    )


def _chunks(values: list[Any], size: int = 2_000) -> list[list[Any]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def _recorded_documents(conn: Connection, document_ids: list[str]) -> pl.DataFrame:
    schema = {
        "document_id": pl.String(),
        "case_ref": pl.String(),
        "party": pl.String(),
        "response": pl.String(),
        "received_on": pl.Date(),
        "channel": pl.String(),
    }
    frames = [pl.DataFrame(schema=schema)]
    for part in _chunks(document_ids):
        sql = (
            "SELECT document_id, case_ref, party, response, received_on, channel FROM responses "
            f"WHERE document_id IN ({', '.join('?' for _ in part)})"
        )
        frames.append(read_frame(conn, (sql, part), schema))
    return pl.concat(frames).with_columns(pl.col("received_on").dt.to_string("%Y-%m-%d"))


def _judge_duplicates(conn: Connection, judged: pl.DataFrame) -> pl.DataFrame:
    """Mark rows whose document_id is already recorded, or on an earlier valid row."""
    valid = pl.col("reason_code").is_null()
    ids = judged.filter(valid).get_column("document_id").unique().to_list()
    recorded = _recorded_documents(conn, ids).select(
        "document_id", _values_key().alias("recorded_key")
    )
    judged = judged.with_columns(_values_key().alias("values_key")).join(
        recorded, on="document_id", how="left", maintain_order="left"
    )
    first = (
        judged.filter(valid)
        .sort("row_number")
        .group_by("document_id", maintain_order=True)
        .agg(
            pl.col("row_number").first().alias("first_row"),
            pl.col("values_key").first().alias("first_key"),
        )
    )
    judged = judged.join(first, on="document_id", how="left", maintain_order="left")
    in_store = valid & pl.col("recorded_key").is_not_null()
    earlier_row = valid & (pl.col("first_row") < pl.col("row_number"))
    same_as_store = pl.col("recorded_key") == pl.col("values_key")
    same_as_first = pl.col("first_key") == pl.col("values_key")
    return judged.with_columns(
        pl.when(in_store & same_as_store)
        .then(pl.lit("duplicate"))
        .when(~in_store & earlier_row & same_as_first)
        .then(pl.lit("duplicate"))
        .otherwise(None)
        .alias("status"),
    ).with_columns(
        pl.when(in_store & ~same_as_store)
        .then(pl.lit(str(RejectReason.DOCUMENT_ID_CONFLICT)))
        .when(~in_store & earlier_row & ~same_as_first)
        .then(pl.lit(str(RejectReason.DOCUMENT_ID_CONFLICT)))
        .otherwise(pl.col("reason_code"))
        .alias("reason_code"),
        pl.when(in_store & ~same_as_store)
        .then(pl.lit("this document_id is already recorded with different values"))
        .when(~in_store & earlier_row & ~same_as_first)
        .then(
            pl.lit("this document_id is on row ")
            + pl.col("first_row").cast(pl.String)
            + pl.lit(" with different values")
        )
        .otherwise(pl.col("detail"))
        .alias("detail"),
    )


DEBT_SCHEMA: dict[str, pl.DataType] = {
    "debt_id": pl.Int64(),
    "case_ref": pl.String(),
    "creditor": pl.String(),
    "state": pl.String(),
    "reason": pl.String(),
    "response": pl.String(),
    "letter_date": pl.Date(),
    "response_deadline": pl.Date(),
}


def _case_debts(conn: Connection, case_refs: list[str]) -> tuple[set[str], pl.DataFrame]:
    """The known case refs among ``case_refs`` and the debts of those cases."""
    known: set[str] = set()
    frames = [pl.DataFrame(schema=DEBT_SCHEMA)]
    for part in _chunks(case_refs):
        marks = ", ".join("?" for _ in part)
        known.update(
            r[0]
            for r in conn.exec_driver_sql(
                driver_sql(conn, f"SELECT case_ref FROM cases WHERE case_ref IN ({marks})"),
                tuple(part),
            )
        )
        sql = (
            "SELECT debt_id, case_ref, creditor, state, reason, response, letter_date, "
            f"response_deadline FROM debts WHERE case_ref IN ({marks})"
        )
        frames.append(read_frame(conn, (sql, part), DEBT_SCHEMA))
    return known, pl.concat(frames)


def _window_checks() -> list[tuple[pl.Expr, Any, pl.Expr]]:
    received = pl.col("received_date")
    return [
        (
            received < pl.col("letter_date"),
            RejectReason.BEFORE_LETTER,
            pl.lit("received_on is before the final-chance letter was sent ")
            + pl.col("letter_date").dt.to_string("%Y-%m-%d"),
        ),
        (
            received > pl.col("response_deadline"),
            RejectReason.LATE,
            pl.lit("received after the response deadline ")
            + pl.col("response_deadline").dt.to_string("%Y-%m-%d"),
        ),
    ]


def _judge_pwc(rows: pl.DataFrame, debts_frame: pl.DataFrame) -> pl.DataFrame:
    """Judge PWC answers against the case's PWC debt; returns rows with action/debt_id."""
    pwc_debts = debts_frame.filter(pl.col("creditor") == "PWC").drop("creditor")
    joined = rows.join(pwc_debts, on="case_ref", how="left", maintain_order="left")
    state, reason = pl.col("state"), pl.col("reason")
    unanswered = pl.col("response").is_null()
    window = pl.col("response_deadline").is_not_null() & pl.col("letter_date").is_not_null()
    expired = (reason == REASON_NO_RESPONSE) & unanswered & window
    collect = pl.col("answer") == "COLLECT"
    open_window = (state == DebtState.AWAITING_RESPONSE.value) & unanswered & window
    after_expiry = (state == DebtState.WRITE_OFF_PENDING.value) & expired
    after_write_off = (state == DebtState.WRITTEN_OFF.value) & expired
    answerable = open_window | after_expiry | after_write_off
    checks: list[tuple[pl.Expr, Any, pl.Expr]] = [
        (
            pl.col("debt_id").is_null(),
            RejectReason.NOT_AWAITING,
            pl.lit("the case has no debt owed to the PWC"),
        ),
        (
            ~answerable & ~unanswered,
            RejectReason.ALREADY_ANSWERED,
            pl.lit("the PWC's answer for this case is already recorded"),
        ),
        (
            ~answerable,
            RejectReason.NOT_AWAITING,
            pl.lit("the case is not waiting for the PWC's answer (debt state ")
            + state
            + pl.lit(")"),
        ),
        *_window_checks(),
    ]
    reject, detail = _first_failure(checks)
    action = (
        pl.when(open_window & collect)
        .then(pl.lit(Action.COLLECT.value))
        .when(open_window)
        .then(pl.lit(Action.DECLINE.value))
        .when(after_expiry & collect)
        .then(pl.lit(Action.COLLECT_AFTER_EXPIRY.value))
        .when(after_expiry)
        .then(pl.lit(Action.DECLINE_AFTER_EXPIRY.value))
        .when(after_write_off & collect)
        .then(pl.lit(Action.COLLECT_AFTER_WRITE_OFF.value))
        .otherwise(pl.lit(Action.DECLINE_AFTER_WRITE_OFF.value))
    )
    judged = joined.with_columns(reject.alias("reason_code"), detail.alias("detail"))
    judged = judged.with_columns(
        pl.when(pl.col("reason_code").is_null()).then(action).alias("action")
    )
    return _first_answer_wins(judged, "debt_id")


def _first_answer_wins(judged: pl.DataFrame, key: str) -> pl.DataFrame:
    """Of several acceptable answers for the same ``key``, the earliest received (then the
    earliest row) is taken; the others are rejected ALREADY_ANSWERED."""
    ok = pl.col("action").is_not_null()
    winners = (
        judged.filter(ok)
        .sort("received_date", "row_number")
        .group_by(key, maintain_order=True)
        .agg(pl.col("row_number").first().alias("winner_row"))
    )
    judged = judged.join(winners, on=key, how="left", maintain_order="left")
    loser = ok & (pl.col("winner_row") != pl.col("row_number"))
    return judged.with_columns(
        pl.when(loser)
        .then(pl.lit(str(RejectReason.ALREADY_ANSWERED)))
        .otherwise(pl.col("reason_code"))
        .alias("reason_code"),
        pl.when(loser)
        .then(
            pl.lit("the answer on row ")
            + pl.col("winner_row").cast(pl.String)
            + pl.lit(" is taken for this debt")
        )
        .otherwise(pl.col("detail"))
        .alias("detail"),
        pl.when(loser).then(None).otherwise(pl.col("action")).alias("action"),
    ).drop("winner_row")


STATE_AFTER = {
    Action.COLLECT.value: DebtState.COLLECT_REQUESTED.value,
    Action.DECLINE.value: DebtState.WRITE_OFF_PENDING.value,
    Action.COLLECT_AFTER_EXPIRY.value: DebtState.REVIEW.value,
}
DISPUTABLE = (DebtState.COLLECT_REQUESTED.value, DebtState.TRANSFER_READY.value)


def _judge_nrp(rows: pl.DataFrame, debts_after: pl.DataFrame) -> pl.DataFrame:
    """Judge NRP disputes against the case's debts as they stand after this file's PWC
    answers. One row per (row, target debt) for accepted rows; one row for rejected."""
    targets = debts_after.filter(
        pl.col("state").is_in([*DISPUTABLE, DebtState.TRANSFER_SENT.value])
    )
    per_case = debts_after.group_by("case_ref").agg(
        (pl.col("state") == DebtState.REVIEW.value).any().alias("in_review")
    )
    counted = targets.group_by("case_ref").agg(pl.len().alias("targets"))
    judged = (
        rows.join(counted, on="case_ref", how="left", maintain_order="left")
        .join(per_case, on="case_ref", how="left", maintain_order="left")
        .with_columns(pl.col("targets").fill_null(0))
    )
    none = pl.col("targets") == 0
    judged = judged.with_columns(
        pl.when(none).then(pl.lit(str(RejectReason.NOT_AWAITING))).alias("reason_code"),
        pl.when(none & pl.col("in_review").fill_null(False))
        .then(pl.lit("the case is already with a caseworker"))
        .when(none)
        .then(
            pl.lit(
                "no debt on this case is awaiting collection (a dispute counts once the PWC "
                "has asked for collection, until the CMS accepts the debt)"
            )
        )
        .alias("detail"),
        pl.when(~none).then(pl.lit("dispute")).alias("action"),
    )
    return _first_answer_wins(judged, "case_ref")


def _judge_cases(conn: Connection, judged: pl.DataFrame) -> pl.DataFrame:
    """Judge rows that passed the field and duplicate checks against the store."""
    candidate = pl.col("reason_code").is_null() & pl.col("status").is_null()
    pending = judged.filter(candidate).rename({"response": "answer"})
    case_refs = pending.get_column("case_ref").unique().to_list()
    known, debts_frame = _case_debts(conn, case_refs)
    unknown = ~pl.col("case_ref").is_in(list(known))
    pending = pending.with_columns(
        pl.when(unknown).then(pl.lit(str(RejectReason.UNKNOWN_CASE))).alias("reason_code"),
        pl.when(unknown).then(pl.lit("no case with this reference was pulled")).alias("detail"),
    )
    base = ["row_number", "case_ref", "answer", "received_date", "document_id", "channel", "party"]
    pwc = _judge_pwc(
        pending.filter(pl.col("reason_code").is_null() & (pl.col("party") == "PWC")).select(base),
        debts_frame,
    )
    moved = pwc.filter(pl.col("action").is_in(list(STATE_AFTER))).select(
        "debt_id", pl.col("action").replace_strict(STATE_AFTER).alias("new_state")
    )
    debts_after = (
        debts_frame.join(moved, on="debt_id", how="left")
        .with_columns(pl.coalesce("new_state", "state").alias("state"))
        .drop("new_state")
    )
    nrp = _judge_nrp(
        pending.filter(pl.col("reason_code").is_null() & (pl.col("party") == "NRP")).select(base),
        debts_after,
    )
    keep = ["row_number", "reason_code", "detail", "action"]
    verdicts = pl.concat(
        [
            pending.filter(pl.col("reason_code").is_not_null()).select(
                "row_number", "reason_code", "detail", pl.lit(None, pl.String).alias("action")
            ),
            pwc.select(keep),
            nrp.select(keep),
        ]
    )
    judged = judged.join(
        verdicts.rename({"reason_code": "case_reason", "detail": "case_detail"}),
        on="row_number",
        how="left",
        maintain_order="left",
    )
    judged = judged.with_columns(
        pl.coalesce("reason_code", "case_reason").alias("reason_code"),
        pl.coalesce("detail", "case_detail").alias("detail"),
    ).drop("case_reason", "case_detail")
    judged = judged.with_columns(
        pl.when(pl.col("status").is_not_null())
        .then(pl.col("status"))
        .when(pl.col("reason_code").is_not_null())
        .then(pl.lit("rejected"))
        .otherwise(pl.lit("accepted"))
        .alias("status")
    )
    return _with_targets(judged, pwc, debts_after)


def _with_targets(
    judged: pl.DataFrame, pwc: pl.DataFrame, debts_after: pl.DataFrame
) -> pl.DataFrame:
    """Attach to each accepted row the debts it acts on (``targets``: a list of {debt_id,
    case_ref, state, action}, ``state`` being where the debt will be when the action runs)
    and the debt its response is recorded against (``record_debt_id``)."""
    accepted = judged.filter(pl.col("status") == "accepted")
    pwc_targets = pwc.filter(pl.col("action").is_not_null()).select(
        "row_number", "debt_id", "case_ref", "state", "action", pl.lit("PWC").alias("creditor")
    )
    nrp_rows = accepted.filter(pl.col("party") == "NRP").select("row_number", "case_ref")
    candidates = debts_after.filter(
        pl.col("state").is_in([*DISPUTABLE, DebtState.TRANSFER_SENT.value])
    ).select("case_ref", "debt_id", "creditor", "state")
    nrp_targets = nrp_rows.join(candidates, on="case_ref", how="inner").select(
        "row_number",
        "debt_id",
        "case_ref",
        "state",
        pl.when(pl.col("state") == DebtState.TRANSFER_SENT.value)
        .then(pl.lit(Action.DISPUTE_IN_TRANSFER.value))
        .otherwise(pl.lit(Action.DISPUTE.value))
        .alias("action"),
        "creditor",
    )
    targets = pl.concat([pwc_targets, nrp_targets]).sort("row_number", "debt_id")
    # the response is recorded against the PWC debt where that is one of the targets
    record = (
        targets.sort("row_number", pl.col("creditor") != "PWC", "debt_id")
        .group_by("row_number", maintain_order=True)
        .agg(pl.col("debt_id").first().alias("record_debt_id"))
    )
    nested = targets.group_by("row_number").agg(
        pl.struct("debt_id", "case_ref", "state", "action").alias("targets")
    )
    return judged.join(record, on="row_number", how="left", maintain_order="left").join(
        nested, on="row_number", how="left", maintain_order="left"
    )


def judge_rows(conn: Connection, rows: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """Every row's verdict: ``status`` (accepted|duplicate|rejected), ``reason_code`` and
    ``detail`` for rejected rows, and for accepted rows ``record_debt_id`` and ``targets``
    (a list of {debt_id, action})."""
    judged = _judge_fields(rows, as_of)
    judged = _judge_duplicates(conn, judged)
    return _judge_cases(conn, judged)


# --- applying verdicts ------------------------------------------------------------------


def _target_debts(judged: pl.DataFrame) -> pl.DataFrame:
    """One row per debt acted on: its action, its state then, and the response acting."""
    accepted = judged.filter(pl.col("status") == "accepted")
    exploded = (
        accepted.select("document_id", "channel", "received_date", "response", pl.col("targets"))
        .explode("targets")
        .unnest("targets")
    )
    return exploded.with_columns(
        pl.struct(
            "document_id",
            "channel",
            pl.col("received_date").dt.to_string("%Y-%m-%d").alias("received_on"),
            "response",
        ).alias("detail")
    )


def _move(
    conn: Connection,
    run: Run,
    targets: pl.DataFrame,
    action: Action,
    to_state: DebtState,
    event_type: EventType,
    extra: list[pl.Expr],
) -> int:
    frame = targets.filter(pl.col("action") == action.value)
    if frame.height == 0:
        return 0
    frame = frame.with_columns(
        pl.col("state").alias("from_state"), pl.lit(to_state.value).alias("to_state"), *extra
    )
    columns = [e.meta.output_name() for e in extra]
    return move_debts(conn, run, frame, event_type=event_type, set_columns=columns)


def _update(
    conn: Connection,
    run: Run,
    targets: pl.DataFrame,
    action: Action,
    event_type: EventType,
    extra: list[pl.Expr],
) -> int:
    frame = targets.filter(pl.col("action") == action.value)
    if frame.height == 0:
        return 0
    frame = frame.with_columns(*extra)
    columns = [e.meta.output_name() for e in extra]
    return update_debts(conn, run, frame, columns=columns, event_type=event_type)


def _apply_actions(conn: Connection, run: Run, targets: pl.DataFrame) -> dict[str, int]:
    answer = [
        pl.col("response").alias("response"),
        pl.col("received_date").alias("response_received_on"),
    ]
    declined = [
        *answer,
        pl.lit(Outcome.WRITE_OFF_NOTICE.value).alias("outcome"),
        pl.lit(REASON_DECLINED).alias("reason"),
        pl.lit(RULE_DECLINED).alias("rule_id"),
        *decision_stamp(run),
    ]
    counts = {
        Action.COLLECT: _move(
            conn,
            run,
            targets,
            Action.COLLECT,
            DebtState.COLLECT_REQUESTED,
            EventType.DEBT_COLLECT_REQUESTED,
            answer,
        ),
        Action.DECLINE: _move(
            conn,
            run,
            targets,
            Action.DECLINE,
            DebtState.WRITE_OFF_PENDING,
            EventType.DEBT_FINAL_CHANCE_DECLINED,
            declined,
        ),
        Action.COLLECT_AFTER_EXPIRY: _move(
            conn,
            run,
            targets,
            Action.COLLECT_AFTER_EXPIRY,
            DebtState.REVIEW,
            EventType.DEBT_REFERRED,
            [*answer, pl.lit(REVIEW_AFTER_EXPIRY).alias("review_reason")],
        ),
        Action.DECLINE_AFTER_EXPIRY: _move(
            conn,
            run,
            targets,
            Action.DECLINE_AFTER_EXPIRY,
            DebtState.WRITE_OFF_PENDING,
            EventType.DEBT_FINAL_CHANCE_DECLINED,
            declined,
        ),
        Action.COLLECT_AFTER_WRITE_OFF: _update(
            conn,
            run,
            targets,
            Action.COLLECT_AFTER_WRITE_OFF,
            EventType.DEBT_RESPONSE_AFTER_WRITE_OFF,
            [
                *answer,
                pl.lit(True).alias("needs_caseworker"),
                pl.lit(REVIEW_AFTER_WRITE_OFF).alias("review_reason"),
            ],
        ),
        Action.DECLINE_AFTER_WRITE_OFF: _update(
            conn,
            run,
            targets,
            Action.DECLINE_AFTER_WRITE_OFF,
            EventType.DEBT_RESPONSE_AFTER_WRITE_OFF,
            answer,
        ),
        Action.DISPUTE: _move(
            conn,
            run,
            targets,
            Action.DISPUTE,
            DebtState.REVIEW,
            EventType.DEBT_DISPUTED,
            [pl.lit(REVIEW_NRP_DISPUTE).alias("review_reason")],
        ),
        Action.DISPUTE_IN_TRANSFER: _update(
            conn,
            run,
            targets,
            Action.DISPUTE_IN_TRANSFER,
            EventType.DEBT_DISPUTED,
            [
                pl.lit(True).alias("needs_caseworker"),
                pl.lit(REVIEW_NRP_DISPUTE_IN_TRANSFER).alias("review_reason"),
            ],
        ),
    }
    return {action.value: n for action, n in counts.items() if n}


def _response_rows(run: Run, judged: pl.DataFrame, import_id: int | None) -> pl.DataFrame:
    return judged.filter(pl.col("status") == "accepted").select(
        "document_id",
        "case_ref",
        pl.col("record_debt_id").alias("debt_id"),
        "party",
        "response",
        pl.col("received_date").alias("received_on"),
        "channel",
        pl.lit(import_id, dtype=pl.Int64).alias("import_id"),
        pl.lit(run.run_id, dtype=pl.Int64).alias("run_id"),
        pl.lit(run.ctx.actor).alias("recorded_by"),
        pl.lit(run.ctx.clock()).alias("recorded_at"),
    )


def _rejections(rejected: pl.DataFrame) -> pl.DataFrame:
    """Rejected rows as the rejects file and ``import_rejections`` hold them: identifiers
    only where they look like identifiers (never a value copied from a bad field)."""
    return rejected.select(
        "row_number",
        intake.safe_identifier("document_id", intake.DOCUMENT_ID_PATTERN).alias("document_id"),
        intake.safe_identifier("case_ref", intake.CASE_REF_PATTERN).alias("case_ref"),
        "reason_code",
        pl.col("detail").str.slice(0, 200),
    )


def apply_verdicts(
    conn: Connection, run: Run, judged: pl.DataFrame, import_id: int | None
) -> dict[str, int]:
    """Record accepted responses and move their debts, inside the caller's transaction."""
    insert_frame(conn, responses, _response_rows(run, judged, import_id))
    return _apply_actions(conn, run, _target_debts(judged))


def _apply_file(
    conn: Connection, run: Run, judged: pl.DataFrame, import_id: int
) -> Applied[dict[str, int]]:
    actions = apply_verdicts(conn, run, judged, import_id)
    return Applied(outcome=actions, event={"actions": actions}, counts=actions)


RESPONSE_FILES = ContractImport(
    stage="responses",
    kind=IMPORT_KIND,
    lease=RESPONSES_LEASE,
    columns=COLUMNS,
    event_type=EventType.RESPONSES_IMPORTED,
    progress_label="responses: judging rows",
    judge=lambda conn, ctx, rows: judge_rows(conn, rows, ctx.as_of),
    rejections=_rejections,
    apply=_apply_file,
)


# --- the two entry points -----------------------------------------------------------------


def import_responses(
    ctx: Context,
    path: Path,
    *,
    rejects_path: Path | None = None,
    progress: Progress = NO_PROGRESS,
) -> ResponseImportResult:
    """Import one parent-response file (the contract in runbooks/04-responses.md)."""
    done = import_contract_file(
        ctx, RESPONSE_FILES, path, rejects_path=rejects_path, progress=progress
    )
    return ResponseImportResult(
        **done.result_fields(),
        actions=done.applied.outcome if done.applied else {},
        ignored_columns=list(done.contract.ignored_columns),
    )


@dataclass
class RecordResult(JsonFields):
    """One response taken by phone: ``status`` accepted|duplicate (a rejection raises)."""

    run_id: int
    document_id: str
    case_ref: str
    status: str
    actions: dict[str, int]
    book: BookCheck | None = None


class ResponseRejected(InputError):
    """A response recorded by hand broke a rule; nothing was written."""

    def __init__(self, reason_code: str, detail: str) -> None:
        super().__init__(f"response refused: {reason_code}: {detail}")
        self.reason_code = reason_code
        self.detail = detail


def default_document_id(
    case_ref: str, party: str, response: str, received_on: date, channel: str
) -> str:
    """A document id for a call with none: the same call recorded twice is a duplicate."""
    return f"{channel}:{case_ref}:{party}:{response}:{received_on:%Y%m%d}"


def record_response(
    ctx: Context,
    case_ref: str,
    *,
    party: str,
    response: str,
    received_on: date | None = None,
    channel: str = "PHONE",
    document_id: str | None = None,
) -> RecordResult:
    """Record one response (usually a phone call) through exactly the import's rules.

    Raises ``ResponseRejected`` with the reason code when the response cannot be accepted.
    """
    received_on = received_on or ctx.as_of
    document_id = document_id or default_document_id(
        case_ref, party, response, received_on, channel
    )
    row = pl.DataFrame(
        {
            "row_number": [1],
            "malformed": [False],
            "document_id": [document_id],
            "case_ref": [case_ref],
            "party": [party],
            "response": [response],
            "received_on": [received_on.isoformat()],
            "channel": [channel],
        },
        schema={
            "row_number": pl.Int64,
            "malformed": pl.Boolean,
            **{c: pl.String for c in COLUMNS},
        },
    )
    parameters = {"document_id": document_id, "case_ref": case_ref}
    with stage_run(ctx, "responses", parameters, claims=[RESPONSES_LEASE]) as run:
        with run.chunk() as conn:
            judged = judge_rows(conn, row, ctx.as_of)
            verdict = judged.row(0, named=True)
            if verdict["status"] == "rejected":
                raise ResponseRejected(verdict["reason_code"], verdict["detail"])
            actions: dict[str, int] = {}
            if verdict["status"] == "accepted":
                actions = apply_verdicts(conn, run, judged, None)
            book = check_book(conn)
        run.counts.update({verdict["status"]: 1, **actions})
        return RecordResult(
            run_id=run.run_id,
            document_id=document_id,
            case_ref=case_ref,
            status=verdict["status"],
            actions=actions,
            book=book,
        )


__all__ = [
    "Action",
    "RecordResult",
    "RejectReason",
    "ResponseImportResult",
    "ResponseRejected",
    "import_responses",
    "judge_rows",
    "record_response",
]
