"""A synthetic legacy CSA replica: both systems, their conventions, their dirt.

``generate_legacy(out, cases, seed)`` writes a replica that follows the legacy-CSA contract
(``sql/legacy_schema.sql``) to a SQLite file, a PostgreSQL database (``postgresql+psycopg://``)
or, for a path ending ``.sql``, a diffable SQL text dump (``sample_data/legacy_sample.sql``).

How it is built:

1. a *wide* frame per system, one row per case, holds every fact as a typed column (dates as
   day numbers): dates, balances, flags, and both parents' attributes. Everything is drawn
   from ``SeededRandom`` streams over whole columns: no Python loop per row;
2. with ``ensure_coverage`` the first cases of each system are overwritten by *scenarios*
   that pin every row of the policy's eligibility tables, their boundaries and every
   collectability branch (``coverage_scenarios``);
3. the wide frame is rendered into the system's own tables and spelling (CSCS: all text,
   DD/MM/YYYY, pounds, Y/N, '' or NULL for nothing; CS2: typed, ISO dates, pence, 0/1);
4. dirt is planted: ``dirty_rate`` of each system's cases per dirty kind (``DIRTY_KINDS``),
   on cases no scenario and no shared party touches, each kind on its own cases;
5. ``extract_control`` is summed from the rows as written, as the legacy system sees them.

Calibration (at 1,300,000 cases; every count scales with ``cases``): about £2.5bn owed to
parents with care over about 970,000 cases and £1.2bn to the Government over about 320,000,
with about 3.8% of cases owing over £20,000 and holding about 40% of the debt.

Decision on control totals: a balance the legacy system cannot read as a number (the dirty
``bad_balance`` kind: 'N/A', '12O.50', ...) counts as zero in its control total, so the
normaliser's quarantine (which also counts it as zero) reconciles to the penny. The
generator only writes unreadable balances that no reading could take for a number.

On PostgreSQL the typed CS2 columns cannot hold a bad date or a non-numeric amount, so
those dirty kinds are planted in CSCS only there (and in both systems on SQLite and in the
.sql dump). The control columns ``*_arrears_pence`` are created BIGINT on PostgreSQL: the
contract's INTEGER is 32-bit there and the full book's £2.5bn (250bn pence) overflows it.
"""

from __future__ import annotations

import calendar
import io
import os
import re
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import inspect

from csa_closure.errors import UsageError
from csa_closure.legacy.contract import CS2, CSCS, SPECS, SYSTEMS, TABLES
from csa_closure.legacy.reasons import (
    ITEM_CASE,
    ITEM_ORPHAN_DEBT,
    ITEM_ORPHAN_PAYMENT,
    Reason,
)
from csa_closure.resources import sql_text
from csa_closure.simulation.seeded import SeededRandom
from csa_closure.stages.intake import write_owner_only
from csa_closure.store.engine import create_owner_only, make_engine, redacted

DEFAULT_AS_AT = date(2019, 3, 31)
DEFAULT_DIRTY_RATE = 0.005
EPOCH = date(1970, 1, 1)
WRITE_BATCH = 100_000

# --- calibration ------------------------------------------------------------------------
# Share of cases in CSCS; of CS2 cases, the share converted from the 1993 scheme.
CSCS_SHARE = 0.5
CS2_CONVERTED = 0.2
# Debt rows per case, per 10,000: PWC only, SOS only, both, none. Gives ~970k PWC and
# ~320k SOS debts at 1.3M cases (the published figures barely overlap).
DEBT_MIX = (7440, 2440, 20, 100)
# Balance bands in pence (low, high, weight per 10,000); uniform within a band. The PWC
# mean is ~£2,580 and the SOS mean ~£3,780; the bands above £20,000 hold the tail.
PWC_BANDS = (
    (0, 0, 300), (1, 6499, 1300), (6500, 50000, 2470), (50001, 100000, 1800),
    (100001, 300000, 2600), (300001, 800000, 980), (800001, 2000000, 210),
    (2000001, 3000000, 250), (3000001, 5000000, 83), (5000001, 12000000, 7),
)  # fmt: skip
SOS_BANDS = (
    (0, 0, 200), (1, 6499, 1100), (6500, 50000, 1700), (50001, 100000, 1600),
    (100001, 300000, 2800), (300001, 800000, 1680), (800001, 2000000, 440),
    (2000001, 3000000, 320), (3000001, 5000000, 145), (5000001, 12000000, 15),
)  # fmt: skip
P_ONGOING_NO_END = 0.025
P_ONGOING_LATER_END = 0.010
P_DV = 0.03
P_STOP_ACTING = 0.02
P_ENFORCEMENT = 0.06
P_PAYING = 0.06  # a positive payment within the 3 calendar months up to as_at
P_NON_POSITIVE_IN_WINDOW = 0.01  # a zero or negative payment in that window, not paying
REGULAR_PAYMENTS = (4500, 1300, 1000, 800, 700, 600, 500, 350, 250)  # weights for 0..8
P_DECEASED = {"pwc": 0.008, "nrp": 0.015}
P_DIED_ON_AS_AT = 0.03  # of the deceased
P_NO_NINO = {"pwc": 0.10, "nrp": 0.12}
P_NEVER_VERIFIED = 0.15
P_SHARED = {"pwc": 0.005, "nrp": 0.02}
P_ONE_LINE_ADDRESS = 0.008  # unusable for letters (not dirt: letters deal with it)
P_BAD_POSTCODE = 0.006
EMPLOYMENT_WEIGHTS = {"pwc": (45, 5, 40, 10), "nrp": (40, 12, 28, 20)}
EMPLOYMENTS = ("EMPLOYED", "SELF_EMPLOYED", "BENEFITS", "UNKNOWN")
CSCS_EMP = {"EMPLOYED": "E", "SELF_EMPLOYED": "S", "BENEFITS": "B", "UNKNOWN": "U"}
ENFORCEMENT = {
    CSCS: (("DEO", "LO", "CO", "BAIL"), (50, 25, 15, 10)),
    CS2: (("DEO", "LO", "CHARGING_ORDER", "COMMITTAL"), (55, 20, 15, 10)),
}
SCHEME_1993 = (date(1993, 4, 5), date(2003, 3, 2))
SCHEME_2003 = (date(2003, 3, 3), date(2012, 11, 24))
CSCS_LATE = (date(2003, 3, 3), date(2008, 12, 31))  # linked 1993-scheme cases after 2003
P_CSCS_LATE = 0.05

# --- synthetic names and places (common words, no real people) --------------------------
SURNAMES = (
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies",
    "Robinson", "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green",
    "Hall", "Wood", "Jackson", "Clarke", "Patel", "Khan", "Lewis", "James", "Phillips",
    "Mason", "Mitchell", "Rose", "Davis", "Rodgers", "Cooper", "Ward", "Morris", "Hughes",
    "Edwards", "Turner", "Hill", "Moore", "Parker", "Harris", "Clark", "Cook", "Baker",
    "Bell", "Murphy", "Kelly", "Price", "Bennett", "Griffiths", "Kaur", "Singh", "Ahmed",
    "Hussain", "Begum", "Ali", "Campbell", "Stewart", "Reid", "Murray", "Watson",
)  # fmt: skip
FORENAMES = (
    "Oliver", "George", "Harry", "Jack", "Jacob", "Noah", "Charlie", "Thomas", "Oscar",
    "William", "James", "Daniel", "Joseph", "Samuel", "David", "Paul", "Mark", "Lee",
    "Darren", "Wayne", "Craig", "Gary", "Stephen", "Andrew", "Michael", "Amelia", "Olivia",
    "Emily", "Isla", "Ava", "Jessica", "Sophie", "Chloe", "Lucy", "Emma", "Sarah",
    "Claire", "Lisa", "Michelle", "Kelly", "Joanne", "Nicola", "Donna", "Tracey", "Karen",
    "Julie", "Rachel", "Hannah", "Laura", "Amy", "Zara", "Aisha", "Priya", "Fatima",
)  # fmt: skip
STREETS = (
    "High", "Station", "Main", "Park", "Church", "Victoria", "Green", "Manor", "Mill",
    "Queens", "Kings", "Grange", "School", "North", "South", "West", "Albert", "York",
    "Windsor", "Chester", "Elm", "Oak", "Ash", "Beech", "Cedar", "Willow", "Meadow",
    "Orchard", "Springfield", "Highfield", "Broad", "New", "Mount", "Clarence", "Stanley",
)  # fmt: skip
STREET_TYPES = (
    "Street", "Road", "Lane", "Avenue", "Close", "Drive", "Way", "Crescent", "Grove",
    "Gardens", "Place", "Terrace",
)  # fmt: skip
LOCALITIES = (
    "Northfield", "Southside", "Eastwood", "Westbury", "Hillside", "Brookfield",
    "Fairview", "Riverside", "Oakwood", "Parkside", "Newtown", "Old Town", "Woodlands",
    "Moorside", "Lakeside", "Bridgend Estate", "Castle Vale", "Kingswood",
)  # fmt: skip
TOWNS = (
    "Birmingham", "Leeds", "Manchester", "Sheffield", "Bristol", "Liverpool", "Newcastle",
    "Nottingham", "Leicester", "Coventry", "Bradford", "Cardiff", "Swansea", "Plymouth",
    "Derby", "Wolverhampton", "Stoke-on-Trent", "Sunderland", "Norwich", "Hull",
    "Preston", "Blackpool", "Reading", "Luton", "Northampton", "Southampton", "Portsmouth",
    "Exeter", "York", "Lincoln", "Ipswich", "Gloucester", "Doncaster", "Wigan", "Bolton",
)  # fmt: skip
COUNTIES = (
    "West Midlands", "West Yorkshire", "Greater Manchester", "South Yorkshire", "Avon",
    "Merseyside", "Tyne and Wear", "Nottinghamshire", "Leicestershire", "Lancashire",
    "South Glamorgan", "West Glamorgan", "Devon", "Derbyshire", "Staffordshire", "Norfolk",
    "East Yorkshire", "Berkshire", "Bedfordshire", "Hampshire", "Lincolnshire", "Suffolk",
)  # fmt: skip
POSTCODE_AREAS = (
    "B", "LS", "M", "S", "BS", "L", "NE", "NG", "LE", "CV", "BD", "CF", "SA", "PL", "DE",
    "WV", "ST", "SR", "NR", "HU", "PR", "FY", "RG", "LU", "NN", "SO", "PO", "EX", "YO",
    "LN", "IP", "GL", "DN", "WN", "BL",
)  # fmt: skip
POSTCODE_UNIT_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
NINO_PREFIXES = (
    "AB", "AE", "AH", "AK", "AL", "AM", "AP", "AR", "AS", "AT", "AW", "AX", "AY", "AZ",
    "CE", "CH", "CK", "CL", "CR", "EH", "EK", "EL", "ER", "GY", "HE", "HH", "HJ", "JA",
    "JB", "JC", "JE", "JH", "JJ", "JK", "JL", "JM", "JN", "JP", "JR", "JS", "JT", "JW",
    "JX", "JY", "JZ", "KA", "KB", "KC", "KE", "KH", "KJ", "KK", "KL", "KM", "LA", "LB",
    "NA", "NB", "NE", "NH", "NL", "NM", "NP", "NR", "NS", "NW", "NX", "NY", "NZ", "OA",
    "PA", "PB", "PC", "PE", "PG", "PH", "PJ", "PK", "PL", "PM", "PN", "PP", "PR", "PS",
    "RA", "RB", "RC", "RE", "RH", "RJ", "RK", "RL", "RM", "RN", "RP", "RR", "RS", "RT",
    "SA", "SB", "SC", "SE", "SG", "SH", "SJ", "SK", "SL", "SM", "SN", "SP", "SR", "SS",
    "WA", "WB", "WE", "WG", "WH", "WJ", "WK", "WL", "WM", "WN", "WP", "WR", "WS", "WT",
    "YA", "YB", "YE", "YH", "YK", "YL", "YM", "YN", "YP", "YR", "YS", "YT", "YW", "YX",
    "ZA", "ZB", "ZE", "ZH", "ZK", "ZL", "ZM", "ZN", "ZP", "ZR", "ZS", "ZT", "ZW", "ZX",
)  # fmt: skip


