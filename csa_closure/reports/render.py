"""Rich renderers for the reports, the archive and the decommission check.

Each function takes a library result and returns a rich renderable (a ``Group`` of tables and
lines), so the CLI prints it once, ``report progress --watch`` redraws it in a ``Live``, and
snapshot tests export it from a recording console. Only codes, counts, case references and
pounds are drawn: no personal data reaches these results.

(CLI modules import this module as ``from csa_closure.reports import render`` so that either
side may be imported first.)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from csa_closure.domain.states import CREDITORS, RunStatus
from csa_closure.legacy.contract import UNREADABLE_CREDITOR
from csa_closure.reconcile import EQUATIONS, ReconcileReport
from csa_closure.reports.progress import (
    DayClosures,
    ProgressReport,
    Tally,
    burndown,
    headline,
    pace_needed,
    phase,
)
from csa_closure.reports.rules import RulesReport
from csa_closure.reports.runs import RunRow
from csa_closure.reports.tables import FitTable, pounds, rich_table

if TYPE_CHECKING:
    from csa_closure.stages.archive import ArchiveResult, VerifyResult
    from csa_closure.stages.decommission import DecommissionCheck

BAR_WIDTH = 40
BLOCK = "█"


def per_mille(part: int, whole: int) -> str:
    """``part`` as a percentage of ``whole`` to one decimal place, in integer arithmetic."""
    if whole == 0:
        return "-"
    tenths = (part * 1000) // whole
    return f"{tenths // 10}.{tenths % 10}%"


def _verdict(ok: bool, yes: str = "yes", no: str = "NO") -> str:
    return f"[green]{yes}[/]" if ok else f"[bold red]{no}[/]"


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _count(n: int) -> str:
    return f"{n:,}"


# --- progress ---------------------------------------------------------------------------


def _table(
    title: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    right: Iterable[str] = (),
    drop: Sequence[str] = (),
) -> Table:
    """A table that never cuts a figure short (:class:`FitTable`): too narrow a terminal
    drops the ``drop`` columns, then stacks each row."""
    return rich_table(title, columns, rows, right=right, drop=drop)


def _funnel(report: ProgressReport) -> Table:
    loaded = report.total()
    table = _table(
        f"Funnel at {report.as_of.isoformat()}: debts by state",
        ["state", "phase", "debts", "pounds", "% of £"],
        [],
        right=["debts", "pounds", "% of £"],
    )
    for i, (state, t) in enumerate(report.by_state):
        table.add_row(
            state,
            phase(state),
            _count(t.debts),
            pounds(t.pence),
            per_mille(t.pence, loaded.pence),
            end_section=i == len(report.by_state) - 1,
        )
    for label, tally in (
        ("loaded", loaded),
        ("decided", report.total({"in progress", "closed"})),
        ("closed", report.total({"closed"})),
    ):
        table.add_row(
            f"[bold]{label}[/]",
            "",
            _count(tally.debts),
            pounds(tally.pence),
            per_mille(tally.pence, loaded.pence),
        )
    return table


def _by_system(report: ProgressReport) -> Table:
    return _table(
        "By system and creditor",
        ["system", "creditor", "debts", "loaded", "decided", "closed", "closed £", "open £", "% £"],
        [
            [
                g.system,
                g.creditor,
                _count(g.loaded.debts),
                pounds(g.loaded.pence),
                _count(g.decided.debts),
                _count(g.closed.debts),
                pounds(g.closed.pence),
                pounds(g.open.pence),
                per_mille(g.closed.pence, g.loaded.pence),
            ]
            for g in report.by_system_creditor()
        ],
        right=["debts", "loaded", "decided", "closed", "closed £", "open £", "% £"],
        drop=["decided", "closed £", "% £"],
    )


def _letters_and_responses(report: ProgressReport) -> list[RenderableType]:
    out: list[RenderableType] = []
    out.append(
        _table(
            "Letters by purpose and status",
            ["purpose", "status", "letters"],
            [[c.purpose, c.status, _count(c.letters)] for c in report.letters],
            right=["letters"],
        )
        if report.letters
        else Text("Letters: none yet.")
    )
    if report.responses:
        out.append(
            _table(
                "Responses accepted",
                ["party", "response", "responses"],
                [[c.party, c.response, _count(c.responses)] for c in report.responses],
                right=["responses"],
            )
        )
    else:
        out.append(Text("Responses: none yet."))
    if report.imports:
        out.append(
            _table(
                "Imported files",
                ["kind", "files", "rows", "accepted", "duplicates", "rejected"],
                [
                    [
                        c.kind,
                        _count(c.files),
                        _count(c.rows),
                        _count(c.accepted),
                        _count(c.duplicates),
                        _count(c.rejected),
                    ]
                    for c in report.imports
                ],
                right=["files", "rows", "accepted", "duplicates", "rejected"],
            )
        )
    return out


def _deadlines(report: ProgressReport) -> Table:
    d = report.deadlines
    rows: list[tuple[str, Tally]] = [
        ("passed, not yet expired", d.overdue),
        ("due in the next 7 days", d.next_7_days),
        ("due in the next 30 days", d.next_30_days),
    ]
    return _table(
        "Response deadlines (debts awaiting a response)",
        ["deadline", "debts", "pounds"],
        [[label, _count(t.debts), pounds(t.pence)] for label, t in rows],
        right=["debts", "pounds"],
    )


def closures_chart(report: ProgressReport, days: int) -> Table:
    """Closures per as-of day over the ``days`` days to the as-of date, as block bars."""
    by_day = {c.as_of: c for c in report.closures}
    window = [report.as_of - timedelta(days=n) for n in range(days - 1, -1, -1)]
    shown = [by_day.get(d) or DayClosures(d, 0, 0, 0) for d in window]
    peak = max((c.debts for c in shown), default=0)
    table = FitTable(
        title=f"Debts closed per day, last {days} days",
        title_justify="left",
        box=None,
        show_header=True,
        pad_edge=False,
        drop=("closed", "reopened"),
    )
    for name, justify in (("day", "left"), ("closed", "left"), ("debts", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    table.add_column("pounds", justify="right")
    table.add_column("reopened", justify="right")
    for c in shown:
        width = 0 if peak == 0 else max(1 if c.debts else 0, c.debts * BAR_WIDTH // peak)
        table.add_row(
            c.as_of.isoformat(),
            BLOCK * width,
            _count(c.debts),
            pounds(c.pence),
            _count(c.reopened) if c.reopened else "",
        )
    return table


def _finish(report: ProgressReport) -> Group:
    f = report.finish
    if f.finished:
        headline = f"Every debt is closed (as of {f.expected_finish.isoformat()})."
    else:
        headline = f"Expected finish at the current pace: [bold]{f.expected_finish.isoformat()}[/]"
    lines = [
        headline,
        f"  letters still to send: {_count(f.letters_to_send)} "
        f"({_count(f.final_chance_letters_to_send)} final-chance); "
        f"daily limit {_count(f.daily_letter_limit)}: {f.sending_days} sending day(s); "
        f"letters bound {f.letters_bound.isoformat()}",
        f"  last response deadline: "
        f"{f.last_response_deadline.isoformat() if f.last_response_deadline else '-'}; "
        f"open debts {_count(f.open_debts)}; closed in the last 30 days "
        f"{_count(f.closed_last_30_days)}: pace bound "
        f"{f.pace_bound.isoformat() if f.pace_bound else 'unknown'}",
        f"  formula: {f.formula}",
        "  assumes: " + "; ".join(f.assumptions),
    ]
    return Group(*(Text.from_markup(line) for line in lines))


def headline_renderable(report: ProgressReport, target: date | None = None) -> Text:
    """The line a manager reads first: closed %, pounds still open, the expected finish
    (and, with a target date, the pace it needs)."""
    h = headline(report)
    finish = (
        f"every debt closed ({h.expected_finish.isoformat()})"
        if h.finished
        else f"expected finish [bold]{h.expected_finish.isoformat()}[/]"
    )
    line = (
        f"[bold]{per_mille(h.closed_debts, h.loaded_debts)}[/] of debts closed "
        f"({_count(h.closed_debts)} of {_count(h.loaded_debts)}); "
        f"[bold]{pounds(h.open_pence)}[/] still open; {finish}"
    )
    if target is not None:
        pace = pace_needed(report, target)
        verdict = "[green]on track[/]" if pace.on_track else "[bold red]behind[/]"
        line += (
            f"; target {target.isoformat()}: {verdict}, needs {_count(pace.debts_per_day)} "
            f"debts and {pounds(pace.pence_per_day)} a day"
        )
    return Text.from_markup(line + ".")


class BurndownChart:
    """Debts or pounds still open per day, as block columns sized to the terminal, with the
    straight line to zero at a target date drawn in dots after the as-of date."""

    HEIGHT = 8

    def __init__(self, report: ProgressReport, *, pence: bool, target: date | None) -> None:
        self.points = burndown(report)
        self.pence = pence
        self.target = target if target is not None and target > report.as_of else None
        self.as_of = report.as_of

    def _label(self, value: int) -> str:
        return pounds(value) if self.pence else _count(value)

    def __rich_console__(self, console: Any, options: Any) -> Any:
        values = [p.open_pence if self.pence else p.open_debts for p in self.points]
        days = [p.as_of for p in self.points]
        future = (self.target - self.as_of).days if self.target else 0
        peak = max([*values, 1])
        label_width = max(len(self._label(peak)), len(self._label(0))) + 1
        columns = max(options.max_width - label_width - 1, 10)
        total = len(values) + future
        step = _ceil_div(total, columns)  # days per column
        # the last value of each bucket of ``step`` days; then the pace line to the target
        shown: list[tuple[int | None, int | None]] = []
        for start in range(0, total, step):
            end = min(start + step, total) - 1
            if end < len(values):
                shown.append((values[end], None))
            else:
                left = future - (end - len(values) + 1)
                shown.append((None, values[-1] * left // future if future else 0))
        what = "pounds" if self.pence else "debts"
        title = f"Burndown: {what} still open per day to {self.as_of.isoformat()}"
        if self.target:
            title += f"; dots: the pace to finish by {self.target.isoformat()}"
        if step > 1:
            title += f" ({step} days a column)"
        yield Text(title, style="italic")
        for row in range(self.HEIGHT, 0, -1):
            floor = peak * (row - 1) / self.HEIGHT
            label = self._label(peak) if row == self.HEIGHT else ""
            if row == 1:
                label = self._label(0)
            cells = []
            for actual, pace in shown:
                if actual is not None:
                    cells.append(BLOCK if actual > floor else " ")
                else:
                    cells.append("·" if pace is not None and pace > floor else " ")
            yield Text(f"{label:>{label_width - 1}} │" + "".join(cells))
        first = days[0].isoformat()
        last = (self.target or self.as_of).isoformat()
        gap = max(1, len(shown) - len(first) - len(last))
        yield Text(" " * label_width + first + " " * gap + last)


def progress_renderable(
    report: ProgressReport, *, chart_days: int = 14, target: date | None = None
) -> Group:
    quarantined = report.quarantined
    return Group(
        headline_renderable(report, target),
        _funnel(report),
        Text(
            f"Quarantined (held, not loaded): {_count(quarantined.debts)} item(s), "
            f"{pounds(quarantined.pence)}"
        ),
        _by_system(report),
        *_letters_and_responses(report),
        _deadlines(report),
        closures_chart(report, chart_days),
        BurndownChart(report, pence=False, target=target),
        BurndownChart(report, pence=True, target=target),
        _finish(report),
    )


# --- reconcile --------------------------------------------------------------------------

CREDITOR_NAMES = {
    "PWC": "owed to the person with care",
    "SOS": "owed to the Secretary of State",
    "UNREADABLE": "source rows whose creditor cannot be read (held)",
}
RECONCILE_MEASURES = (
    ("source control total", "source_pence"),
    ("drift (store - source)", "drift_pence"),
    ("quarantined", "quarantined_pence"),
    ("loaded", "loaded_pence"),
    ("nil", "nil_pence"),
    ("written off (net)", "written_off_pence"),
    ("transferred", "transferred_pence"),
    ("open", "open_pence"),
    ("reversed (in written off)", "reversed_pence"),
)


def _reconcile_table(creditor: str, rows: list[dict[str, Any]]) -> Table:
    """One creditor: a column per system and both together, a row per measure."""
    mine = [r for r in rows if r["creditor"] == creditor]
    table = _table(
        f"{creditor}: {CREDITOR_NAMES[creditor]}",
        ["", *(r["system"] for r in mine)],
        [],
        right=[r["system"] for r in mine],
    )
    for label, key in RECONCILE_MEASURES:
        table.add_row(label, *(pounds(r[key]) for r in mine))
    table.add_row("debts loaded", *(_count(r["debts_loaded"]) for r in mine))
    table.add_row("debts closed", *(_count(r["debts_closed"]) for r in mine), end_section=True)
    table.add_row("balanced", *(_verdict(bool(r["balanced"])) for r in mine))
    return table


def reconcile_renderable(report: ReconcileReport) -> Group:
    rows = report.rows()
    # the bucket of source rows whose creditor cannot be read is shown when it holds pence
    unreadable = any(
        r["creditor"] == UNREADABLE_CREDITOR and (r["source_pence"] or r["quarantined_pence"])
        for r in rows
    )
    buckets = [*CREDITORS, *([UNREADABLE_CREDITOR] if unreadable else [])]
    parts: list[RenderableType] = [
        Text("Reconciliation per system and creditor, to the penny"),
        *(_reconcile_table(creditor, rows) for creditor in buckets),
        Text("Equations, per system and creditor:"),
        *(Text(f"  {statement}") for _, statement in EQUATIONS),
    ]
    if report.balanced:
        parts.append(Text.from_markup("Reconciliation: [green]balanced to the penny[/]"))
    else:
        parts.append(Text.from_markup("Reconciliation: [bold red]NOT BALANCED[/]"))
        parts.extend(Text(f"  {p}") for p in report.problems)
    return Group(*parts)


# --- rules ------------------------------------------------------------------------------


def _short(value: str | None, width: int = 8) -> str:
    if value is None:
        return "-"
    return value[:width]


def rules_renderable(report: RulesReport) -> Group:
    current = _table(
        "Current decisions by rule set, rule and reason",
        ["rule set", "rule", "outcome", "reason", "debts", "pounds", "closed", "closed £"],
        [
            [
                _short(r.ruleset_hash),
                r.rule_id or "-",
                r.outcome or "(undecided)",
                r.reason or "-",
                _count(r.debts),
                pounds(r.pence),
                _count(r.closed_debts),
                pounds(r.closed_pence),
            ]
            for r in report.current
        ],
        right=["debts", "pounds", "closed", "closed £"],
        drop=["rule set", "closed £", "closed"],
    )
    parts: list[RenderableType] = [current]
    if report.history:
        parts.append(
            _table(
                "Every decision made (event log): current and superseded",
                [
                    "rule set",
                    "rule",
                    "outcome",
                    "reason",
                    "decisions",
                    "current",
                    "superseded",
                    "pounds",
                ],
                [
                    [
                        _short(h.ruleset_hash),
                        h.rule_id or "-",
                        h.outcome or "-",
                        h.reason or "-",
                        _count(h.decisions),
                        _count(h.current),
                        _count(h.superseded),
                        pounds(h.pence),
                    ]
                    for h in report.history
                ],
                right=["decisions", "current", "superseded", "pounds"],
                drop=["superseded", "current"],
            )
        )
    else:
        parts.append(Text("No decision events recorded yet."))
    hashes = [h for h in report.rulesets() if h]
    if hashes:
        parts.append(Text("Rule sets: " + ", ".join(hashes)))
    return Group(*parts)


# --- runs -------------------------------------------------------------------------------


def _flat(counts: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested run counts as ``by_kind.representation.PWC``-style keys, in key order."""
    out: list[tuple[str, Any]] = []
    for key, value in sorted(counts.items()):
        if isinstance(value, dict):
            out.extend(_flat(value, f"{prefix}{key}."))
        else:
            out.append((f"{prefix}{key}", value))
    return out


