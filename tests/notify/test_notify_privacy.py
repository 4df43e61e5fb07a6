"""No letter carries the other parent's details, and no reference, history row, event, run
record, batch or log line carries personal data: on a generated book with domestic-violence
markers, pulled and assessed, its letters built, sent through the fake Notify and as print
files, and synced (returns, failures). On SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from csa_closure.channels import PrintFileChannel
from csa_closure.context import Context
from csa_closure.letters import RecipientParty, address_lines, is_reference
from csa_closure.simulation.fake_notify import Fates
from csa_closure.simulation.legacy import generate_legacy
from csa_closure.stages.assess import assess
from csa_closure.stages.letters_outbox import SendOptions, send_batch, sync_letters
from csa_closure.stages.pull import pull
from tests.support.notify import CONFIG, built_batch, clocked, fake, later


@pytest.fixture(scope="module")
def legacy_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("legacy") / "legacy.db"
    generate_legacy(str(path), cases=300, seed=4, ensure_coverage=True)
    return path


@dataclass(frozen=True)
class Parent:
    party_ref: str
    values: frozenset[str]  # name, address lines and postcode as a letter would print them
    postcode: str


def _parents(ctx: Context) -> dict[str, Parent]:
    with ctx.engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM parties")).mappings().all()
    parents = {}
    for row in rows:
        party = RecipientParty.from_row(row)
        lines = address_lines(party)
        parents[party.party_ref] = Parent(
            party.party_ref, frozenset(lines), lines[-1] if lines else ""
        )
    return parents


def _personal_strings(ctx: Context) -> set[str]:
    """Every name, address line, postcode and NINO in the book (5 characters or more)."""
    with ctx.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT given_names, family_name, address_line_1, address_line_2, address_line_3,"
                " address_line_4, address_line_5, postcode, nino FROM parties"
            )
        ).all()
    found = set()
    for row in rows:
        values = [v for v in row if v]
        if row.given_names and row.family_name:
            values.append(f"{row.given_names} {row.family_name}")
        found.update(v.strip() for v in values if len(v.strip()) >= 5)
    return found


def _cases(ctx: Context) -> dict[str, tuple[str, str, bool]]:
    with ctx.engine.connect() as conn:
        return {
            r.case_ref: (r.pwc_party_ref, r.nrp_party_ref, bool(r.dv_marker))
            for r in conn.execute(
                text("SELECT case_ref, pwc_party_ref, nrp_party_ref, dv_marker FROM cases")
            )
        }


def _dump(ctx: Context, sql: str) -> str:
    with ctx.engine.connect() as conn:
        return "\n".join(repr(tuple(r)) for r in conn.execute(text(sql)))


def _leaks(texts: dict[str, str], personal: set[str]) -> Iterator[tuple[str, str]]:
    for where, body in texts.items():
        for value in personal:
            if value in body:
                yield where, value


def test_no_letter_carries_the_other_parent_and_nothing_else_carries_personal_data(
    ctx: Context, legacy_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ctx, clock = clocked(ctx)
    pull(ctx, str(legacy_file))
    assess(ctx)
    printed = built_batch(ctx, letter_type="representation")
    notified = built_batch(ctx)
    out = tmp_path / "print"
    send_batch(
        ctx, printed, PrintFileChannel(out, CONFIG), CONFIG, options=SendOptions(daily_limit=None)
    )
    fates = Fates(
        returned=0.1, permanent_failure=0.05, technical_failure=0.05, returned_after_days=2
    )
    channel = fake(tmp_path, clock, fates=fates)
    send_batch(ctx, notified, channel, CONFIG)
    later(clock, days=3)
    report = [(i, r) for i, r, _ in channel.service.returned_letters()]
    synced = sync_letters(
        ctx, channel, CONFIG, returned_report=report, options=SendOptions(settle=timedelta(0))
    )
    assert synced.changed.get("returned-letter") and synced.debts_flagged

    parents, cases = _parents(ctx), _cases(ctx)
    with ctx.engine.connect() as conn:
        outbox = {
            r.reference: r
            for r in conn.execute(
                text("SELECT reference, case_ref, recipient, party_ref FROM letters")
            )
        }
    assert all(is_reference(ref) for ref in outbox)

    # --- what each letter says: its recipient, never the other parent ------------------------
    sent: dict[str, list[str]] = {}
    for notification in channel.service.notifications():
        sent[notification.reference or ""] = [str(v) for v in notification.personalisation.values()]
    for path in out.rglob("manifest.json"):
        manifest = json.loads(path.read_text())
        for entry in manifest["files"]:
            with (path.parent / entry["file"]).open(encoding="utf-8") as handle:
                rows = list(csv.reader(handle))[1:]
            for reference, row in zip(entry["references"], rows, strict=True):
                sent[reference] = row
    assert len(sent) > 100
    dv_letters = 0
    for reference, values in sent.items():
        letter = outbox[reference]
        pwc, nrp, dv = cases[letter.case_ref]
        own, other = (pwc, nrp) if letter.recipient == "PWC" else (nrp, pwc)
        assert letter.party_ref == own
        mine, theirs = parents[own], parents[other]
        printed_lines = {v.strip() for v in values if v.strip()}
        assert mine.postcode in printed_lines
        leaked = (theirs.values - mine.values) & printed_lines
        assert not leaked, f"letter {reference} carries the other parent's details"
        if theirs.postcode != mine.postcode:
            assert not any(theirs.postcode in v for v in values)
        dv_letters += dv
    assert dv_letters > 0  # the domestic-violence cases were written to, safely

    # --- nothing else carries personal data ----------------------------------------------------
    personal = _personal_strings(ctx)
    stored = {
        "letters": _dump(
            ctx,
            "SELECT letter_id, reference, batch_id, debt_id, case_ref, purpose, recipient, status,"
            " held_reason, failure_reason, channel, notify_id, letter_date FROM letters",
        ),
        "letter_status_history": _dump(ctx, "SELECT * FROM letter_status_history"),
        "letter_batches": _dump(ctx, "SELECT * FROM letter_batches"),
        "send_quota": _dump(ctx, "SELECT * FROM send_quota"),
        "events": _dump(
            ctx,
            "SELECT e.* FROM events e JOIN stage_runs r ON r.run_id = e.run_id"
            " WHERE r.stage LIKE 'notify-%'",
        ),
        "stage_runs": _dump(ctx, "SELECT * FROM stage_runs WHERE stage LIKE 'notify-%'"),
        "debts flags": _dump(ctx, "SELECT review_reason FROM debts"),
        "log": caplog.text,
    }
    assert stored["events"] and stored["letter_status_history"]
    assert list(_leaks({"letters as sent": repr(sent)}, personal))  # the search finds data
    assert list(_leaks(stored, personal)) == []
