"""The one writer of the CMS transfer packages: ``transfer_batches`` and ``transfer_items``.

Every insert or update on either table goes through here (tests/test_code_rules.py keeps it
so): :func:`create_batch` (a package and its debts, ``exporting``), :func:`mark_batch_exported`
(its files and manifest are written), :func:`acknowledge_items` (the CMS accepted or rejected
each debt) and :func:`mark_batch_acknowledged` (no debt of the package is left to hear about).
Each is a compare-and-set on the status it moves from, checked against the transition tables in
``domain.states``; the debts themselves move through ``store.debts`` and the events are the
callers', in the same transaction.
"""

from __future__ import annotations

from datetime import date, datetime

import polars as pl
from sqlalchemy import insert, update
from sqlalchemy.engine import Connection

from csa_closure.domain.states import (
    TRANSFER_BATCH_TRANSITIONS,
    TRANSFER_ITEM_TRANSITIONS,
    TransferBatchStatus,
    TransferItemStatus,
)
from csa_closure.errors import ConcurrentChange, InvalidTransition
from csa_closure.store.dialect import execute_many, insert_frame
from csa_closure.store.schema import transfer_batches, transfer_items


def create_batch(
    conn: Connection,
    *,
    batch_id: str,
    run_id: int,
    as_of: date,
    created_at: datetime,
    items: pl.DataFrame,
) -> int:
    """Record the package ``batch_id`` (``exporting``) and its ``items`` (``exported``: columns
    debt_id, case_ref, creditor, amount_pence, transfer_reason); return its total in pence."""
    total = int(items.get_column("amount_pence").sum() or 0)
    conn.execute(
        insert(transfer_batches).values(
            batch_id=batch_id,
            run_id=run_id,
            as_of=as_of,
            created_at=created_at,
            row_count=items.height,
            total_pence=total,
            status=TransferBatchStatus.EXPORTING.value,
        )
    )
    insert_frame(
        conn,
        transfer_items,
        items.select(
            pl.lit(batch_id).alias("batch_id"),
            "debt_id",
            "case_ref",
            "creditor",
            "amount_pence",
            pl.col("transfer_reason").fill_null("UNSPECIFIED"),
            pl.lit(TransferItemStatus.EXPORTED.value).alias("status"),
        ),
    )
    return total


def mark_batch_exported(conn: Connection, batch_id: str, manifest_sha256: str) -> None:
    """``exporting`` to ``exported``, with the manifest's digest."""
    _move_batch(
        conn,
        batch_id,
        TransferBatchStatus.EXPORTING,
        TransferBatchStatus.EXPORTED,
        manifest_sha256=manifest_sha256,
    )


def mark_batch_acknowledged(conn: Connection, batch_id: str) -> bool:
    """``exported`` to ``acknowledged``; False (nothing written) if it is not ``exported``."""
    return _move_batch(
        conn, batch_id, TransferBatchStatus.EXPORTED, TransferBatchStatus.ACKNOWLEDGED, strict=False
    )


def acknowledge_items(conn: Connection, items: pl.DataFrame) -> int:
    """Each item from ``exported`` to its ``item_status`` (accepted or rejected) with the CMS's
    ``ack_reason`` and the ``ack_import_id``, keyed by batch_id and debt_id, compare-and-set;
    ``ConcurrentChange`` unless every one of them was still ``exported``."""
    for status in items.get_column("item_status").unique().to_list():
        pair = (TransferItemStatus.EXPORTED, TransferItemStatus(status))
        if pair not in TRANSFER_ITEM_TRANSITIONS:
            raise InvalidTransition(f"a transfer item may not move from exported to {status}")
    changed = execute_many(
        conn,
        "UPDATE transfer_items SET status = ?, ack_reason = ?, ack_import_id = ? "
        "WHERE batch_id = ? AND debt_id = ? AND status = 'exported'",
        list(
            items.select(
                "item_status", "ack_reason", "ack_import_id", "batch_id", "debt_id"
            ).iter_rows()
        ),
    )
    if changed != items.height:
        raise ConcurrentChange(
            "some of these debts were acknowledged by another run meanwhile; nothing from "
            "this file was written. Import it again."
        )
    return changed


def _move_batch(
    conn: Connection,
    batch_id: str,
    frm: TransferBatchStatus,
    to: TransferBatchStatus,
    *,
    strict: bool = True,
    **values: str,
) -> bool:
    if (frm, to) not in TRANSFER_BATCH_TRANSITIONS:
        raise InvalidTransition(f"a transfer batch may not move from {frm.value} to {to.value}")
    changed = conn.execute(
        update(transfer_batches)
        .where(transfer_batches.c.batch_id == batch_id, transfer_batches.c.status == frm.value)
        .values(status=to.value, **values)
    ).rowcount
    if strict and changed != 1:
        raise ConcurrentChange(
            f"transfer batch {batch_id} is no longer {frm.value} (another run changed it): "
            "run again"
        )
    return bool(changed)