def _counts_text(counts: dict[str, Any]) -> str:
    return ", ".join(
        f"{k} {v:,}" if isinstance(v, int) and not isinstance(v, bool) else f"{k} {v}"
        for k, v in _flat(counts)
    )


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = int(seconds)
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def runs_renderable(runs: list[RunRow]) -> Group:
    table = _table(
        f"Stage runs ({len(runs):,}, newest first)",
        ["run", "stage", "who", "started (UTC)", "as of", "status", "duration", "counts"],
        [
            [
                r.run_id,
                r.stage,
                f"{r.actor}@{r.host}",
                r.started_at.strftime("%Y-%m-%d %H:%M:%S"),
                r.as_of.isoformat(),
                r.status if r.status == RunStatus.COMPLETED else f"[bold red]{r.status}[/]",
                _duration(r.duration_seconds),
                escape(_counts_text(r.counts) + (f" error: {r.error}" if r.error else "")),
            ]
            for r in runs
        ],
        right=["run", "duration"],
        drop=["who", "duration", "started (UTC)"],
    )
    return Group(table)


# --- archive and decommission ----------------------------------------------------------


def archive_renderable(result: ArchiveResult) -> Group:
    table = _table(
        f"Archive {result.archive_id} written to {result.path}",
        ["file", "rows", "totals", "sha-256"],
        [
            [
                name,
                _count(f.rows),
                ", ".join(f"{k} {pounds(v)}" for k, v in f.totals.items()),
                f.sha256[:16],
            ]
            for name, f in result.files.items()
        ],
        right=["rows"],
    )
    personal = (
        "[bold yellow]includes personal data (parties.parquet)[/]"
        if result.includes_personal_data
        else "no personal data"
    )
    return Group(
        table,
        Text.from_markup(
            f"manifest.json sha-256 {result.manifest_sha256}; {personal}; "
            f"reconciliation {'balanced' if result.reconciliation_balanced else 'NOT balanced'}"
        ),
        Text(f"Next: csa-closure archive verify {result.path}"),
    )


