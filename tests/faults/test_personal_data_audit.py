"""Personal data audit: the whole programme (the demo) at debug logging, then every log line,
every report and list in every format, every row of every table but ``parties``, and every
export that is not personal by design is searched for any generated name, NINO, postcode or
address line: none may appear. And no letter carries the other parent's details.

The demo runs twice, sending its letters through the fake Notify and as print files, as an
operator would run it: ``csa-closure -vv demo``. The personal details searched for are read
from the store's ``parties`` table and from the legacy replicas (both the dirty one and the
corrected one), and kept only where distinctive: a NINO or
postcode (with or without its space), a full name, a family name of seven letters or more, an
address line with a number or of ten characters or more. They are matched as whole words, in
any case, with punctuation and spacing ignored.

Searched: the demo's own output and its debug log; ``report progress|reconcile|rules|runs``,
``decommission check``, ``quarantine list``, ``ledger list``, ``notify status``, ``responses
imports``, ``review list``, ``transfer list|verify``, ``archive verify``, ``rules
show|check|simulate``, ``db status`` and ``explain`` for a sample of cases (each in table, json
and csv, at ``-vv``); every table but ``parties`` (events' details, runs' parameters, counts
and errors, quarantine reasons, letters and their references and status history, ...); the
default archive (Parquet decoded, and the manifest); the contact centre's response files, the
CMS's acknowledgements, the decisions files and every rejects file.

Not searched, because they hold personal data by design (and the scan is shown to find it
there): the ``parties`` table, the CMS transfer packages, the print files, the fake Notify's
record of what it was sent, ``explain --show-personal-data`` and an archive made with
``--include-personal-data``.
"""

from __future__ import annotations

import csv
import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner
from sqlalchemy import text

from csa_closure.cli import cli
from csa_closure.letters import is_reference
from csa_closure.resources import default_rules_dir
from csa_closure.store.engine import make_engine
from csa_closure.store.schema import metadata

pytestmark = pytest.mark.slow

CASES = 300
NINO = re.compile(r"^[A-Z]{2}\d{6}[A-D]?$")
POSTCODE = re.compile(r"^[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}$")


def normalise(value: str) -> str:
    """Upper case, every run of non-alphanumerics one space: how text is compared."""
    return " ".join(re.sub(r"[^0-9A-Z]+", " ", value.upper()).split())


# --- what to look for -----------------------------------------------------------------------------


@dataclass
class Person:
    ref: str
    tokens: set[str]  # distinctive, normalised


def _distinctive(kind: str, raw: str | None) -> set[str]:
    if not raw or not raw.strip():
        return set()
    value = normalise(raw)
    compact = value.replace(" ", "")
    if kind == "nino":
        return {compact} if NINO.match(compact) else set()
    if kind == "postcode":
        return {value, compact} if POSTCODE.match(value) else set()
    if kind == "name":  # a full name (several words), or one long family name
        return {value} if " " in value or len(value) >= 7 else set()
    if kind == "address":
        has_number = any(c.isdigit() for c in value)
        return {value} if (has_number and len(value) >= 6) or len(value) >= 10 else set()
    raise ValueError(kind)


def _person(
    ref: str, given: Any, family: Any, nino: Any, postcode: Any, lines: Iterable[Any]
) -> Person:
    tokens = set()
    tokens |= _distinctive("name", family)
    if given and family:
        tokens |= _distinctive("name", f"{given} {family}")
        tokens |= _distinctive("name", f"{family} {given}")
    tokens |= _distinctive("nino", nino)
    tokens |= _distinctive("postcode", postcode)
    for line in lines:
        tokens |= _distinctive("address", line)
    return Person(ref, tokens)


def store_people(url: str) -> dict[str, Person]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT party_ref, given_names, family_name, nino, postcode, address_line_1, "
                    "address_line_2, address_line_3, address_line_4, address_line_5 FROM parties"
                )
            ).all()
    finally:
        engine.dispose()
    return {r[0]: _person(r[0], r[1], r[2], r[3], r[4], r[5:]) for r in rows}


