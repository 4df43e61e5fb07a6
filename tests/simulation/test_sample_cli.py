"""csa-closure sample legacy / legacy-from-sql."""

from __future__ import annotations

import json
from pathlib import Path

import click
from click.testing import CliRunner

from csa_closure.cli import CsaGroup
from csa_closure.cli.sample import sample


def _cli() -> click.Group:
    # The root registers `sample` itself; here it is mounted on a root of the same kind, so
    # operator errors render as they will there.
    root = CsaGroup(name="csa-closure")
    root.add_command(sample)
    return root


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(_cli(), ["sample", *args])


def test_sample_legacy_writes_a_replica_and_reports_it(tmp_path: Path) -> None:
    out = tmp_path / "legacy.db"
    result = run("legacy", "--cases", "400", "--seed", "5", "--out", str(out), "--coverage")
    assert result.exit_code == 0, result.output
    assert out.exists()
    assert "Control totals" in result.output
    assert "date_nonexistent" in result.output
    assert "Coverage:" in result.output


def test_sample_legacy_json_and_csv(tmp_path: Path) -> None:
    result = run(
        "legacy", "--cases", "60", "--seed", "5", "--out", str(tmp_path / "a.db"),
        "--as-at", "2020-02-29", "--dirty-rate", "0.02", "--format", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["as_at"] == "2020-02-29"
    assert data["control"]["CSCS"]["case_count"] == 30
    assert data["control"]["CS2"]["as_at"] == "2020-02-29"
    assert isinstance(data["control"]["CS2"]["pwc_arrears_pence"], int)
    assert data["dirty"]["CSCS"]["bad_balance"] == 1
    assert data["rows"]["extract_control"] == 2
    result = run(
        "legacy", "--cases", "60", "--seed", "5", "--out", str(tmp_path / "b.db"),
        "--format", "csv",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("source_system,case_count,pwc_arrears_pence")
    assert [line.split(",")[0] for line in lines[1:]] == ["CSCS", "CS2"]


def test_sample_legacy_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    out = tmp_path / "legacy.db"
    out.write_text("keep me")
    result = run("legacy", "--cases", "10", "--seed", "1", "--out", str(out))
    assert result.exit_code == 2
    assert "already exists; use --force" in result.output
    assert out.read_text() == "keep me"
    result = run("legacy", "--cases", "10", "--seed", "1", "--out", str(out), "--force")
    assert result.exit_code == 0, result.output


def test_sample_legacy_from_sql_builds_a_database(tmp_path: Path) -> None:
    dump = tmp_path / "legacy.sql"
    assert run("legacy", "--cases", "40", "--seed", "2", "--out", str(dump)).exit_code == 0
    assert dump.read_text().startswith("-- A synthetic legacy CSA replica")
    out = tmp_path / "legacy.db"
    result = run("legacy-from-sql", str(dump), "--out", str(out), "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["rows"]["cscs_case"] == 20
    again = run("legacy-from-sql", str(dump), "--out", str(out))
    assert again.exit_code == 2 and "--force" in again.output


def test_a_broken_dump_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    dump = tmp_path / "broken.sql"
    dump.write_text("CREATE TABLE cscs_client (client_no TEXT);\nINSERT INTO nowhere VALUES (1);\n")
    out = tmp_path / "legacy.db"
    result = run("legacy-from-sql", str(dump), "--out", str(out))
    assert result.exit_code == 2
    assert "not a loadable legacy SQL dump" in result.output
    assert not out.exists()


def test_every_command_and_option_has_help() -> None:
    for command in sample.commands.values():
        assert command.help
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"{command.name} {param.name}"
    assert sample.help


def test_sample_responses_acks_and_decisions_feed_their_imports(
    store_url: str, tmp_path: Path
) -> None:
    """Each simulated outside file is accepted by its import, and none carries personal data."""
    from sqlalchemy import text

    from csa_closure.cli import cli
    from csa_closure.store.engine import make_engine

    runner = CliRunner()

    def csa(day: str, *args: str, actor: str = "operator"):  # type: ignore[no-untyped-def]
        result = runner.invoke(cli, ["--db", store_url, "--as-of", day, "--actor", actor, *args])
        assert result.exit_code == 0, (args, result.output)
        return result

    legacy = tmp_path / "legacy.db"
    assert run("legacy", "--cases", "300", "--seed", "3", "--out", str(legacy)).exit_code == 0
    day = "2019-04-01"
    csa(day, "pull", "--source", str(legacy))
    csa(day, "assess")
    decisions = tmp_path / "decisions.csv"
    made = json.loads(
        csa(day, "sample", "decisions", "--out", str(decisions), "--format", "json").output
    )
    assert made["rows"] > 0
    assert decisions.read_text().splitlines()[0] == "case_ref,creditor,outcome,reason"
    decided = json.loads(
        csa(day, "review", "decide-file", str(decisions), "--format", "json").output
    )
    assert decided["decided"] == made["rows"] and not decided["refused"]
    csa(day, "resolve")
    csa(day, "transfer", "export", "--out", str(tmp_path / "transfers"))
    ack = tmp_path / "ack.csv"
    acks = json.loads(
        csa(day, "sample", "acks", str(tmp_path / "transfers"), "--out", str(ack),
            "--rejected-per-thousand", "100", "--format", "json").output
    )  # fmt: skip
    assert acks["batches"] and all(b["rejected"] == b["rows"] // 10 for b in acks["batches"])
    imported = json.loads(csa(day, "transfer", "ack", str(ack), "--format", "json").output)
    assert imported["accepted"] == sum(b["rows"] for b in acks["batches"])  # every row taken
    assert imported["rejected"] == 0
    assert imported["returned_to_review"] == sum(b["rejected"] for b in acks["batches"])
    assert imported["transferred"] == imported["accepted"] - imported["returned_to_review"]
    csa(day, "notify", "build")
    csa(day, "notify", "approve", "1", actor="checker")
    csa(day, "notify", "send", "1", "--channel", "print-file", "--out", str(tmp_path / "letters"))
    responses = tmp_path / "responses.csv"
    later = "2019-05-16"
    wrote = json.loads(
        csa(later, "sample", "responses", "--seed", "4", "--out", str(responses),
            "--format", "json").output
    )  # fmt: skip
    assert wrote["rows"] > 0
    again = tmp_path / "again.csv"
    csa(later, "sample", "responses", "--seed", "4", "--out", str(again))
    assert again.read_bytes() == responses.read_bytes()  # the same seed, the same file
    answered = json.loads(
        csa(later, "responses", "import", str(responses), "--format", "json").output
    )
    assert answered["accepted"] == wrote["rows"] - answered["rejected"] - answered["duplicates"]
    engine = make_engine(store_url)
    with engine.connect() as conn:
        names = [r[0] for r in conn.execute(text("SELECT family_name FROM parties")) if r[0]]
    engine.dispose()
    written = responses.read_text() + ack.read_text() + decisions.read_text()
    assert names and not [n for n in names if len(n) > 3 and n in written]
