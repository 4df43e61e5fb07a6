"""The working store: SQLAlchemy Core tables for every stage.

Conventions:
- money is integer pence in BIGINT columns (``Pence``); never floats;
- dates are ``Date`` (calendar facts: effective dates, as-of dates, deadlines);
  instants are timezone-aware ``DateTime`` in UTC (when a row was written);
- personal data (names, dates of birth, NINOs, addresses) lives only in ``parties``;
  every other table refers to a party by ``party_ref`` and carries no personal data;
- ``events`` and ``ledger_entries`` are append-only (enforced by triggers in the migration).

The Alembic migrations under ``store/migrations`` must create exactly these tables;
``tests/store/test_store.py`` (test_migrations_create_exactly_the_schema) compares them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

from csa_closure.domain.states import DebtState
from csa_closure.store.dialect import impl_for

# SQLite only makes an auto-incrementing alias of the rowid for "INTEGER PRIMARY KEY";
# PostgreSQL gets a BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")
Pence = BigInteger

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(TypeDecorator[datetime]):
    """An instant, always in UTC. SQLite keeps no zone, so the zone is put back on reading;
    PostgreSQL keeps it. Either way the code sees aware UTC datetimes."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("instants must be timezone-aware (UTC)")
        return impl_for(dialect).bind_instant(value.astimezone(UTC))

    def process_result_value(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _ts(name: str, nullable: bool = True) -> Column:
    return Column(name, UtcDateTime(), nullable=nullable)


# --- runs, events, leases -------------------------------------------------------------

stage_runs = Table(
    "stage_runs",
    metadata,
    Column("run_id", BigId, primary_key=True, autoincrement=True),
    Column("stage", String(32), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("host", String(128), nullable=False),
    _ts("started_at", nullable=False),
    _ts("finished_at"),
    Column("as_of", Date, nullable=False),
    # running|completed|failed|unbalanced|interrupted|abandoned|refused (see store/runs.py)
    Column("status", String(16), nullable=False),
    Column("parameters", JSON, nullable=False),
    Column("counts", JSON),
    Column("control_totals", JSON),
    Column("error", Text),  # never personal data
    Column("log_file", Text),  # the JSON-lines log the run wrote to (--log-file), if any
    Index(None, "stage", "status"),
)

events = Table(
    "events",
    metadata,
    Column("event_id", BigId, primary_key=True, autoincrement=True),
    Column("run_id", ForeignKey("stage_runs.run_id")),
    _ts("occurred_at", nullable=False),
    Column("as_of", Date, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("event_type", String(48), nullable=False),
    Column("case_ref", String(32)),  # quarantined orphan rows carry e.g. "CS2#12345"
    Column("debt_id", BigInteger),
    Column("entity", String(64)),  # e.g. "letter:42", "batch:7", "lease:stage:pull"
    Column("from_state", String(24)),
    Column("to_state", String(24)),
    Column("detail", JSON),  # never personal data
    Index(None, "case_ref"),
    Index(None, "debt_id"),
    Index(None, "event_type"),
)

leases = Table(
    "leases",
    metadata,
    Column("name", String(128), primary_key=True),  # "stage:pull", "letter_batch:7"
    Column("token", String(36)),  # NULL when free
    Column("holder", String(200)),  # actor@host pid
    Column("run_id", BigInteger),
    _ts("acquired_at"),
    _ts("heartbeat_at"),
    _ts("expires_at"),
)

# --- the pulled book ------------------------------------------------------------------

parties = Table(
    "parties",
    metadata,
    # "CSCS:P123456789" or "CS2:123": the legacy key, qualified by system. Not personal data.
    Column("party_ref", String(32), primary_key=True),
    Column("source_system", String(4), nullable=False),
    # --- personal data: only here -------------------------------------------------
    Column("family_name", String(200)),
    Column("given_names", String(200)),
    Column("birth_date", Date),
    Column("nino", String(16)),
    Column("address_line_1", String(200)),
    Column("address_line_2", String(200)),
    Column("address_line_3", String(200)),
    Column("address_line_4", String(200)),
    Column("address_line_5", String(200)),
    Column("postcode", String(16)),
    # --- facts the policy needs ----------------------------------------------------
    Column("address_verified_on", Date),
    Column("deceased_on", Date),
    Column("employment", String(16), nullable=False),  # EMPLOYED|SELF_EMPLOYED|BENEFITS|UNKNOWN
    Column("source_fingerprint", String(64), nullable=False),
    Column("pulled_run_id", ForeignKey("stage_runs.run_id"), nullable=False),
)
# A party's personal data, in the table's order: what explain redacts and a CMS package carries.
PERSONAL_DATA_COLUMNS = (
    "family_name",
    "given_names",
    "birth_date",
    "nino",
    "address_line_1",
    "address_line_2",
    "address_line_3",
    "address_line_4",
    "address_line_5",
    "postcode",
)

cases = Table(
    "cases",
    metadata,
    Column("case_ref", String(16), primary_key=True),  # C + 9 digits (CSCS), S + 9 (CS2)
    Column("source_system", String(4), nullable=False),  # CSCS|CS2
    Column("source_case_key", String(32), nullable=False),  # CSCS case_no / CS2 case_id
    Column("scheme", String(4), nullable=False),  # 1993|2003
    Column("effective_date", Date, nullable=False),
    Column("liability_end_date", Date),
    Column("pwc_party_ref", ForeignKey("parties.party_ref"), nullable=False),
    Column("nrp_party_ref", ForeignKey("parties.party_ref"), nullable=False),
    Column("dv_marker", Boolean, nullable=False),
    Column("stop_acting", Boolean, nullable=False),
    Column("enforcement_code", String(16)),  # as recorded by the system; NULL = none
    Column("source_fingerprint", String(64), nullable=False),
    Column("pulled_run_id", ForeignKey("stage_runs.run_id"), nullable=False),
    Index(None, "source_system"),
)

# One row per case and day with payments: enough to answer "paying" for any as-of date.
payment_days = Table(
    "payment_days",
    metadata,
    Column("case_ref", ForeignKey("cases.case_ref"), primary_key=True),
    Column("paid_on", Date, primary_key=True),
    Column("payment_count", Integer, nullable=False),
    Column("positive_count", Integer, nullable=False),  # payments of more than zero that day
    Column("amount_pence", Pence, nullable=False),
)

# debts.state holds only the state machine's states (migration 0005 added it to older stores)
DEBT_STATE_CHECK = "state IN (" + ", ".join(f"'{state.value}'" for state in DebtState) + ")"

debts = Table(
    "debts",
    metadata,
    Column("debt_id", BigId, primary_key=True, autoincrement=True),
    Column("case_ref", ForeignKey("cases.case_ref"), nullable=False),
    Column("source_system", String(4), nullable=False),
    Column("creditor", String(3), nullable=False),  # PWC|SOS
    Column("opening_pence", Pence, nullable=False),  # balance as pulled; never changes
    Column("source_pence", Pence, nullable=False),  # balance at source when last pulled
    Column("state", String(24), nullable=False),  # see csa_closure.domain.states
    # the current decision (its history is in events)
    Column("outcome", String(24)),
    Column("reason", String(32)),
    Column("rule_id", String(64)),
    Column("ruleset_hash", String(64)),
    Column("decided_run_id", ForeignKey("stage_runs.run_id")),
    Column("decided_by", String(64)),
    Column("decided_as_of", Date),
    # the final chance
    Column("letter_date", Date),
    Column("response_deadline", Date),
    Column("reminder_due", Date),
    Column("response", String(16)),  # COLLECT|DO_NOT_COLLECT
    Column("response_received_on", Date),
    # flags for people
    Column("needs_tracing", Boolean, nullable=False, default=False),
    Column("needs_caseworker", Boolean, nullable=False, default=False),
    Column("review_reason", String(64)),
    Column("updated_run_id", ForeignKey("stage_runs.run_id")),
    UniqueConstraint("case_ref", "creditor"),
    CheckConstraint("creditor IN ('PWC', 'SOS')", name="creditor"),
    CheckConstraint(DEBT_STATE_CHECK, name="state"),
    Index(None, "state"),
    Index(None, "response_deadline"),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("quarantine_id", BigId, primary_key=True, autoincrement=True),
    Column("source_system", String(4), nullable=False),
    # the case reference the held rows carry; for CS2 orphan rows, "CS2#<case_id>"
    Column("case_ref", String(32), nullable=False),
    Column("item_kind", String(16), nullable=False),  # case|orphan_debt|orphan_payment
    Column("status", String(12), nullable=False),  # held|released
    Column("pwc_pence", Pence, nullable=False),  # pence of the held rows, per creditor
    Column("sos_pence", Pence, nullable=False),
    # pence of held debt rows whose creditor cannot be read (reconciled as "UNREADABLE")
    Column("unreadable_pence", Pence, nullable=False, server_default="0"),
    Column("row_count", Integer, nullable=False),  # source rows held in this item
    Column("reasons", JSON, nullable=False),  # [{"code", "table", "field", "detail"}], no PII
    Column("first_run_id", ForeignKey("stage_runs.run_id"), nullable=False),
    Column("last_run_id", ForeignKey("stage_runs.run_id"), nullable=False),
    Column("released_run_id", ForeignKey("stage_runs.run_id")),
    UniqueConstraint("source_system", "case_ref", "item_kind"),
    Index(None, "status"),
)

# --- policy ---------------------------------------------------------------------------

rule_sets = Table(
    "rule_sets",
    metadata,
    Column("ruleset_hash", String(64), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("canonical", Text, nullable=False),  # the canonical JSON the hash is taken over
    _ts("first_seen_at", nullable=False),
    Column("first_run_id", ForeignKey("stage_runs.run_id")),
)

# --- letters --------------------------------------------------------------------------

letter_batches = Table(
    "letter_batches",
    metadata,
    Column("batch_id", BigId, primary_key=True, autoincrement=True),
    Column("letter_type", String(32)),  # NULL = every type due
    Column("status", String(16), nullable=False),  # built|approved|sending|sent|stopped
    Column("letter_count", Integer, nullable=False),
    Column("as_of", Date, nullable=False),
    Column("built_by", String(64), nullable=False),
    _ts("built_at", nullable=False),
    Column("built_run_id", ForeignKey("stage_runs.run_id")),
    Column("approved_by", String(64)),
    _ts("approved_at"),
    Column("channel", String(16)),  # govuk-notify|print-file
    _ts("sent_at"),
    Column("stop_reason", String(200)),  # why the last send stopped early; never personal data
    Column("letters_config_sha256", String(64)),  # the letters configuration it is sent with
)

letters = Table(
    "letters",
    metadata,
    Column("letter_id", BigId, primary_key=True, autoincrement=True),
    Column("reference", String(40), nullable=False, unique=True),  # opaque, no personal data
    Column("batch_id", ForeignKey("letter_batches.batch_id")),
    Column("debt_id", ForeignKey("debts.debt_id"), nullable=False),
    Column("case_ref", String(16), nullable=False),
    Column("purpose", String(32), nullable=False),  # representation|reminder|...
    Column("recipient", String(3), nullable=False),  # PWC|NRP
    Column("party_ref", ForeignKey("parties.party_ref"), nullable=False),
    Column("status", String(24), nullable=False),
    Column("held_reason", String(64)),
    Column("failure_reason", String(200)),  # never personal data
    Column("channel", String(16)),
    Column("notify_id", String(64)),
    Column("letter_date", Date),  # the as-of date it was sent on
    Column("attempts", Integer, nullable=False, default=0),
    _ts("created_at", nullable=False),
    _ts("sent_at"),
    _ts("status_at"),
    _ts("attempted_at"),  # when the last send was tried: reconcile by reference from here
    UniqueConstraint("debt_id", "purpose", "recipient"),
    Index(None, "status"),
    # a batch's letters in one status, page by page in id order (the sender's read); it serves
    # lookups by batch alone too (migration 0006 dropped the index on batch_id by itself)
    Index(None, "batch_id", "status", "letter_id"),
)

letter_status_history = Table(
    "letter_status_history",
    metadata,
    Column("history_id", BigId, primary_key=True, autoincrement=True),
    Column("letter_id", ForeignKey("letters.letter_id"), nullable=False),
    Column("status", String(24), nullable=False),
    _ts("recorded_at", nullable=False),
    Column("source", String(16), nullable=False),  # notify|fake|print-file|toolkit
    Column("detail", String(200)),
    Index(None, "letter_id"),
)

send_quota = Table(
    "send_quota",
    metadata,
    Column("channel", String(16), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("sent_count", Integer, nullable=False),
    Column("limit_reached", Boolean, nullable=False, default=False),
)

# --- responses ------------------------------------------------------------------------

response_imports = Table(
    "response_imports",
    metadata,
    Column("import_id", BigId, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # responses|cms_ack
    Column("file_name", String(255), nullable=False),  # base name only
    Column("file_sha256", String(64), nullable=False),
    Column("run_id", ForeignKey("stage_runs.run_id")),
    Column("row_count", Integer, nullable=False),
    Column("accepted", Integer, nullable=False),
    Column("duplicates", Integer, nullable=False),
    Column("rejected", Integer, nullable=False),
    _ts("imported_at", nullable=False),
)

responses = Table(
    "responses",
    metadata,
    Column("response_id", BigId, primary_key=True, autoincrement=True),
    Column("document_id", String(64), nullable=False, unique=True),
    Column("case_ref", String(16), nullable=False),
    Column("debt_id", ForeignKey("debts.debt_id"), nullable=False),
    Column("party", String(3), nullable=False),  # PWC|NRP
    Column("response", String(16), nullable=False),
    Column("received_on", Date, nullable=False),
    Column("channel", String(8), nullable=False),  # POST|PHONE|ONLINE
    Column("import_id", ForeignKey("response_imports.import_id")),
    Column("run_id", ForeignKey("stage_runs.run_id")),
    Column("recorded_by", String(64), nullable=False),
    _ts("recorded_at", nullable=False),
    Index(None, "case_ref"),
)

import_rejections = Table(
    "import_rejections",
    metadata,
    Column("rejection_id", BigId, primary_key=True, autoincrement=True),
    Column("import_id", ForeignKey("response_imports.import_id"), nullable=False),
    Column("row_number", Integer, nullable=False),  # 1 = first data row
    Column("document_id", String(64)),
    Column("case_ref", String(16)),
    Column("reason_code", String(32), nullable=False),
    Column("detail", String(200)),
)

# --- ledger and transfer --------------------------------------------------------------

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("entry_id", BigId, primary_key=True, autoincrement=True),
    Column("debt_id", ForeignKey("debts.debt_id"), nullable=False),
    Column("case_ref", String(16), nullable=False),
    Column("source_system", String(4), nullable=False),
    Column("creditor", String(3), nullable=False),
    Column("entry_type", String(12), nullable=False),  # write_off|reversal
    Column("amount_pence", Pence, nullable=False),  # write-off positive, reversal negative
    Column("reason", String(64), nullable=False),
    Column("rule_id", String(64)),
    Column("ruleset_hash", String(64)),
    Column("run_id", ForeignKey("stage_runs.run_id")),
    Column("actor", String(64), nullable=False),
    Column("as_of", Date, nullable=False),
    _ts("recorded_at", nullable=False),
    Column("reverses_entry_id", ForeignKey("ledger_entries.entry_id"), unique=True),
    Index(None, "debt_id"),
)

transfer_batches = Table(
    "transfer_batches",
    metadata,
    Column("batch_id", String(40), primary_key=True),
    Column("run_id", ForeignKey("stage_runs.run_id")),
    Column("as_of", Date, nullable=False),
    _ts("created_at", nullable=False),
    Column("row_count", Integer, nullable=False),
    Column("total_pence", Pence, nullable=False),
    Column("manifest_sha256", String(64)),
    Column("status", String(16), nullable=False),  # exporting|exported|acknowledged
)

transfer_items = Table(
    "transfer_items",
    metadata,
    Column("batch_id", ForeignKey("transfer_batches.batch_id"), primary_key=True),
    Column("debt_id", ForeignKey("debts.debt_id"), primary_key=True),
    Column("case_ref", String(16), nullable=False),
    Column("creditor", String(3), nullable=False),
    Column("amount_pence", Pence, nullable=False),
    Column("transfer_reason", String(32), nullable=False),  # the decision's reason, as sent
    Column("status", String(12), nullable=False),  # exported|accepted|rejected
    Column("ack_reason", String(200)),
    Column("ack_import_id", ForeignKey("response_imports.import_id")),
    Index(None, "case_ref", "creditor"),
)

# --- evidence -------------------------------------------------------------------------

archives = Table(
    "archives",
    metadata,
    Column("archive_id", BigId, primary_key=True, autoincrement=True),
    Column("path", Text, nullable=False),
    Column("run_id", ForeignKey("stage_runs.run_id")),
    _ts("created_at", nullable=False),
    Column("manifest_sha256", String(64), nullable=False),
    Column("includes_personal_data", Boolean, nullable=False),
    Column("counts", JSON, nullable=False),
    _ts("verified_at"),
    Column("verified_ok", Boolean),
)

APPEND_ONLY_TABLES = ("events", "ledger_entries", "letter_status_history")
