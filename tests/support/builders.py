"""Build a small working store directly, in any state, for a stage's tests.

Stages are tested on the states they act on without running every earlier stage:

    book = BookBuilder(ctx)
    case = book.case("C000000001", pwc=book.party(), nrp=book.party(employment="EMPLOYED"))
    debt_id = book.debt(case, "PWC", 250_000, state="awaiting_response",
                        letter_date=date(2019, 1, 2), response_deadline=date(2019, 3, 3))
    book.payment(case, date(2019, 1, 15), 5_000)

Every row it writes goes through the same tables the pull writes; a ``seed`` stage run owns
them. Parties get synthetic names and a usable address unless told otherwise.
"""

from __future__ import annotations

import itertools
from datetime import date
from typing import Any

from sqlalchemy import insert, select

from csa_closure.context import Context
from csa_closure.store.runs import Run, start_run
from csa_closure.store.schema import cases, debts, parties, payment_days


class BookBuilder:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._run: Run | None = None
        self._numbers = itertools.count(1)

    @property
    def run(self) -> Run:
        if self._run is None:
            self._run = start_run(self.ctx, "seed", {"by": "tests.support.builders"})
        return self._run

    def party(self, **values: Any) -> str:
        """A party (default: alive, employed, NINO, usable address); returns its party_ref."""
        n = next(self._numbers)
        row = {
            "party_ref": f"CS2:{900000 + n}",
            "source_system": "CS2",
            "family_name": f"Family{n}",
            "given_names": f"Given{n}",
            "birth_date": date(1970, 1, 1),
            "nino": f"AB{n:06d}C",
            "address_line_1": f"{n} Test Street",
            "address_line_2": "Testville",
            "address_line_3": None,
            "address_line_4": None,
            "address_line_5": None,
            "postcode": "SW1A 1AA",
            "address_verified_on": date(2018, 6, 1),
            "deceased_on": None,
            "employment": "EMPLOYED",
            "source_fingerprint": f"seed-{n}",
            "pulled_run_id": self.run.run_id,
        }
        row.update(values)
        with self.ctx.engine.begin() as conn:
            conn.execute(insert(parties), [row])
        return str(row["party_ref"])

    def case(
        self,
        case_ref: str | None = None,
        *,
        pwc: str | None = None,
        nrp: str | None = None,
        **values: Any,
    ) -> str:
        """A case (default: CS2, 2003 scheme, effective 2005, liability ended, no flags)."""
        n = next(self._numbers)
        case_ref = case_ref or f"S{n:09d}"
        system = "CSCS" if case_ref.startswith("C") else "CS2"
        row = {
            "case_ref": case_ref,
            "source_system": system,
            "source_case_key": case_ref if system == "CSCS" else str(n),
            "scheme": "1993" if system == "CSCS" else "2003",
            "effective_date": date(2005, 6, 1),
            "liability_end_date": date(2012, 6, 1),
            "pwc_party_ref": pwc or self.party(),
            "nrp_party_ref": nrp or self.party(),
            "dv_marker": False,
            "stop_acting": False,
            "enforcement_code": None,
            "source_fingerprint": f"seed-{case_ref}",
            "pulled_run_id": self.run.run_id,
        }
        row.update(values)
        with self.ctx.engine.begin() as conn:
            conn.execute(insert(cases), [row])
        return case_ref

    def debt(
        self, case_ref: str, creditor: str, pence: int, *, state: str = "pulled", **values: Any
    ) -> int:
        """A debt on ``case_ref`` in ``state``; any other debts column can be given."""
        with self.ctx.engine.begin() as conn:
            system = conn.execute(
                select(cases.c.source_system).where(cases.c.case_ref == case_ref)
            ).scalar_one()
            row = {
                "case_ref": case_ref,
                "source_system": system,
                "creditor": creditor,
                "opening_pence": pence,
                "source_pence": pence,
                "state": state,
                "needs_tracing": False,
                "needs_caseworker": False,
                "updated_run_id": self.run.run_id,
            }
            row.update(values)
            return int(conn.execute(insert(debts).returning(debts.c.debt_id), [row]).scalar_one())

    def payment(self, case_ref: str, paid_on: date, pence: int) -> None:
        with self.ctx.engine.begin() as conn:
            conn.execute(
                insert(payment_days),
                [
                    {
                        "case_ref": case_ref,
                        "paid_on": paid_on,
                        "payment_count": 1,
                        "positive_count": 1 if pence > 0 else 0,
                        "amount_pence": pence,
                    }
                ],
            )
