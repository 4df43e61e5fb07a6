"""``csa-closure sample``: synthetic legacy data for demos, tests and benchmarks."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import click

from csa_closure.cli.output import emit, pounds, rich_table
from csa_closure.cli.params import (
    ISO_DATE,
    CliState,
    cases_option,
    format_option,
    out_option,
    pass_state,
    seed_option,
)
from csa_closure.legacy.contract import SYSTEMS
from csa_closure.simulation.acknowledgements import write_acks_file
from csa_closure.simulation.decisions import write_decisions_file
from csa_closure.simulation.legacy import (
    DEFAULT_AS_AT,
    DEFAULT_DIRTY_RATE,
    GenerationSummary,
    generate_legacy,
    load_legacy_sql,
)
from csa_closure.simulation.responses import write_response_file


@click.group()
def sample() -> None:
    """Generate synthetic legacy data: a CSCS + CS2 replica with every dirty-data kind.

    Every name, address, NINO and date of birth is made up. Use the output as the legacy
    source of a pull.
    """


@sample.command("legacy")
@cases_option("How many cases, both systems together.", minimum=2)
@seed_option("Random seed: the same seed gives the same replica.")
@click.option(
    "--out",
    required=True,
    help="Where to write: a SQLite file path, a postgresql+psycopg:// URL, or a path ending "
    ".sql for a diffable SQL text dump.",
)
@click.option(
    "--as-at",
    "as_at",
    type=ISO_DATE,
    default=DEFAULT_AS_AT.isoformat(),
    show_default=True,
    help="The replica's as-at date (extract_control.as_at), YYYY-MM-DD.",
)
@click.option(
    "--dirty-rate",
    type=click.FloatRange(0, 0.05),
    default=DEFAULT_DIRTY_RATE,
    show_default=True,
    help="Share of each system's cases given each dirty-data kind (0.005 = 0.5% per kind).",
)
@click.option(
    "--coverage/--no-coverage",
    default=False,
    show_default=True,
    help="Also plant cases for every policy table row, boundary and collectability branch, "
    "and at least one of every dirty-data kind in every column.",
)
@click.option("--force", is_flag=True, help="Replace an existing output file or legacy tables.")
@format_option
def legacy(
    cases: int,
    seed: int,
    out: str,
    as_at: date,
    dirty_rate: float,
    coverage: bool,
    force: bool,
    fmt: str,
) -> None:
    """Generate a synthetic legacy replica (both systems and extract_control) at --out."""
    summary = generate_legacy(
        out,
        cases,
        seed,
        as_at,
        dirty_rate,
        ensure_coverage=coverage,
        overwrite=force,
    )
    emit(
        fmt,
        summary,
        table=lambda c: _print_summary(c, summary),
        csv_rows=lambda: (_control_rows(summary), list(_control_rows(summary)[0])),
    )


def _control_rows(summary: GenerationSummary) -> list[dict[str, Any]]:
    return [
        {
            "source_system": system,
            "case_count": summary.control[system]["case_count"],
            "pwc_arrears_pence": summary.control[system]["pwc_arrears_pence"],
            "sos_arrears_pence": summary.control[system]["sos_arrears_pence"],
            "as_at": summary.control[system]["as_at"],
            "dirty_items": sum(summary.dirty[system].values()),
        }
        for system in SYSTEMS
    ]


def _print_summary(console: Any, summary: GenerationSummary) -> None:
    console.print(
        f"Wrote a {summary.format} legacy replica of {summary.cases:,} cases to {summary.out} "
        f"in {summary.elapsed_seconds:.1f}s (seed {summary.seed}, as at {summary.as_at})."
    )
    console.print(
        rich_table(
            "Control totals (extract_control)",
            ["system", "cases", "owed to PWCs", "owed to SOS", "dirty items"],
            [
                [
                    row["source_system"],
                    f"{row['case_count']:,}",
                    pounds(row["pwc_arrears_pence"]),
                    pounds(row["sos_arrears_pence"]),
                    f"{row['dirty_items']:,}",
                ]
                for row in _control_rows(summary)
            ],
            right=["cases", "owed to PWCs", "owed to SOS", "dirty items"],
        )
    )
    kinds = list(summary.dirty[SYSTEMS[0]])
    console.print(
        rich_table(
            "Dirty data planted (items per kind)",
            ["kind", *SYSTEMS],
            [[kind, *[str(summary.dirty[s][kind]) for s in SYSTEMS]] for kind in kinds],
            right=list(SYSTEMS),
        )
    )
    if summary.coverage:
        console.print(
            f"Coverage: {len(summary.coverage)} scenarios planted on "
            f"{sum(summary.coverage.values())} cases."
        )


@sample.command("legacy-from-sql")
@click.argument("sql_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@out_option("The SQLite file to create.")
@click.option("--force", is_flag=True, help="Replace the output file if it exists.")
@format_option
def legacy_from_sql(sql_file: Path, out: Path, force: bool, fmt: str) -> None:
    """Turn a legacy SQL dump (such as legacy_sample.sql in the source distribution's
    sample_data folder) into a SQLite replica."""
    counts = load_legacy_sql(sql_file, out, overwrite=force)
    result = {"out": str(out), "rows": counts}
    emit(
        fmt,
        result,
        table=lambda c: c.print(
            rich_table(
                f"Legacy replica {out}",
                ["table", "rows"],
                [[table, f"{rows:,}"] for table, rows in counts.items()],
                right=["rows"],
            )
        ),
        csv_rows=lambda: ([{"table": t, "rows": r} for t, r in counts.items()], ["table", "rows"]),
    )


# the simulated outside files (responses, acknowledgements): one seed option for both
FILE_SEED_OPTION = seed_option("The same seed gives the same file.", default=1)


@sample.command("responses")
@out_option("The response file to write (the contact centre's CSV, runbook 04).")
@FILE_SEED_OPTION
@click.option(
    "--duplicates",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Rows repeated (same document_id), as a real feed sends.",
)
@click.option(
    "--bad-rows",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Rows the import must reject (unknown case, bad date, ...).",
)
@format_option
@pass_state
def responses(
    state: CliState, out: Path, seed: int, duplicates: int, bad_rows: int, fmt: str
) -> None:
    """Write the contact centre's response file for the store's letters as of --as-of.

    Parents with care answer at the published rates (about 15% ask for collection); a few
    paying parents dispute. Only case references, creditors and dates are read: no personal
    data. Import it with `csa-closure responses import FILE`.
    """
    written = write_response_file(
        state.context(), out, seed=seed, duplicates=duplicates, bad_rows=bad_rows
    )
    emit(
        fmt,
        written,
        table=lambda c: c.print(
            f"Wrote {written.rows:,} responses to {written.path}: "
            + (", ".join(f"{k} {v:,}" for k, v in written.by_kind.items()) or "none")
            + "."
        ),
        csv_rows=lambda: (
            [{"kind": k, "rows": v} for k, v in written.by_kind.items()],
            ["kind", "rows"],
        ),
    )


@sample.command("acks")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@out_option("The acknowledgement file to write (the CMS's CSV).")
@FILE_SEED_OPTION
@click.option(
    "--rejected-per-thousand",
    type=click.IntRange(0, 1000),
    default=5,
    show_default=True,
    help="Rows of each package the CMS rejects, per thousand.",
)
@format_option
def acks(folder: Path, out: Path, seed: int, rejected_per_thousand: int, fmt: str) -> None:
    """Write the CMS's acknowledgement file for the transfer package(s) at FOLDER.

    FOLDER is a package (it has manifest.json) or a folder of packages, such as the --out of
    `transfer export`. Only the package is read, as the CMS reads it; the store is not
    touched. Import it with `csa-closure transfer ack FILE`.
    """
    files = write_acks_file(folder, out, seed=seed, rejected_per_thousand=rejected_per_thousand)
    emit(
        fmt,
        {"path": str(out), "batches": files},
        table=lambda c: c.print(
            rich_table(
                f"Acknowledgements written to {out}",
                ["batch", "rows", "accepted", "rejected"],
                [[f.batch_id, f"{f.rows:,}", f"{f.accepted:,}", f"{f.rejected:,}"] for f in files],
                right=["rows", "accepted", "rejected"],
            )
        ),
        csv_rows=lambda: (
            [f.to_json() for f in files],
            ["path", "batch_id", "rows", "accepted", "rejected"],
        ),
    )


@sample.command("decisions")
@out_option("The decisions file to write, for `csa-closure review decide-file`.")
@format_option
@pass_state
def decisions(state: CliState, out: Path, fmt: str) -> None:
    """Write a simulated caseworker decision for every open debt in the review queue.

    Each reason in the queue gets a fixed choice (an estate not pursued, a dispute reviewed
    and transferred, a CMS rejection or an untraceable parent written off), as the demo's
    caseworkers choose. Real caseworkers look at each case; this lets a trial run finish.
    Columns: case_ref, creditor, outcome, reason; no personal data.
    """
    written = write_decisions_file(state.context(), out)
    emit(
        fmt,
        written,
        table=lambda c: c.print(
            f"Wrote {written.rows:,} decisions to {written.path}: "
            + (", ".join(f"{k} {v:,}" for k, v in written.by_outcome.items()) or "none")
            + "."
        ),
        csv_rows=lambda: (
            [{"outcome": k, "rows": v} for k, v in written.by_outcome.items()],
            ["outcome", "rows"],
        ),
    )
