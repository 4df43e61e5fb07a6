"""Malformed parent-response and CMS acknowledgement files (hypothesis): clear errors, every row
counted, nothing lost, the books still balance.

Hypothesis writes files the way the world does: columns in any order, extra columns, a column
missing or named twice, a byte-order mark or none, CRLF or LF, rows with too few or too many
fields, fields of random text (commas, quotes, line breaks, non-ASCII, control characters),
plausible rows whose values are each right or wrong (unknown cases, bad dates, bad parties,
statuses and channels, batches we never sent), rows repeated, and now and then a byte that is
not UTF-8. Each file is imported into a fresh copy of a small book (final-chance letters out;
a transfer package with the CMS), on SQLite and PostgreSQL, and then:

- a file that cannot be read as a whole (not UTF-8, a required column missing, a column named
  twice) is refused with an ``InputError`` naming the file and the problem, and nothing at all
  is written;
- otherwise every row (blank lines are not rows) ends accepted, duplicate or rejected, and the
  three add up to the rows in the file; each rejected row is in the rejects file and the store
  once, with a reason code, and the rejects file echoes nothing but safe identifiers (a clerk
  may have typed a name into any field); each accepted row is recorded once; the books balance
  to the penny; and importing the same bytes again changes nothing.

(Valid files, and random valid-shaped rows over many commands, are in test_responses.py,
test_transfer.py and test_conservation.py; this is about garbage.)
"""

from __future__ import annotations

import csv
import io
import re
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from csa_closure.context import Context, Settings
from csa_closure.errors import InputError
from csa_closure.reconcile import reconcile
from csa_closure.stages.intake import CASE_REF_PATTERN, DOCUMENT_ID_PATTERN
from csa_closure.stages.responses import COLUMNS as RESPONSE_COLUMNS
from csa_closure.stages.responses import RejectReason, import_responses
from csa_closure.stages.transfer import export_transfers
from csa_closure.stages.transfer_ack import BATCH_ID_PATTERN, import_ack
from csa_closure.stages.transfer_ack import COLUMNS as ACK_COLUMNS
from csa_closure.store import migrate
from csa_closure.store.engine import make_engine
from tests.conftest import _pg_server_url
from tests.support.builders import BookBuilder
from tests.support.faults import Databases
from tests.support.resolve import final_chance_debt, seal_pull

pytestmark = pytest.mark.slow

AS_OF = date(2019, 3, 31)
ACK_REASONS = {
    "MALFORMED_ROW",
    "MISSING_VALUE",
    "BAD_BATCH_ID",
    "BAD_CASE_REF",
    "BAD_CREDITOR",
    "BAD_STATUS",
    "UNKNOWN_BATCH",
    "BATCH_NOT_EXPORTED",
    "NOT_IN_BATCH",
    "CONFLICTING_ACK",
}


# --- the book, copied fresh for each example ----------------------------------------------------


@dataclass
class Book:
    kind: str
    template: str  # a SQLite file, or a PostgreSQL template database
    cases: list[str]  # cases with a final-chance letter out
    items: list[tuple[str, str, str]]  # (batch_id, case_ref, creditor) in the CMS package
    databases: Databases | None
    root: Path

    @contextmanager
    def fresh(self) -> Iterator[Context]:
        if self.databases is None:
            path = self.root / f"{uuid.uuid4().hex}.db"
            with (
                closing(sqlite3.connect(self.template)) as src,
                closing(sqlite3.connect(path)) as dst,
            ):
                src.backup(dst)
            url, name = f"sqlite:///{path}", None
        else:
            name = self.databases.create(f"file_{uuid.uuid4().hex[:8]}", template=self.template)
            url = self.databases.url(name)
        engine = make_engine(url)
        try:
            yield Context(
                engine=engine, as_of=AS_OF, actor="clerk", settings=Settings(chunk_size=5)
            )
        finally:
            engine.dispose()
            if name is not None and self.databases is not None:
                self.databases.drop(name)


