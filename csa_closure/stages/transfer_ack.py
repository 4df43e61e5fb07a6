"""The CMS's acknowledgement of a transfer package: which debts it took and which it refused.

CSV with a header, columns in any order: ``batch_id,case_ref,creditor,status,reason``. Every
row ends accepted, duplicate or rejected (with a reason code), the counts add up to the rows,
rejected rows go to a rejects file, and the same file twice changes nothing: exactly like the
parents' response files.

=====================  ========================================================================
row                    effect
=====================  ========================================================================
ACCEPTED               item ``accepted``; debt ``transfer_sent -> transferred`` (closed)
REJECTED               item ``rejected`` with the CMS's reason; debt ``transfer_sent -> review``
                       (review reason ``CMS_REJECTED``, or ``CMS_REJECTED:<code>`` when the CMS
                       gives a code), for a caseworker to correct and transfer again, or decide
=====================  ========================================================================

Rejected rows (reason codes): ``MALFORMED_ROW``, ``MISSING_VALUE``, ``BAD_BATCH_ID``,
``BAD_CASE_REF``, ``BAD_CREDITOR``, ``BAD_STATUS``, ``UNKNOWN_BATCH``, ``BATCH_NOT_EXPORTED``
(the batch's files were never finished, so the CMS cannot have it), ``NOT_IN_BATCH``, and
``CONFLICTING_ACK`` (the debt was already acknowledged the other way, or an earlier row of the
file says the opposite: ask the CMS which stands). A row repeating an acknowledgement already
recorded (or on an earlier row) is a duplicate.

When every item of a batch is acknowledged the batch becomes ``acknowledged``. Accepted debts
that an NRP disputed while they were in the package are listed as ``disputes_to_forward``:
the CMS now holds the debt and must be told of the dispute.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import and_, func, select
from sqlalchemy.engine import Connection

from csa_closure.context import Context
from csa_closure.domain.codes import ReviewReason
from csa_closure.domain.events import EventType
from csa_closure.domain.states import CREDITORS, DebtState
from csa_closure.progress import NO_PROGRESS, Progress
from csa_closure.serialise import JsonFields
from csa_closure.stages import intake
from csa_closure.stages.checks import BookCheck
from csa_closure.stages.contract_import import (
    Applied,
    ContractImport,
    ImportSummary,
    import_contract_file,
)
from csa_closure.stages.responses import REVIEW_NRP_DISPUTE_IN_TRANSFER
from csa_closure.store import events, transfers
from csa_closure.store.debts import move_debts
from csa_closure.store.dialect import read_frame
from csa_closure.store.runs import Run
from csa_closure.store.schema import transfer_batches, transfer_items

ACK_LEASE = "stage:transfer-ack"
IMPORT_KIND = "cms_ack"
COLUMNS = ("batch_id", "case_ref", "creditor", "status", "reason")
REQUIRED_VALUES = ("batch_id", "case_ref", "creditor", "status")
STATUSES = ("ACCEPTED", "REJECTED")
BATCH_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,39}$"
CMS_REJECTED = ReviewReason.CMS_REJECTED.value
_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,49}")
# The CMS's reason is its own text: keep what reads as a reason, drop anything else.
_UNSAFE = r"[^A-Za-z0-9 _.,:;()/'-]"


@dataclass
class AckImportResult(ImportSummary, JsonFields):
    """JSON keys are the field names (see runbooks/05)."""

    transferred: int = 0
    transferred_pence: int = 0
    returned_to_review: int = 0
    returned_pence: int = 0
    batches_acknowledged: list[str] = field(default_factory=list)
    disputes_to_forward: list[str] = field(default_factory=list)  # case refs
    rejects_file: str | None = None
    book: BookCheck | None = None


# --- judging rows --------------------------------------------------------------------------


def _first_failure(checks: list[tuple[pl.Expr, str, pl.Expr]]) -> tuple[pl.Expr, pl.Expr]:
    reason: Any = pl
    detail: Any = pl
    for bad, code, text in checks:
        reason = reason.when(bad.fill_null(False)).then(pl.lit(code))
        detail = detail.when(bad.fill_null(False)).then(text)
    return reason.otherwise(None), detail.otherwise(None)


def _field_checks() -> list[tuple[pl.Expr, str, pl.Expr]]:
    missing = pl.concat_str(
        [pl.when(pl.col(c).is_null()).then(pl.lit(c)) for c in REQUIRED_VALUES],
        separator=", ",
        ignore_nulls=True,
    )
    return [
        (
            pl.col("malformed"),
            "MALFORMED_ROW",
            pl.lit("the row does not have one field for each header column"),
        ),
        (
            pl.any_horizontal(pl.col(c).is_null() for c in REQUIRED_VALUES),
            "MISSING_VALUE",
            pl.lit("no value for ") + missing,
        ),
        (
            ~pl.col("batch_id").str.contains(BATCH_ID_PATTERN),
            "BAD_BATCH_ID",
            pl.lit("batch_id is not a batch id"),
        ),
        (
            ~pl.col("case_ref").str.contains(intake.CASE_REF_PATTERN),
            "BAD_CASE_REF",
            pl.lit("case_ref must be C or S followed by 9 digits"),
        ),
        (
            ~pl.col("creditor").is_in(CREDITORS),
            "BAD_CREDITOR",
            pl.lit("creditor must be PWC or SOS"),
        ),
        (
            ~pl.col("status").is_in(STATUSES),
            "BAD_STATUS",
            pl.lit("status must be ACCEPTED or REJECTED"),
        ),
    ]


_ITEM_SCHEMA: dict[str, pl.DataType] = {
    "batch_id": pl.String(),
    "case_ref": pl.String(),
    "creditor": pl.String(),
    "debt_id": pl.Int64(),
    "amount_pence": pl.Int64(),
    "item_status": pl.String(),
    "batch_status": pl.String(),
    "review_reason": pl.String(),
}


def _items(conn: Connection, batch_ids: list[str]) -> tuple[dict[str, str], pl.DataFrame]:
    """The named batches' statuses, and their items with the debt's review reason."""
    statuses: dict[str, str] = {}
    frames = [pl.DataFrame(schema=_ITEM_SCHEMA)]
    for offset in range(0, len(batch_ids), 500):
        part = batch_ids[offset : offset + 500]
        statuses.update(
            conn.execute(
                select(transfer_batches.c.batch_id, transfer_batches.c.status).where(
                    transfer_batches.c.batch_id.in_(part)
                )
            ).all()  # type: ignore[arg-type]
        )
        marks = ", ".join("?" for _ in part)
        sql = (
            "SELECT t.batch_id, t.case_ref, t.creditor, t.debt_id, t.amount_pence, "
            "t.status AS item_status, b.status AS batch_status, d.review_reason "
            "FROM transfer_items t JOIN transfer_batches b ON b.batch_id = t.batch_id "
            f"JOIN debts d ON d.debt_id = t.debt_id WHERE t.batch_id IN ({marks})"
        )
        frames.append(read_frame(conn, (sql, part), _ITEM_SCHEMA))
    return statuses, pl.concat(frames)


def judge_acks(conn: Connection, rows: pl.DataFrame) -> pl.DataFrame:
    """Every row's verdict: ``status_out`` (accepted|duplicate|rejected), ``reason_code`` and
    ``detail``; accepted rows carry the item (``debt_id``, ``amount_pence``)."""
    reason, detail = _first_failure(_field_checks())
    judged = rows.with_columns(reason.alias("reason_code"), detail.alias("detail"))
    valid = pl.col("reason_code").is_null()
    batch_ids = judged.filter(valid).get_column("batch_id").unique().to_list()
    statuses, items = _items(conn, batch_ids)
    judged = judged.join(
        items, on=["batch_id", "case_ref", "creditor"], how="left", maintain_order="left"
    )
    known = pl.col("batch_id").is_in(list(statuses))
    unfinished = pl.col("batch_id").is_in([b for b, s in statuses.items() if s == "exporting"])
    wanted = (
        pl.when(pl.col("status") == "ACCEPTED")
        .then(pl.lit("accepted"))
        .otherwise(pl.lit("rejected"))
    )
    acked = pl.col("item_status").is_in(["accepted", "rejected"])
    store_checks: list[tuple[pl.Expr, str, pl.Expr]] = [
        (~known, "UNKNOWN_BATCH", pl.lit("no transfer batch with this id was exported")),
        (
            unfinished,
            "BATCH_NOT_EXPORTED",
            pl.lit("this batch's package was never finished, so the CMS cannot have it"),
        ),
        (
            pl.col("debt_id").is_null(),
            "NOT_IN_BATCH",
            pl.lit("this batch has no debt for this case and creditor"),
        ),
        (
            acked & (pl.col("item_status") != wanted),
            "CONFLICTING_ACK",
            pl.lit("this debt was already acknowledged ")
            + pl.col("item_status").str.to_uppercase(),
        ),
    ]
    reason, detail = _first_failure(store_checks)
    judged = judged.with_columns(
        pl.when(valid).then(reason).otherwise(pl.col("reason_code")).alias("reason_code"),
        pl.when(valid).then(detail).otherwise(pl.col("detail")).alias("detail"),
    )
    # the same item more than once: first row wins; the same answer again is a duplicate
    candidate = pl.col("reason_code").is_null()
    first = (
        judged.filter(candidate)
        .group_by("batch_id", "debt_id", maintain_order=True)
        .agg(
            pl.col("row_number").first().alias("first_row"),
            pl.col("status").first().alias("first_status"),
        )
    )
    judged = judged.join(first, on=["batch_id", "debt_id"], how="left", maintain_order="left")
    later = candidate & (pl.col("first_row") < pl.col("row_number"))
    conflict = later & (pl.col("first_status") != pl.col("status"))
    judged = judged.with_columns(
        pl.when(conflict)
        .then(pl.lit("CONFLICTING_ACK"))
        .otherwise(pl.col("reason_code"))
        .alias("reason_code"),
        pl.when(conflict)
        .then(pl.lit("row ") + pl.col("first_row").cast(pl.String) + pl.lit(" says otherwise"))
        .otherwise(pl.col("detail"))
        .alias("detail"),
    )
    duplicate = pl.col("reason_code").is_null() & (later | acked)
    return judged.with_columns(
        pl.when(pl.col("reason_code").is_not_null())
        .then(pl.lit("rejected"))
        .when(duplicate)
        .then(pl.lit("duplicate"))
        .otherwise(pl.lit("accepted"))
        .alias("status_out")
    )


# --- applying ------------------------------------------------------------------------------------


def _cms_reason() -> pl.Expr:
    return pl.col("reason").str.replace_all(_UNSAFE, "").str.strip_chars().str.slice(0, 200)


def _cms_code() -> pl.Expr:
    """The CMS's reason when it is a code (``NRP_NOT_TRACED``), else null."""
    code = pl.col("reason").str.strip_chars()
    return pl.when(code.str.contains(f"^{_CODE.pattern}$").fill_null(False)).then(code)


