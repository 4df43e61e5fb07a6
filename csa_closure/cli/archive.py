"""``csa-closure archive --out DIR`` and ``csa-closure archive verify DIR``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from csa_closure.cli.output import emit
from csa_closure.cli.params import CliState, format_option, out_option, pass_state
from csa_closure.cli.progress import progress_bars
from csa_closure.errors import ExitCode
from csa_closure.reports import render
from csa_closure.stages.archive import DEFAULT_BATCH_ROWS, VerifyResult
from csa_closure.stages.archive import archive as write_archive
from csa_closure.stages.archive import verify as verify_archive


@click.group(invoke_without_command=True)
@out_option(
    "Write the archive to this directory (new or empty; created owner-only).",
    directory=True,
    required=False,
)
@click.option(
    "--include-personal-data",
    is_flag=True,
    help="Also write parties.parquet: parents' names, dates of birth, NINOs and addresses. "
    "Without it the archive holds none.",
)
@click.option(
    "--batch-rows",
    type=click.IntRange(min=1),
    default=DEFAULT_BATCH_ROWS,
    show_default=True,
    help="Rows read and written at a time (bounds memory).",
)
@format_option
@click.pass_context
def archive(
    click_ctx: click.Context,
    out: Path | None,
    include_personal_data: bool,
    batch_rows: int,
    fmt: str,
) -> None:
    """Write the evidence archive (`archive --out DIR`) or check one (`archive verify DIR`).

    `archive --out DIR` writes cases, debts, decisions, events, ledger, letters and their
    status history, responses and imports, transfers, runs, quarantine and rule sets as
    Parquet, with manifest.json (rows, pence totals and SHA-256 per file, the reconciliation,
    created_at, as-of date) and records it in the store. Personal data only with
    --include-personal-data. A directory left by an interrupted archive is written again; any
    other non-empty directory is refused.
    """
    if click_ctx.invoked_subcommand is not None:
        if out is not None or include_personal_data:
            raise click.UsageError(
                f"--out and --include-personal-data write an archive; "
                f"they cannot be used with `archive {click_ctx.invoked_subcommand}`"
            )
        return
    if out is None:
        raise click.UsageError(
            "give --out DIR to write an archive, or `archive verify DIR` to check one"
        )
    state = click_ctx.find_object(CliState)
    assert state is not None
    ctx = state.context()
    with progress_bars(fmt == "table") as progress:
        result = write_archive(
            ctx,
            out,
            include_personal_data=include_personal_data,
            batch_rows=batch_rows,
            progress=progress,
        )
    emit(
        fmt,
        result,
        table=lambda c: c.print(render.archive_renderable(result)),
        csv_rows=lambda: (
            [
                {"file": name, "rows": f.rows, "sha256": f.sha256, **f.totals}
                for name, f in result.files.items()
            ],
            [
                "file",
                "rows",
                "sha256",
                *sorted({k for f in result.files.values() for k in f.totals}),
            ],
        ),
    )


def _verify_csv(result: VerifyResult) -> tuple[list[dict[str, Any]], list[str]]:
    rows: list[dict[str, Any]] = [{"file": c.name, **vars(c), "problem": ""} for c in result.files]
    rows += [{"file": p.file, "problem": p.problem} for p in result.problems]
    return rows, [
        "file",
        "manifest_rows",
        "file_rows",
        "store_rows",
        "checksum_ok",
        "totals_ok",
        "problem",
    ]


@archive.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@format_option
@pass_state
def verify(state: CliState, directory: Path, fmt: str) -> None:
    """Re-check an archive: each file's SHA-256, rows and pence totals against the manifest,
    the manifest against the store's record, and the counts against the store now.

    Records the result on the archive (the decommission gate needs it passed). Exits 6 naming
    each file and problem when anything does not match."""
    result = verify_archive(state.context(), directory)
    emit(
        fmt,
        result,
        table=lambda c: c.print(render.verify_renderable(result)),
        csv_rows=lambda: _verify_csv(result),
    )
    if not result.ok:
        raise SystemExit(ExitCode.VERIFY_FAILED)
