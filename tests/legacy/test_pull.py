"""The pull on SQLite and PostgreSQL: reconciliation, quarantine, re-runs, kills, drift."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text

from csa_closure.cli import cli
from csa_closure.context import Context
from csa_closure.errors import Unbalanced, UsageError
from csa_closure.legacy.reasons import Reason
from csa_closure.simulation.legacy import generate_legacy
from csa_closure.stages.assess import assess
from csa_closure.stages.pull import pull
from csa_closure.store.schema import debts, events, quarantine, stage_runs
from tests.conftest import context_for

CASES = 400


@pytest.fixture(scope="module")
def legacy_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("legacy") / "legacy.db"
    generate_legacy(str(path), cases=CASES, seed=5, ensure_coverage=True)
    return path


@pytest.fixture
def legacy_copy(legacy_file: Path, tmp_path: Path) -> Path:
    """A private copy of the replica, for tests that change the source."""
    copy = tmp_path / "legacy.db"
    copy.write_bytes(legacy_file.read_bytes())
    return copy


def snapshot(ctx: Context) -> dict[str, Any]:
    """The store's content by natural keys, without run ids, surrogate ids or timestamps."""
    with ctx.engine.connect() as conn:

        def rows(sql: str) -> list[tuple[Any, ...]]:
            return sorted(tuple(r) for r in conn.execute(text(sql)))

        logged = Counter(
            (r.event_type, r.case_ref, r.creditor, json.dumps(r.detail, sort_keys=True))
            for r in conn.execute(
                text(
                    "SELECT e.event_type, e.case_ref, d.creditor, e.detail FROM events e "
                    "LEFT JOIN debts d ON d.debt_id = e.debt_id "
                    # who held a lease is about operators, not about the book
                    "WHERE e.event_type <> 'lease.taken_over'"
                )
            )
        )
        return {
            "cases": rows(
                "SELECT case_ref, source_system, source_case_key, scheme, effective_date, "
                "liability_end_date, pwc_party_ref, nrp_party_ref, dv_marker, stop_acting, "
                "enforcement_code, source_fingerprint FROM cases"
            ),
            "debts": rows(
                "SELECT case_ref, creditor, opening_pence, source_pence, state FROM debts"
            ),
            "parties": rows("SELECT party_ref, source_fingerprint FROM parties"),
            "payments": rows(
                "SELECT case_ref, paid_on, positive_count, amount_pence FROM payment_days"
            ),
            "quarantine": rows(
                "SELECT source_system, case_ref, item_kind, status, pwc_pence, sos_pence, "
                "row_count FROM quarantine"
            ),
            "events": logged,
        }


def test_a_pull_balances_to_the_penny_and_quarantines_every_dirty_kind(
    ctx: Context, legacy_file: Path
) -> None:
    result = pull(ctx, str(legacy_file))
    assert result.balanced
    for system in ("CSCS", "CS2"):
        s = result.systems[system]
        assert s.cases_source == s.cases_loaded + s.cases_quarantined
        for creditor in ("PWC", "SOS"):
            c = s.creditors[creditor]
            assert c.source_pence == c.loaded_at_source_pence + c.quarantined_pence
            assert c.quarantined_pence != 0
    with ctx.engine.connect() as conn:
        held = conn.execute(select(quarantine.c.reasons, quarantine.c.source_system)).all()
        loaded = conn.execute(text("SELECT count(*) FROM debts WHERE state = 'pulled'")).scalar()
        pulled_events = conn.execute(
            select(events.c.event_id).where(events.c.event_type == "debt.pulled")
        ).all()
    codes = {(system, r["code"]) for reasons, system in held for r in reasons}
    # every dirty kind of the contract, on both systems (SAME_PARTY and BAD_REFERENCE are
    # extra checks of ours that the generator does not plant)
    planted = set(Reason) - {Reason.SAME_PARTY, Reason.BAD_REFERENCE}
    for system in ("CSCS", "CS2"):
        assert {code for s, code in codes if s == system} >= {r.value for r in planted}
    assert len(pulled_events) == loaded


