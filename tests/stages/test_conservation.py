"""Money is conserved across any sequence of the resolve stages' commands (hypothesis).

From a small book of debts in assorted states, hypothesis runs a random sequence of response
imports (good, bad and duplicate rows), letters (write-off notices in any status), resolves on
advancing as-of dates, caseworker decisions and referrals, ledger reversals, transfer exports
and CMS acknowledgements (accepted, rejected, repeated). After every command:

- the reconciliation balances to the penny (source = loaded + quarantined; loaded = nil +
  written off + transferred + open; ledger = written-off debts), per system and creditor;
- nothing is double-counted: each debt's ledger nets to nothing or to exactly its balance,
  and to its balance exactly when it is written off; a debt is in at most one unacknowledged
  transfer batch, in exactly one when it is ``transfer_sent``, and accepted by the CMS at most
  once, exactly when it is ``transferred``; accepted CMS items add up to the transferred pence;
- every import's counts add up to its rows.

Refusals (a decision the guards forbid, a reversal of a moved-on debt) are part of the game:
they must leave everything as it was.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, select

from csa_closure.context import Context, Settings
from csa_closure.errors import CsaClosureError
from csa_closure.stages.ledger import reverse_entry
from csa_closure.stages.resolve import resolve
from csa_closure.stages.responses import import_responses
from csa_closure.stages.review import decide, refer
from csa_closure.stages.transfer import export_transfers
from csa_closure.stages.transfer_ack import import_ack
from csa_closure.store import migrate
from csa_closure.store.engine import make_engine
from csa_closure.store.schema import debts, ledger_entries, response_imports, transfer_items
from tests.conftest import _pg_server_url, _with_search_path
from tests.support.builders import BookBuilder
from tests.support.resolve import (
    RESPONSE_HEADER,
    assert_balanced,
    final_chance_debt,
    seal_pull,
    send_notices,
    write_csv,
)

START = date(2019, 3, 31)
KINDS = (
    "awaiting_response",
    "collect_requested",
    "write_off_silent",
    "write_off_notice",
    "transfer_ready",
    "review",
    "flagged",
)
EMPLOYMENTS = ("EMPLOYED", "SELF_EMPLOYED", "BENEFITS", "UNKNOWN")
_files = itertools.count(1)


@contextmanager
def fresh_store(kind: str, tmp: Path) -> Iterator[Context]:
    """A new migrated store for one hypothesis example."""
    if kind == "sqlite":
        url, drop = f"sqlite:///{tmp / f'{uuid.uuid4().hex}.db'}", None
    else:
        server = _pg_server_url()
        assert server is not None
        schema = f"t_{uuid.uuid4().hex[:16]}"
        admin = create_engine(server)
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        url, drop = _with_search_path(server, schema), (admin, schema)
    engine = make_engine(url)
    migrate.upgrade(engine)
    try:
        yield Context(engine=engine, as_of=START, actor="prop", settings=Settings(chunk_size=3))
    finally:
        engine.dispose()
        if drop:
            admin, schema = drop
            with admin.begin() as conn:
                conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            admin.dispose()


debt_specs = st.lists(
    st.tuples(
        st.sampled_from(KINDS),
        st.integers(min_value=0, max_value=3_000_000),  # pence
        st.integers(min_value=0, max_value=90),  # days since the letter
        st.sampled_from(EMPLOYMENTS),
        st.booleans(),  # an SOS debt on the case too
    ),
    min_size=2,
    max_size=8,
)


def _build(ctx: Context, specs: list[tuple[str, int, int, str, bool]]) -> list[str]:
    book = BookBuilder(ctx)
    cases = []
    for i, (kind, pence, days, employment, sos) in enumerate(specs, start=1):
        case = book.case(f"C{i:09d}", nrp=book.party(employment=employment))
        cases.append(case)
        letter = START - timedelta(days=days)
        if kind == "awaiting_response":
            final_chance_debt(book, case, pence, letter)
        elif kind == "flagged":
            final_chance_debt(book, case, pence, letter, needs_caseworker=True)
        elif kind == "collect_requested":
            book.debt(case, "PWC", pence, state=kind, response="COLLECT")
        elif kind.startswith("write_off"):
            book.debt(
                case,
                "PWC",
                pence,
                state="write_off_pending",
                outcome=kind,
                reason="BELOW_THRESHOLD",
                rule_id="PWC-09",
            )
        elif kind == "transfer_ready":
            book.debt(case, "PWC", pence, state=kind, outcome="transfer", reason="PAYING")
        else:
            book.debt(case, "PWC", pence, state="review", review_reason="NRP_DECEASED")
        if sos:
            book.debt(
                case,
                "SOS",
                pence // 3,
                state="write_off_pending",
                outcome="write_off_silent",
                reason="SOS_DEBT",
                rule_id="SOS-05",
            )
    seal_pull(ctx)
    return cases


def _check(ctx: Context) -> None:
    assert_balanced(ctx)
    with ctx.engine.connect() as conn:
        book = {r.debt_id: r for r in conn.execute(select(debts))}
        net: dict[int, int] = {}
        for debt_id, amount in conn.execute(
            select(ledger_entries.c.debt_id, ledger_entries.c.amount_pence)
        ):
            net[debt_id] = net.get(debt_id, 0) + amount
        items = conn.execute(
            select(transfer_items.c.debt_id, transfer_items.c.status, transfer_items.c.amount_pence)
        ).all()
        imports = conn.execute(select(response_imports)).all()
    for debt_id, debt in book.items():
        ledger = net.get(debt_id, 0)
        assert ledger in (0, debt.opening_pence), debt_id
        if debt.opening_pence:
            assert (ledger == debt.opening_pence) == (debt.state == "written_off"), debt_id
        in_flight = [i for i in items if i.debt_id == debt_id and i.status == "exported"]
        accepted = [i for i in items if i.debt_id == debt_id and i.status == "accepted"]
        assert len(in_flight) == (1 if debt.state == "transfer_sent" else 0), debt_id
        assert len(accepted) == (1 if debt.state == "transferred" else 0), debt_id
    transferred = sum(d.opening_pence for d in book.values() if d.state == "transferred")
    assert sum(i.amount_pence for i in items if i.status == "accepted") == transferred
    for imp in imports:
        assert imp.accepted + imp.duplicates + imp.rejected == imp.row_count


def _responses(data: st.DataObject, ctx: Context, cases: list[str], tmp: Path) -> None:
    row = st.tuples(
        st.sampled_from([f"D{n}" for n in range(12)]),
        st.sampled_from([*cases, "C999999999", "nonsense"]),
        st.sampled_from(["PWC", "NRP", "XX"]),
        st.sampled_from(["COLLECT", "DO_NOT_COLLECT", "DISPUTE_AMOUNT"]),
        st.integers(min_value=-100, max_value=2).map(
            lambda d: (ctx.as_of + timedelta(days=d)).isoformat()
        ),
        st.sampled_from(["POST", "PHONE", "ONLINE"]),
    )
    rows = data.draw(st.lists(row, max_size=6), label="response rows")
    path = write_csv(tmp / f"responses-{next(_files)}.csv", rows, RESPONSE_HEADER)
    result = import_responses(ctx, path)
    assert result.accepted + result.duplicates + result.rejected == len(rows)


def _acknowledge(data: st.DataObject, ctx: Context, tmp: Path) -> None:
    with ctx.engine.connect() as conn:
        items = conn.execute(
            select(transfer_items.c.batch_id, transfer_items.c.case_ref, transfer_items.c.creditor)
        ).all()
    if not items:
        event("ack: nothing exported yet")
        return
    answers = st.tuples(
        st.sampled_from(items),
        st.sampled_from(["ACCEPTED", "ACCEPTED", "REJECTED"]),
        st.sampled_from([False, False, False, True]),  # now and then a batch we never sent
    )
    picked = data.draw(st.lists(answers, max_size=6), label="acks")
    rows = [
        ("TB-UNKNOWN" if unknown else item.batch_id, item.case_ref, item.creditor, status, "X")
        for item, status, unknown in picked
    ]
    path = write_csv(
        tmp / f"ack-{next(_files)}.csv",
        rows,
        ("batch_id", "case_ref", "creditor", "status", "reason"),
    )
    result = import_ack(ctx, path)
    assert result.accepted + result.duplicates + result.rejected == len(rows)


def _pick_debt(data: st.DataObject, ctx: Context, *, prefer_review: bool = False) -> Any:
    """A debt to act on: for a decision, mostly one in review (the others are refused)."""
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(debts.c.case_ref, debts.c.creditor, debts.c.state)).all()
    in_review = [r for r in rows if r.state == "review"]
    if prefer_review and in_review and data.draw(st.integers(0, 3), label="prefer review"):
        rows = in_review
    case_ref, creditor, _ = data.draw(st.sampled_from(rows), label="debt")
    return case_ref, creditor


# weighted towards the commands that move money, so most sequences reach a write-off, a
# transfer and its acknowledgement
OPERATIONS = (
    "responses",
    "responses",
    "notices",
    "resolve",
    "resolve",
    "advance",
    "decide",
    "refer",
    "reverse",
    "export",
    "export",
    "ack",
    "ack",
    "ack",
)


def _step(data: st.DataObject, ctx: Context, cases: list[str], tmp: Path) -> Context:
    operation = data.draw(st.sampled_from(OPERATIONS), label="operation")
    try:
        if operation == "responses":
            _responses(data, ctx, cases, tmp)
        elif operation == "notices":
            status = data.draw(st.sampled_from(["accepted", "held", "pending", "sending"]))
            send_notices(ctx, status=status)
        elif operation == "resolve":
            resolve(ctx)
        elif operation == "advance":
            return ctx.on(ctx.as_of + timedelta(days=data.draw(st.integers(1, 40))))
        elif operation == "decide":
            case_ref, creditor = _pick_debt(data, ctx, prefer_review=True)
            outcome = data.draw(
                st.sampled_from(["write_off_silent", "write_off_notice", "transfer", "nil"])
            )
            decide(ctx, case_ref, creditor, outcome, "PROPERTY_TEST")
        elif operation == "refer":
            case_ref, creditor = _pick_debt(data, ctx)
            refer(ctx, case_ref, creditor, "PROPERTY_TEST")
        elif operation == "reverse":
            with ctx.engine.connect() as conn:
                entries = conn.execute(select(ledger_entries.c.entry_id)).scalars().all()
            if not entries:
                event("reverse: nothing written off yet")
                return ctx
            reverse_entry(ctx, data.draw(st.sampled_from(entries)), "PROPERTY_TEST")
        elif operation == "export":
            export_transfers(ctx, tmp / "packages", batch_size=data.draw(st.integers(1, 4)))
        else:
            _acknowledge(data, ctx, tmp)
    except CsaClosureError as refused:
        # a refusal is fine as long as it names what is wrong; _check proves nothing moved
        assert str(refused)
        event(f"{operation}: refused")
    else:
        event(f"{operation}: done")
    return ctx


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(specs=debt_specs, data=st.data())
def test_money_is_conserved_across_any_sequence_of_commands(
    kind: str,
    tmp_path_factory: pytest.TempPathFactory,
    specs: list[tuple[str, int, int, str, bool]],
    data: st.DataObject,
) -> None:
    tmp = tmp_path_factory.mktemp("conservation")
    with fresh_store(kind, tmp) as ctx:
        cases = _build(ctx, specs)
        _check(ctx)
        for _ in range(data.draw(st.integers(min_value=1, max_value=25), label="steps")):
            ctx = _step(data, ctx, cases, tmp)
            _check(ctx)
        with ctx.engine.connect() as conn:
            for state in sorted(set(conn.execute(select(debts.c.state)).scalars())):
                event(f"a debt ended {state}")
