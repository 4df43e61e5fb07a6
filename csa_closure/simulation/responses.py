"""Simulated parent response files, at the published rates, for tests and the demo.

Of the parents with care written to, about 15% asked for collection and 84% did not reply or
did not want it (policy.md). The defaults: 15% ``COLLECT``, 9% ``DO_NOT_COLLECT``, 76% no
reply; a few answers arrive after the deadline (and are rejected ``LATE`` on import); about 3%
of paying parents whose case was asked for collection dispute the amount. Channels: post 50%,
phone 30%, online 20%.

``bad_rows`` adds rows the import must reject (unknown case, bad date, bad party, bad
response, missing value, bad channel), one kind after another; ``duplicates`` repeats
existing rows (same ``document_id``). Everything is drawn from ``SeededRandom``: the same
store, as-of date and seed give the same file, byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy.engine import Connection

from csa_closure.context import Context
from csa_closure.serialise import JsonFields
from csa_closure.simulation.seeded import SeededRandom
from csa_closure.stages.intake import write_owner_only
from csa_closure.stages.responses import COLUMNS
from csa_closure.store.dialect import read_frame

CHANNELS = ("POST", "PHONE", "ONLINE")


@dataclass(frozen=True)
class ResponseRates:
    """Whole-number weights (per cent by default), not floats: they are exact."""

    collect: int = 15
    decline: int = 9
    no_reply: int = 76
    late_per_hundred_replies: int = 2
    nrp_dispute_per_hundred: int = 3
    channel_weights: tuple[int, int, int] = (50, 30, 20)  # POST, PHONE, ONLINE


CANDIDATE_SCHEMA: dict[str, pl.DataType] = {
    "debt_id": pl.Int64(),
    "case_ref": pl.String(),
    "creditor": pl.String(),
    "state": pl.String(),
    "letter_date": pl.Date(),
    "response_deadline": pl.Date(),
}


def response_candidates(conn: Connection) -> pl.DataFrame:
    """PWC debts awaiting a response, and debts awaiting collection (for NRP disputes)."""
    sql = (
        "SELECT debt_id, case_ref, creditor, state, letter_date, response_deadline FROM debts "
        "WHERE (state = 'awaiting_response' AND creditor = 'PWC') "
        "OR state IN ('collect_requested', 'transfer_ready') ORDER BY debt_id"
    )
    return read_frame(conn, (sql, ()), CANDIDATE_SCHEMA)


def _days(column: str) -> pl.Expr:
    return (pl.col(column) - pl.lit(date(1970, 1, 1))).dt.total_days()


def _pwc_answers(
    debts: pl.DataFrame, as_of: date, rng: SeededRandom, rates: ResponseRates
) -> pl.DataFrame:
    pwc = debts.filter(
        (pl.col("state") == "awaiting_response")
        & (pl.col("creditor") == "PWC")
        & (pl.col("letter_date") <= pl.lit(as_of))
    ).sort("debt_id")
    n = pwc.height
    if n == 0:
        return pl.DataFrame(schema={c: pl.String for c in COLUMNS})
    choice = rng.pick("pwc_answer", n, [rates.collect, rates.decline, rates.no_reply])
    late = rng.chance("pwc_late", n, rates.late_per_hundred_replies / 100)
    channel = rng.pick("pwc_channel", n, list(rates.channel_weights))
    frame = pwc.with_columns(choice, late, channel).with_columns(
        _days("letter_date").alias("first"),
        pl.min_horizontal(
            _days("response_deadline"), pl.lit((as_of - date(1970, 1, 1)).days)
        ).alias("last_in_time"),
        (_days("response_deadline") + 1).alias("first_late"),
        pl.lit((as_of - date(1970, 1, 1)).days).alias("today"),
    )
    frame = frame.filter(pl.col("pwc_answer") < 2)  # the rest do not reply
    n = frame.height
    can_be_late = pl.col("pwc_late") & (pl.col("first_late") <= pl.col("today"))
    low = frame.select(pl.when(can_be_late).then("first_late").otherwise("first")).to_series()
    high = frame.select(pl.when(can_be_late).then("today").otherwise("last_in_time")).to_series()
    day = rng.between("pwc_day", n, low, high)
    return frame.with_columns(day.alias("day")).select(
        pl.concat_str(
            pl.col("pwc_channel").replace_strict(
                [0, 1, 2], ["P", "T", "W"], return_dtype=pl.String
            ),
            pl.lit("-"),
            "case_ref",
            pl.lit("-PWC-"),
            pl.lit(str(rng.seed)),
        ).alias("document_id"),
        "case_ref",
        pl.lit("PWC").alias("party"),
        pl.when(pl.col("pwc_answer") == 0)
        .then(pl.lit("COLLECT"))
        .otherwise(pl.lit("DO_NOT_COLLECT"))
        .alias("response"),
        (pl.lit(date(1970, 1, 1)) + pl.duration(days=pl.col("day")))
        .dt.to_string("%Y-%m-%d")
        .alias("received_on"),
        pl.col("pwc_channel")
        .replace_strict([0, 1, 2], list(CHANNELS), return_dtype=pl.String)
        .alias("channel"),
    )


def _nrp_disputes(
    debts: pl.DataFrame, pwc: pl.DataFrame, as_of: date, rng: SeededRandom, rates: ResponseRates
) -> pl.DataFrame:
    # cases already awaiting collection, and those this file's COLLECTs will put there
    cases = (
        pl.concat(
            [
                debts.filter(pl.col("state").is_in(["collect_requested", "transfer_ready"])).select(
                    "case_ref"
                ),
                pwc.filter(pl.col("response") == "COLLECT").select("case_ref"),
            ]
        )
        .unique()
        .sort("case_ref")
    )
    n = cases.height
    if n == 0:
        return pl.DataFrame(schema={c: pl.String for c in COLUMNS})
    disputes = cases.with_columns(
        rng.chance("nrp_dispute", n, rates.nrp_dispute_per_hundred / 100),
        rng.pick("nrp_channel", n, list(rates.channel_weights)),
    ).filter(pl.col("nrp_dispute"))
    return disputes.select(
        pl.concat_str(pl.lit("N-"), "case_ref", pl.lit("-NRP-"), pl.lit(str(rng.seed))).alias(
            "document_id"
        ),
        "case_ref",
        pl.lit("NRP").alias("party"),
        pl.lit("DISPUTE_AMOUNT").alias("response"),
        pl.lit(as_of.isoformat()).alias("received_on"),
        pl.col("nrp_channel")
        .replace_strict([0, 1, 2], list(CHANNELS), return_dtype=pl.String)
        .alias("channel"),
    )


BAD_KINDS = (
    "UNKNOWN_CASE",
    "BAD_DATE",
    "BAD_PARTY",
    "BAD_RESPONSE",
    "MISSING_VALUE",
    "BAD_CHANNEL",
)


def _bad_rows(count: int, as_of: date, seed: int, some_case: str | None) -> pl.DataFrame:
    rows: list[dict[str, Any]] = []
    case_ref = some_case or "C000000001"
    for i in range(count):
        kind = BAD_KINDS[i % len(BAD_KINDS)]
        row: dict[str, str | None] = {
            "document_id": f"BAD-{seed}-{i:05d}",
            "case_ref": case_ref,
            "party": "PWC",
            "response": "COLLECT",
            "received_on": as_of.isoformat(),
            "channel": "POST",
        }
        if kind == "UNKNOWN_CASE":
            row["case_ref"] = f"S{999_000_000 + i:09d}"
        elif kind == "BAD_DATE":
            row["received_on"] = f"{as_of:%d/%m/%Y}"
        elif kind == "BAD_PARTY":
            row["party"] = "GRANDPARENT"
        elif kind == "BAD_RESPONSE":
            row["response"] = "MAYBE"
        elif kind == "MISSING_VALUE":
            row["channel"] = None
        else:
            row["channel"] = "FAX"
        rows.append(row)
    return pl.DataFrame(rows, schema={c: pl.String for c in COLUMNS})


def simulate_responses(
    debts: pl.DataFrame,
    as_of: date,
    *,
    seed: int,
    rates: ResponseRates | None = None,
    duplicates: int = 0,
    bad_rows: int = 0,
) -> pl.DataFrame:
    """Response rows (the contract's columns, as text) for the ``debts`` given (see
    ``response_candidates``), as the channels would export them on ``as_of``."""
    rates = rates or ResponseRates()
    rng = SeededRandom(seed, "responses")
    pwc = _pwc_answers(debts, as_of, rng, rates)
    nrp = _nrp_disputes(debts, pwc, as_of, rng, rates)
    rows = pl.concat([pwc, nrp])
    if duplicates and rows.height:
        picks = rng.below("duplicate_rows", duplicates, rows.height)
        rows = pl.concat([rows, rows.select(pl.all().gather(picks))])
    some_case = str(rows.get_column("case_ref")[0]) if rows.height else None
    rows = pl.concat([rows, _bad_rows(bad_rows, as_of, seed, some_case)])
    # the channels export in no particular order: shuffle deterministically
    return rows.select(pl.all().gather(rng.order("file_order", rows.height)))


@dataclass
class SampleFile(JsonFields):
    path: str
    rows: int
    by_kind: dict[str, int]


def write_response_file(
    ctx: Context,
    path: Path,
    *,
    seed: int,
    rates: ResponseRates | None = None,
    duplicates: int = 0,
    bad_rows: int = 0,
) -> SampleFile:
    """Write a simulated response file for the store's debts as of ``ctx.as_of``."""
    with ctx.engine.connect() as conn:
        debts = response_candidates(conn)
    rows = simulate_responses(
        debts, ctx.as_of, seed=seed, rates=rates, duplicates=duplicates, bad_rows=bad_rows
    )
    write_owner_only(Path(path), rows.write_csv().encode("utf-8"))
    kinds = rows.group_by("party", "response").len().sort("party", "response")
    return SampleFile(
        path=str(path),
        rows=rows.height,
        by_kind={f"{p}:{r}": int(n) for p, r, n in kinds.iter_rows()},
    )
