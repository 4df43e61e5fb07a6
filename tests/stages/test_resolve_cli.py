"""The CLI of the resolve stages, end to end with click's CliRunner, on both databases:
responses, resolve, review, ledger and transfer, in table, JSON and CSV, with refusals."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from csa_closure.cli import cli
from csa_closure.context import Context, Settings
from csa_closure.errors import ExitCode
from csa_closure.simulation.acknowledgements import write_ack_file
from csa_closure.store.engine import make_engine
from tests.support.builders import BookBuilder
from tests.support.resolve import (
    RESPONSE_HEADER,
    assert_balanced,
    final_chance_debt,
    seal_pull,
    send_notices,
    write_csv,
)

AS_OF = date(2019, 3, 31)
GROUPS = ("responses", "resolve", "review", "ledger", "transfer")


def _invoke(url: str, *args: str, as_of: date = AS_OF) -> Result:
    return CliRunner().invoke(
        cli, ["--db", url, "--as-of", as_of.isoformat(), "--actor", "operator", *args]
    )


def _ok(url: str, *args: str, as_of: date = AS_OF) -> Result:
    result = _invoke(url, *args, as_of=as_of)
    assert result.exit_code == 0, result.output
    return result


def _json(url: str, *args: str, as_of: date = AS_OF) -> Any:
    return json.loads(_ok(url, *args, "--format", "json", as_of=as_of).stdout)


def _csv(url: str, *args: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(_ok(url, *args, "--format", "csv").stdout)))


def test_every_command_and_option_of_these_groups_has_help() -> None:
    for name in GROUPS:
        command = cli.commands[name]
        commands: Sequence[click.Command] = (
            list(command.commands.values()) if isinstance(command, click.Group) else [command]
        )
        for sub in commands:
            assert (sub.help or "").strip(), sub.name
            for param in sub.params:
                if isinstance(param, click.Option):
                    assert (param.help or "").strip(), (sub.name, param.opts)
            help_text = CliRunner().invoke(
                cli, [name, *([sub.name] if sub is not command else []), "--help"]
            )
            assert help_text.exit_code == 0 and "Usage:" in help_text.output


@pytest.fixture
def seeded(store_url: str) -> str:
    ctx = Context(
        engine=make_engine(store_url), as_of=AS_OF, actor="seed", settings=Settings(chunk_size=3)
    )
    book = BookBuilder(ctx)
    for i in range(1, 5):  # four final chances, letters sent on 30 January
        final_chance_debt(book, book.case(f"C{i:09d}"), 250_000 * i, date(2019, 1, 30))
    expired = book.case("C000000005")
    final_chance_debt(book, expired, 90_000, date(2019, 1, 1))  # deadline 2 March: expires
    book.debt(
        book.case("C000000006"),
        "SOS",
        4_000,
        state="write_off_pending",
        outcome="write_off_silent",
        reason="SOS_DEBT",
        rule_id="SOS-05",
    )
    book.debt(
        book.case("S000000007", nrp=book.party(employment="BENEFITS")),
        "PWC",
        200_000,
        state="collect_requested",
        response="COLLECT",
    )  # 10% of £2,000 < £300
    seal_pull(ctx)
    ctx.engine.dispose()
    return store_url


def test_the_whole_flow_through_the_cli(seeded: str, tmp_path: Path) -> None:
    url = seeded
    rows = [
        ("P-1", "C000000001", "PWC", "COLLECT", "2019-03-01", "POST"),
        ("P-2", "C000000002", "PWC", "DO_NOT_COLLECT", "2019-03-01", "ONLINE"),
        ("P-3", "C000000003", "PWC", "COLLECT", "2019-04-02", "POST"),  # FUTURE_DATE
    ]
    responses_file = write_csv(tmp_path / "day.csv", rows, RESPONSE_HEADER)
    table = _ok(url, "responses", "import", str(responses_file)).stdout
    assert "accepted" in table and "day.rejects.csv" in table
    again = _json(url, "responses", "import", str(responses_file))
    assert again["already_imported"] and (again["accepted"], again["rejected"]) == (2, 1)
    assert set(again) >= {"rows", "duplicates", "rejected_by_reason", "rejects_file", "book"}
    recorded = _json(
        url,
        "responses",
        "record",
        "C000000004",
        "--party",
        "PWC",
        "--response",
        "COLLECT",
        "--received-on",
        "2019-03-30",
    )
    assert recorded["status"] == "accepted" and recorded["actions"] == {"collect": 1}
    refused = _invoke(
        url,
        "responses",
        "record",
        "C000000003",
        "--party",
        "PWC",
        "--response",
        "COLLECT",
        "--received-on",
        "2019-01-01",
    )
    assert refused.exit_code == 2 and "BEFORE_LETTER" in refused.output
    imports = _csv(url, "responses", "imports")
    assert [r["kind"] for r in imports] == ["responses"]

    dry = _json(url, "resolve", "--dry-run")
    assert dry["dry_run"] and dry["run_id"] is None
    result = _json(url, "resolve")
    assert result["expired"] == {"debts": 1, "pence": 90_000}
    assert result["written_off"] == {"debts": 1, "pence": 4_000}
    assert {r["reason"] for r in result["collectability"]} == {"COLLECTABLE", "NOT_COST_EFFECTIVE"}
    assert dry["expired"] == result["expired"] and dry["written_off"] == result["written_off"]
    assert "Resolve run" in _ok(url, "resolve").stdout
    bad = _invoke(url, "resolve", "--set", "no_such_parameter=1")
    assert bad.exit_code == 2 and "unknown parameter" in bad.output

    # the letters stage sends the notices; the next resolve writes off
    ctx = Context(engine=make_engine(url), as_of=AS_OF, actor="letters")
    send_notices(ctx)
    later = _json(url, "resolve")
    assert later["written_off"]["debts"] == 3  # declined, expired, not cost-effective
    ledger = _csv(url, "ledger", "list")
    assert len(ledger) == 4 and {r["entry_type"] for r in ledger} == {"write_off"}
    assert set(ledger[0]) >= {
        "entry_id",
        "amount_pence",
        "reason",
        "rule_id",
        "ruleset_hash",
        "run_id",
        "actor",
        "as_of",
    }
    entry = next(r for r in ledger if r["case_ref"] == "C000000002")
    reversed_ = _json(
        url, "ledger", "reverse", entry["entry_id"], "--reason", "LATE_COMPLAINT_UPHELD"
    )
    assert reversed_["amount_pence"] == -500_000 and reversed_["debt_state"] == "review"
    twice = _invoke(url, "ledger", "reverse", entry["entry_id"], "--reason", "AGAIN")
    assert twice.exit_code == 2 and "already reversed" in twice.output
    listed = _json(url, "ledger", "list", "--case", "C000000002")
    assert [e["entry_type"] for e in listed["entries"]] == ["write_off", "reversal"]
    assert listed["totals"]["net_pence"] == 0
    assert "Totals" in _ok(url, "ledger", "list").stdout

    queue = _json(url, "review", "list")
    assert [i["case_ref"] for i in queue["items"]] == ["C000000002"]
    assert "C000000002" in _ok(url, "review", "list").stdout
    decided = _json(
        url,
        "review",
        "decide",
        "C000000002",
        "--creditor",
        "PWC",
        "--outcome",
        "transfer",
        "--reason",
        "PWC_CHANGED_MIND",
    )
    assert decided["state"] == "transfer_ready" and decided["rule_id"] == "caseworker"
    referred = _json(
        url, "review", "refer", "C000000003", "--creditor", "PWC", "--reason", "COMPLAINT"
    )
    assert referred["state"] == "review"
    refused = _invoke(
        url,
        "review",
        "decide",
        "C000000006",
        "--creditor",
        "SOS",
        "--outcome",
        "transfer",
        "--reason",
        "X_Y",
    )
    assert refused.exit_code == 2 and "ledger reverse" in refused.output

    exported = _json(url, "transfer", "export", "--out", str(tmp_path / "cms"))
    batch = exported["batches"][0]
    assert exported["debts_exported"] == 3  # C1 and C4 collectable, C2 decided
    assert _json(url, "transfer", "verify", batch["path"])["ok"]
    assert _json(url, "transfer", "list")[0]["awaiting"] == 3
    rewritten = _json(
        url, "transfer", "rewrite", batch["batch_id"], "--out", str(tmp_path / "copy")
    )
    assert rewritten["manifest_sha256"] == batch["manifest_sha256"]
    ack = write_ack_file(
        Path(batch["path"]), tmp_path / "ack.csv", seed=5, rejected=1, unknown_rows=1
    )
    acked = _json(url, "transfer", "ack", str(ack.path))
    assert (acked["transferred"], acked["returned_to_review"]) == (2, 1)
    assert acked["rejected_by_reason"] == {"UNKNOWN_BATCH": 1}
    assert "CMS acknowledgement" in _ok(url, "transfer", "ack", str(ack.path)).stdout
    batches = _csv(url, "transfer", "list")
    assert batches[0]["status"] == "acknowledged"
    assert_balanced(Context(engine=make_engine(url), as_of=AS_OF, actor="check"))


def test_verify_exits_1_on_a_damaged_package(seeded: str, tmp_path: Path) -> None:
    url = seeded
    _ok(url, "review", "refer", "C000000001", "--creditor", "PWC", "--reason", "COMPLAINT")
    _ok(
        url,
        "review",
        "decide",
        "C000000001",
        "--creditor",
        "PWC",
        "--outcome",
        "transfer",
        "--reason",
        "PAYING_AGAIN",
    )
    batch = _json(url, "transfer", "export", "--out", str(tmp_path / "cms"))["batches"][0]
    (Path(batch["path"]) / "debts.parquet").write_bytes(b"broken")
    result = _invoke(url, "transfer", "verify", batch["path"])
    assert result.exit_code == ExitCode.VERIFY_FAILED and "refuse" in result.output


def test_a_later_as_of_date_moves_time_forward(seeded: str) -> None:
    # 31 March: the final chances sent on 30 January are due on 31 March, still open
    assert _json(seeded, "resolve", "--dry-run")["expired"]["debts"] == 1
    later = _json(seeded, "resolve", "--dry-run", as_of=AS_OF + timedelta(days=1))
    assert later["expired"]["debts"] == 5
