"""Simulated caseworker decisions: the demo's fixed choice for each debt in the queue.

Real caseworkers look at each case; the demo (and an operator trying the toolkit by hand)
needs a fixed, visible choice so the programme can finish. The file has the columns of
``review decide-file`` (case_ref, creditor, outcome, reason) and nothing else: no personal
data is read to make it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from csa_closure.context import Context
from csa_closure.domain.states import CLOSED_STATES
from csa_closure.serialise import JsonFields
from csa_closure.stages.intake import write_owner_only
from csa_closure.stages.review import DECISIONS_FILE_COLUMNS, CaseworkerDecision, list_review

# What the simulated caseworkers decide, by why the debt is in front of them (the first key
# found in the review reason, else "*").
CASEWORKER_CHOICES: dict[str, tuple[str, str]] = {
    "NRP_DECEASED": ("write_off_notice", "ESTATE_NOT_PURSUED"),
    "NRP_DISPUTE": ("transfer", "DISPUTE_REVIEWED"),
    "CMS_REJECTED": ("write_off_notice", "CMS_REJECTED_NOT_PURSUED"),
    "*": ("write_off_notice", "PWC_UNTRACEABLE"),  # letters that could not reach the PWC
}
_CLOSED = frozenset(s.value for s in CLOSED_STATES)


def caseworker_decisions(ctx: Context) -> list[CaseworkerDecision]:
    """The simulated decision for every open debt waiting for a caseworker. Written-off debts
    whose notice came back are listed for a person to see; they are closed and block nothing,
    so they get no decision."""
    decisions = []
    for item in list_review(ctx):
        if item.state in _CLOSED:
            continue
        why = item.review_reason or item.reason or ""
        outcome, reason = next(
            (choice for key, choice in CASEWORKER_CHOICES.items() if key in why),
            CASEWORKER_CHOICES["*"],
        )
        decisions.append(CaseworkerDecision(item.case_ref, item.creditor, outcome, reason))
    return decisions


@dataclass
class DecisionsFile(JsonFields):
    path: str
    rows: int
    by_outcome: dict[str, int]


def write_decisions_file(ctx: Context, path: Path) -> DecisionsFile:
    """Write the simulated decisions (owner-only), ready for ``review decide-file``."""
    decisions = caseworker_decisions(ctx)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(DECISIONS_FILE_COLUMNS)
    by_outcome: dict[str, int] = {}
    for d in decisions:
        writer.writerow([d.case_ref, d.creditor, d.outcome, d.reason])
        by_outcome[d.outcome] = by_outcome.get(d.outcome, 0) + 1
    write_owner_only(Path(path), buffer.getvalue().encode("utf-8"))
    return DecisionsFile(str(path), len(decisions), dict(sorted(by_outcome.items())))
