"""``csa-closure transfer``: CMS packages out, acknowledgements in."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click
from rich.console import Console

from csa_closure.cli.output import (
    emit,
    exit_if_all_rejected,
    import_count_rows,
    note_waiting,
    pounds,
    print_already_imported,
    rich_table,
)
from csa_closure.cli.params import CliState, format_option, out_option, pass_state, rejects_option
from csa_closure.cli.progress import progress_bars
from csa_closure.domain.states import TransferBatchStatus
from csa_closure.errors import ExitCode, Unbalanced
from csa_closure.stages.transfer import (
    DEFAULT_BATCH_SIZE,
    BatchSummary,
    ExportResult,
    PackageCheck,
    export_transfers,
    list_batches,
    rewrite_package,
    verify_package,
)
from csa_closure.stages.transfer_ack import AckImportResult, import_ack


@click.group()
def transfer() -> None:
    """Move debts to the Child Maintenance Service: export packages, import acknowledgements.

    Runbook: `csa-closure docs resolve`.
    """


def render_export(console: Console, result: ExportResult) -> None:
    console.print(
        rich_table(
            f"Transfer export run {result.run_id} to {result.out_dir}",
            ["batch", "debts", "amount", "manifest sha256", "finished from an earlier run"],
            [
                [
                    b.batch_id,
                    f"{b.row_count:,}",
                    pounds(b.total_pence),
                    b.manifest_sha256[:16] + "…",
                    "yes" if b.resumed else "",
                ]
                for b in result.batches
            ],
            right=["debts", "amount"],
        )
    )
    if not result.batches:
        console.print("No debt is ready to transfer.")
    console.print(
        f"{result.debts_exported:,} debts, {pounds(result.total_pence)}. The folders hold "
        "personal data and are readable by you only: hand them to the CMS as they are."
    )


@transfer.command(name="export")
@out_option(
    "Directory for the packages (created owner-only if missing); one folder per batch.",
    directory=True,
    dest="out_dir",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=DEFAULT_BATCH_SIZE,
    show_default=True,
    help="About this many debts a batch (a case's two debts are never split).",
)
@format_option
@pass_state
def export_command(state: CliState, out_dir: Path, batch_size: int, fmt: str) -> None:
    """Write the CMS package for every debt ready to transfer.

    Finishes any batch an interrupted run left unfinished first, then records each new
    batch and moves its debts to transfer_sent before writing debts.parquet and
    manifest.json. Never exports a debt twice. JSON keys: run_id, out_dir, batches [{batch_id,
    path, row_count, total_pence, manifest_sha256, resumed}], debts_exported, total_pence,
    book.
    """
    ctx = state.context()
    note_waiting(ctx, "transfer export")
    try:
        with progress_bars(fmt == "table") as progress:
            result = export_transfers(ctx, out_dir, batch_size=batch_size, progress=progress)
    except Unbalanced as exc:
        if isinstance(exc.result, ExportResult):
            _emit_export(fmt, exc.result)
        raise
    _emit_export(fmt, result)


def _emit_export(fmt: str, result: ExportResult) -> None:
    emit(
        fmt,
        result,
        table=lambda c: render_export(c, result),
        csv_rows=lambda: (
            [b.to_json() for b in result.batches],
            ["batch_id", "path", "row_count", "total_pence", "manifest_sha256", "resumed"],
        ),
    )


def render_ack(console: Console, result: AckImportResult) -> None:
    print_already_imported(console, result)
    rows = [
        *[[label, f"{n:,}", ""] for label, n in import_count_rows(result)],
        ["debts transferred (closed)", f"{result.transferred:,}", pounds(result.transferred_pence)],
        [
            "debts refused by the CMS, to review",
            f"{result.returned_to_review:,}",
            pounds(result.returned_pence),
        ],
    ]
    console.print(
        rich_table(
            f"CMS acknowledgement {result.file_name}",
            ["", "count", "amount"],
            rows,
            right=["count", "amount"],
        )
    )
    if result.batches_acknowledged:
        console.print("Batches now fully acknowledged: " + ", ".join(result.batches_acknowledged))
    if result.disputes_to_forward:
        console.print(
            f"[yellow]{len(result.disputes_to_forward)} accepted debts carry an NRP dispute "
            "received while in the package: forward them to the CMS[/] (cases: "
            + ", ".join(result.disputes_to_forward[:20])
            + (" …" if len(result.disputes_to_forward) > 20 else "")
            + ")"
        )
    if result.rejects_file:
        console.print(f"Rejected rows: {result.rejects_file}")


@transfer.command(name="ack")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@rejects_option("row, batch id, case, reason code, detail")
@format_option
@pass_state
def ack_command(state: CliState, file: Path, rejects_path: Path | None, fmt: str) -> None:
    """Import a CMS acknowledgement FILE (CSV: batch_id, case_ref, creditor, status, reason).

    ACCEPTED debts are closed as transferred; REJECTED ones go to review with the CMS's
    reason. Every row ends accepted, duplicate or rejected; the same file twice changes
    nothing. JSON keys: run_id, import_id, file_name, file_sha256, already_imported, rows,
    accepted, duplicates, rejected, rejected_by_reason, transferred, transferred_pence,
    returned_to_review, returned_pence, batches_acknowledged, disputes_to_forward,
    rejects_file, book.
    """
    ctx = state.context()
    with progress_bars(fmt == "table") as progress:
        result = import_ack(ctx, file, rejects_path=rejects_path, progress=progress)
    emit(
        fmt,
        result,
        table=lambda c: render_ack(c, result),
        csv_rows=lambda: (
            [result.to_json()],
            [
                "import_id",
                "rows",
                "accepted",
                "duplicates",
                "rejected",
                "transferred",
                "returned_to_review",
            ],
        ),
    )
    exit_if_all_rejected(result.rows, result.rejected, result.rejects_file)


@transfer.command(name="list")
@click.option(
    "--status",
    type=click.Choice([s.value for s in TransferBatchStatus]),
    help="Only batches in this status.",
)
@format_option
@pass_state
def list_command(state: CliState, status: str | None, fmt: str) -> None:
    """List transfer batches with what the CMS has acknowledged so far.

    JSON: a list of {batch_id, status, as_of, created_at, row_count, total_pence, accepted,
    accepted_pence, rejected, rejected_pence, awaiting, awaiting_pence, manifest_sha256}.
    """
    ctx = state.context()
    batches = list_batches(ctx, status=status)
    columns = [f.name for f in dataclasses.fields(BatchSummary)]
    emit(
        fmt,
        batches,
        table=lambda c: c.print(
            rich_table(
                f"Transfer batches ({len(batches)})",
                ["batch", "status", "as of", "debts", "amount", "accepted", "rejected", "awaiting"],
                [
                    [
                        b.batch_id,
                        b.status,
                        b.as_of,
                        f"{b.row_count:,}",
                        pounds(b.total_pence),
                        f"{b.accepted:,}",
                        f"{b.rejected:,}",
                        f"{b.awaiting:,}",
                    ]
                    for b in batches
                ],
                right=["debts", "amount", "accepted", "rejected", "awaiting"],
            )
        ),
        csv_rows=lambda: ([dataclasses.asdict(b) for b in batches], columns),
    )


@transfer.command(name="verify")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@format_option
def verify_command(folder: Path, fmt: str) -> None:
    """Check a package FOLDER as the CMS will: checksums, row count, total, permissions.

    Exits 6 if anything is wrong. JSON keys: path, batch_id, ok, problems, row_count,
    total_pence.
    """
    check = verify_package(folder)
    emit(
        fmt,
        check,
        table=lambda c: _render_check(c, check),
        csv_rows=lambda: (
            [dataclasses.asdict(check)],
            ["path", "batch_id", "ok", "row_count", "total_pence"],
        ),
    )
    if not check.ok:
        raise SystemExit(ExitCode.VERIFY_FAILED)


def _render_check(console: Console, check: PackageCheck) -> None:
    if check.ok:
        console.print(
            f"[green]{check.batch_id}: package is sound[/] ({check.row_count:,} debts, "
            f"{pounds(check.total_pence)})."
        )
    else:
        console.print(f"[red]{check.path}: the CMS would refuse this package:[/]")
        for problem in check.problems:
            console.print(f"  - {problem}")


@transfer.command(name="rewrite")
@click.argument("batch_id")
@out_option(
    "Directory to write the batch's folder into (created owner-only if missing).",
    directory=True,
    dest="out_dir",
)
@format_option
@pass_state
def rewrite_command(state: CliState, batch_id: str, out_dir: Path, fmt: str) -> None:
    """Write BATCH_ID's package again (a lost or damaged copy), byte-identical to the export.

    Refused if it would not come out identical to what was exported (the recorded manifest
    checksum). JSON keys: batch_id, path, row_count, total_pence, manifest_sha256, resumed.
    """
    ctx = state.context()
    package = rewrite_package(ctx, batch_id, out_dir)
    emit(
        fmt,
        package,
        table=lambda c: c.print(
            f"{package.batch_id} written again to {package.path}: identical to the export "
            f"(manifest {package.manifest_sha256[:16]}…)."
        ),
        csv_rows=lambda: ([package.to_json()], list(package.to_json())),
    )
