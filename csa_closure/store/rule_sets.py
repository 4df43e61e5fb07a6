"""The one writer of ``rule_sets``: the canonical text of every rule set a run has used.

``assess`` and ``resolve`` both register the rule set they decide with, so a debt's
``ruleset_hash`` always names a row here; a rule set seen before is left as first recorded.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Connection

from csa_closure.store.dialect import insert_ignoring_conflicts
from csa_closure.store.schema import rule_sets


def register_rule_set(
    conn: Connection,
    *,
    ruleset_hash: str,
    name: str,
    canonical: str,
    first_seen_at: datetime,
    first_run_id: int,
) -> None:
    """Record the rule set unless its hash is already recorded."""
    conn.execute(
        insert_ignoring_conflicts(conn, rule_sets).values(
            ruleset_hash=ruleset_hash,
            name=name,
            canonical=canonical,
            first_seen_at=first_seen_at,
            first_run_id=first_run_id,
        )
    )