def test_a_pull_from_a_postgresql_replica(ctx: Context, pg_schemas: Callable[[], str]) -> None:
    source = pg_schemas()
    generate_legacy(source, cases=300, seed=9, ensure_coverage=True)
    result = pull(ctx, source)
    assert result.balanced
    assert sum(s.cases_loaded for s in result.systems.values()) > 250


def test_re_pulling_duplicates_nothing(ctx: Context, legacy_file: Path) -> None:
    pull(ctx, str(legacy_file))
    first = snapshot(ctx)
    again = pull(ctx, str(legacy_file))
    assert again.counts["cases_new"] == 0 and again.counts["debts_new"] == 0
    assert again.counts["quarantine_new"] == 0
    assert again.balanced
    assert snapshot(ctx) == first


@pytest.mark.parametrize("where", ["after_commit", "before_commit"])
def test_a_killed_pull_re_run_ends_as_an_uninterrupted_one(
    make_store: Callable[[], str], legacy_file: Path, where: str
) -> None:
    killed, clean = make_store(), make_store()
    command = [
        sys.executable,
        "-m",
        "csa_closure",
        "--db",
        killed,
        "--as-of",
        "2019-03-31",
        "pull",
        "--source",
        str(legacy_file),
        "--format",
        "json",
    ]
    env = {**os.environ, "CSA_CLOSURE_CHUNK_SIZE": "40", "CSA_CLOSURE_FAILPOINT": f"pull:3:{where}"}
    died = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert died.returncode == -9, died.stderr
    ctx = context_for(killed)
    with ctx.engine.connect() as conn:
        loaded = conn.execute(text("SELECT count(*) FROM cases")).scalar()
    assert loaded == (120 if where == "after_commit" else 80)  # whole chunks only
    del env["CSA_CLOSURE_FAILPOINT"]
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["balanced"] is True
    pull(context_for(clean), str(legacy_file))
    survivor, reference = snapshot(ctx), snapshot(context_for(clean))
    assert survivor["events"] - reference["events"] == Counter()
    assert reference["events"] - survivor["events"] == Counter()
    assert survivor == reference
    with ctx.engine.connect() as conn:
        statuses = conn.execute(select(stage_runs.c.status).order_by(stage_runs.c.run_id)).all()
        takeover = conn.execute(
            select(events.c.detail).where(events.c.event_type == "lease.taken_over")
        ).scalar_one()
    # the dead run is marked abandoned when the re-run takes its lease over at once
    assert [s[0] for s in statuses] == ["abandoned", "completed"]
    assert takeover["why"] == "holder process is dead"


def _case_held_only_for_a_bad_effective_date(ctx: Context) -> str:
    with ctx.engine.connect() as conn:
        held = conn.execute(
            select(quarantine.c.case_ref, quarantine.c.reasons).where(
                quarantine.c.source_system == "CSCS", quarantine.c.item_kind == "case"
            )
        ).all()
    for case_ref, reasons in held:
        if [(r["code"], r["field"]) for r in reasons] == [("BAD_DATE", "eff_date")]:
            return str(case_ref)
    raise AssertionError("the coverage sample plants a CSCS case with a bad effective date")


def test_a_case_fixed_at_source_leaves_quarantine_on_the_next_pull(
    ctx: Context, legacy_copy: Path
) -> None:
    pull(ctx, str(legacy_copy))
    case_no = _case_held_only_for_a_bad_effective_date(ctx)
    with sqlite3.connect(legacy_copy) as db:
        db.execute("UPDATE cscs_case SET eff_date = '28/02/2009' WHERE case_no = ?", (case_no,))
    again = pull(ctx, str(legacy_copy))
    assert again.balanced
    with ctx.engine.connect() as conn:
        status = conn.execute(
            select(quarantine.c.status, quarantine.c.released_run_id).where(
                quarantine.c.case_ref == case_no
            )
        ).one()
        states = conn.execute(select(debts.c.state).where(debts.c.case_ref == case_no)).all()
    assert status == ("released", again.run_id) or (status[0] == "held" and False), (
        "a case fixed at source is released"
    )
    assert states and {s[0] for s in states} == {"pulled"}