def legacy_people(path: Path) -> list[Person]:
    with closing(sqlite3.connect(path)) as db:
        rows = [
            *db.execute(
                "SELECT client_no, forenames, surname, nino, postcode, addr_1, addr_2, addr_3, "
                "addr_4, addr_5 FROM cscs_client"
            ),
            *db.execute(
                "SELECT party_id, given_names, family_name, nino, postcode, address_line_1, "
                "address_line_2, address_line_3, address_line_4, address_line_5 FROM cs2_party"
            ),
        ]
    return [_person(str(r[0]), r[1], r[2], r[3], r[4], r[5:]) for r in rows]


class Scanner:
    """Finds the given (normalised) tokens in a text as whole words, in any case, whatever
    the punctuation and spacing between the words."""

    def __init__(self, tokens: set[str]) -> None:
        self.tokens = tokens
        self._by_words: dict[int, set[str]] = {}
        for token in tokens:
            self._by_words.setdefault(token.count(" ") + 1, set()).add(token)

    def find(self, body: str) -> set[str]:
        words = normalise(body).split()
        found: set[str] = set()
        for n, tokens in self._by_words.items():
            found |= tokens & {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}
        return found


# --- running the programme ----------------------------------------------------------------------


@dataclass
class Demo:
    channel: str
    directory: Path
    url: str
    output: str  # what the demo printed
    log: str  # its debug log
    scanner: Scanner
    people: dict[str, Person]
    as_of: str