def _build(ctx: Context, out: Path) -> tuple[list[str], list[tuple[str, str, str]]]:
    book = BookBuilder(ctx)
    cases = []
    for i in range(1, 7):
        case = book.case(f"C{i:09d}", nrp=book.party(employment="EMPLOYED"))
        final_chance_debt(book, case, 100_000 + i, AS_OF - timedelta(days=10 * i))
        cases.append(case)
    for i in range(7, 11):
        case = book.case(f"S{i:09d}")
        book.debt(
            case, "PWC", 50_000 + i, state="transfer_ready", outcome="transfer", reason="PAYING"
        )
        if i % 2:
            book.debt(
                case, "SOS", 900 + i, state="transfer_ready", outcome="transfer", reason="PAYING"
            )
    seal_pull(ctx)
    export_transfers(ctx, out)
    with ctx.engine.connect() as conn:
        items = [
            (r.batch_id, r.case_ref, r.creditor)
            for r in conn.execute(text("SELECT batch_id, case_ref, creditor FROM transfer_items"))
        ]
    return cases, items


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def book(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Book]:
    root = tmp_path_factory.mktemp(f"files-{request.param}")
    databases = None
    if request.param == "sqlite":
        template = str(root / "template.db")
        url = f"sqlite:///{template}"
    else:
        databases = Databases(str(_pg_server_url()))
        template = databases.create("file_template")
        url = databases.url(template)
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
        ctx = Context(engine=engine, as_of=AS_OF, actor="seed", settings=Settings(chunk_size=5))
        cases, items = _build(ctx, root / "packages")
        engine.dispose()
        yield Book(request.param, template, cases, items, databases, root)
    finally:
        engine.dispose()
        if databases is not None:
            databases.close()


# --- files as the world writes them ---------------------------------------------------------------

NASTY = [
    "",
    " ",
    ",",
    '"',
    "\n",
    "\r\n",
    ";",
    "\t",
    "é",
    "ü",
    "\x00",
    "\x1b",
    "NULL",
    "-1",
    "0",
    "🙂",
]
garbage = st.one_of(
    st.sampled_from(NASTY),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=12),
    st.lists(st.sampled_from(NASTY), max_size=4).map("".join),
)
# a personal detail a clerk typed into the wrong field: it must never reach a rejects file
TYPED_NAME = "Ms Jane Q Examplewoman, 12 Acacia Avenue"


def mostly(valid: list[str], bad: st.SearchStrategy[str] = garbage) -> st.SearchStrategy[str]:
    """A right value nine times in ten, else a wrong one."""
    return st.sampled_from([True] * 9 + [False]).flatmap(
        lambda right: st.sampled_from(valid) if right else bad
    )


def _dates() -> st.SearchStrategy[str]:
    days = [(AS_OF + timedelta(days=d)) for d in [*range(-9, 1), *range(-9, 1), -70, -30, 1, 2]]
    wrong = st.one_of(
        st.sampled_from([d.strftime("%d/%m/%Y") for d in days[::7]]),
        st.sampled_from(["2019-02-30", "2019-13-01", "yesterday", ""]),
        garbage,
    )
    return mostly([d.isoformat() for d in days], wrong)


def _response_values(cases: list[str]) -> st.SearchStrategy[dict[str, str]]:
    """A parent's answer about one of the book's cases (or an unknown one), each value now
    and then wrong."""
    answer = st.sampled_from(
        [("PWC", "COLLECT"), ("PWC", "DO_NOT_COLLECT"), ("NRP", "DISPUTE_AMOUNT")] * 3
        + [("pwc", "COLLECT"), ("NRP", "COLLECT"), ("PWC", "MAYBE")]
    )
    return st.tuples(
        answer,
        st.fixed_dictionaries(
            {
                "document_id": mostly([f"D{n}" for n in range(30)]),
                "case_ref": mostly([*cases, *cases, "C999999999"]),
                "received_on": _dates(),
                "channel": mostly(["POST", "PHONE", "ONLINE", "FAX"]),
            }
        ),
        garbage,
        garbage,
        st.sampled_from([True] * 9 + [False]),
    ).map(
        lambda a: {
            **a[1],
            "party": a[0][0] if a[4] else a[2],
            "response": a[0][1] if a[4] else a[3],
        }
    )