# --- calendar helpers (scalars, used to set ranges and boundaries) ----------------------


def minus_months(day: date, months: int) -> date:
    """The same day ``months`` calendar months earlier; the month's last day if it has none
    (31 May minus 3 months is 28 February): the policy's definition."""
    total = day.year * 12 + (day.month - 1) - months
    year, month = divmod(total, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _days(day: date) -> int:
    return (day - EPOCH).days


def _leap_day_on_or_before(limit: date, preferred: int) -> date:
    year = min(preferred, limit.year)
    while True:
        if calendar.isleap(year) and date(year, 2, 29) <= limit:
            return date(year, 2, 29)
        year -= 1


# --- the result ------------------------------------------------------------------------


@dataclass(frozen=True)
class LegacyBook:
    """A generated replica before it is written: each contract table as text columns."""

    tables: dict[str, pl.DataFrame]
    control: dict[str, dict[str, Any]]
    planted: pl.DataFrame  # one row per planted dirty item: see PLANTED_SCHEMA
    coverage: pl.DataFrame  # scenario, source_system, case_ref
    as_at: date


PLANTED_SCHEMA = {
    "kind": pl.String,
    "source_system": pl.String,
    "case_ref": pl.String,  # the quarantine reference the item must be held under
    "item_kind": pl.String,
    "code": pl.String,  # the reason code the item must carry
    "table": pl.String,
    "field": pl.String,
}


@dataclass(frozen=True)
class GenerationSummary:
    out: str
    format: str  # sqlite | postgresql | sql
    cases: int
    seed: int
    as_at: date
    dirty_rate: float
    ensure_coverage: bool
    rows: dict[str, int]  # per legacy table
    control: dict[str, dict[str, Any]]  # per system: case_count, *_arrears_pence, as_at
    dirty: dict[str, dict[str, int]]  # per system: dirty kind -> items planted
    coverage: dict[str, int]  # scenario -> cases planted (both systems)
    elapsed_seconds: float
    planted: pl.DataFrame = field(repr=False)
    coverage_cases: pl.DataFrame = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "out": self.out,
            "format": self.format,
            "cases": self.cases,
            "seed": self.seed,
            "as_at": self.as_at,
            "dirty_rate": self.dirty_rate,
            "ensure_coverage": self.ensure_coverage,
            "rows": self.rows,
            "control": self.control,
            "dirty": self.dirty,
            "coverage": self.coverage,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
        }


# --- public entry points ---------------------------------------------------------------


def generate_legacy(
    out: str,
    cases: int,
    seed: int,
    as_at: date = DEFAULT_AS_AT,
    dirty_rate: float = DEFAULT_DIRTY_RATE,
    *,
    ensure_coverage: bool = False,
    overwrite: bool = False,
) -> GenerationSummary:
    """Generate a replica of ``cases`` cases and write it to ``out`` (see module doc).

    ``out`` is a SQLite path (or ``sqlite:///`` URL), a ``postgresql+psycopg://`` URL, or a
    path ending ``.sql``. Refuses to overwrite an existing file or contract tables unless
    ``overwrite``.
    """
    started = time.perf_counter()
    kind, target = _target(out)
    if kind == "sqlite" or kind == "sql":
        _check_file_target(target, overwrite)
    book = build_legacy_book(
        cases,
        seed,
        as_at,
        dirty_rate,
        ensure_coverage=ensure_coverage,
        typed_cs2=kind == "postgresql",
    )
    if kind == "sqlite":
        write_sqlite(book, Path(target))
    elif kind == "sql":
        write_owner_only(Path(target), render_legacy_sql(book).encode("utf-8"))
    else:
        write_postgres(book, target, overwrite=overwrite)
    return _summary(book, out, kind, cases, seed, as_at, dirty_rate, ensure_coverage, started)


def build_legacy_book(
    cases: int,
    seed: int,
    as_at: date = DEFAULT_AS_AT,
    dirty_rate: float = DEFAULT_DIRTY_RATE,
    *,
    ensure_coverage: bool = False,
    typed_cs2: bool = False,
) -> LegacyBook:
    """The replica in memory (no writing). ``typed_cs2``: CS2 columns are really typed
    (PostgreSQL), so no bad dates or amounts are planted in CS2."""
    if cases < 2:
        raise UsageError("generate at least 2 cases")
    if not 0 <= dirty_rate <= 0.05:
        raise UsageError("the dirty rate must be between 0 and 0.05 (per dirty kind)")
    if as_at < date(1996, 1, 1):
        raise UsageError("as_at must be 1996-01-01 or later (the schemes began in 1993)")
    rng = SeededRandom(seed, "legacy")
    n_cscs = max(1, round(cases * CSCS_SHARE))
    sizes = {CSCS: n_cscs, CS2: cases - n_cscs}
    tables: dict[str, pl.DataFrame] = {}
    planted: list[pl.DataFrame] = []
    coverage: list[pl.DataFrame] = []
    control: dict[str, dict[str, Any]] = {}
    for system in SYSTEMS:
        n = sizes[system]
        scenarios = coverage_scenarios(system, as_at) if ensure_coverage else []
        minimum = len(scenarios) + (
            _coverage_dirt_needed(system, typed_cs2) if ensure_coverage else 0
        )
        if n < minimum:
            raise UsageError(
                f"ensure_coverage needs at least {2 * minimum} cases ({minimum} per system)"
            )
        wide = _random_cases(rng, system, n, as_at)
        wide = _apply_scenarios(system, wide, scenarios, as_at)
        rendered = _render(rng, system, wide, as_at)
        rendered, system_planted = _plant_dirt(
            rng, system, rendered, wide, as_at, dirty_rate, ensure_coverage, typed_cs2
        )
        control[system] = _control(system, rendered, as_at)
        coverage.append(_coverage_refs(system, wide, rendered))
        planted.append(system_planted)
        for table, frame in rendered.items():
            tables[table] = _in_key_order(system, table, frame).select(TABLES[table])
    tables["extract_control"] = pl.DataFrame(
        [
            {
                "system": system,
                "case_count": str(control[system]["case_count"]),
                "pwc_arrears_pence": str(control[system]["pwc_arrears_pence"]),
                "sos_arrears_pence": str(control[system]["sos_arrears_pence"]),
                "as_at": as_at.isoformat(),
            }
            for system in SYSTEMS
        ],
        schema=dict.fromkeys(TABLES["extract_control"], pl.String),
    )
    return LegacyBook(
        tables={table: tables[table] for table in TABLES},
        control=control,
        planted=pl.concat(planted).select(list(PLANTED_SCHEMA)),
        coverage=pl.concat(coverage),
        as_at=as_at,
    )


def _in_key_order(system: str, table: str, frame: pl.DataFrame) -> pl.DataFrame:
    """Debt and payment rows in case-key order (planted rows stay after their case's own
    rows), so the dump reads case by case. Keys the generator writes are all well formed:
    CSCS's are fixed width, CS2's are numbers."""
    spec = SPECS[system]
    if table not in (spec.debt_table, spec.payment_table):
        return frame
    key = pl.col(spec.debt_cols["case_key"])
    order = key if system == CSCS else key.cast(pl.Int64)
    return frame.sort(order, maintain_order=True)


# --- targets ---------------------------------------------------------------------------


def _target(out: str) -> tuple[str, str]:
    if out.startswith(("postgresql", "postgres://")):
        return "postgresql", out
    if out.startswith("sqlite:///"):
        return "sqlite", out[len("sqlite:///") :]
    if "://" in out:
        raise UsageError("--out must be a SQLite path, a .sql path or a postgresql+psycopg:// URL")
    if out.endswith(".sql"):
        return "sql", out
    return "sqlite", out


def _check_file_target(path: str, overwrite: bool) -> None:
    target = Path(path)
    if target.exists():
        if not overwrite:
            raise UsageError(f"{path} already exists; use --force to replace it")
        target.unlink()
    if not target.parent.is_dir():
        raise UsageError(f"the directory of {path} does not exist")


# --- 1. random cases (the wide frame) ----------------------------------------------------


def _band_amounts(
    rng: SeededRandom, stream: str, n: int, bands: Sequence[tuple[int, int, int]]
) -> pl.Series:
    band = rng.pick(f"{stream}.band", n, [w for _, _, w in bands])
    low = pl.Series([b[0] for b in bands], dtype=pl.Int64).gather(band)
    high = pl.Series([b[1] for b in bands], dtype=pl.Int64).gather(band)
    return rng.between(f"{stream}.amount", n, low, high)


def _pick_text(rng: SeededRandom, stream: str, n: int, values: Sequence[str]) -> pl.Series:
    index = rng.below(stream, n, len(values))
    return pl.Series(values, dtype=pl.String).gather(index).alias(stream)