def _change_balance(legacy: Path, case_no: str, creditor: str, pounds: str) -> None:
    """Change a CSCS balance at source, keeping extract_control consistent."""
    with sqlite3.connect(legacy) as db:
        (old,) = db.execute(
            "SELECT balance FROM cscs_debt WHERE case_no = ? AND creditor = ?", (case_no, creditor)
        ).fetchone()
        delta = round(float(pounds) * 100) - round(float(old) * 100)
        db.execute(
            "UPDATE cscs_debt SET balance = ? WHERE case_no = ? AND creditor = ?",
            (pounds, case_no, creditor),
        )
        column = f"{creditor.lower()}_arrears_pence"
        db.execute(
            f"UPDATE extract_control SET {column} = {column} + ? WHERE system = 'CSCS'", (delta,)
        )


def test_a_case_still_dirty_at_source_stays_held_with_the_amounts_it_has_now(
    ctx: Context, legacy_copy: Path
) -> None:
    first = pull(ctx, str(legacy_copy))
    case_no = _case_held_only_for_a_bad_effective_date(ctx)
    with sqlite3.connect(legacy_copy) as db:
        creditor, old = db.execute(
            "SELECT creditor, balance FROM cscs_debt WHERE case_no = ? ORDER BY creditor",
            (case_no,),
        ).fetchone()
    _change_balance(legacy_copy, case_no, creditor, f"{float(old) + 12.34:.2f}")
    with ctx.engine.connect() as conn:
        held_before = conn.execute(select(quarantine.c.case_ref)).all()
    again = pull(ctx, str(legacy_copy))
    assert again.balanced
    assert again.counts["quarantine_still_held"] == len(held_before)
    column = quarantine.c.pwc_pence if creditor == "PWC" else quarantine.c.sos_pence
    with ctx.engine.connect() as conn:
        item = conn.execute(
            select(
                quarantine.c.status,
                column,
                quarantine.c.first_run_id,
                quarantine.c.last_run_id,
                quarantine.c.released_run_id,
                quarantine.c.reasons,
            ).where(quarantine.c.case_ref == case_no)
        ).one()
        held_after = conn.execute(select(quarantine.c.case_ref)).all()
    assert item[0] == "held"
    assert item[1] == round((float(old) + 12.34) * 100)
    assert item[2:5] == (first.run_id, again.run_id, None)
    assert [(r["code"], r["field"]) for r in item[5]] == [("BAD_DATE", "eff_date")]
    assert sorted(held_after) == sorted(held_before)


def _loaded_cscs_pwc_debt(ctx: Context) -> str:
    with ctx.engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT case_ref FROM debts WHERE source_system = 'CSCS' AND creditor = 'PWC' "
                "AND opening_pence > 10000 ORDER BY case_ref LIMIT 1"
            )
        ).scalar_one()


def test_a_decided_debt_is_never_overwritten_and_its_drift_is_recorded_once(
    ctx: Context, legacy_copy: Path
) -> None:
    pull(ctx, str(legacy_copy))
    assess(ctx)
    case_ref = _loaded_cscs_pwc_debt(ctx)
    with ctx.engine.connect() as conn:
        before = conn.execute(
            select(debts.c.opening_pence, debts.c.state).where(
                debts.c.case_ref == case_ref, debts.c.creditor == "PWC"
            )
        ).one()
    _change_balance(legacy_copy, case_ref, "PWC", "12.34")
    drifted = pull(ctx, str(legacy_copy))
    assert drifted.balanced and drifted.counts["debts_drifted"] == 1
    assert drifted.systems["CSCS"].creditors["PWC"].drift_pence == before.opening_pence - 1234
    assert drifted.drift == [
        {
            "case_ref": case_ref,
            "creditor": "PWC",
            "loaded_pence": before.opening_pence,
            "source_pence": 1234,
        }
    ]
    assert pull(ctx, str(legacy_copy)).counts["debts_drifted"] == 0
    with ctx.engine.connect() as conn:
        after = conn.execute(
            select(debts.c.opening_pence, debts.c.source_pence, debts.c.state).where(
                debts.c.case_ref == case_ref, debts.c.creditor == "PWC"
            )
        ).one()
        logged = (
            conn.execute(select(events.c.detail).where(events.c.event_type == "debt.source_drift"))
            .scalars()
            .all()
        )
    assert after == (before.opening_pence, 1234, before.state)
    assert logged == [
        {
            "opening_pence": before.opening_pence,
            "previous_source_pence": before.opening_pence,
            "source_pence": 1234,
        }
    ]