def _review_reason() -> pl.Expr:
    return (
        pl.when(_cms_code().is_not_null())
        .then(pl.lit(f"{CMS_REJECTED}:") + _cms_code())
        .otherwise(pl.lit(CMS_REJECTED))
        .str.slice(0, 64)
    )


def _apply(conn: Connection, run: Run, accepted: pl.DataFrame, import_id: int) -> None:
    """Mark items and move debts, compare-and-set on both."""
    items = accepted.select(
        pl.when(pl.col("status") == "ACCEPTED")
        .then(pl.lit("accepted"))
        .otherwise(pl.lit("rejected"))
        .alias("item_status"),
        _cms_reason().alias("ack_reason"),
        pl.lit(import_id, dtype=pl.Int64).alias("ack_import_id"),
        "batch_id",
        "debt_id",
    )
    transfers.acknowledge_items(conn, items)
    moves = accepted.with_columns(
        pl.lit(DebtState.TRANSFER_SENT.value).alias("from_state"),
        # events carry the CMS's reason only when it is a code: its free text stays on the item
        pl.struct("batch_id", "amount_pence", _cms_code().alias("cms_code")).alias("detail"),
    )
    move_debts(
        conn,
        run,
        moves.filter(pl.col("status") == "ACCEPTED").with_columns(
            pl.lit(DebtState.TRANSFERRED.value).alias("to_state")
        ),
        event_type=EventType.DEBT_TRANSFERRED,
    )
    move_debts(
        conn,
        run,
        moves.filter(pl.col("status") == "REJECTED").with_columns(
            pl.lit(DebtState.REVIEW.value).alias("to_state"),
            _review_reason().alias("review_reason"),
        ),
        event_type=EventType.DEBT_TRANSFER_REJECTED,
        set_columns=["review_reason"],
    )