def _random_cases(rng: SeededRandom, system: str, n: int, as_at: date) -> pl.DataFrame:
    """One row per case with every fact the tables are rendered from (dates as day numbers)."""

    def s(name: str) -> str:
        return f"{system}.{name}"

    asat = _days(as_at)
    latest_eff = asat - 90
    cutoff = _days(minus_months(as_at, 3))

    def clamp_range(bounds: tuple[date, date]) -> tuple[int, int]:
        high = min(_days(bounds[1]), latest_eff)
        return min(_days(bounds[0]), high), high

    if system == CSCS:
        late = rng.chance(s("eff.late"), n, P_CSCS_LATE)
        scheme = pl.repeat("1993", n, dtype=pl.String, eager=True)
        early_lo, early_hi = clamp_range(SCHEME_1993)
        late_lo, late_hi = clamp_range(CSCS_LATE)
        lo = pl.select(pl.when(late).then(late_lo).otherwise(early_lo)).to_series()
        hi = pl.select(pl.when(late).then(late_hi).otherwise(early_hi)).to_series()
    else:
        converted = rng.chance(s("scheme.converted"), n, CS2_CONVERTED)
        scheme = pl.select(
            pl.when(converted).then(pl.lit("1993")).otherwise(pl.lit("2003"))
        ).to_series()
        old_lo, old_hi = clamp_range(SCHEME_1993)
        new_lo, new_hi = clamp_range(SCHEME_2003)
        lo = pl.select(pl.when(converted).then(old_lo).otherwise(new_lo)).to_series()
        hi = pl.select(pl.when(converted).then(old_hi).otherwise(new_hi)).to_series()
    eff = rng.between(s("eff"), n, lo, hi)

    end_kind = rng.pick(
        s("end.kind"),
        n,
        [
            round((1 - P_ONGOING_NO_END - P_ONGOING_LATER_END) * 10000),
            round(P_ONGOING_NO_END * 10000),
            round(P_ONGOING_LATER_END * 10000),
        ],
    )
    ended = rng.between(s("end.ended"), n, (eff + 30).clip(upper_bound=asat - 1), asat - 1)
    later = rng.between(s("end.later"), n, asat + 1, asat + 730)

    codes, weights = ENFORCEMENT[system]
    debt_mix = rng.pick(s("debt.mix"), n, DEBT_MIX)
    paying = rng.chance(s("paying"), n, P_PAYING)
    non_positive = rng.chance(s("window.nonpositive"), n, P_NON_POSITIVE_IN_WINDOW)
    window_day = rng.between(s("window.day"), n, cutoff, asat)
    paid = rng.between(s("window.paid"), n, 500, 40000)
    non_positive_amount = pl.select(
        pl.when(rng.chance(s("window.zero"), n, 0.5))
        .then(0)
        .otherwise(-rng.between(s("window.neg"), n, 500, 20000))
    ).to_series()

    frame = pl.DataFrame(
        {
            "idx": pl.int_range(0, n, dtype=pl.Int64, eager=True),
            "scheme": scheme,
            "eff": eff,
            "end": pl.select(
                pl.when(end_kind == 0).then(ended).when(end_kind == 2).then(later).otherwise(None)
            ).to_series(),
            "dv": rng.chance(s("dv"), n, P_DV),
            "stop": rng.chance(s("stop"), n, P_STOP_ACTING),
            "enf": pl.select(
                pl.when(rng.chance(s("enf"), n, P_ENFORCEMENT))
                .then(pl.Series(codes, dtype=pl.String).gather(rng.pick(s("enf.code"), n, weights)))
                .otherwise(None)
            ).to_series(),
            "pwc_bal": pl.select(
                pl.when(debt_mix.is_in([0, 2])).then(_band_amounts(rng, s("pwc"), n, PWC_BANDS))
            ).to_series(),
            "sos_bal": pl.select(
                pl.when(debt_mix.is_in([1, 2])).then(_band_amounts(rng, s("sos"), n, SOS_BANDS))
            ).to_series(),
            "n_reg": rng.pick(s("payments.count"), n, REGULAR_PAYMENTS),
            "sp_date": pl.select(
                pl.when(paying | non_positive).then(window_day).otherwise(None)
            ).to_series(),
            "sp_amount": pl.select(
                pl.when(paying)
                .then(paid)
                .when(non_positive)
                .then(non_positive_amount)
                .otherwise(None)
            ).to_series(),
            "cover": pl.repeat(False, n, dtype=pl.Boolean, eager=True),
            "scenario": pl.repeat(None, n, dtype=pl.String, eager=True),
        }
    )
    for role in ("pwc", "nrp"):
        frame = frame.with_columns(_random_party(rng, system, role, n, frame["eff"], as_at))
    return frame


def _random_party(
    rng: SeededRandom, system: str, role: str, n: int, eff: pl.Series, as_at: date
) -> list[pl.Series]:
    """The facts of one parent per case (``role`` pwc|nrp), as ``<role>_*`` columns."""

    def s(name: str) -> str:
        return f"{system}.{role}.{name}"

    asat = _days(as_at)
    born = (
        (date(1950, 1, 1), date(1990, 12, 31))
        if role == "pwc"
        else (date(1945, 1, 1), date(1988, 12, 31))
    )
    deceased = rng.chance(s("deceased"), n, P_DECEASED[role])
    on_as_at = rng.chance(s("deceased.on_as_at"), n, P_DIED_ON_AS_AT)
    died = rng.between(s("dod"), n, eff.clip(upper_bound=asat), asat)
    share = rng.chance(s("shared"), n, P_SHARED[role])
    other = rng.below(s("shared.with"), n, n)
    idx = pl.int_range(0, n, dtype=pl.Int64, eager=True)
    lines = pl.Series([3, 4, 5], dtype=pl.Int64).gather(rng.pick(s("lines"), n, (45, 40, 15)))
    employment = pl.Series(EMPLOYMENTS, dtype=pl.String).gather(
        rng.pick(s("emp"), n, EMPLOYMENT_WEIGHTS[role])
    )
    return [
        rng.below(s("family"), n, len(SURNAMES)).alias(f"{role}_family"),
        rng.below(s("given1"), n, len(FORENAMES)).alias(f"{role}_given1"),
        pl.select(
            pl.when(rng.chance(s("given2.any"), n, 0.3)).then(
                rng.below(s("given2"), n, len(FORENAMES))
            )
        )
        .to_series()
        .alias(f"{role}_given2"),
        rng.between(s("dob"), n, _days(born[0]), _days(born[1])).alias(f"{role}_dob"),
        rng.chance(s("nino.missing"), n, P_NO_NINO[role]).alias(f"{role}_no_nino"),
        pl.select(
            pl.when(rng.chance(s("verified.never"), n, P_NEVER_VERIFIED))
            .then(None)
            .otherwise(rng.between(s("verified"), n, _days(date(1995, 1, 1)), asat))
        )
        .to_series()
        .alias(f"{role}_verified"),
        pl.select(pl.when(deceased & on_as_at).then(asat).when(deceased).then(died).otherwise(None))
        .to_series()
        .alias(f"{role}_dod"),
        employment.alias(f"{role}_emp"),
        pl.select(
            pl.when(rng.chance(s("one_line"), n, P_ONE_LINE_ADDRESS)).then(1).otherwise(lines)
        )
        .to_series()
        .alias(f"{role}_lines"),
        rng.chance(s("bad_postcode"), n, P_BAD_POSTCODE).alias(f"{role}_bad_postcode"),
        # The case whose parent of this role this case shares (its own index if none).
        pl.select(pl.when(share & (other != idx)).then(other).otherwise(idx))
        .to_series()
        .alias(f"{role}_owner"),
    ]


# --- 2. coverage scenarios ---------------------------------------------------------------