def test_an_undecided_debt_is_refreshed_from_its_changed_source(
    ctx: Context, legacy_copy: Path
) -> None:
    pull(ctx, str(legacy_copy))
    case_ref = _loaded_cscs_pwc_debt(ctx)
    _change_balance(legacy_copy, case_ref, "PWC", "777.00")
    again = pull(ctx, str(legacy_copy))
    assert again.balanced and again.counts["debts_refreshed"] == 1
    with ctx.engine.connect() as conn:
        opening = conn.execute(
            select(debts.c.opening_pence).where(
                debts.c.case_ref == case_ref, debts.c.creditor == "PWC"
            )
        ).scalar_one()
    assert opening == 77_700


def test_a_pull_that_does_not_balance_fails_loudly_and_blocks_assess(
    ctx: Context, legacy_copy: Path
) -> None:
    with sqlite3.connect(legacy_copy) as db:
        db.execute(
            "UPDATE extract_control SET sos_arrears_pence = sos_arrears_pence + 1 "
            "WHERE system = 'CS2'"
        )
    with pytest.raises(Unbalanced, match=r"CS2 SOS: .* \(difference 1\)") as raised:
        pull(ctx, str(legacy_copy))
    assert raised.value.result.systems["CS2"].creditors["SOS"].difference_pence == 1
    with ctx.engine.connect() as conn:
        assert conn.execute(select(stage_runs.c.status)).scalar_one() == "unbalanced"
    with pytest.raises(UsageError, match="does not reconcile"):
        assess(ctx)


def test_pull_json_and_quarantine_list_carry_the_documented_keys_and_no_personal_data(
    store_url: str, legacy_file: Path
) -> None:
    runner = CliRunner()
    base = ["--db", store_url, "--as-of", "2019-03-31"]
    pulled = runner.invoke(cli, [*base, "pull", "--source", str(legacy_file), "--format", "json"])
    assert pulled.exit_code == 0, pulled.output
    result = json.loads(pulled.output)
    assert isinstance(result["run_id"], int) and result["balanced"] is True
    for system in ("CSCS", "CS2"):
        s = result["systems"][system]
        assert {"cases_source", "cases_loaded", "cases_quarantined"} <= set(s)
        for creditor in ("PWC", "SOS"):
            assert {"source_pence", "loaded_at_source_pence", "quarantined_pence"} <= set(
                s[creditor]
            )
    listed = runner.invoke(
        cli, [*base, "quarantine", "list", "--reason", "BAD_DATE", "--format", "json"]
    )
    assert listed.exit_code == 0, listed.output
    items = json.loads(listed.output)["items"]
    assert items and all("BAD_DATE" in i["reason_codes"] for i in items)
    with sqlite3.connect(legacy_file) as db:
        personal = {
            v
            for row in db.execute(
                "SELECT surname, forenames, nino, addr_1, postcode FROM cscs_client "
                "UNION ALL SELECT family_name, given_names, nino, address_line_1, postcode "
                "FROM cs2_party"
            )
            for v in row
            if v and len(v) > 3
        }
    for output in (
        pulled.output,
        listed.output,
        runner.invoke(cli, [*base, "quarantine", "list"]).output,
    ):
        assert not [v for v in personal if v in output]