def _complete_batches(conn: Connection, run: Run, batch_ids: list[str]) -> list[str]:
    done: list[str] = []
    for batch_id in sorted(batch_ids):
        outstanding = conn.execute(
            select(func.count()).where(
                and_(transfer_items.c.batch_id == batch_id, transfer_items.c.status == "exported")
            )
        ).scalar_one()
        if outstanding:
            continue
        if transfers.mark_batch_acknowledged(conn, batch_id):
            events.record(
                conn, run, EventType.TRANSFER_BATCH_ACKNOWLEDGED, entity=f"batch:{batch_id}"
            )
            done.append(batch_id)
    return done


@dataclass(frozen=True)
class _Taken:
    """What an acknowledgement file's accepted rows did."""

    accepted: pl.DataFrame  # the accepted rows, ACCEPTED and REJECTED alike
    batches_acknowledged: list[str]


def _apply_file(
    conn: Connection, run: Run, judged: pl.DataFrame, import_id: int
) -> Applied[_Taken]:
    accepted = judged.filter(pl.col("status_out") == "accepted")
    _apply(conn, run, accepted, import_id)
    completed = _complete_batches(conn, run, accepted.get_column("batch_id").unique().to_list())
    counts = {
        "transferred": accepted.filter(pl.col("status") == "ACCEPTED").height,
        "returned_to_review": accepted.filter(pl.col("status") == "REJECTED").height,
    }
    return Applied(outcome=_Taken(accepted, completed), event={}, counts=counts)


