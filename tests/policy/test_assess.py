"""assess, rules and explain against a pulled store, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text

from csa_closure.cli import cli
from csa_closure.context import Context
from csa_closure.errors import NotReady
from csa_closure.policy import RuleSetError
from csa_closure.resources import default_rules_dir
from csa_closure.simulation.legacy import generate_legacy
from csa_closure.stages.assess import assess
from csa_closure.stages.pull import pull
from csa_closure.store.schema import debts, events, rule_sets, stage_runs
from tests.conftest import context_for
from tests.support.builders import BookBuilder


@pytest.fixture(scope="module")
def legacy_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("legacy") / "legacy.db"
    generate_legacy(str(path), cases=300, seed=21, ensure_coverage=True)
    return path


@pytest.fixture
def pulled(ctx: Context, legacy_file: Path) -> Context:
    pull(ctx, str(legacy_file))
    return ctx


def _decisions(ctx: Context) -> Counter[tuple[str, str, str, str]]:
    with ctx.engine.connect() as conn:
        return Counter(
            tuple(r)
            for r in conn.execute(
                select(debts.c.case_ref, debts.c.creditor, debts.c.outcome, debts.c.rule_id)
            )
        )


def test_assess_decides_every_pulled_debt_once_with_its_rule_and_event(pulled: Context) -> None:
    result = assess(pulled)
    with pulled.engine.connect() as conn:
        rows = conn.execute(select(debts)).all()
        decided = conn.execute(
            select(events.c.debt_id, events.c.detail).where(events.c.event_type == "debt.decided")
        ).all()
        stored_hashes = conn.execute(select(rule_sets.c.ruleset_hash)).scalars().all()
    assert result.decided == len(rows) and result.run_id is not None
    assert all(r.state != "pulled" and r.outcome and r.rule_id for r in rows)
    assert {r.ruleset_hash for r in rows} == {result.ruleset_hash} == set(stored_hashes)
    assert {r.decided_run_id for r in rows} == {result.run_id}
    assert {r.decided_by for r in rows} == {"tester"}
    assert sorted(d.debt_id for d in decided) == sorted(r.debt_id for r in rows)
    assert sum(t["debts"] for t in result.by_outcome.values()) == len(rows)
    assert all(result.by_outcome[o]["debts"] > 0 for o in result.by_outcome)
    again = assess(pulled)
    assert again.decided == 0 and again.considered == 0


def test_a_dry_run_writes_nothing(pulled: Context) -> None:
    before = _decisions(pulled)
    result = assess(pulled, dry_run=True)
    assert result.run_id is None and result.decided > 0
    assert _decisions(pulled) == before
    with pulled.engine.connect() as conn:
        assert (
            conn.execute(select(stage_runs.c.run_id).where(stage_runs.c.stage == "assess")).all()
            == []
        )


def test_assess_refuses_when_nothing_was_pulled(ctx: Context) -> None:
    with pytest.raises(NotReady, match="nothing has been pulled"):
        assess(ctx)


def test_a_parameter_override_changes_outcomes_and_the_rule_set_hash(pulled: Context) -> None:
    default = assess(pulled, dry_run=True)
    raised = assess(pulled, dry_run=True, overrides={"threshold_old_case_pence": "500000"})
    assert raised.ruleset_hash != default.ruleset_hash
    assert (
        raised.by_outcome["representation"]["debts"] < default.by_outcome["representation"]["debts"]
    )
    with pytest.raises(RuleSetError, match="threshold_old_case_pence"):
        assess(pulled, dry_run=True, overrides={"threshold_old_case_pence": "£5,000"})


def test_redeciding_touches_only_untouched_debts_and_leaves_a_trail(pulled: Context) -> None:
    first = assess(pulled)
    with pulled.engine.begin() as conn:
        # a letter went out for one representation debt: it may no longer be re-decided
        debt_id, case_ref = conn.execute(
            text("SELECT debt_id, case_ref FROM debts WHERE outcome = 'representation' LIMIT 1")
        ).one()
        party = conn.execute(
            text("SELECT pwc_party_ref FROM cases WHERE case_ref = :c"), {"c": case_ref}
        ).scalar_one()
        conn.execute(
            text(
                "INSERT INTO letters (reference, debt_id, case_ref, purpose, recipient, "
                "party_ref, status, attempts, created_at) VALUES ('ref-1', :d, :c, "
                "'representation', 'PWC', :p, 'pending', 0, '2019-04-01 09:00:00')"
            ),
            {"d": debt_id, "c": case_ref, "p": party},
        )
    same_rules = assess(pulled, redecide=True)
    assert same_rules.redecided == 0 and same_rules.unchanged == first.decided - 1
    raised = assess(pulled, redecide=True, overrides={"threshold_old_case_pence": "500000"})
    assert raised.redecided == first.decided - 1  # new rule-set hash: every untouched debt
    with pulled.engine.connect() as conn:
        untouched = conn.execute(
            select(debts.c.ruleset_hash).where(debts.c.debt_id == debt_id)
        ).scalar_one()
        trail = conn.execute(
            select(events.c.detail, events.c.from_state, events.c.to_state).where(
                events.c.event_type == "debt.redecided"
            )
        ).all()
    assert untouched == first.ruleset_hash
    assert len(trail) == raised.redecided
    assert all(t.detail["previous_outcome"] for t in trail)
    assert any(
        t.detail["previous_outcome"] == "representation"
        and t.detail["outcome"] == "write_off_notice"
        for t in trail
    )


def test_a_killed_assess_re_run_decides_exactly_as_an_uninterrupted_one(
    make_store: Callable[[], str], legacy_file: Path
) -> None:
    killed, clean = make_store(), make_store()
    for url in (killed, clean):
        pull(context_for(url), str(legacy_file))
    command = [
        sys.executable,
        "-m",
        "csa_closure",
        "--db",
        killed,
        "--as-of",
        "2019-03-31",
        "assess",
        "--format",
        "json",
    ]
    env = {
        **os.environ,
        "CSA_CLOSURE_CHUNK_SIZE": "40",
        "CSA_CLOSURE_FAILPOINT": "assess:2:before_commit",
    }
    died = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert died.returncode == -9, died.stderr
    del env["CSA_CLOSURE_FAILPOINT"]
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assess(context_for(clean))
    assert _decisions(context_for(killed)) == _decisions(context_for(clean))
    for url in (killed, clean):
        with context_for(url).engine.connect() as conn:
            counts = conn.execute(
                text(
                    "SELECT count(*), count(DISTINCT debt_id) FROM events "
                    "WHERE event_type = 'debt.decided'"
                )
            ).one()
            assert counts[0] == counts[1]  # one decision event per debt, none twice


def test_explain_tells_the_story_without_personal_data_unless_asked(
    pulled: Context, store_url: str
) -> None:
    assess(pulled)
    with pulled.engine.connect() as conn:
        case_ref, family_name = conn.execute(
            text(
                "SELECT c.case_ref, p.family_name FROM cases c JOIN parties p "
                "ON p.party_ref = c.pwc_party_ref JOIN debts d ON d.case_ref = c.case_ref "
                "WHERE d.outcome = 'representation' LIMIT 1"
            )
        ).one()
        held = conn.execute(text("SELECT case_ref FROM quarantine LIMIT 1")).scalar_one()
    runner = CliRunner()
    base = ["--db", store_url, "--as-of", "2019-03-31", "explain"]
    shown = runner.invoke(cli, [*base, case_ref, "--format", "json"])
    assert shown.exit_code == 0, shown.output
    story = json.loads(shown.output)
    assert story["case_ref"] == case_ref and story["quarantined"] is False
    assert story["source_system"] in ("CSCS", "CS2")
    pwc = next(d for d in story["debts"] if d["creditor"] == "PWC")
    assert {"creditor", "opening_pence", "outcome", "reason", "rule_id", "state"} <= set(pwc)
    assert pwc["outcome"] == "representation" and pwc["rule_id"] == "PWC-10"
    assert pwc["reproduces_decision"] is True
    assert [e["event_type"] for e in story["events"]][:1] == ["debt.pulled"]
    assert family_name not in shown.output
    assert family_name not in runner.invoke(cli, [*base, case_ref]).output
    assert family_name in runner.invoke(cli, [*base, case_ref, "--show-personal-data"]).output
    quarantined = json.loads(runner.invoke(cli, [*base, held, "--format", "json"]).output)
    assert quarantined["quarantined"] is True and quarantined["quarantine_reasons"]
    unknown = runner.invoke(cli, [*base, "C999999999"])
    assert unknown.exit_code == 2 and "no case C999999999" in unknown.output


def test_rules_commands(pulled: Context, store_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["--db", store_url, "--as-of", "2019-03-31"]
    shown = json.loads(runner.invoke(cli, [*base, "rules", "show", "--format", "json"]).output)
    assert len(shown["hash"]) == 64
    table = runner.invoke(cli, [*base, "rules", "show", "--set", "threshold_pence=60000"])
    assert table.exit_code == 0, table.output
    assert "£600.00 (--set)" in table.output and "PWC-10" in table.output
    checked = runner.invoke(cli, [*base, "rules", "check", "--format", "json"])
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.output)["debts"] > 0
    proposal = tmp_path / "proposal"
    shutil.copytree(default_rules_dir(), proposal)
    params = proposal / "parameters.toml"
    params.write_text(params.read_text().replace("value = 50000", "value = 90000"))
    simulated = runner.invoke(
        cli, [*base, "rules", "simulate", "--rules", str(proposal), "--format", "json"]
    )
    assert simulated.exit_code == 0, simulated.output
    result = json.loads(simulated.output)
    assert result["changed_debts"] > 0
    assert result["new"]["hash"] != result["current"]["hash"]
    eligibility = proposal / "eligibility.toml"
    eligibility.write_text(eligibility.read_text().replace('reason = "PAYING"', 'reason = "PAYNG"'))
    refused = runner.invoke(cli, [*base, "rules", "check", "--rules", str(proposal)])
    assert refused.exit_code == 2
    assert "PWC-03" in refused.output and "PAYNG" in refused.output


def test_facts_for_a_case_decide_as_policy_md_says(ctx: Context) -> None:
    """One end-to-end spot check through the store (the rule boundaries themselves are
    pinned in the policy tests): SOS and PWC debts on one case decide differently."""
    book = BookBuilder(ctx)
    case = book.case("C000000042", effective_date=date(2010, 1, 1))
    book.debt(case, "PWC", 200_000)
    book.debt(case, "SOS", 200_000)
    with ctx.engine.begin() as conn:
        conn.execute(
            stage_runs.insert().values(
                stage="pull",
                actor="t",
                host="h",
                started_at=ctx.clock(),
                as_of=ctx.as_of,
                status="completed",
                parameters={},
            )
        )
    assess(ctx)
    outcomes = {(cr, o) for _, cr, o, _ in _decisions(ctx)}
    assert outcomes == {("PWC", "representation"), ("SOS", "write_off_silent")}
