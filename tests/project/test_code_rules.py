"""Rules of the code base that a reader cannot see from one file."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "csa_closure"


def _sources(exclude: tuple[str, ...] = ()) -> dict[str, str]:
    return {
        str(path.relative_to(PACKAGE)): path.read_text(encoding="utf-8")
        for path in PACKAGE.rglob("*.py")
        if not str(path.relative_to(PACKAGE)).startswith(exclude)
    }


def test_no_pl_format() -> None:
    """polars 2.1's pl.format panicked ("assertion failed: i < self.len()") on a filtered
    frame whose columns were chunked differently, in the letters sync; pl.concat_str does the
    same job without the bug."""
    offenders = [name for name, text in _sources().items() if "pl.format(" in text]
    assert offenders == []


def test_no_hidden_clock_in_decisions() -> None:
    """Decisions use the run's as-of date; only the CLI turns "today" into the default."""
    pattern = re.compile(r"\bdate\.today\(\)|\bdatetime\.now\(\)")
    offenders = [name for name, text in _sources(exclude=("cli",)).items() if pattern.search(text)]
    assert offenders == []


def test_no_database_branch_outside_the_store() -> None:
    """SQLite and PostgreSQL differ only behind store/dialect/ (and the store's engine and
    migrations): no stage, report or command asks which database it is on or speaks COPY."""
    pattern = re.compile(r"\bis_sqlite\(|\.dialect\.name\b|\bCOPY\s+\{?\w")
    offenders = sorted(
        name
        for name, text in _sources(exclude=("store",)).items()
        # the sample generator fills a replica that stands for the legacy systems, not the store
        if pattern.search(text) and name != "simulation/legacy.py"
    )
    assert offenders == []


def test_the_store_branches_on_the_database_only_in_its_dialect_package() -> None:
    """Inside the store, too, a difference between the databases is a method of one
    dialect implementation (store/dialect/), looked up by name, not an ``if`` on the name;
    the engine (which builds each kind of connection) and the migrations are the exceptions."""
    pattern = re.compile(r"\bis_sqlite\(|\bdialect\.name\s*[=!]=")
    allowed = ("store/dialect/", "store/engine.py", "store/migrations/")
    offenders = sorted(
        name
        for name, text in _sources().items()
        if name.startswith("store/") and not name.startswith(allowed) and pattern.search(text)
    )
    assert offenders == []


def test_no_eval() -> None:
    """Rule conditions are parsed and evaluated by polars, never by Python's eval/exec."""
    pattern = re.compile(r"(?<![\w.])(eval|exec)\(")
    offenders = [name for name, text in _sources().items() if pattern.search(text)]
    assert offenders == []


def _imports(text: str) -> set[str]:
    import ast

    found: set[str] = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_layers_only_import_downwards() -> None:
    """The CLI is the top layer: nothing below it imports it (reports render through
    reports/tables.py, not the CLI's output module), except that the demo, which stands beside
    the CLI, builds its letters channel with the CLI's factory. The domain rules import only
    the vocabulary. (tests/project/test_layers.py checks the same and more with import-linter.)"""
    upward = sorted(
        f"{name} imports {module}"
        for name, text in _sources(exclude=("cli", "__main__.py")).items()
        for module in _imports(text)
        if module == "csa_closure.cli" or module.startswith("csa_closure.cli.")
        if (name, module) != ("simulation/demo.py", "csa_closure.cli.channels")
    )
    assert upward == []
    domain = sorted(
        f"{name} imports {module}"
        for name, text in _sources().items()
        if name.startswith("domain")
        for module in _imports(text)
        if module.startswith("csa_closure") and not module.startswith("csa_closure.domain")
    )
    assert domain == []


def test_only_the_store_s_debts_module_writes_debts() -> None:
    """store/debts.py is the one writer of ``debts`` (it checks each move against the state
    machine and each write's row count): no other module inserts, updates or deletes debts,
    whether with SQL text or SQLAlchemy Core. The migrations create the table."""
    pattern = re.compile(
        r"\bINSERT\s+INTO\s+debts\b|\bUPDATE\s+debts\b|\bDELETE\s+FROM\s+debts\b"
        r"|\b(?:insert|update|delete)\(\s*debts\b|\bdebts\.(?:insert|update|delete)\("
        r"|\b(?:insert_frame|insert_rows|insert_tuples|update_from_frame)\(\s*conn,\s*debts\b",
        re.IGNORECASE,
    )
    offenders = sorted(
        name
        for name, text in _sources(exclude=("store/migrations",)).items()
        if pattern.search(text) and name != "store/debts.py"
    )
    assert offenders == []


def test_letters_have_one_writer() -> None:
    """store/letters.py is the only writer of the letters and their status history: every
    insert, update or delete on either table goes through it (so every status change is a
    compare-and-set with its history row)."""
    tables = r"(letters|letter_status_history)\b"
    pattern = re.compile(
        rf"\b(UPDATE|INSERT\s+INTO|DELETE\s+FROM)\s+{tables}"
        rf"|\b(insert_frame|insert_tuples|insert_rows|update_from_frame|insert|update|delete)"
        rf"\(\s*(conn,\s*)?[\"']?{tables}"
        rf"|\b{tables}\.(insert|update|delete)\("
    )
    offenders = sorted(
        name
        for name, text in _sources(exclude=("store/letters.py", "store/migrations")).items()
        if pattern.search(text)
    )
    assert offenders == []