def verify_renderable(result: VerifyResult) -> Group:
    table = _table(
        f"Archive verification of {result.path}",
        ["file", "rows (manifest)", "rows (file)", "rows (store)", "checksum", "totals"],
        [
            [
                c.name,
                "-" if c.manifest_rows is None else _count(c.manifest_rows),
                "-" if c.file_rows is None else _count(c.file_rows),
                "-" if c.store_rows is None else _count(c.store_rows),
                _verdict(c.checksum_ok, "ok", "MISMATCH"),
                _verdict(c.totals_ok, "ok", "MISMATCH"),
            ]
            for c in result.files
        ],
        right=["rows (manifest)", "rows (file)", "rows (store)"],
    )
    parts: list[RenderableType] = [table]
    if result.ok:
        parts.append(Text.from_markup("Archive verified: [green]every check passed[/]"))
    else:
        parts.append(Text.from_markup("Archive verification: [bold red]FAILED[/]"))
        parts.extend(Text(f"  {p.file}: {p.problem}") for p in result.problems)
    return Group(*parts)


def decommission_renderable(check: DecommissionCheck) -> Group:
    table = _table(
        f"Decommission gates at {check.as_of.isoformat()}",
        ["gate", "passed", "blocking", "examples", "detail"],
        [
            [
                g.name,
                _verdict(g.passed, "pass", "FAIL"),
                _count(g.blocking_count),
                ", ".join(g.examples),
                escape(g.detail),
            ]
            for g in check.gates
        ],
        right=["blocking"],
        drop=["examples"],
    )
    verdict = (
        "[green]every gate passes: the legacy systems may be switched off[/]"
        if check.passed
        else "[bold red]NOT READY: the legacy systems must stay on[/]"
    )
    return Group(table, Text.from_markup(f"Decommission: {verdict}"))