def _ack_values(items: list[tuple[str, str, str]]) -> st.SearchStrategy[dict[str, str]]:
    """An acknowledgement of one of the package's items (or of one never sent), each value
    now and then wrong."""
    item = st.sampled_from([*items, ("TB20190101-000001-001", "S000000007", "PWC")])
    return item.flatmap(
        lambda i: st.fixed_dictionaries(
            {
                "batch_id": mostly([i[0]]),
                "case_ref": mostly([i[1]]),
                "creditor": mostly([i[2]], st.sampled_from(["XYZ", "pwc", ""])),
                "status": mostly(["ACCEPTED", "ACCEPTED", "REJECTED", "accepted", "LOST"]),
                "reason": st.sampled_from(["", "R12: no trace", TYPED_NAME, "\n"]),
            }
        )
    )


@dataclass
class File:
    data: bytes
    header: list[str]
    rows: list[list[str]]
    not_utf8: bool


@st.composite
def files(
    draw: st.DrawFn,
    columns: tuple[str, ...],
    values: st.SearchStrategy[dict[str, str]],
) -> File:
    header = draw(st.permutations(list(columns)))
    extras = draw(
        st.lists(
            st.one_of(st.sampled_from(["notes", "operator", " case_ref"]), garbage), max_size=2
        )
    )
    for extra in extras:
        header.insert(draw(st.integers(0, len(header))), extra)
    if draw(st.sampled_from([False] * 9 + [True])):
        header.remove(draw(st.sampled_from(list(columns))))  # a required column missing
    # a row: plausible values in the header's order, or random fields, maybe cut or padded
    plausible = st.tuples(values, st.lists(garbage, min_size=len(header), max_size=len(header)))
    plausible_row = plausible.map(lambda vg: [vg[0].get(c, vg[1][n]) for n, c in enumerate(header)])
    row = st.one_of(
        plausible_row, plausible_row, plausible_row, st.lists(garbage, max_size=len(header) + 2)
    )
    shape = st.sampled_from([0] * 20 + [-2, -1, 1, 2])
    row = st.tuples(row, shape).map(
        lambda r: r[0][: len(r[0]) + r[1]] if r[1] < 0 else r[0] + ["x"] * r[1]
    )
    rows = draw(st.lists(row, max_size=12))
    for _ in range(draw(st.integers(0, 3))):  # repeated rows
        if rows:
            rows.insert(draw(st.integers(0, len(rows))), list(draw(st.sampled_from(rows))))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=draw(st.sampled_from(["\n", "\r\n"])))
    writer.writerow(header)
    writer.writerows(rows)
    data = buffer.getvalue().encode("utf-8")
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    not_utf8 = draw(st.sampled_from([False] * 9 + [True]))
    if not_utf8:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from([b"\xff", b"\xe9", b"\xc3("])) + data[at:]
    return File(data, header, rows, not_utf8)


def _records(file: File) -> list[list[str]]:
    """The file's records as any CSV reader sees them (a bare CR in a field written with LF
    line ends is a line break to a reader, so this is not always the rows written)."""
    return list(csv.reader(io.StringIO(file.data.decode("utf-8-sig"), newline="")))


def _refusal(file: File, columns: tuple[str, ...]) -> str | None:
    """Why the file as a whole must be refused (the contract), or None."""
    if file.not_utf8:
        return "not UTF-8"
    names = [h.strip() for h in _records(file)[0]]
    if any(n and names.count(n) > 1 for n in names):
        return "more than once"
    if any(c not in names for c in columns):
        return "the header has no"
    return None


def _data_rows(file: File) -> int:
    """Rows as the contract counts them: a blank line is not a row."""
    return sum(1 for r in _records(file)[1:] if r and not (len(r) == 1 and not r[0].strip()))


# --- what must hold ---------------------------------------------------------------------------