def coverage_scenarios(system: str, as_at: date) -> list[tuple[str, dict[str, Any]]]:
    """Named cases that pin every row of the policy tables, their boundaries and every
    collectability branch. Each is a set of overrides on a clean base (ended liability, not
    paying, no enforcement, both parents alive and traceable, NRP employed)."""
    d = as_at
    d3 = minus_months(d, 3)
    d10 = minus_months(d, 120)
    d2 = minus_months(d, 24)
    one = timedelta(days=1)
    codes = ENFORCEMENT[system][0]
    leap = _leap_day_on_or_before(
        d10 if system == CSCS else d - timedelta(days=400), 2000 if system == CSCS else 2008
    )
    sos_only = {"pwc_bal": None, "sos_bal": 120_000}
    out: list[tuple[str, dict[str, Any]]] = [
        ("pwc.1.nil_balance", {"pwc_bal": 0}),
        ("pwc.1.nil_both_debts", {"pwc_bal": 0, "sos_bal": 0}),
        ("pwc.2.ongoing_no_end_date", {"end": None}),
        ("pwc.2.ongoing_ends_after_as_at", {"end": d + one}),
        ("pwc.2.ended_on_as_at_not_ongoing", {"end": d}),
        ("pwc.3.paying_exactly_3_months_before", {"sp_date": d3, "sp_amount": 1500}),
        ("pwc.3.paying_on_as_at", {"sp_date": d, "sp_amount": 1500}),
        ("pwc.3.paid_day_before_window_not_paying", {"sp_date": d3 - one, "sp_amount": 1500}),
        ("pwc.3.zero_payment_in_window_not_paying", {"sp_date": d3 + one, "sp_amount": 0}),
        ("pwc.3.negative_payment_in_window_not_paying", {"sp_date": d3 + one, "sp_amount": -1500}),
        *[(f"pwc.4.enforcement_{code}", {"enf": code}) for code in codes],
        ("pwc.5.pwc_deceased", {"pwc_dod": d - timedelta(days=200)}),
        ("pwc.5.pwc_deceased_on_as_at", {"pwc_dod": d}),
        ("pwc.6.stop_acting", {"stop": True}),
        ("pwc.7.nrp_deceased", {"nrp_dod": d - timedelta(days=300)}),
        ("pwc.7.nrp_deceased_on_as_at", {"nrp_dod": d}),
        ("pwc.8.below_65_pounds", {"pwc_bal": 6499}),
        ("pwc.8.one_penny", {"pwc_bal": 1}),
        ("pwc.9.exactly_65_pounds", {"pwc_bal": 6500}),
        ("pwc.9.at_threshold_under_10_years", {"pwc_bal": 50_000, "eff": d10 + one}),
        ("pwc.10.above_threshold_under_10_years", {"pwc_bal": 50_001, "eff": d10 + one}),
        ("pwc.9.at_threshold_exactly_10_years", {"pwc_bal": 100_000, "eff": d10}),
        ("pwc.10.above_threshold_exactly_10_years", {"pwc_bal": 100_001, "eff": d10}),
        ("pwc.9.between_thresholds_over_10_years", {"pwc_bal": 75_000, "eff": d10 - one}),
        ("pwc.10.between_thresholds_under_10_years", {"pwc_bal": 75_000, "eff": d10 + one}),
        ("pwc.10.effective_29_february", {"pwc_bal": 150_000, "eff": leap}),
        ("pwc.10.final_chance", {"pwc_bal": 1_250_000}),
        ("pwc.10.over_20000_pounds", {"pwc_bal": 3_500_000}),
        ("sos.1.nil_balance", {"pwc_bal": None, "sos_bal": 0}),
        ("sos.2.ongoing", {**sos_only, "end": None}),
        ("sos.3.paying", {**sos_only, "sp_date": d3, "sp_amount": 2000}),
        ("sos.4.enforcement", {**sos_only, "enf": codes[0]}),
        ("sos.5.sos_debt", sos_only),
        ("sos.5.sos_debt_pwc_deceased", {**sos_only, "pwc_dod": d - timedelta(days=100)}),
        ("sos.5.sos_debt_stop_acting", {**sos_only, "stop": True}),
        ("sos.5.sos_debt_below_65_pounds", {"pwc_bal": None, "sos_bal": 6000}),
        ("both.pwc_and_sos_debts", {"pwc_bal": 90_000, "sos_bal": 45_000}),
        ("collect.nrp_deceased", {"nrp_dod": d - timedelta(days=30)}),
        ("collect.untraceable_never_verified", {"nrp_no_nino": True, "nrp_verified": None}),
        (
            "collect.untraceable_verified_before_2_years",
            {"nrp_no_nino": True, "nrp_verified": d2 - one},
        ),
        ("collect.traceable_verified_exactly_2_years", {"nrp_no_nino": True, "nrp_verified": d2}),
        ("collect.traceable_nino_old_address", {"nrp_verified": d2 - timedelta(days=700)}),
        *[
            (f"collect.{emp.lower()}_{size}", {"nrp_emp": emp, "pwc_bal": balance})
            for emp in EMPLOYMENTS
            for size, balance in (("high", 1_500_000), ("low", 100_001))
        ],
        # Expected yield = balance x rate against a £300 cost: exactly break-even and 1p less.
        (
            "collect.self_employed_break_even",
            {"nrp_emp": "SELF_EMPLOYED", "pwc_bal": 85_715, "eff": d10 + one},
        ),
        (
            "collect.self_employed_below_break_even",
            {"nrp_emp": "SELF_EMPLOYED", "pwc_bal": 85_714, "eff": d10 + one},
        ),
        ("collect.benefits_break_even", {"nrp_emp": "BENEFITS", "pwc_bal": 300_000}),
        ("collect.benefits_below_break_even", {"nrp_emp": "BENEFITS", "pwc_bal": 299_999}),
        ("collect.unknown_break_even", {"nrp_emp": "UNKNOWN", "pwc_bal": 600_000}),
        ("collect.unknown_below_break_even", {"nrp_emp": "UNKNOWN", "pwc_bal": 599_999}),
        ("letters.dv_marker", {"dv": True}),
        ("letters.pwc_one_line_address", {"pwc_lines": 1}),
        ("letters.pwc_invalid_postcode", {"pwc_bad_postcode": True}),
        ("letters.nrp_five_line_address", {"nrp_lines": 5}),
        ("letters.pwc_no_nino", {"pwc_no_nino": True}),
        ("party.nrp_in_three_cases", {}),
        ("party.nrp_in_three_cases", {"nrp_owner": "party.nrp_in_three_cases"}),
        ("party.nrp_in_three_cases", {"nrp_owner": "party.nrp_in_three_cases"}),
        ("party.pwc_in_two_cases", {}),
        ("party.pwc_in_two_cases", {"pwc_owner": "party.pwc_in_two_cases"}),
        (
            "payments.history_and_paying",
            {"n_reg": 6, "sp_date": d - timedelta(days=10), "sp_amount": 2500},
        ),
    ]
    if system == CS2:
        out.append(("cs2.converted_1993_scheme", {"scheme": "1993", "eff": date(1999, 6, 1)}))
    return out


def _coverage_base(system: str, as_at: date) -> dict[str, Any]:
    eff = minus_months(as_at, 12 * (18 if system == CSCS else 12))
    return {
        "scheme": "1993" if system == CSCS else "2003",
        "eff": eff,
        "end": as_at - timedelta(days=400),
        "dv": False,
        "stop": False,
        "enf": None,
        "pwc_bal": 250_000,
        "sos_bal": None,
        "n_reg": 0,
        "sp_date": None,
        "sp_amount": None,
        "cover": True,
        "pwc_no_nino": False,
        "nrp_no_nino": False,
        "pwc_verified": as_at - timedelta(days=100),
        "nrp_verified": as_at - timedelta(days=100),
        "pwc_dod": None,
        "nrp_dod": None,
        "nrp_emp": "EMPLOYED",
        "pwc_lines": 4,
        "nrp_lines": 4,
        "pwc_bad_postcode": False,
        "nrp_bad_postcode": False,
    }


def _apply_scenarios(
    system: str, wide: pl.DataFrame, scenarios: list[tuple[str, dict[str, Any]]], as_at: date
) -> pl.DataFrame:
    """Overwrite the first cases with the scenarios (a few dozen rows: plain Python)."""
    if not scenarios:
        return wide
    k = len(scenarios)
    head = wide.head(k).to_dicts()
    first_of: dict[str, int] = {}
    for i, (name, overrides) in enumerate(scenarios):
        row = head[i]
        values = {**_coverage_base(system, as_at), **overrides}
        for column, value in values.items():
            if column.endswith("_owner"):
                value = first_of[value]
            row[column] = _days(value) if isinstance(value, date) else value
        row["scenario"] = name
        first_of.setdefault(name, i)
        # Shared parents stay on their own cases; other cases never share with scenarios.
        for role in ("pwc", "nrp"):
            if f"{role}_owner" not in overrides:
                row[f"{role}_owner"] = i
    patched = pl.DataFrame(head, schema=wide.schema, orient="row")
    rest = wide.slice(k).with_columns(
        # A random case must not share a parent with a scenario case.
        *[
            pl.when(pl.col(f"{role}_owner") < k)
            .then(pl.col("idx"))
            .otherwise(pl.col(f"{role}_owner"))
            .alias(f"{role}_owner")
            for role in ("pwc", "nrp")
        ]
    )
    return pl.concat([patched, rest])


def _coverage_refs(
    system: str, wide: pl.DataFrame, rendered: dict[str, pl.DataFrame]
) -> pl.DataFrame:
    spec = SPECS[system]
    cases = rendered[spec.case_table]
    ref = spec.case_cols["ref"]
    return (
        wide.filter(pl.col("cover"))
        .select("idx", "scenario")
        .join(cases.select(pl.col("_idx").alias("idx"), pl.col(ref).alias("case_ref")), on="idx")
        .select("scenario", pl.lit(system).alias("source_system"), "case_ref")
    )


def _coverage_dirt_needed(system: str, typed_cs2: bool) -> int:
    return sum(
        _minimum_items(kind, system, typed_cs2) for kind in DIRTY_KINDS if kind.case_consuming
    )


PARTY_FACTS = (
    "family", "given1", "given2", "dob", "no_nino", "verified", "dod", "emp", "lines",
    "bad_postcode",
)  # fmt: skip

# --- 3. rendering into each system's tables ----------------------------------------------


def _prefixed(prefix: str, numbers: pl.Series) -> pl.Series:
    return pl.select(pl.concat_str(pl.lit(prefix), numbers.cast(pl.String))).to_series()


def _numbers(rng: SeededRandom, stream: str, n: int, start: int, max_gap: int) -> pl.Series:
    """Increasing numbers with random gaps, as legacy keys look."""
    return (rng.between(stream, n, 1, max_gap).cum_sum() + start).alias(stream)


def _date_text(system: str, days: pl.Expr) -> pl.Expr:
    fmt = "%d/%m/%Y" if system == CSCS else "%Y-%m-%d"
    return days.cast(pl.Int32).cast(pl.Date).dt.to_string(fmt)


