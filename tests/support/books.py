"""Small, deterministic books for the report, archive and decommission tests, built through
the real moves (events written by ``move_debts``) on a fixed clock.

``mid_book``: a programme half-way: decided, letters out, a response, write-offs, a reversal,
a transfer sent and one acknowledged, something held in quarantine.
``closed_book``: every debt closed, every letter final, quarantine released, balanced; each
``defect`` leaves exactly one thing undone, for the decommission gate's tests.

Every parent has distinctive personal data (``PERSONAL_TOKENS``) so tests can scan outputs
for it. The tests in this module check the books themselves.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from typing import Any

import polars as pl
from sqlalchemy import insert, select

from csa_closure.context import Context
from csa_closure.domain.states import CREDITORS
from csa_closure.reconcile import reconcile
from csa_closure.store.debts import move_debts
from csa_closure.store.runs import stage_run
from csa_closure.store.schema import (
    debts,
    import_rejections,
    ledger_entries,
    letter_batches,
    letter_status_history,
    letters,
    quarantine,
    response_imports,
    responses,
    rule_sets,
    transfer_batches,
    transfer_items,
)
from tests.conftest import SteppingClock
from tests.support.builders import BookBuilder

FIXED_CLOCK_START = datetime(2019, 3, 31, 9, 0, tzinfo=UTC)
RULESET = "5e7f" * 16
DECIDED_ON = date(2019, 3, 1)

# Personal data no report or default archive may ever show.
PERSONAL_TOKENS = (
    "Quixotica",
    "Marchbanks-Ffoulkes",
    "Zebedee",
    "Pemberton Gardens",
    "Little Snoring",
    "ZZ9 9QX",
    "QQ901234",
    "1931-02-17",
)


def fixed(ctx: Context) -> Context:
    """``ctx`` on a clock that stands still, so recorded instants are the same every run."""
    return dataclasses.replace(ctx, clock=SteppingClock(FIXED_CLOCK_START))


class Book:
    def __init__(self, ctx: Context) -> None:
        self.ctx = fixed(ctx)
        self.builder = BookBuilder(self.ctx)
        self.ids: dict[str, int] = {}  # "S000000002/PWC" -> debt_id

    # --- parties, cases, debts ------------------------------------------------------------

    def parent(self, n: int) -> str:
        return self.builder.party(
            family_name=f"Marchbanks-Ffoulkes{n}",
            given_names=f"Zebedee Quixotica{n}",
            birth_date=date(1931, 2, 17),
            nino=f"QQ901234{n % 10}",
            address_line_1=f"{n} Pemberton Gardens",
            address_line_2="Little Snoring",
            postcode="ZZ9 9QX",
        )

    def debts_of(self, case_ref: str, **by_creditor: int) -> None:
        n = len(self.ids) + 1
        self.builder.case(case_ref, pwc=self.parent(2 * n), nrp=self.parent(2 * n + 1))
        for creditor, pence in by_creditor.items():
            self.ids[f"{case_ref}/{creditor}"] = self.builder.debt(case_ref, creditor, pence)

    # --- moves ------------------------------------------------------------------------------

    def move(
        self,
        day: date,
        stage: str,
        event_type: str,
        keys: list[str],
        frm: str,
        to: str,
        **columns: Any,
    ) -> int:
        """Move the debts named ``keys`` on ``day`` (an as-of date), through ``move_debts``."""
        frame = pl.DataFrame(
            {
                "debt_id": [self.ids[k] for k in keys],
                "case_ref": [k.split("/")[0] for k in keys],
                "from_state": [frm] * len(keys),
                "to_state": [to] * len(keys),
            }
        )
        set_columns = list(columns)
        if columns:
            frame = frame.with_columns(pl.lit(v).alias(k) for k, v in columns.items())
            decision = [k for k in ("outcome", "reason", "rule_id", "ruleset_hash") if k in columns]
            if decision:
                frame = frame.with_columns(pl.struct(decision).alias("detail"))
        with stage_run(self.ctx.on(day), stage, {}) as run:
            with run.chunk() as conn:
                move_debts(conn, run, frame, event_type=event_type, set_columns=set_columns)
            return run.run_id

    def decide(self, keys: list[str], to: str, outcome: str, reason: str, rule: str | None) -> None:
        self.move(
            DECIDED_ON,
            "assess",
            "debt.decided",
            keys,
            "pulled",
            to,
            outcome=outcome,
            reason=reason,
            rule_id=rule,
            ruleset_hash=RULESET,
        )

    @staticmethod
    def _ledger(conn: Any, of: Any, run_id: int, day: date, **entry: Any) -> None:
        conn.execute(
            insert(ledger_entries).values(
                debt_id=of.debt_id,
                case_ref=of.case_ref,
                source_system=of.source_system,
                creditor=of.creditor,
                run_id=run_id,
                actor="tester",
                as_of=day,
                recorded_at=FIXED_CLOCK_START,
                **entry,
            )
        )

    def write_off(self, day: date, keys: list[str], reason: str) -> None:
        run_id = self.move(
            day, "resolve", "debt.written_off", keys, "write_off_pending", "written_off"
        )
        with self.ctx.engine.begin() as conn:
            for key in keys:
                d = conn.execute(select(debts).where(debts.c.debt_id == self.ids[key])).one()
                self._ledger(
                    conn,
                    d,
                    run_id,
                    day,
                    entry_type="write_off",
                    amount_pence=d.opening_pence,
                    reason=reason,
                    rule_id=d.rule_id,
                    ruleset_hash=d.ruleset_hash,
                )

    def reverse(self, day: date, key: str) -> None:
        run_id = self.move(day, "ledger", "debt.write_off_reversed", [key], "written_off", "review")
        with self.ctx.engine.begin() as conn:
            entry = conn.execute(
                select(ledger_entries).where(ledger_entries.c.debt_id == self.ids[key])
            ).one()
            self._ledger(
                conn,
                entry,
                run_id,
                day,
                entry_type="reversal",
                amount_pence=-entry.amount_pence,
                reason="COMPLAINT_UPHELD",
                reverses_entry_id=entry.entry_id,
            )

    def transfer(self, day: date, keys: list[str], accepted: bool) -> None:
        run_id = self.move(
            day, "transfer", "debt.transfer_sent", keys, "transfer_ready", "transfer_sent"
        )
        with self.ctx.engine.begin() as conn:
            rows = conn.execute(
                select(debts).where(debts.c.debt_id.in_([self.ids[k] for k in keys]))
            ).all()
            batch = f"TB-{run_id:04d}"
            conn.execute(
                insert(transfer_batches).values(
                    batch_id=batch,
                    run_id=run_id,
                    as_of=day,
                    created_at=FIXED_CLOCK_START,
                    row_count=len(rows),
                    total_pence=sum(r.opening_pence for r in rows),
                    manifest_sha256="0" * 64,
                    status="acknowledged" if accepted else "exported",
                )
            )
            conn.execute(
                insert(transfer_items),
                [
                    {
                        "batch_id": batch,
                        "debt_id": r.debt_id,
                        "case_ref": r.case_ref,
                        "creditor": r.creditor,
                        "amount_pence": r.opening_pence,
                        "transfer_reason": r.reason,
                        "status": "accepted" if accepted else "exported",
                    }
                    for r in rows
                ],
            )
        if accepted:
            self.move(day, "transfer", "debt.transferred", keys, "transfer_sent", "transferred")

    # --- letters, responses, quarantine, the pull's control totals ---------------------------

    def letter(self, key: str, purpose: str, recipient: str, status: str, day: date) -> None:
        case_ref = key.split("/")[0]
        with self.ctx.engine.begin() as conn:
            batch = conn.execute(
                insert(letter_batches)
                .values(
                    letter_type=purpose,
                    status="sent",
                    letter_count=1,
                    as_of=day,
                    built_by="builder",
                    built_at=FIXED_CLOCK_START,
                    approved_by="checker",
                    approved_at=FIXED_CLOCK_START,
                    channel="govuk-notify",
                )
                .returning(letter_batches.c.batch_id)
            ).scalar_one()
            letter_id = conn.execute(
                insert(letters)
                .values(
                    reference=f"L-{batch:05d}",
                    batch_id=batch,
                    debt_id=self.ids[key],
                    case_ref=case_ref,
                    purpose=purpose,
                    recipient=recipient,
                    party_ref=self._party_of(conn, case_ref, recipient),
                    status=status,
                    channel="govuk-notify",
                    letter_date=day,
                    attempts=1,
                    created_at=FIXED_CLOCK_START,
                )
                .returning(letters.c.letter_id)
            ).scalar_one()
            conn.execute(
                insert(letter_status_history).values(
                    letter_id=letter_id,
                    status=status,
                    recorded_at=FIXED_CLOCK_START,
                    source="fake",
                )
            )

    @staticmethod
    def _party_of(conn: Any, case_ref: str, recipient: str) -> str:
        from csa_closure.store.schema import cases

        column = cases.c.pwc_party_ref if recipient == "PWC" else cases.c.nrp_party_ref
        return str(conn.execute(select(column).where(cases.c.case_ref == case_ref)).scalar_one())

    def response(self, key: str, answer: str, received_on: date) -> None:
        with self.ctx.engine.begin() as conn:
            import_id = conn.execute(
                insert(response_imports)
                .values(
                    kind="responses",
                    file_name="post-2019-03-25.csv",
                    file_sha256="1" * 64,
                    row_count=3,
                    accepted=1,
                    duplicates=1,
                    rejected=1,
                    imported_at=FIXED_CLOCK_START,
                )
                .returning(response_imports.c.import_id)
            ).scalar_one()
            conn.execute(
                insert(responses).values(
                    document_id="DOC-0001",
                    case_ref=key.split("/")[0],
                    debt_id=self.ids[key],
                    party="PWC",
                    response=answer,
                    received_on=received_on,
                    channel="POST",
                    import_id=import_id,
                    recorded_by="tester",
                    recorded_at=FIXED_CLOCK_START,
                )
            )
            conn.execute(
                insert(import_rejections).values(
                    import_id=import_id,
                    row_number=3,
                    document_id="DOC-0003",
                    case_ref="S999999999",
                    reason_code="UNKNOWN_CASE",
                )
            )

    def quarantined(self, case_ref: str, pwc: int, sos: int, status: str = "held") -> None:
        with self.ctx.engine.begin() as conn:
            conn.execute(
                insert(quarantine).values(
                    source_system="CSCS" if case_ref.startswith("C") else "CS2",
                    case_ref=case_ref,
                    item_kind="case",
                    status=status,
                    pwc_pence=pwc,
                    sos_pence=sos,
                    row_count=3,
                    reasons=[{"code": "BAD_DATE", "table": "cscs_case", "field": "eff_date"}],
                    first_run_id=self.builder.run.run_id,
                    last_run_id=self.builder.run.run_id,
                )
            )

    def pull_totals(self, *, off_by_pence: int = 0) -> None:
        """A completed pull whose control totals are exactly what the store holds."""
        held_and_loaded = reconcile(self.ctx).systems  # no pull yet: source 0, the rest real
        totals = {
            system: {
                creditor: {
                    "source_pence": c.loaded_pence
                    + c.quarantined_pence
                    + (off_by_pence if creditor in CREDITORS else 0),
                    "drift_pence": 0,
                }
                for creditor, c in creditors.items()
            }
            for system, creditors in held_and_loaded.items()
        }
        with stage_run(self.ctx.on(date(2019, 2, 28)), "pull", {}) as run:
            run.control_totals.update(totals)
            run.counts.update({"cases_loaded": len({k.split("/")[0] for k in self.ids})})
        with self.ctx.engine.begin() as conn:
            conn.execute(
                insert(rule_sets).values(
                    ruleset_hash=RULESET,
                    name="default",
                    canonical='{"rules": "canonical form"}',
                    first_seen_at=FIXED_CLOCK_START,
                )
            )


def mid_book(ctx: Context) -> Book:
    """The programme half-way through, as of 31 March 2019."""
    b = Book(ctx)
    b.debts_of("C000000001", PWC=0, SOS=30_000)
    b.debts_of("S000000002", PWC=250_000, SOS=10_000)
    b.debts_of("S000000003", PWC=800_000, SOS=40_000)
    b.debts_of("S000000004", PWC=120_000)
    b.debts_of("S000000005", PWC=6_000)
    b.debts_of("C000000006", PWC=75_000, SOS=20_000)
    b.debts_of("S000000007", PWC=330_000)
    b.quarantined("C000000099", 12_345, 678)
    b.pull_totals()

    b.decide(["C000000001/PWC"], "closed", "nil", "NIL_BALANCE", "pwc-01-nil")
    b.decide(
        ["C000000001/SOS", "S000000002/SOS", "C000000006/SOS"],
        "write_off_pending",
        "write_off_silent",
        "SOS_DEBT",
        "sos-05-write-off",
    )
    b.decide(
        ["S000000002/PWC", "S000000004/PWC", "S000000007/PWC"],
        "awaiting_letter",
        "representation",
        "FINAL_CHANCE",
        "pwc-10-final-chance",
    )
    b.decide(
        ["S000000003/PWC", "S000000003/SOS"],
        "transfer_ready",
        "transfer",
        "ONGOING_LIABILITY",
        "pwc-02-ongoing",
    )
    b.decide(["C000000006/PWC"], "review", "manual_review", "NRP_DECEASED", "pwc-07-nrp-dead")

    sent = date(2019, 3, 4)
    b.move(
        sent,
        "notify",
        "debt.final_chance_sent",
        ["S000000002/PWC", "S000000007/PWC"],
        "awaiting_letter",
        "awaiting_response",
        letter_date=sent,
        response_deadline=date(2019, 4, 5),
    )
    b.letter("S000000002/PWC", "representation", "PWC", "received", sent)
    b.letter("S000000007/PWC", "representation", "PWC", "received", sent)
    b.letter("S000000004/PWC", "representation", "PWC", "pending", date(2019, 3, 30))
    b.write_off(sent, ["C000000001/SOS", "S000000002/SOS"], "SOS_DEBT")
    b.write_off(date(2019, 3, 20), ["C000000006/SOS"], "SOS_DEBT")
    b.transfer(date(2019, 3, 20), ["S000000003/SOS"], accepted=True)
    b.transfer(date(2019, 3, 22), ["S000000003/PWC"], accepted=False)

    b.response("S000000007/PWC", "COLLECT", date(2019, 3, 25))
    b.move(
        date(2019, 3, 25),
        "responses",
        "debt.collect_requested",
        ["S000000007/PWC"],
        "awaiting_response",
        "collect_requested",
        response="COLLECT",
        response_received_on=date(2019, 3, 25),
    )
    b.reverse(date(2019, 3, 28), "C000000006/SOS")
    b.move(
        date(2019, 3, 29),
        "review",
        "debt.reviewed",
        ["C000000006/PWC"],
        "review",
        "write_off_pending",
        outcome="write_off_notice",
        reason="NRP_DECEASED",
        rule_id=None,
        ruleset_hash=None,
    )
    b.letter("C000000006/PWC", "write_off_notice", "PWC", "accepted", date(2019, 3, 29))
    return b


DEFECTS = ("open_debt", "unbalanced", "letter_not_final", "quarantine_held")


def closed_book(ctx: Context, defect: str | None = None) -> Book:
    """Every debt closed and everything accounted for; ``defect`` leaves one thing undone."""
    assert defect is None or defect in DEFECTS
    b = Book(ctx)
    b.debts_of("C000000001", PWC=0, SOS=30_000)
    b.debts_of("S000000002", PWC=250_000)
    b.debts_of("S000000003", PWC=800_000)
    b.quarantined("C000000098", 5_000, 0, status="released")
    if defect == "quarantine_held":
        b.quarantined("C000000099", 12_345, 678)
    if defect == "open_debt":
        b.debts_of("S000000004", PWC=99_000)
    b.pull_totals(off_by_pence=1 if defect == "unbalanced" else 0)

    b.decide(["C000000001/PWC"], "closed", "nil", "NIL_BALANCE", "pwc-01-nil")
    b.decide(["C000000001/SOS"], "write_off_pending", "write_off_silent", "SOS_DEBT", "sos-05")
    b.decide(["S000000002/PWC"], "awaiting_letter", "representation", "FINAL_CHANCE", "pwc-10")
    b.decide(["S000000003/PWC"], "transfer_ready", "transfer", "PAYING", "pwc-03-paying")
    if defect == "open_debt":
        b.decide(["S000000004/PWC"], "awaiting_letter", "representation", "FINAL_CHANCE", "pwc-10")
    sent = date(2019, 1, 2)
    b.move(
        sent,
        "notify",
        "debt.final_chance_sent",
        ["S000000002/PWC"],
        "awaiting_letter",
        "awaiting_response",
    )
    b.letter("S000000002/PWC", "representation", "PWC", "received", sent)
    expired = date(2019, 3, 5)
    b.move(
        expired,
        "responses",
        "debt.expired",
        ["S000000002/PWC"],
        "awaiting_response",
        "write_off_pending",
    )
    b.letter("S000000002/PWC", "write_off_notice", "PWC", "received", expired)
    if defect == "letter_not_final":
        b.letter("S000000002/PWC", "write_off_notice_nrp", "NRP", "accepted", expired)
    b.write_off(date(2019, 3, 6), ["C000000001/SOS", "S000000002/PWC"], "NO_RESPONSE")
    b.transfer(date(2019, 3, 20), ["S000000003/PWC"], accepted=True)
    return b


# --- the books themselves -----------------------------------------------------------------