@pytest.fixture(scope="module", params=["fake-notify", "print-file"])
def demo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Demo:
    directory = tmp_path_factory.mktemp(f"audit-{request.param}") / "demo"
    ran = subprocess.run(
        [
            sys.executable,
            "-m",
            "csa_closure",
            "-vv",
            "demo",
            "--cases",
            str(CASES),
            "--dir",
            str(directory),
            "--channel",
            request.param,
            "--daily-letter-limit",
            "100",
            "--show-commands",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "DEBUG" in ran.stderr  # the log really is at debug level
    url = f"sqlite:///{directory / 'csa_closure.db'}"
    people = store_people(url)
    tokens = set().union(*(p.tokens for p in people.values()))
    for replica in ("legacy.db", "legacy-corrected.db"):
        for person in legacy_people(directory / replica):
            tokens |= person.tokens
    engine = make_engine(url)
    with engine.connect() as conn:
        as_of = str(conn.execute(text("SELECT max(as_of) FROM stage_runs")).scalar())[:10]
    engine.dispose()
    return Demo(
        request.param, directory, url, ran.stdout, ran.stderr, Scanner(tokens), people, as_of
    )


def _invoke(demo: Demo, *args: str) -> str:
    result = CliRunner().invoke(
        cli, ["-vv", "--db", demo.url, "--as-of", demo.as_of, "--actor", "auditor", *args]
    )
    assert result.exit_code in (0, 7), (args, result.output)  # 7: a gate that fails
    return result.output


def _case_sample(demo: Demo) -> list[str]:
    """Cases with the most to tell: quarantined then released, domestic violence markers,
    transferred, written off after letters, with responses, reviewed."""
    engine = make_engine(demo.url)
    queries = [
        "SELECT DISTINCT case_ref FROM quarantine WHERE item_kind = 'case' ORDER BY 1 LIMIT 3",
        "SELECT case_ref FROM cases WHERE dv_marker ORDER BY 1 LIMIT 2",
        "SELECT case_ref FROM debts WHERE state = 'transferred' ORDER BY 1 LIMIT 2",
        "SELECT case_ref FROM responses ORDER BY 1 LIMIT 2",
        "SELECT case_ref FROM debts WHERE decided_by = 'demo-caseworker' ORDER BY 1 LIMIT 2",
        "SELECT l.case_ref FROM letters l WHERE l.status NOT IN ('accepted', 'received', 'sent') "
        "ORDER BY 1 LIMIT 2",
    ]
    with engine.connect() as conn:
        cases = {r[0] for q in queries for r in conn.execute(text(q))}
        known = {r[0] for r in conn.execute(text("SELECT case_ref FROM cases"))}
    engine.dispose()
    return sorted(cases & known)


def _reports(demo: Demo) -> dict[str, str]:
    archive = demo.directory / "archive"
    package = next((demo.directory / "transfers").glob("TB*/"))
    rules = str(default_rules_dir())
    commands: list[list[str]] = [
        ["report", "progress"],
        ["report", "reconcile"],
        ["report", "rules"],
        ["report", "runs", "--limit", "0"],
        ["decommission", "check"],
        ["quarantine", "list", "--status", "all"],
        ["ledger", "list"],
        ["notify", "status"],
        ["responses", "imports"],
        ["review", "list"],
        ["transfer", "list"],
        ["transfer", "verify", str(package)],
        ["archive", "verify", str(archive)],
        ["db", "status"],
        ["rules", "show"],
        ["rules", "check", "--rules", rules],
        ["rules", "simulate", "--rules", rules, "--set", "threshold_pence=60000"],
        *(["explain", case] for case in _case_sample(demo)),
    ]
    outputs = {}
    for command in commands:
        for fmt in ("table", "json", "csv"):
            outputs[f"{' '.join(command)} --format {fmt}"] = _invoke(
                demo, *command, "--format", fmt
            )
    return outputs


def _tables(demo: Demo) -> dict[str, str]:
    """Every row of every table but parties, as text."""
    engine = make_engine(demo.url)
    try:
        with engine.connect() as conn:
            return {
                f"table {table.name}": "\n".join(
                    repr(tuple(row)) for row in conn.execute(table.select())
                )
                for table in metadata.sorted_tables
                if table.name != "parties"
            }
    finally:
        engine.dispose()


def _parquet_text(path: Path) -> str:
    return pl.read_parquet(path).write_csv()


def _exports(demo: Demo) -> dict[str, str]:
    """The files the programme wrote that are not personal by design."""
    found: dict[str, str] = {}
    for path in sorted((demo.directory / "archive").iterdir()):
        found[f"archive {path.name}"] = path.read_bytes().decode("utf-8", "replace")
        if path.suffix == ".parquet":
            found[f"archive {path.name} (decoded)"] = _parquet_text(path)
    for folder in ("responses", "transfers", "decisions"):
        for path in sorted((demo.directory / folder).glob("*.csv")):
            found[f"{folder}/{path.name}"] = path.read_text(encoding="utf-8")
    return found


# --- the audit -----------------------------------------------------------------------------------


def test_nothing_the_programme_logs_reports_records_or_exports_carries_personal_data(
    demo: Demo,
) -> None:
    searched = {
        "the demo's output": demo.output,
        "the demo's debug log": demo.log,
        **_reports(demo),
        **_tables(demo),
        **_exports(demo),
    }
    assert any(name.startswith("explain") for name in searched)
    assert any("rejects" in name for name in searched)
    assert len(demo.log.splitlines()) > 100
    leaks = {
        name: sorted(found)[:5]
        for name, body in searched.items()
        if (found := demo.scanner.find(body))
    }
    assert leaks == {}


def test_the_scan_finds_personal_data_where_it_legitimately_is(demo: Demo, tmp_path: Path) -> None:
    """The scanner is not blind: it finds the parents in the parties table, in the CMS
    packages, in what was sent, when explain is asked to show them, and in an archive made with
    personal data."""
    engine = make_engine(demo.url)
    with engine.connect() as conn:
        parties = "\n".join(repr(tuple(r)) for r in conn.execute(text("SELECT * FROM parties")))
    engine.dispose()
    assert len(demo.scanner.find(parties)) > len(demo.people)  # most parents, several details

    packages = "\n".join(
        _parquet_text(p) for p in (demo.directory / "transfers").rglob("debts.parquet")
    )
    assert demo.scanner.find(packages)

    sent = "\n".join(" | ".join(v) for v in _letters_sent(demo).values())
    assert len(demo.scanner.find(sent)) > 50

    case = _case_sample(demo)[0]
    assert not demo.scanner.find(_invoke(demo, "explain", case))
    assert demo.scanner.find(_invoke(demo, "explain", case, "--show-personal-data"))

    out = tmp_path / "with-personal-data"
    _invoke(demo, "archive", "--out", str(out), "--include-personal-data")
    assert demo.scanner.find(_parquet_text(out / "parties.parquet"))


# --- letters: each to its recipient, never carrying the other parent ------------------------


def _letters_sent(demo: Demo) -> dict[str, list[str]]:
    """What each letter said (its values), by reference: from the fake Notify's record, or
    from the print files."""
    sent: dict[str, list[str]] = {}
    if demo.channel == "fake-notify":
        with closing(sqlite3.connect(demo.directory / "fake-notify.db")) as db:
            for reference, personalisation in db.execute(
                "SELECT reference, personalisation FROM notifications"
            ):
                sent[reference] = [str(v) for v in json.loads(personalisation).values()]
        return sent
    for manifest_path in (demo.directory / "print-files").rglob("manifest.json"):
        manifest = json.loads(manifest_path.read_text())
        for entry in manifest["files"]:
            with (manifest_path.parent / entry["file"]).open(
                encoding="utf-8", newline=""
            ) as handle:
                rows = list(csv.reader(handle))[1:]
            for reference, row in zip(entry["references"], rows, strict=True):
                sent[reference] = row
    return sent


def test_every_letter_is_for_its_recipient_and_never_carries_the_other_parent(demo: Demo) -> None:
    sent = _letters_sent(demo)
    engine = make_engine(demo.url)
    with engine.connect() as conn:
        letters = {
            r.reference: r
            for r in conn.execute(
                text(
                    "SELECT l.reference, l.recipient, l.party_ref, c.pwc_party_ref, "
                    "c.nrp_party_ref, c.dv_marker FROM letters l "
                    "JOIN cases c ON c.case_ref = l.case_ref"
                )
            )
        }
    engine.dispose()
    assert len(sent) > 300
    assert all(is_reference(reference) for reference in letters)
    dv = 0
    for reference, values in sent.items():
        letter = letters[reference]
        own, other = (
            (letter.pwc_party_ref, letter.nrp_party_ref)
            if letter.recipient == "PWC"
            else (letter.nrp_party_ref, letter.pwc_party_ref)
        )
        assert letter.party_ref == own
        mine, theirs = demo.people[own].tokens, demo.people[other].tokens
        found = Scanner(theirs - mine).find(" | ".join(values))
        assert not found, f"letter {reference} carries the other parent's {sorted(found)}"
        assert Scanner(mine).find(" | ".join(values))  # and it is addressed to its recipient
        dv += bool(letter.dv_marker)
    assert dv  # letters on domestic-violence cases were among them


# --- files that hold personal data are the owner's only ---------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_file_holding_personal_data_is_readable_by_its_owner_only(demo: Demo) -> None:
    holding = [
        demo.directory / "csa_closure.db",  # the parties table
        *(demo.directory / "transfers").rglob("*.parquet"),
        *(demo.directory / "print-files").rglob("*.csv"),
        *(demo.directory / "print-files").rglob("manifest.json"),
        *(demo.directory / "archive").iterdir(),
    ]
    if demo.channel == "fake-notify":
        holding.append(demo.directory / "fake-notify.db")
    assert len(holding) > 5
    assert {str(p): oct(_mode(p)) for p in holding if _mode(p) & 0o077} == {}


def test_a_new_store_is_created_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    """(It used to take the umask: ``db upgrade`` under the usual 022 left every parent's
    name and address readable by any user of the machine.)"""
    store = tmp_path / "store.db"
    previous = os.umask(0o022)
    try:
        result = CliRunner().invoke(cli, ["--db", f"sqlite:///{store}", "db", "upgrade"])
    finally:
        os.umask(previous)
    assert result.exit_code == 0, result.output
    assert _mode(store) == 0o600