def _pounds_text(pence: pl.Expr) -> pl.Expr:
    magnitude = pence.abs()
    return pl.concat_str(
        pl.when(pence < 0).then(pl.lit("-")).otherwise(pl.lit("")),
        (magnitude // 100).cast(pl.String),
        pl.lit("."),
        (magnitude % 100).cast(pl.String).str.pad_start(2, "0"),
    )


def _money_text(system: str, pence: pl.Expr) -> pl.Expr:
    return _pounds_text(pence) if system == CSCS else pence.cast(pl.String)


def _nothing(system: str, blank_empty: pl.Expr | None) -> pl.Expr:
    """How the system writes "no value": CSCS uses NULL or '' (both occur); CS2 NULL."""
    if system == CSCS and blank_empty is not None:
        return pl.when(blank_empty).then(pl.lit("")).otherwise(pl.lit(None, dtype=pl.String))
    return pl.lit(None, dtype=pl.String)


def _render(
    rng: SeededRandom, system: str, wide: pl.DataFrame, as_at: date
) -> dict[str, pl.DataFrame]:
    spec = SPECS[system]
    n = wide.height
    s = f"{system}.render"
    blank = rng.chance(f"{s}.blank_style", n, 0.5)
    wide = wide.with_columns(blank.alias("_blank"))
    if system == CSCS:
        numbers = _numbers(rng, f"{s}.case_no", n, 100_000_000, 7)
        keys = _prefixed("C", numbers)
        wide = wide.with_columns(keys.alias("_key"), keys.alias("_ref"), numbers.alias("_num"))
    else:
        ids = _numbers(rng, f"{s}.case_id", n, 1000, 3)
        refs = _prefixed("S", _numbers(rng, f"{s}.case_ref", n, 200_000_000, 7))
        wide = wide.with_columns(
            ids.cast(pl.String).alias("_key"), refs.alias("_ref"), ids.alias("_num")
        )
    parties = _render_parties(rng, system, wide)
    party_key = parties.select("_owner", "_role", "_pkey")
    wide = (
        wide.join(
            party_key.filter(pl.col("_role") == "pwc").select(
                pl.col("_owner").alias("pwc_owner"), pl.col("_pkey").alias("_pwc_key")
            ),
            on="pwc_owner",
            how="left",
        )
        .join(
            party_key.filter(pl.col("_role") == "nrp").select(
                pl.col("_owner").alias("nrp_owner"), pl.col("_pkey").alias("_nrp_key")
            ),
            on="nrp_owner",
            how="left",
        )
        .sort("idx")
    )
    return {
        spec.party_table: parties,
        spec.case_table: _render_cases(system, wide),
        spec.debt_table: _render_debts(system, wide),
        spec.payment_table: _render_payments(rng, system, wide, as_at),
    }


def _render_parties(rng: SeededRandom, system: str, wide: pl.DataFrame) -> pl.DataFrame:
    spec = SPECS[system]
    cols = spec.party_cols
    s = f"{system}.render.party"
    frames = [
        wide.select(
            pl.col("idx").alias("_owner"),
            pl.lit(role).alias("_role"),
            pl.col("_blank"),
            *[pl.col(f"{role}_{name}").alias(name) for name in PARTY_FACTS],
        )
        for role in ("pwc", "nrp")
    ]
    people = pl.concat(frames).sort("_owner", "_role")  # pid order: case by case, nrp before pwc
    m = people.height
    upper = system == CSCS  # the mainframe holds names and addresses in capitals

    def text(values: Sequence[str], index: pl.Expr | pl.Series) -> pl.Expr:
        return pl.lit(pl.Series(values, dtype=pl.String)).gather(index)

    if system == CSCS:
        key = _prefixed("P", _numbers(rng, f"{s}.key", m, 100_000_000, 5))
    else:
        key = _numbers(rng, f"{s}.key", m, 10_000, 3).cast(pl.String)
    people = people.with_columns(
        key.alias("_pkey"),
        rng.between(f"{s}.house", m, 1, 250).alias("_house"),
        rng.below(f"{s}.street", m, len(STREETS)).alias("_street"),
        rng.below(f"{s}.street_type", m, len(STREET_TYPES)).alias("_street_type"),
        rng.below(f"{s}.locality", m, len(LOCALITIES)).alias("_locality"),
        rng.below(f"{s}.town", m, len(TOWNS)).alias("_town"),
        rng.below(f"{s}.county", m, len(COUNTIES)).alias("_county"),
        rng.between(f"{s}.flat", m, 1, 40).alias("_flat"),
        _postcode(rng, f"{s}.postcode", m).alias("_postcode"),
        _bad_postcode(rng, f"{s}.bad_postcode", m).alias("_bad_pc"),
        _nino(rng, f"{s}.nino", m).alias("_nino"),
    )
    house = pl.concat_str(
        pl.col("_house").cast(pl.String),
        pl.lit(" "),
        text(STREETS, pl.col("_street")),
        pl.lit(" "),
        text(STREET_TYPES, pl.col("_street_type")),
    )
    flat = pl.concat_str(pl.lit("Flat "), pl.col("_flat").cast(pl.String))
    locality, town, county = (
        text(LOCALITIES, pl.col("_locality")),
        text(TOWNS, pl.col("_town")),
        text(COUNTIES, pl.col("_county")),
    )
    lines = pl.col("lines")
    none = _nothing(system, pl.col("_blank"))
    address = [
        pl.when(lines == 5).then(flat).otherwise(house),
        pl.when(lines == 5)
        .then(house)
        .when(lines == 4)
        .then(locality)
        .when(lines == 3)
        .then(town)
        .otherwise(none),
        pl.when(lines == 5)
        .then(locality)
        .when(lines == 4)
        .then(town)
        .when(lines == 3)
        .then(county)
        .otherwise(none),
        pl.when(lines == 5).then(town).when(lines == 4).then(county).otherwise(none),
        pl.when(lines == 5).then(county).otherwise(none),
    ]
    given = pl.concat_str(
        text(FORENAMES, pl.col("given1")),
        pl.when(pl.col("given2").is_not_null())
        .then(pl.concat_str(pl.lit(" "), text(FORENAMES, pl.col("given2").fill_null(0))))
        .otherwise(pl.lit("")),
    )

    def cased(expr: pl.Expr) -> pl.Expr:
        return expr.str.to_uppercase() if upper else expr

    def optional_date(column: str) -> pl.Expr:
        return (
            pl.when(pl.col(column).is_null())
            .then(none)
            .otherwise(_date_text(system, pl.col(column)))
        )

    employment = pl.col("emp").replace_strict(CSCS_EMP) if system == CSCS else pl.col("emp")
    return people.select(
        pl.col("_pkey").alias(cols["key"]),
        cased(text(SURNAMES, pl.col("family"))).alias(cols["family_name"]),
        cased(given).alias(cols["given_names"]),
        _date_text(system, pl.col("dob")).alias(cols["birth_date"]),
        pl.when(pl.col("no_nino")).then(none).otherwise(pl.col("_nino")).alias(cols["nino"]),
        *[cased(expr).alias(cols[f"address_line_{i + 1}"]) for i, expr in enumerate(address)],
        pl.when(pl.col("bad_postcode"))
        .then(pl.col("_bad_pc"))
        .otherwise(pl.col("_postcode"))
        .alias(cols["postcode"]),
        optional_date("verified").alias(cols["address_verified_on"]),
        optional_date("dod").alias(cols["deceased_on"]),
        employment.alias(cols["employment"]),
        pl.col("_owner"),
        pl.col("_role"),
        pl.col("_pkey"),
    )


def _postcode(rng: SeededRandom, stream: str, n: int) -> pl.Series:
    area = _pick_text(rng, f"{stream}.area", n, POSTCODE_AREAS)
    district = rng.between(f"{stream}.district", n, 1, 20).cast(pl.String)
    sector = rng.between(f"{stream}.sector", n, 0, 9).cast(pl.String)
    unit1 = _pick_text(rng, f"{stream}.unit1", n, list(POSTCODE_UNIT_LETTERS))
    unit2 = _pick_text(rng, f"{stream}.unit2", n, list(POSTCODE_UNIT_LETTERS))
    return pl.select(pl.concat_str(area, district, pl.lit(" "), sector, unit1, unit2)).to_series()


def _bad_postcode(rng: SeededRandom, stream: str, n: int) -> pl.Series:
    """Postcodes a letter cannot go to: no inward part, a cut-off one, or none at all."""
    area = _pick_text(rng, f"{stream}.area", n, POSTCODE_AREAS)
    district = rng.between(f"{stream}.district", n, 1, 20).cast(pl.String)
    form = rng.below(f"{stream}.form", n, 3)
    return pl.select(
        pl.when(form == 0)
        .then(pl.concat_str(area, district))
        .when(form == 1)
        .then(pl.concat_str(area, district, pl.lit(" 9")))
        .otherwise(pl.lit("UNKNOWN"))
    ).to_series()


def _nino(rng: SeededRandom, stream: str, n: int) -> pl.Series:
    prefix = _pick_text(rng, f"{stream}.prefix", n, NINO_PREFIXES)
    digits = rng.below(f"{stream}.digits", n, 1_000_000).cast(pl.String).str.pad_start(6, "0")
    suffix = _pick_text(rng, f"{stream}.suffix", n, ["A", "B", "C", "D"])
    return pl.select(pl.concat_str(prefix, digits, suffix)).to_series()


def _render_cases(system: str, wide: pl.DataFrame) -> pl.DataFrame:
    cols = SPECS[system].case_cols
    none = _nothing(system, pl.col("_blank"))
    yes, no = ("Y", "N") if system == CSCS else ("1", "0")

    def flag(column: str) -> pl.Expr:
        return pl.when(pl.col(column)).then(pl.lit(yes)).otherwise(pl.lit(no))

    selected = [
        pl.col("_key").alias(cols["key"]),
    ]
    if system == CS2:
        selected += [pl.col("_ref").alias(cols["ref"]), pl.col("scheme").alias(cols["scheme"])]
    selected += [
        _date_text(system, pl.col("eff")).alias(cols["effective_date"]),
        pl.when(pl.col("end").is_null())
        .then(none)
        .otherwise(_date_text(system, pl.col("end")))
        .alias(cols["liability_end_date"]),
        pl.col("_pwc_key").alias(cols["pwc_key"]),
        pl.col("_nrp_key").alias(cols["nrp_key"]),
        flag("dv").alias(cols["dv_marker"]),
        flag("stop").alias(cols["stop_acting"]),
        pl.when(pl.col("enf").is_null())
        .then(none)
        .otherwise(pl.col("enf"))
        .alias(cols["enforcement"]),
        pl.col("idx").alias("_idx"),
        pl.col("_ref"),
        pl.col("_num"),
        pl.col("cover").alias("_cover"),
    ]
    return wide.select(selected)


def _render_debts(system: str, wide: pl.DataFrame) -> pl.DataFrame:
    cols = SPECS[system].debt_cols
    rows = pl.concat(
        [
            wide.filter(pl.col(f"{creditor.lower()}_bal").is_not_null()).select(
                pl.col("idx").alias("_idx"),
                pl.col("_key"),
                pl.lit(creditor).alias("creditor"),
                pl.col(f"{creditor.lower()}_bal").alias("_pence"),
            )
            for creditor in ("PWC", "SOS")
        ]
    ).sort("_idx", "creditor")
    return rows.select(
        pl.col("_key").alias(cols["case_key"]),
        pl.col("creditor").alias(cols["creditor"]),
        _money_text(system, pl.col("_pence")).alias(cols["amount"]),
        "_idx",
        "_pence",
    )


def _render_payments(
    rng: SeededRandom, system: str, wide: pl.DataFrame, as_at: date
) -> pl.DataFrame:
    cols = SPECS[system].payment_cols
    s = f"{system}.payments"
    last_regular = _days(minus_months(as_at, 3)) - 1  # regular payments are all before the window
    regular = (
        wide.filter((pl.col("n_reg") > 0) & (pl.col("eff") <= last_regular))
        .select("idx", "_key", "eff", pl.int_ranges(0, "n_reg").alias("k"))
        .explode("k")
    )
    m = regular.height
    kind = rng.pick(f"{s}.kind", m, (9400, 300, 300))
    amount = pl.select(
        pl.when(kind == 0)
        .then(rng.between(f"{s}.positive", m, 500, 60_000))
        .when(kind == 1)
        .then(0)
        .otherwise(-rng.between(f"{s}.negative", m, 500, 30_000))
    ).to_series()
    regular = regular.with_columns(
        rng.between(f"{s}.day", m, regular["eff"], last_regular).alias("day"),
        amount.alias("amount"),
    )
    special = wide.filter(pl.col("sp_date").is_not_null()).select(
        "idx", "_key", pl.col("sp_date").alias("day"), pl.col("sp_amount").alias("amount")
    )
    rows = pl.concat([regular.select("idx", "_key", "day", "amount"), special]).sort(
        "idx", "day", "amount"
    )
    return rows.select(
        pl.col("_key").alias(cols["case_key"]),
        _date_text(system, pl.col("day")).alias(cols["paid_on"]),
        _money_text(system, pl.col("amount")).alias(cols["amount"]),
        pl.col("idx").alias("_idx"),
    )


# --- 4. dirt ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DirtyKind:
    """One kind of dirt the contract lists. ``columns`` are (table role, common column name)
    pairs the kind's items are spread over in turn (see ``contract.SystemSpec``); ``typed``
    kinds cannot be stored in a really typed CS2 column (PostgreSQL)."""

    name: str
    code: Reason
    columns: tuple[tuple[str, str], ...]
    case_consuming: bool = True
    needs_debt: bool = False
    typed: bool = False


def _legacy_column(system: str, role: str, common: str) -> str:
    spec = SPECS[system]
    columns = {
        "party": spec.party_cols,
        "case": spec.case_cols,
        "debt": spec.debt_cols,
        "payment": spec.payment_cols,
    }[role]
    return columns[common]


DATE_COLUMNS = (
    ("party", "birth_date"),
    ("party", "address_verified_on"),
    ("party", "deceased_on"),
    ("case", "effective_date"),
    ("case", "liability_end_date"),
    ("payment", "paid_on"),
)
PARENT_COLUMNS = (("case", "pwc_key"), ("case", "nrp_key"))
FLAG_COLUMNS = (("case", "dv_marker"), ("case", "stop_acting"))

DIRTY_KINDS: tuple[DirtyKind, ...] = (
    DirtyKind("date_unparseable", Reason.BAD_DATE, DATE_COLUMNS, typed=True),
    DirtyKind("date_nonexistent", Reason.BAD_DATE, DATE_COLUMNS, typed=True),
    DirtyKind("future_effective_date", Reason.FUTURE_EFFECTIVE_DATE, (("case", "effective_date"),)),
    DirtyKind("missing_effective_date", Reason.MISSING_VALUE, (("case", "effective_date"),)),
    DirtyKind("missing_parent_reference", Reason.MISSING_VALUE, PARENT_COLUMNS),
    DirtyKind("unknown_party", Reason.UNKNOWN_PARTY, PARENT_COLUMNS),
    DirtyKind("orphan_debt", Reason.ORPHAN_DEBT, (("debt", "case_key"),), case_consuming=False),
    DirtyKind(
        "orphan_payment", Reason.ORPHAN_PAYMENT, (("payment", "case_key"),), case_consuming=False
    ),
    DirtyKind("duplicate_debt", Reason.DUPLICATE_DEBT, (("debt", "creditor"),), needs_debt=True),
    DirtyKind("bad_balance", Reason.BAD_AMOUNT, (("debt", "amount"),), needs_debt=True, typed=True),
    DirtyKind("bad_payment_amount", Reason.BAD_AMOUNT, (("payment", "amount"),), typed=True),
    DirtyKind("credit_balance", Reason.CREDIT_BALANCE, (("debt", "amount"),), needs_debt=True),
    DirtyKind("unknown_flag", Reason.UNKNOWN_CODE, FLAG_COLUMNS),
    DirtyKind("unknown_enforcement", Reason.UNKNOWN_CODE, (("case", "enforcement"),)),
    DirtyKind("unknown_employment", Reason.UNKNOWN_CODE, (("party", "employment"),)),
)
DIRTY_KIND_NAMES = tuple(kind.name for kind in DIRTY_KINDS)

# Values no reading could take for what the column should hold.
BAD_VALUES: dict[tuple[str, str], tuple[str, ...]] = {
    (CSCS, "date_unparseable"): (
        "2009-03-12", "1/2/2009", "UNKNOWN", "12.03.2009", "120309", "31/12/09",
    ),
    (CSCS, "date_nonexistent"): (
        "31/02/2009", "29/02/2011", "31/04/2005", "00/00/0000", "32/01/2001", "15/13/1999",
    ),
    (CS2, "date_unparseable"): ("31/12/2009", "unknown", "2009/03/12", "2009-3-12", "12-03-2009"),
    (CS2, "date_nonexistent"): (
        "2009-02-31", "2011-02-29", "2005-04-31", "2001-13-01", "2010-00-10",
    ),
    (CSCS, "bad_balance"): ("N/A", "12O.50", "£45.00", "#VALUE!", "1 234.56", "1,234.56"),
    (CS2, "bad_balance"): ("abc", "N/A", "12,50", "#VALUE!"),
    (CSCS, "bad_payment_amount"): ("N/A", "1O.00", "£5", "?"),
    (CS2, "bad_payment_amount"): ("abc", "n/a", "5,00"),
    (CSCS, "unknown_flag"): ("X", "y", "1", "?"),
    (CS2, "unknown_flag"): ("2", "9", "-1"),
    (CSCS, "unknown_enforcement"): ("DEOX", "AOE", "XX", "CHARGING_ORDER"),
    (CS2, "unknown_enforcement"): ("CO", "BAIL", "WARRANT", "deo"),
    (CSCS, "unknown_employment"): ("X", "R", "e", "EMPLOYED"),
    (CS2, "unknown_employment"): ("RETIRED", "E", "STUDENT", "employed"),
}  # fmt: skip


def _minimum_items(kind: DirtyKind, system: str, typed_cs2: bool) -> int:
    if kind.typed and typed_cs2 and system == CS2:
        return 0
    return len(kind.columns)


def _cycled(values: Sequence[Any], k: int, dtype: pl.DataType | None = None) -> pl.Series:
    """``values`` repeated in turn to length ``k`` (whole-column gather, no loop)."""
    index = pl.int_range(0, k, dtype=pl.Int64, eager=True) % len(values)
    return pl.Series(values, dtype=dtype or pl.String()).gather(index)


def _plant_dirt(
    rng: SeededRandom,
    system: str,
    tables: dict[str, pl.DataFrame],
    wide: pl.DataFrame,
    as_at: date,
    rate: float,
    ensure_coverage: bool,
    typed_cs2: bool,
) -> tuple[dict[str, pl.DataFrame], pl.DataFrame]:
    spec = SPECS[system]
    n = wide.height
    cases = tables[spec.case_table]
    # Cases free for dirt: no scenario, and no parent shared with another case (so a dirty
    # party row quarantines exactly one case, which the planted list can name).
    shared_owners = pl.concat(
        [wide.filter(pl.col(f"{r}_owner") != pl.col("idx"))[f"{r}_owner"] for r in ("pwc", "nrp")]
    )
    sharing = wide.filter(
        (pl.col("pwc_owner") != pl.col("idx")) | (pl.col("nrp_owner") != pl.col("idx"))
    )["idx"]
    blocked = pl.concat([shared_owners, sharing]).unique().implode()
    has_debt = tables[spec.debt_table]["_idx"].unique().implode()
    order = rng.order(f"{system}.dirt.order", n)
    pool = (
        pl.DataFrame({"idx": order})
        .join(wide.select("idx", "cover"), on="idx", how="left", maintain_order="left")
        .filter(~pl.col("cover") & ~pl.col("idx").is_in(blocked))
        .with_columns(pl.col("idx").is_in(has_debt).alias("has_debt"))
    )
    used = pl.Series("idx", [], dtype=pl.Int64)
    planted: list[pl.DataFrame] = []
    base = round(rate * n)
    for kind in DIRTY_KINDS:
        if kind.typed and typed_cs2 and system == CS2:
            continue
        k = base
        if ensure_coverage:
            k = max(k, _minimum_items(kind, system, typed_cs2))
        if k == 0:
            continue
        if kind.case_consuming:
            candidates = pool.filter(~pl.col("idx").is_in(used.implode()))
            if kind.needs_debt:
                candidates = candidates.filter(pl.col("has_debt"))
            targets = candidates.head(k)["idx"]
            used = pl.concat([used, targets])
            if targets.len() == 0:
                continue
            target_cases = cases.filter(pl.col("_idx").is_in(targets.implode())).sort(
                pl.col("_idx").replace_strict(targets, pl.int_range(0, targets.len(), eager=True))
            )
        else:
            target_cases = pl.DataFrame()
        tables, items = _PLANTERS[kind.name](rng, system, kind, tables, target_cases, k, as_at)
        planted.append(items)
        cases = tables[spec.case_table]
    all_planted = pl.concat(planted) if planted else pl.DataFrame(schema=PLANTED_SCHEMA)
    return tables, all_planted


def _planted(
    system: str,
    kind: DirtyKind,
    refs: pl.Series,
    fields: pl.Series,
    tables_for: pl.Series,
    item_kind: str = ITEM_CASE,
) -> pl.DataFrame:
    k = refs.len()
    return pl.DataFrame(
        {
            "kind": [kind.name] * k,
            "source_system": [system] * k,
            "case_ref": refs,
            "item_kind": [item_kind] * k,
            "code": [kind.code.value] * k,
            "table": tables_for,
            "field": fields,
        },
        schema=PLANTED_SCHEMA,
    )


def _patch(frame: pl.DataFrame, on: list[str], patch: pl.DataFrame, column: str) -> pl.DataFrame:
    """Set ``column`` to ``patch['_new']`` (null included) on the rows matching ``on``."""
    marked = patch.select(*on, "_new").with_columns(pl.lit(True).alias("_hit"))
    joined = frame.join(marked, on=on, how="left", maintain_order="left")
    return joined.with_columns(
        pl.when(pl.col("_hit")).then(pl.col("_new")).otherwise(pl.col(column)).alias(column)
    ).drop("_new", "_hit")


def _table_of(system: str, role: str) -> str:
    spec = SPECS[system]
    return {
        "party": spec.party_table,
        "case": spec.case_table,
        "debt": spec.debt_table,
        "payment": spec.payment_table,
    }[role]


def _column_turns(kind: DirtyKind, system: str, k: int) -> tuple[pl.Series, pl.Series, pl.Series]:
    """For k items: the table role, legacy column and legacy table each one uses, in turn."""
    roles = _cycled([role for role, _ in kind.columns], k)
    names = _cycled([_legacy_column(system, role, common) for role, common in kind.columns], k)
    tables = _cycled([_table_of(system, role) for role, _ in kind.columns], k)
    return roles, names, tables


def _plant_dates(
    rng: SeededRandom,
    system: str,
    kind: DirtyKind,
    tables: dict[str, pl.DataFrame],
    targets: pl.DataFrame,
    k: int,
    as_at: date,
) -> tuple[dict[str, pl.DataFrame], pl.DataFrame]:
    spec = SPECS[system]
    roles, names, table_names = _column_turns(kind, system, k)
    values = _cycled(BAD_VALUES[(system, kind.name)], k)
    items = targets.select(
        "_idx",
        "_ref",
        pl.col(spec.case_cols["pwc_key"]).alias("_pwc"),
        pl.col(spec.case_cols["nrp_key"]).alias("_nrp"),
    ).with_columns(
        roles.alias("_role"),
        names.alias("_column"),
        values.alias("_new"),
        (pl.int_range(0, k) // len(kind.columns) % 2 == 0).alias("_use_pwc"),
    )
    for column in names.unique().to_list():
        chosen = items.filter(pl.col("_column") == column)
        role = chosen["_role"][0]
        if role == "party":
            patch = chosen.select(
                pl.when(pl.col("_use_pwc"))
                .then(pl.col("_pwc"))
                .otherwise(pl.col("_nrp"))
                .alias(spec.party_cols["key"]),
                "_new",
            )
            tables[spec.party_table] = _patch(
                tables[spec.party_table], [spec.party_cols["key"]], patch, column
            )
        elif role == "case":
            patch = chosen.select(pl.col("_idx"), "_new")
            tables[spec.case_table] = _patch(tables[spec.case_table], ["_idx"], patch, column)
        else:
            tables[spec.payment_table] = _append_payments(
                system, tables, chosen, date_text=pl.col("_new"), as_at=as_at
            )
    return tables, _planted(system, kind, items["_ref"], names, table_names)


def _append_payments(
    system: str,
    tables: dict[str, pl.DataFrame],
    chosen: pl.DataFrame,
    *,
    date_text: pl.Expr | None = None,
    amount_text: pl.Expr | None = None,
    as_at: date,
) -> pl.DataFrame:
    """Add one payment row per chosen case carrying the dirty date or amount."""
    spec = SPECS[system]
    cols = spec.payment_cols
    cases = tables[spec.case_table].select("_idx", pl.col(spec.case_cols["key"]).alias("_key"))
    good_day = _date_text(system, pl.lit(_days(minus_months(as_at, 6))))
    rows = chosen.join(cases, on="_idx", how="left", maintain_order="left").select(
        pl.col("_key").alias(cols["case_key"]),
        (date_text if date_text is not None else good_day).alias(cols["paid_on"]),
        (amount_text if amount_text is not None else _money_text(system, pl.lit(2500))).alias(
            cols["amount"]
        ),
        pl.col("_idx"),
    )
    return pl.concat([tables[spec.payment_table], rows], how="vertical_relaxed").sort(
        "_idx", maintain_order=True
    )


def _plant_case_column(
    rng: SeededRandom,
    system: str,
    kind: DirtyKind,
    tables: dict[str, pl.DataFrame],
    targets: pl.DataFrame,
    k: int,
    as_at: date,
) -> tuple[dict[str, pl.DataFrame], pl.DataFrame]:
    """Kinds that change one case column: future/missing dates, parents, flags, codes."""
    spec = SPECS[system]
    _roles, names, table_names = _column_turns(kind, system, k)
    items = targets.select("_idx", "_ref").with_columns(
        names.alias("_column"), pl.int_range(0, k).alias("_i")
    )
    blank = _nothing(system, pl.col("_i") // len(kind.columns) % 2 == 0)
    if kind.name == "future_effective_date":
        new = _date_text(system, pl.lit(_days(as_at) + 1) + pl.col("_i") % 400)
    elif kind.name in ("missing_effective_date", "missing_parent_reference"):
        new = blank
    elif kind.name == "unknown_party":
        new = _unknown_party_keys(system, tables, pl.col("_i"))
    else:
        new = pl.lit(_cycled(BAD_VALUES[(system, kind.name)], k))
    items = items.with_columns(new.alias("_new"))
    for column in names.unique().to_list():
        chosen = items.filter(pl.col("_column") == column)
        tables[spec.case_table] = _patch(tables[spec.case_table], ["_idx"], chosen, column)
    return tables, _planted(system, kind, items["_ref"], names, table_names)


def _max_int(values: pl.Series, default: int) -> int:
    top = values.max()
    return int(top) if isinstance(top, int) else default


def _unknown_party_keys(system: str, tables: dict[str, pl.DataFrame], i: pl.Expr) -> pl.Expr:
    spec = SPECS[system]
    keys = tables[spec.party_table][spec.party_cols["key"]]
    if system == CSCS:
        top = _max_int(keys.str.slice(1).cast(pl.Int64), 100_000_000)
        return pl.concat_str(pl.lit("P"), (pl.lit(top + 1000) + i * 7).cast(pl.String))
    top = _max_int(keys.cast(pl.Int64), 0)
    return (pl.lit(top + 1000) + i * 7).cast(pl.String)


def _plant_party_column(
    rng: SeededRandom,
    system: str,
    kind: DirtyKind,
    tables: dict[str, pl.DataFrame],
    targets: pl.DataFrame,
    k: int,
    as_at: date,
) -> tuple[dict[str, pl.DataFrame], pl.DataFrame]:
    spec = SPECS[system]
    _roles, names, table_names = _column_turns(kind, system, k)
    key = spec.party_cols["key"]
    patch = targets.select(
        pl.when(pl.int_range(0, k) % 2 == 0)
        .then(pl.col(spec.case_cols["nrp_key"]))
        .otherwise(pl.col(spec.case_cols["pwc_key"]))
        .alias(key),
    ).with_columns(_cycled(BAD_VALUES[(system, kind.name)], k).alias("_new"))
    column = spec.party_cols["employment"]
    tables[spec.party_table] = _patch(tables[spec.party_table], [key], patch, column)
    return tables, _planted(system, kind, targets["_ref"], names, table_names)


def _first_debt_rows(
    system: str, tables: dict[str, pl.DataFrame], targets: pl.DataFrame
) -> pl.DataFrame:
    spec = SPECS[system]
    debts = tables[spec.debt_table]
    return (
        debts.filter(pl.col("_idx").is_in(targets["_idx"].implode()))
        .group_by("_idx", maintain_order=True)
        .first()
        .select("_idx", pl.col(spec.debt_cols["creditor"]).alias("_creditor"))
        .join(targets.select("_idx"), on="_idx", how="right", maintain_order="right")
    )


def _plant_debt_amount(
    rng: SeededRandom,
    system: str,
    kind: DirtyKind,
    tables: dict[str, pl.DataFrame],
    targets: pl.DataFrame,
    k: int,
    as_at: date,
) -> tuple[dict[str, pl.DataFrame], pl.DataFrame]:
    """Bad or credit balances on the case's first debt row; legacy pence updated to match."""
    spec = SPECS[system]
    _roles, names, table_names = _column_turns(kind, system, k)
    cols = spec.debt_cols
    first = _first_debt_rows(system, tables, targets).rename({"_creditor": cols["creditor"]})
    m = first.height
    if kind.name == "bad_balance":
        first = first.with_columns(
            _cycled(BAD_VALUES[(system, kind.name)], m).alias("_new"),
            pl.lit(0, dtype=pl.Int64).alias("_new_pence"),  # unreadable: the legacy total counts 0
        )
    else:
        credit = -rng.between(f"{system}.dirt.credit", m, 1, 50_000)
        first = first.with_columns(
            pl.lit(credit).alias("_new_pence"),
        ).with_columns(_money_text(system, pl.col("_new_pence")).alias("_new"))
    debts = _patch(tables[spec.debt_table], ["_idx", cols["creditor"]], first, cols["amount"])
    pence_patch = first.select("_idx", cols["creditor"], pl.col("_new_pence").alias("_new"))
    tables[spec.debt_table] = _patch(debts, ["_idx", cols["creditor"]], pence_patch, "_pence")
    return tables, _planted(system, kind, targets["_ref"], names, table_names)


def _plant_duplicate_debt(
    rng: SeededRandom,
    system: str,
    kind: DirtyKind,
    tables: dict[str, pl.DataFrame],
    targets: pl.DataFrame,
    k: int,
    as_at: date,
) -> tuple[dict[str, pl.DataFrame], pl.DataFrame]:
    spec = SPECS[system]
    _roles, names, table_names = _column_turns(kind, system, k)
    cols = spec.debt_cols
    first = _first_debt_rows(system, tables, targets)
    m = first.height
    pence = rng.between(f"{system}.dirt.duplicate", m, 100, 400_000)
    extra = first.join(
        tables[spec.case_table].select("_idx", pl.col(spec.case_cols["key"]).alias("_key")),
        on="_idx",
        how="left",
        maintain_order="left",
    ).select(
        pl.col("_key").alias(cols["case_key"]),
        pl.col("_creditor").alias(cols["creditor"]),
        _money_text(system, pl.lit(pence)).alias(cols["amount"]),
        pl.col("_idx"),
        pl.lit(pence).alias("_pence"),
    )
    tables[spec.debt_table] = pl.concat([tables[spec.debt_table], extra]).sort(
        "_idx", maintain_order=True
    )
    return tables, _planted(system, kind, targets["_ref"], names, table_names)


def _plant_payment_amount(
    rng: SeededRandom,
    system: str,
    kind: DirtyKind,
    tables: dict[str, pl.DataFrame],
    targets: pl.DataFrame,
    k: int,
    as_at: date,
) -> tuple[dict[str, pl.DataFrame], pl.DataFrame]:
    _roles, names, table_names = _column_turns(kind, system, k)
    chosen = targets.select("_idx").with_columns(
        _cycled(BAD_VALUES[(system, kind.name)], k).alias("_new")
    )
    spec = SPECS[system]
    tables[spec.payment_table] = _append_payments(
        system, tables, chosen, amount_text=pl.col("_new"), as_at=as_at
    )
    return tables, _planted(system, kind, targets["_ref"], names, table_names)


def _orphan_keys(
    system: str, tables: dict[str, pl.DataFrame], k: int, offset: int
) -> tuple[pl.Series, pl.Series]:
    """Case keys no case has (beyond the highest), and the quarantine reference of each."""
    spec = SPECS[system]
    top = _max_int(tables[spec.case_table]["_num"], 0)
    numbers = pl.int_range(0, k, dtype=pl.Int64, eager=True) * 11 + top + offset
    if system == CSCS:
        keys = _prefixed("C", numbers)
        return keys, keys
    return numbers.cast(pl.String), _prefixed("CS2#", numbers)


def _plant_orphan_debts(
    rng: SeededRandom,
    system: str,
    kind: DirtyKind,
    tables: dict[str, pl.DataFrame],
    targets: pl.DataFrame,
    k: int,
    as_at: date,
) -> tuple[dict[str, pl.DataFrame], pl.DataFrame]:
    spec = SPECS[system]
    cols = spec.debt_cols
    keys, refs = _orphan_keys(system, tables, k, 5_000)
    both = rng.chance(f"{system}.dirt.orphan_debt.both", k, 0.3)
    pwc = pl.DataFrame({"_key": keys, "creditor": ["PWC"] * k})
    sos = pl.DataFrame({"_key": keys, "creditor": ["SOS"] * k}).filter(both)
    rows = pl.concat([pwc, sos])
    pence = rng.between(f"{system}.dirt.orphan_debt.pence", rows.height, 100, 300_000)
    extra = rows.select(
        pl.col("_key").alias(cols["case_key"]),
        pl.col("creditor").alias(cols["creditor"]),
        _money_text(system, pl.lit(pence)).alias(cols["amount"]),
        pl.lit(-1, dtype=pl.Int64).alias("_idx"),
        pl.lit(pence).alias("_pence"),
    )
    tables[spec.debt_table] = pl.concat([tables[spec.debt_table], extra])
    return tables, _planted(
        system,
        kind,
        refs,
        _cycled([cols["case_key"]], k),
        _cycled([spec.debt_table], k),
        ITEM_ORPHAN_DEBT,
    )


def _plant_orphan_payments(
    rng: SeededRandom,
    system: str,
    kind: DirtyKind,
    tables: dict[str, pl.DataFrame],
    targets: pl.DataFrame,
    k: int,
    as_at: date,
) -> tuple[dict[str, pl.DataFrame], pl.DataFrame]:
    spec = SPECS[system]
    cols = spec.payment_cols
    keys, refs = _orphan_keys(system, tables, k, 9_000)
    count = rng.between(f"{system}.dirt.orphan_payment.count", k, 1, 3)
    rows = (
        pl.DataFrame({"_key": keys, "n": count})
        .select("_key", pl.int_ranges(0, "n").alias("j"))
        .explode("j")
    )
    m = rows.height
    day = rng.between(
        f"{system}.dirt.orphan_payment.day", m, _days(date(2000, 1, 1)), _days(as_at) - 200
    )
    pence = rng.between(f"{system}.dirt.orphan_payment.pence", m, 500, 20_000)
    extra = rows.select(
        pl.col("_key").alias(cols["case_key"]),
        _date_text(system, pl.lit(day)).alias(cols["paid_on"]),
        _money_text(system, pl.lit(pence)).alias(cols["amount"]),
        pl.lit(-1, dtype=pl.Int64).alias("_idx"),
    )
    tables[spec.payment_table] = pl.concat([tables[spec.payment_table], extra])
    return tables, _planted(
        system,
        kind,
        refs,
        _cycled([cols["case_key"]], k),
        _cycled([spec.payment_table], k),
        ITEM_ORPHAN_PAYMENT,
    )


Planter = Callable[
    [SeededRandom, str, DirtyKind, dict[str, pl.DataFrame], pl.DataFrame, int, date],
    tuple[dict[str, pl.DataFrame], pl.DataFrame],
]
_PLANTERS: dict[str, Planter] = {
    "date_unparseable": _plant_dates,
    "date_nonexistent": _plant_dates,
    "future_effective_date": _plant_case_column,
    "missing_effective_date": _plant_case_column,
    "missing_parent_reference": _plant_case_column,
    "unknown_party": _plant_case_column,
    "orphan_debt": _plant_orphan_debts,
    "orphan_payment": _plant_orphan_payments,
    "duplicate_debt": _plant_duplicate_debt,
    "bad_balance": _plant_debt_amount,
    "bad_payment_amount": _plant_payment_amount,
    "credit_balance": _plant_debt_amount,
    "unknown_flag": _plant_case_column,
    "unknown_enforcement": _plant_case_column,
    "unknown_employment": _plant_party_column,
}


# --- 5. control totals -------------------------------------------------------------------


def _control(system: str, tables: dict[str, pl.DataFrame], as_at: date) -> dict[str, Any]:
    """What the legacy system reports: its case rows, and its debt rows summed per creditor
    (an unreadable balance counts as zero; see the module doc)."""
    spec = SPECS[system]
    debts = tables[spec.debt_table]
    creditor = spec.debt_cols["creditor"]
    return {
        "case_count": tables[spec.case_table].height,
        "pwc_arrears_pence": int(debts.filter(pl.col(creditor) == "PWC")["_pence"].sum()),
        "sos_arrears_pence": int(debts.filter(pl.col(creditor) == "SOS")["_pence"].sum()),
        "as_at": as_at,
    }


def _summary(
    book: LegacyBook,
    out: str,
    kind: str,
    cases: int,
    seed: int,
    as_at: date,
    dirty_rate: float,
    ensure_coverage: bool,
    started: float,
) -> GenerationSummary:
    dirty: dict[str, dict[str, int]] = {}
    for system in SYSTEMS:
        counts = book.planted.filter(pl.col("source_system") == system).group_by("kind").len()
        found = dict(zip(counts["kind"].to_list(), counts["len"].to_list(), strict=True))
        dirty[system] = {name: int(found.get(name, 0)) for name in DIRTY_KIND_NAMES}
    coverage_counts = book.coverage.group_by("scenario").len().sort("scenario")
    return GenerationSummary(
        out=redacted(out) if kind == "postgresql" else out,
        format=kind,
        cases=cases,
        seed=seed,
        as_at=as_at,
        dirty_rate=dirty_rate,
        ensure_coverage=ensure_coverage,
        rows={table: frame.height for table, frame in book.tables.items()},
        control=book.control,
        dirty=dirty,
        coverage=dict(
            zip(
                coverage_counts["scenario"].to_list(), coverage_counts["len"].to_list(), strict=True
            )
        ),
        elapsed_seconds=time.perf_counter() - started,
        planted=book.planted,
        coverage_cases=book.coverage,
    )


# --- writers -------------------------------------------------------------------------------


def legacy_ddl(dialect: str) -> str:
    """The contract DDL; on PostgreSQL the control pence columns are BIGINT (see module doc)."""
    ddl = sql_text("legacy_schema.sql")
    if dialect == "postgresql":
        ddl = re.sub(r"(_arrears_pence\s+)INTEGER", r"\1BIGINT", ddl)
    return ddl


def _insert_sql(table: str) -> str:
    columns = TABLES[table]
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"


def write_sqlite(book: LegacyBook, path: Path) -> None:
    """Write a fresh SQLite file. SQLite's column affinity stores CS2's numeric text as
    INTEGER, and keeps text that is not a number (a dirty value) as TEXT, as a replica would.
    The file is owner-only from creation: it holds (synthetic) personal data, like every
    other file the toolkit writes with personal data."""
    create_owner_only(str(path))
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        # A generated file: no journal, no fsync; it is either complete or regenerated.
        connection.execute("PRAGMA journal_mode=OFF")
        connection.execute("PRAGMA synchronous=OFF")
        connection.executescript(legacy_ddl("sqlite"))
        connection.execute("BEGIN")
        for table, frame in book.tables.items():
            sql = _insert_sql(table)
            for chunk in frame.iter_slices(WRITE_BATCH):
                connection.executemany(sql, chunk.iter_rows())
        connection.execute("COMMIT")
    finally:
        connection.close()


def write_postgres(book: LegacyBook, url: str, *, overwrite: bool = False) -> None:
    """Create the contract tables and COPY every row in (CSV, whole chunks at a time)."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            existing = [t for t in TABLES if t in set(inspect(conn).get_table_names())]
            if existing and not overwrite:
                raise UsageError(
                    f"the target already has legacy tables ({', '.join(existing)}); use --force"
                )
            for table in existing:
                conn.exec_driver_sql(f"DROP TABLE {table}")
            for statement in sql_statements(legacy_ddl("postgresql")):
                conn.exec_driver_sql(statement)
            raw = conn.connection.driver_connection
            assert raw is not None
            with raw.cursor() as cursor:  # type: ignore[attr-defined]
                for table, frame in book.tables.items():
                    columns = ", ".join(TABLES[table])
                    with cursor.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT csv)") as copy:
                        for chunk in frame.iter_slices(WRITE_BATCH):
                            buffer = io.BytesIO()
                            # Polars writes NULL as an empty field and '' as "": COPY's CSV rules.
                            chunk.write_csv(buffer, include_header=False)
                            copy.write(buffer.getvalue())
    finally:
        engine.dispose()


_INTEGER_COLUMNS = {
    ("cs2_party", "party_id"),
    ("cs2_case", "case_id"),
    ("cs2_case", "pwc_party_id"),
    ("cs2_case", "nrp_party_id"),
    ("cs2_case", "dv_marker"),
    ("cs2_case", "stop_acting"),
    ("cs2_arrears", "case_id"),
    ("cs2_arrears", "amount_pence"),
    ("cs2_payment", "case_id"),
    ("cs2_payment", "amount_pence"),
    ("extract_control", "case_count"),
    ("extract_control", "pwc_arrears_pence"),
    ("extract_control", "sos_arrears_pence"),
}


def _sql_literal(column: pl.Expr, integer: bool) -> pl.Expr:
    quoted = pl.concat_str(
        pl.lit("'"), column.str.replace_all("'", "''", literal=True), pl.lit("'")
    )
    if integer:
        quoted = pl.when(column.str.contains(r"^-?[0-9]{1,18}$")).then(column).otherwise(quoted)
    return pl.when(column.is_null()).then(pl.lit("NULL")).otherwise(quoted)


def render_legacy_sql(book: LegacyBook) -> str:
    """The replica as SQL text: the contract DDL, then one INSERT per row in key order, so
    a change shows as a line in a diff. Loads into SQLite with ``load_legacy_sql``."""
    parts = [
        "-- A synthetic legacy CSA replica made by csa_closure.simulation.legacy (see "
        "sample_data/README.md).\n-- Every name, address, NINO and date of birth is made up.\n",
        legacy_ddl("sqlite"),
        "\n",
    ]
    for table, frame in book.tables.items():
        columns = TABLES[table]
        values = frame.select(
            pl.concat_str(
                [_sql_literal(pl.col(c), (table, c) in _INTEGER_COLUMNS) for c in columns],
                separator=", ",
            ).alias("v")
        )["v"]
        prefix = f"INSERT INTO {table} VALUES ("
        parts.append(f"\n-- {table}: {frame.height} rows\n")
        parts.append("".join(prefix + v + ");\n" for v in values))
    return "".join(parts)


def load_legacy_sql(sql_path: Path, out: Path, *, overwrite: bool = False) -> dict[str, int]:
    """Turn a SQL dump (``sample_data/legacy_sample.sql``) into a SQLite file; row counts."""
    _check_file_target(str(out), overwrite)
    text = sql_path.read_text(encoding="utf-8")
    create_owner_only(str(out))
    connection = sqlite3.connect(out, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=OFF")
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("BEGIN")
        for statement in sql_statements(text):
            connection.execute(statement)
        connection.execute("COMMIT")
        counts = {
            table: int(connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
            for table in TABLES
        }
    except sqlite3.Error as exc:
        connection.close()
        os.unlink(out)
        raise UsageError(f"{sql_path} is not a loadable legacy SQL dump: {exc}") from None
    connection.close()
    return counts


def sql_statements(text: str) -> list[str]:
    """Split SQL text into complete statements (comments and all), in order."""
    statements, current = [], ""
    for line in text.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current)
            current = ""
    leftover = "\n".join(
        part for part in current.splitlines() if part.strip() and not part.strip().startswith("--")
    )
    if leftover:
        raise sqlite3.OperationalError("the SQL ends in an incomplete statement")
    return statements