def _counts(ctx: Context) -> dict[str, Any]:
    with ctx.engine.connect() as conn:

        def one(sql: str) -> Any:
            return conn.execute(text(sql)).scalar()

        return {
            "imports": one("SELECT count(*) FROM response_imports"),
            "rejections": one("SELECT count(*) FROM import_rejections"),
            "responses": one("SELECT count(*) FROM responses"),
            "events": one("SELECT count(*) FROM events"),
            "acknowledged": one("SELECT count(*) FROM transfer_items WHERE status <> 'exported'"),
            "states": sorted(
                tuple(r)
                for r in conn.execute(text("SELECT debt_id, state, needs_caseworker FROM debts"))
            ),
        }


def _check_rejects(
    path: Path | None, rejected: int, rows: int, id_column: str, reasons: set[str]
) -> None:
    if rejected == 0:
        return
    assert path is not None and path.exists()
    with path.open(newline="", encoding="utf-8") as handle:
        listed = list(csv.DictReader(handle))
    assert len(listed) == rejected
    numbers = [int(r["row_number"]) for r in listed]
    assert len(set(numbers)) == rejected and all(1 <= n <= rows for n in numbers)
    pattern = DOCUMENT_ID_PATTERN if id_column == "document_id" else BATCH_ID_PATTERN
    for r in listed:
        assert r["reason_code"] in reasons
        assert not r[id_column] or re.match(pattern, r[id_column]), r
        assert not r["case_ref"] or re.match(CASE_REF_PATTERN, r["case_ref"]), r
    assert "Examplewoman" not in path.read_text(encoding="utf-8")


def _import_checked(
    book: Book,
    tmp: Path,
    file: File,
    columns: tuple[str, ...],
    run: Callable[[Context, Path], Any],
    grown: str,
    id_column: str,
    reasons: set[str],
) -> None:
    path = tmp / f"{uuid.uuid4().hex}.csv"
    path.write_bytes(file.data)
    why = _refusal(file, columns)
    with book.fresh() as ctx:
        before = _counts(ctx)
        if why is not None:
            event(f"refused: {why}")
            with pytest.raises(InputError) as refused:
                run(ctx, path)
            assert path.name in str(refused.value) and why in str(refused.value)
            assert _counts(ctx) == before  # nothing at all was written
            return
        result = run(ctx, path)
        rows = _data_rows(file)
        event(
            f"rows {min(rows, 5)}+: accepted {result.accepted > 0}, rejected {result.rejected > 0}"
        )
        assert result.rows == rows
        assert result.accepted + result.duplicates + result.rejected == rows
        after = _counts(ctx)
        assert after["imports"] == before["imports"] + 1
        assert after["rejections"] == before["rejections"] + result.rejected
        assert after[grown] - before[grown] == result.accepted
        _check_rejects(
            Path(result.rejects_file) if result.rejects_file else None,
            result.rejected,
            rows,
            id_column,
            reasons,
        )
        assert reconcile(ctx).balanced
        again = run(ctx, path)  # the same bytes again: recognised, nothing changes
        assert again.already_imported
        assert (again.rows, again.accepted, again.duplicates, again.rejected) == (
            result.rows,
            result.accepted,
            result.duplicates,
            result.rejected,
        )
        assert _counts(ctx) == after


SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@SETTINGS
@given(data=st.data())
def test_any_response_file_is_refused_whole_or_every_row_counted(
    book: Book, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    file = data.draw(files(RESPONSE_COLUMNS, _response_values(book.cases)), label="file")
    _import_checked(
        book,
        tmp_path_factory.mktemp("responses"),
        file,
        RESPONSE_COLUMNS,
        import_responses,
        "responses",
        "document_id",
        {r.value for r in RejectReason},
    )


@SETTINGS
@given(data=st.data())
def test_any_acknowledgement_file_is_refused_whole_or_every_row_counted(
    book: Book, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    file = data.draw(files(ACK_COLUMNS, _ack_values(book.items)), label="file")
    assume(file.data)
    _import_checked(
        book,
        tmp_path_factory.mktemp("acks"),
        file,
        ACK_COLUMNS,
        import_ack,
        "acknowledged",
        "batch_id",
        ACK_REASONS,
    )
