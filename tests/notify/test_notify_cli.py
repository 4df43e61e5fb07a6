"""The notify commands through Click (CliRunner), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from csa_closure.cli import cli
from csa_closure.cli.notify import read_returned_report
from csa_closure.letters.config import bundled_config_text
from csa_closure.simulation.fake_notify import FakeNotify
from tests.conftest import context_for
from tests.support.notify import letters_book


@pytest.fixture
def store(store_url: str) -> str:
    ctx = context_for(store_url)
    letters_book(ctx)
    ctx.engine.dispose()
    return store_url


def _run(store: str, actor: str, *args: str, env: dict[str, str] | None = None) -> Result:
    base = ["--db", store, "--as-of", "2019-03-31", "--actor", actor, "notify"]
    return CliRunner().invoke(cli, [*base, *args], env=env, catch_exceptions=False)


def _json(result: Result) -> dict:  # type: ignore[type-arg]
    assert result.exit_code == 0, result.output
    return json.loads(result.output)  # type: ignore[no-any-return]


def test_build_approve_send_sync_status(store: str, tmp_path: Path) -> None:
    built = _json(_run(store, "maker", "build", "--format", "json"))
    batch = str(built["batch_id"])
    assert built["pending"] == 8 and built["held"] == 1
    refused = _run(store, "maker", "approve", batch)
    assert refused.exit_code == 2 and "maker-checker" in refused.output
    unapproved = _run(store, "sender", "send", batch, "--channel", "fake-notify")
    assert unapproved.exit_code == 2 and "not approved" in unapproved.output
    approved = _json(_run(store, "checker", "approve", batch, "--format", "json"))
    assert approved["approved_by"] == "checker" and approved["built_by"] == "maker"
    twice = _run(store, "someone", "approve", batch)  # a re-run, by anyone: a no-op
    assert twice.exit_code == 0, twice.output
    assert f"Batch {batch} was already approved by checker" in twice.output
    assert "someone" not in twice.output  # never names the wrong person
    state = tmp_path / "fake.db"
    sent = _json(
        _run(
            store,
            "sender",
            "send",
            batch,
            "--channel",
            "fake-notify",
            "--fake-state",
            str(state),
            "--format",
            "json",
        )
    )
    assert sent["accepted"] == 8 and sent["batch_status"] == "sent"
    assert sent["quota"]["limit"] == 20_000
    assert FakeNotify(state).count() == 8
    table = _run(
        store, "sender", "send", batch, "--channel", "fake-notify", "--fake-state", str(state)
    )
    assert table.exit_code == 0 and "NOT for production" in table.output
    synced = _json(
        _run(
            store,
            "sender",
            "sync",
            "--channel",
            "fake-notify",
            "--fake-state",
            str(state),
            "--format",
            "json",
        )
    )
    assert synced["polled"] == 8
    status = _json(_run(store, "anyone", "status", "--format", "json"))
    assert status["by_status"] == {"accepted": 8, "held": 1}
    assert status["batches"][0]["status"] == "sent"
    assert "held" in status["attention"]
    one = _json(_run(store, "anyone", "status", "--batch", batch, "--format", "json"))
    assert one["by_status"] == {"accepted": 8}
    assert _run(store, "anyone", "status").exit_code == 0


def test_a_quota_stop_exits_cleanly_and_an_outage_exits_6(store: str, tmp_path: Path) -> None:
    batch = str(_json(_run(store, "maker", "build", "--format", "json"))["batch_id"])
    _json(_run(store, "checker", "approve", batch, "--format", "json"))
    state = str(tmp_path / "fake.db")
    fake = ["--channel", "fake-notify", "--fake-state", state, "--format", "json"]
    quota = _json(_run(store, "sender", "send", batch, *fake, "--daily-limit", "2"))
    assert quota["stop_code"] == "QUOTA_USED" and quota["accepted"] == 2
    down = _run(
        store, "sender", "send", batch, *fake, "--fake-fault", "server_error_after_accept=1"
    )
    assert down.exit_code == 6
    assert '"stop_code": "OUTAGE"' in down.output and "outage" in down.output
    bad = _run(store, "sender", "send", batch, *fake, "--fake-fault", "meteor=1")
    assert bad.exit_code == 2 and "NAME=RATE" in bad.output


def test_print_files_need_a_directory_and_are_written_once(store: str, tmp_path: Path) -> None:
    batch = str(_json(_run(store, "maker", "build", "--format", "json"))["batch_id"])
    _json(_run(store, "checker", "approve", batch, "--format", "json"))
    missing = _run(store, "sender", "send", batch, "--channel", "print-file")
    assert missing.exit_code == 2 and "--out" in missing.output
    out = str(tmp_path / "print")
    first = _json(
        _run(
            store,
            "sender",
            "send",
            batch,
            "--channel",
            "print-file",
            "--out",
            out,
            "--format",
            "json",
        )
    )
    assert first["sent"] == 8 and first["print_files"]["written"] is True
    assert first["quota"]["limit"] is None
    again = _json(
        _run(
            store,
            "sender",
            "send",
            batch,
            "--channel",
            "print-file",
            "--out",
            out,
            "--format",
            "json",
        )
    )
    assert again["sent"] == 0 and again["print_files"] is None


def test_a_live_send_needs_the_live_configuration_and_the_key(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOTIFY_API_KEY", raising=False)
    monkeypatch.delenv("CSA_CLOSURE_LETTERS_CONFIG", raising=False)
    batch = str(_json(_run(store, "maker", "build", "--format", "json"))["batch_id"])
    _json(_run(store, "checker", "approve", batch, "--format", "json"))
    example = _run(store, "sender", "send", batch, "--channel", "govuk-notify")
    assert example.exit_code == 2 and "example letters configuration" in example.output
    live = tmp_path / "letters.toml"
    live.write_text(bundled_config_text().replace("example = true", "example = false"))
    no_key = _run(
        store, "sender", "send", batch, "--channel", "govuk-notify", "--letters-config", str(live)
    )
    assert no_key.exit_code == 1 and "NOTIFY_API_KEY is not set" in no_key.output
    fault = _run(
        store, "sender", "send", batch, "--channel", "govuk-notify", "--fake-fault", "rate_limit=1"
    )
    assert fault.exit_code == 2


def test_returned_letters_report(store: str, tmp_path: Path) -> None:
    batch = str(_json(_run(store, "maker", "build", "--format", "json"))["batch_id"])
    _json(_run(store, "checker", "approve", batch, "--format", "json"))
    state = str(tmp_path / "fake.db")
    _json(
        _run(
            store,
            "sender",
            "send",
            batch,
            "--channel",
            "fake-notify",
            "--fake-state",
            state,
            "--format",
            "json",
        )
    )
    first = FakeNotify(state).notifications()[0]
    report = tmp_path / "returned.csv"
    report.write_text(
        "Notification ID,Reference,Date sent,Template name\n"
        f"{first.notify_id},{first.reference},2019-03-31,Final chance\n",
        encoding="utf-8",
    )
    recorded = _json(_run(store, "caseworker", "returned", str(report), "--format", "json"))
    assert recorded["returned_from_report"] == 1 and recorded["debts_flagged"] == 1
    again = _json(_run(store, "caseworker", "returned", str(report), "--format", "json"))
    assert again["returned_from_report"] == 0


def test_the_returned_report_reader_takes_notifys_csv_or_plain_references(tmp_path: Path) -> None:
    csv_report = tmp_path / "a.csv"
    csv_report.write_text(
        "\ufeffnotification id,REFERENCE\nabc,csa-1\n,csa-2\n\n", encoding="utf-8"
    )
    assert read_returned_report(csv_report) == [("abc", "csa-1"), (None, "csa-2")]
    plain = tmp_path / "b.txt"
    plain.write_text("csa-1\ncsa-2\n", encoding="utf-8")
    assert read_returned_report(plain) == [(None, "csa-1"), (None, "csa-2")]


def test_sync_never_resends_a_technical_failure_and_settle_does_once(
    store: str, tmp_path: Path
) -> None:
    batch = str(_json(_run(store, "maker", "build", "--format", "json"))["batch_id"])
    _json(_run(store, "checker", "approve", batch, "--format", "json"))
    state = tmp_path / "fake.db"
    fake = ["--channel", "fake-notify", "--fake-state", str(state)]
    failing = [*fake, "--fake-fate", "technical_failure=1"]
    assert _json(_run(store, "sender", "send", batch, *failing, "--format", "json"))["accepted"]
    service = FakeNotify(state)
    service.advance(days=2)
    for _ in range(2):
        synced = _json(_run(store, "sender", "sync", *fake, "--format", "json"))
        assert synced["technical_failures"] == 8
    assert service.count() == 8  # nothing resent
    first, second = sorted({n.reference or "" for n in service.notifications()})[:2]
    table = _run(store, "sender", "sync", *fake)
    assert "never resent" in table.output and "notify settle" in table.output
    unsaid = _run(store, "sender", "settle", first, *fake)
    assert unsaid.exit_code == 2 and "--resend or --undeliverable" in unsaid.output
    dropped = _json(
        _run(store, "sender", "settle", first, "--undeliverable", *fake, "--format", "json")
    )
    assert (dropped["outcome"], dropped["status"]) == ("undeliverable", "cancelled")
    resent = _json(_run(store, "sender", "settle", second, "--resend", *fake, "--format", "json"))
    assert (resent["outcome"], resent["found_at_notify"]) == ("resent", 1)
    assert service.count(second) == 2 and service.count(first) == 1 and service.count() == 9
    again = _run(store, "sender", "settle", second, "--resend", *fake)
    assert again.exit_code == 2 and "not technical-failure" in again.output
    assert (
        _json(_run(store, "sender", "sync", *fake, "--format", "json"))["technical_failures"] == 6
    )


def test_returns_of_an_uploaded_print_file_need_its_upload_report(
    store: str, tmp_path: Path
) -> None:
    batch = str(_json(_run(store, "maker", "build", "--format", "json"))["batch_id"])
    _json(_run(store, "checker", "approve", batch, "--format", "json"))
    out = tmp_path / "print"
    sent = _json(
        _run(store, "sender", "send", batch, "--channel", "print-file", "--out", str(out),
             "--format", "json")
    )  # fmt: skip
    file = sent["print_files"]["files"][0]
    directory = Path(sent["print_files"]["directory"])
    service = FakeNotify(tmp_path / "fake.db")
    upload = service.upload_print_file(directory / file["file"], file["template_id"])
    returned = tmp_path / "returned.csv"
    returned.write_text(
        "Notification ID,Reference,Date sent\n" + f"{upload[0][1]},,2019-04-20\n", encoding="utf-8"
    )
    unmatched = _run(store, "caseworker", "returned", str(returned))
    assert unmatched.exit_code == 0 and "1 returns match no letter" in unmatched.output
    assert upload[0][1] in unmatched.output and "notify uploaded" in unmatched.output
    report = tmp_path / "upload.csv"
    report.write_text(
        "Row number,Recipient,Notification ID\n"
        + "".join(f"{n},(withheld),{i}\n" for n, i in upload),
        encoding="utf-8",
    )
    args = ["uploaded", str(directory), str(report), "--file", file["file"], "--format", "json"]
    imported = _json(_run(store, "sender", *args))
    assert (imported["recorded"], imported["rows"]) == (len(upload), file["row_count"])
    matched = _json(_run(store, "caseworker", "returned", str(returned), "--format", "json"))
    assert (matched["returned_from_report"], matched["returned_unmatched"]) == (1, 0)
    assert matched["debts_flagged"] == 1


def test_returns_of_an_uploaded_file_match_by_spreadsheet_file_and_row(
    store: str, tmp_path: Path
) -> None:
    from csa_closure.simulation.fake_notify import RETURNED_REPORT_COLUMNS, Fates

    batch = str(_json(_run(store, "maker", "build", "--format", "json"))["batch_id"])
    _json(_run(store, "checker", "approve", batch, "--format", "json"))
    out = tmp_path / "print"
    sent = _json(
        _run(store, "sender", "send", batch, "--channel", "print-file", "--out", str(out),
             "--format", "json")
    )  # fmt: skip
    directory = Path(sent["print_files"]["directory"])
    service = FakeNotify(tmp_path / "fake.db", fates=Fates(returned=1.0, returned_after_days=21))
    for file in sent["print_files"]["files"]:
        service.upload_print_file(directory / file["file"], file["template_id"])
    service.advance(days=22)
    report = tmp_path / "returned letters.csv"
    assert service.write_returned_letters_report(report) == sent["sent"]
    header, first = report.read_text(encoding="utf-8").splitlines()[:2]
    assert header == ",".join(RETURNED_REPORT_COLUMNS)
    assert first.split(",")[1] == "" and first.split(",")[8] == "1"  # no reference; row 1
    without = _json(_run(store, "caseworker", "returned", str(report), "--format", "json"))
    assert (without["returned_from_report"], without["returned_unmatched"]) == (0, sent["sent"])
    matched = _json(
        _run(store, "caseworker", "returned", str(report), "--print-dir", str(out),
             "--format", "json")
    )  # fmt: skip
    assert (matched["returned_from_report"], matched["returned_unmatched"]) == (sent["sent"], 0)
    assert 0 < matched["debts_flagged"] <= sent["sent"]  # a debt may have two letters
