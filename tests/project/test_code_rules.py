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


# Every table of store/schema.py and the one module that inserts, updates or deletes its rows.
# The migrations create the tables and are not writers.
TABLE_WRITERS = {
    # checks each move against the state machine and each write's row count
    "debts": "store/debts.py",
    # every status change is a compare-and-set with its history row; a batch's status change
    # is checked against BATCH_TRANSITIONS
    "letters": "store/letters.py",
    "letter_status_history": "store/letters.py",
    "letter_batches": "store/letters.py",
    "transfer_batches": "store/transfers.py",
    "transfer_items": "store/transfers.py",
    "events": "store/events.py",
    "stage_runs": "store/runs.py",
    "leases": "store/leases.py",
    "rule_sets": "store/rule_sets.py",
    # the pull's replica of the legacy systems, and what it could not take
    "parties": "stages/pull.py",
    "cases": "stages/pull.py",
    "payment_days": "stages/pull.py",
    "quarantine": "stages/pull.py",
    "send_quota": "stages/letters_outbox/quota.py",
    "response_imports": "stages/contract_import.py",
    "import_rejections": "stages/contract_import.py",
    "responses": "stages/responses.py",
    "ledger_entries": "stages/ledger.py",
    "archives": "stages/archive.py",
}


def _table_writers(sources: dict[str, str], tables: list[str]) -> dict[str, set[str]]:
    """Which modules write each table, by SQL text (INSERT INTO / UPDATE / DELETE FROM) or
    SQLAlchemy Core (insert(t), t.update(), insert_ignoring_conflicts(conn, t), the dialect's
    bulk helpers)."""
    writers: dict[str, set[str]] = {table: set() for table in tables}
    for table in tables:
        pattern = re.compile(
            rf"\b(?:INSERT\s+(?:OR\s+\w+\s+)?INTO|UPDATE|DELETE\s+FROM)\s+{table}\b"
            rf"|\b(?:\w+_)?(?:insert|update|delete)\(\s*{table}\b"
            rf"|\b{table}\.(?:insert|update|delete)\("
            rf"|\b(?:insert_frame|insert_tuples|insert_rows|update_from_frame"
            rf"|insert_ignoring_conflicts)\(\s*\w+,\s*{table}\b",
            re.IGNORECASE,
        )
        writers[table] = {name for name, text in sources.items() if pattern.search(text)}
    return writers


def _writer_problems(
    sources: dict[str, str], tables: list[str], table_writers: dict[str, str]
) -> list[str]:
    problems = sorted(f"{t} is not in the writers' map" for t in set(tables) - set(table_writers))
    problems += sorted(f"the map names {t}, not a table" for t in set(table_writers) - set(tables))
    for table, names in sorted(_table_writers(sources, tables).items()):
        problems += sorted(
            f"{name} writes {table} (its writer is {table_writers.get(table)})"
            for name in names
            if name != table_writers.get(table)
        )
    return problems


def test_every_table_has_one_writer() -> None:
    """Each table has one module that inserts, updates or deletes its rows, whether with SQL
    text or SQLAlchemy Core (TABLE_WRITERS says which). store/debts.py is the one writer of
    ``debts`` (it checks each move against the state machine and each write's row count);
    store/letters.py of the letters and their status history (so every status change is a
    compare-and-set with its history row) and of their batches; store/transfers.py of the
    transfer packages. The migrations create the tables."""
    from csa_closure.store.schema import metadata

    sources = _sources(exclude=("store/migrations",))
    assert _writer_problems(sources, sorted(metadata.tables), TABLE_WRITERS) == []


def test_the_one_writer_rule_finds_a_second_writer() -> None:
    """The rule above fails when a stage writes a table behind its writer's back, in any
    spelling, when a table is missing from the map and when the map names no table."""
    sources = {
        "store/debts.py": "conn.execute(update(debts).values(state='closed'))",
        "stages/sneaky.py": "conn.execute(text(\"UPDATE debts SET state = 'closed'\"))",
        "stages/bulk.py": "insert_frame(conn, letter_batches, frame)",
        "stages/core.py": "conn.execute(transfer_items.delete())",
        "stages/reader.py": "select(debts).where(debts.c.state == 'closed')  # UPDATE nothing",
    }
    writers = {
        "debts": "store/debts.py",
        "letter_batches": "store/letters.py",
        "transfer_items": "store/transfers.py",
        "gone": "store/gone.py",
    }
    tables = ["debts", "letter_batches", "new", "transfer_items"]
    assert _writer_problems(sources, tables, writers) == [
        "new is not in the writers' map",
        "the map names gone, not a table",
        "stages/sneaky.py writes debts (its writer is store/debts.py)",
        "stages/bulk.py writes letter_batches (its writer is store/letters.py)",
        "stages/core.py writes transfer_items (its writer is store/transfers.py)",
    ]