def _rejections(rejected: pl.DataFrame) -> pl.DataFrame:
    """Rejected rows as ``import_rejections`` holds them: the batch id as the document id,
    the creditor (when it is one) before the detail."""
    return rejected.select(
        "row_number",
        intake.safe_identifier("batch_id", BATCH_ID_PATTERN).alias("document_id"),
        intake.safe_identifier("case_ref", intake.CASE_REF_PATTERN).alias("case_ref"),
        "reason_code",
        (
            pl.when(pl.col("creditor").is_in(CREDITORS))
            .then(pl.col("creditor") + pl.lit(": "))
            .otherwise(pl.lit(""))
            + pl.col("detail")
        )
        .str.slice(0, 200)
        .alias("detail"),
    )


def _rejects_csv(rejections: pl.DataFrame) -> bytes:
    """The acknowledgement's rejects file: the batch id in its own column."""
    return intake.rejects_csv(rejections).replace(b"document_id", b"batch_id", 1)


ACK_FILES = ContractImport(
    stage="transfer-ack",
    kind=IMPORT_KIND,
    lease=ACK_LEASE,
    columns=COLUMNS,
    event_type=EventType.TRANSFER_ACK_IMPORTED,
    progress_label="transfer ack: rows",
    judge=lambda conn, ctx, rows: judge_acks(conn, rows),
    rejections=_rejections,
    apply=_apply_file,
    verdict="status_out",  # the file's own rows have a status column
    rejects_csv=_rejects_csv,
)


def import_ack(
    ctx: Context,
    path: Path,
    *,
    rejects_path: Path | None = None,
    progress: Progress = NO_PROGRESS,
) -> AckImportResult:
    """Import one CMS acknowledgement file (see the module doc)."""
    done = import_contract_file(ctx, ACK_FILES, path, rejects_path=rejects_path, progress=progress)
    result = AckImportResult(**done.result_fields())
    if done.applied is None:
        return result
    taken = done.applied.outcome
    took = taken.accepted.filter(pl.col("status") == "ACCEPTED")
    back = taken.accepted.filter(pl.col("status") == "REJECTED")
    forward = took.filter(pl.col("review_reason") == REVIEW_NRP_DISPUTE_IN_TRANSFER)
    result.transferred = took.height
    result.transferred_pence = int(took.get_column("amount_pence").sum() or 0)
    result.returned_to_review = back.height
    result.returned_pence = int(back.get_column("amount_pence").sum() or 0)
    result.batches_acknowledged = taken.batches_acknowledged
    result.disputes_to_forward = sorted(forward.get_column("case_ref").unique().to_list())
    return result
