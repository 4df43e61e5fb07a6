"""``csa-closure notify``: letters to parents, from batch to delivery status.

Runbook: `csa-closure docs letters`.
"""

from __future__ import annotations

import csv
import functools
import io
import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar, cast

import click
from rich.console import Console

from csa_closure.channels import LetterChannel, PrintFileChannel
from csa_closure.channels.ratelimit import DEFAULT_RATE_PER_MINUTE, NOTIFY_REQUESTS_PER_MINUTE
from csa_closure.cli.channels import FakeNotifyOptions, letters_channel, simulated_returns
from csa_closure.cli.output import emit, note_waiting, rich_table
from csa_closure.cli.params import CliState, format_option, out_option, pass_state
from csa_closure.cli.progress import progress_bars
from csa_closure.domain.states import BatchStatus
from csa_closure.errors import InputError, UsageError
from csa_closure.letters import CONFIG_ENV, LettersConfig, load_letters_config
from csa_closure.stages.letters_outbox import (
    CHANNELS,
    DEFAULT_DAILY_LIMIT,
    FAKE_NOTIFY,
    GOVUK_NOTIFY,
    NOTIFY_CHANNELS,
    PRINT_FILE,
    ApproveResult,
    BatchStopped,
    BuildResult,
    OutboxStatus,
    SendOptions,
    SendResult,
    SettleAction,
    SyncResult,
    approve_batch,
    build_batch,
    outbox_status,
    record_returned,
    send_batch,
    settle_letter,
    sync_letters,
)
from csa_closure.stages.letters_outbox.sync import (
    record_upload_report,
    references_in_print_files,
)

F = TypeVar("F", bound=Callable[..., Any])
FAKE_STATE_ENV = "CSA_CLOSURE_FAKE_NOTIFY"
DEFAULT_FAKE_STATE = "fake-notify.db"
FAKE_FAULTS = (
    "rate_limit",
    "server_error",
    "connection_error",
    "timeout_after_accept",
    "server_error_after_accept",
)
FAKE_FATES = ("returned", "permanent_failure", "technical_failure")
FAKE_WARNING = (
    "[yellow]fake-notify is a simulated Notify service for rehearsals and the demo, NOT for "
    "production: no letter reaches anyone.[/]"
)


@click.group()
def notify() -> None:
    """Letters to parents: build batches, approve them, send them, keep their statuses.

    A batch is built by one operator and approved by another, then sent through GOV.UK Notify
    or as print-vendor files, each letter exactly once. Runbook: `csa-closure docs letters`.
    """


# --- shared options ----------------------------------------------------------------------------


def _letters_config_option(func: F) -> F:
    return click.option(
        "--letters-config",
        "letters_config",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        envvar=CONFIG_ENV,
        default=None,
        help=f"Letters configuration (Notify template ids, response window) (env {CONFIG_ENV};"
        " default: the bundled example, which a live Notify send refuses).",
    )(func)


def _parse_rates(
    names: tuple[str, ...], what: str
) -> Callable[[click.Context, click.Parameter, tuple[str, ...]], dict[str, float]]:
    def parse(
        ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
    ) -> dict[str, float]:
        rates: dict[str, float] = {}
        for item in values:
            name, sep, value = item.partition("=")
            try:
                rate = float(value)
            except ValueError:
                rate = -1.0
            if not sep or name not in names or not 0.0 <= rate <= 1.0:
                raise click.BadParameter(
                    f"{item!r}: expected NAME=RATE with a rate from 0 to 1 and NAME one of"
                    f" {', '.join(names)} ({what})",
                    ctx=ctx,
                    param=param,
                )
            rates[name] = rate
        return rates

    return parse


def _fake_options(func: F) -> F:
    """The --fake-* options, given to the command as one ``fake: FakeNotifyOptions``."""

    inner = func

    @functools.wraps(inner)
    def command(
        *args: Any,
        fake_state: Path,
        fake_faults: dict[str, float],
        fake_fates: dict[str, float],
        fake_seed: int,
        **kwargs: Any,
    ) -> Any:
        fake = FakeNotifyOptions(fake_state, faults=fake_faults, fates=fake_fates, seed=fake_seed)
        return inner(*args, fake=fake, **kwargs)

    func = cast(F, command)
    func = click.option(
        "--fake-seed",
        type=int,
        default=0,
        show_default=True,
        help="fake-notify only: the seed of its simulated faults and fates.",
    )(func)
    func = click.option(
        "--fake-fate",
        "fake_fates",
        multiple=True,
        metavar="NAME=RATE",
        callback=_parse_rates(FAKE_FATES, "what becomes of accepted letters"),
        help="fake-notify only: a share of accepted letters that end "
        f"{', '.join(FAKE_FATES)} (repeatable), e.g. returned=0.02.",
    )(func)
    func = click.option(
        "--fake-fault",
        "fake_faults",
        multiple=True,
        metavar="NAME=RATE",
        callback=_parse_rates(FAKE_FAULTS, "faults per request"),
        help="fake-notify only: a fault rate per request, one of "
        f"{', '.join(FAKE_FAULTS)} (repeatable), e.g. timeout_after_accept=0.01.",
    )(func)
    return click.option(
        "--fake-state",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar=FAKE_STATE_ENV,
        default=DEFAULT_FAKE_STATE,
        show_default=True,
        help=f"fake-notify only: the simulated service's state file (env {FAKE_STATE_ENV}); "
        "owner-only, it holds what was 'sent'. NOT for production.",
    )(func)


def _limit_options(func: F) -> F:
    func = click.option(
        "--rate-per-minute",
        type=click.IntRange(1, NOTIFY_REQUESTS_PER_MINUTE - 1),
        default=DEFAULT_RATE_PER_MINUTE,
        show_default=True,
        help="Notify requests a minute from this process (Notify allows 3,000 per key: give "
        "each of several processes sharing a key its share).",
    )(func)
    return click.option(
        "--daily-limit",
        type=click.IntRange(min=0),
        default=None,
        help=f"Letters this channel may take on the --as-of day (default {DEFAULT_DAILY_LIMIT:,}"
        " for Notify, Notify's limit for a live service; none for print files).",
    )(func)


def _config(path: Path | None) -> LettersConfig:
    """--letters-config, else $CSA_CLOSURE_LETTERS_CONFIG, else the configuration file's
    letters_config, else the bundled example."""
    if path is None and not os.environ.get(CONFIG_ENV):
        state = click.get_current_context().find_object(CliState)
        if state is not None and state.letters_config:
            path = Path(state.letters_config)
    return load_letters_config(path)


def _channel(
    name: str, config: LettersConfig, *, rate_per_minute: int, fake: FakeNotifyOptions
) -> LetterChannel:
    """A Notify channel (govuk-notify or fake-notify) from the command's options."""
    channel = letters_channel(name, config, rate_per_minute=rate_per_minute, fake=fake)
    assert not isinstance(channel, PrintFileChannel)
    return channel


def _settle(channel: str, daily_limit: int | None = None) -> SendOptions:
    """Send options for ``channel``, with ``--daily-limit`` (Notify's own when not given)."""
    # the fake answers before the call returns, so there is nothing to wait for before a
    # reconcile; Notify may take a few minutes to show a letter it accepted
    options = SendOptions(settle=timedelta(0)) if channel == FAKE_NOTIFY else SendOptions()
    options.daily_limit = DEFAULT_DAILY_LIMIT if daily_limit is None else daily_limit
    return options


# --- build ---------------------------------------------------------------------------------------


def render_build(console: Console, result: BuildResult) -> None:
    if result.batch_id is None:
        console.print(f"Nothing to send is due on {result.as_of}: no batch was built.")
    else:
        console.print(
            f"Batch {result.batch_id} built (run {result.run_id}, as of {result.as_of}): "
            f"{result.pending:,} letters to send"
            + (f", of which {result.rebatched:,} were held before" if result.rebatched else "")
        )
        console.print(
            rich_table(
                "Letters in the batch",
                ["letter", "letters"],
                [[k, f"{n:,}"] for k, n in sorted(result.by_kind.items())],
                right=["letters"],
            )
        )
    if result.held_by_reason:
        console.print(
            rich_table(
                "Held (not sendable; debts flagged for tracing)",
                ["reason", "letters"],
                [[k, f"{n:,}"] for k, n in sorted(result.held_by_reason.items())],
                right=["letters"],
            )
        )
    console.print(
        f"{result.held:,} newly held, {result.still_held:,} still held, "
        f"{result.left_for_later:,} left for a later batch (--limit)."
    )
    if result.batch_id is not None:
        console.print(
            f"Next: someone other than you runs `csa-closure notify approve {result.batch_id}`."
        )


@notify.command()
@click.option(
    "--letter",
    "letter_type",
    metavar="TYPE",
    help="Only this letter: representation, reminder, collection_requested, write_off_notice, "
    "transfer_notice, optionally .PWC or .NRP (e.g. write_off_notice.NRP). Default: every "
    "letter due.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="At most this many letters in the batch (held letters do not count): build within "
    "the day's sending quota; the next build takes the rest.",
)
@format_option
@pass_state
def build(state: CliState, letter_type: str | None, limit: int | None, fmt: str) -> None:
    """Build a batch of the letters due on the --as-of date.

    One outbox row per letter (status pending, an opaque reference); a letter whose address
    Notify would refuse is held with the reason and its debt flagged for tracing. Building
    again never makes a second letter for the same debt, purpose and recipient. JSON keys:
    run_id, batch_id, as_of, letter_type, limit, pending, rebatched, held, still_held,
    left_for_later, debts_flagged, debts_unflagged, by_kind, held_by_reason.
    """
    ctx = state.context()
    note_waiting(ctx, "notify build")
    with progress_bars(fmt == "table") as progress:
        result = build_batch(ctx, letter_type=letter_type, limit=limit, progress=progress)
    emit(
        fmt,
        result,
        table=lambda c: render_build(c, result),
        csv_rows=lambda: (
            [{"letter": k, "letters": n} for k, n in sorted(result.by_kind.items())],
            ["letter", "letters"],
        ),
    )


# --- approve -------------------------------------------------------------------------------------


def render_approve(console: Console, result: ApproveResult) -> None:
    if result.already_approved:
        console.print(
            f"[yellow]Batch {result.batch_id} was already approved by {result.approved_by}[/] "
            f"(built by {result.built_by}; now {result.status}): nothing changed."
        )
        return
    console.print(
        f"Batch {result.batch_id} approved by {result.approved_by} (built by "
        f"{result.built_by}): {sum(result.by_kind.values()):,} letters may now be sent."
    )
    console.print(
        rich_table(
            None,
            ["letter", "letters"],
            [[k, f"{n:,}"] for k, n in result.by_kind.items()],
            right=["letters"],
        )
    )


@notify.command()
@click.argument("batch_id", type=int, metavar="BATCH")
@format_option
@pass_state
def approve(state: CliState, batch_id: int, fmt: str) -> None:
    """Approve batch BATCH for sending (maker-checker).

    Refused for the operator who built it: a second person checks every batch. An
    unapproved batch is never sent. Approving a batch already approved changes nothing
    and says who approved it (exit 0). JSON keys: run_id, batch_id, built_by, approved_by,
    letter_count, by_kind, already_approved, status.
    """
    result = approve_batch(state.context(), batch_id)
    emit(
        fmt,
        result,
        table=lambda c: render_approve(c, result),
        csv_rows=lambda: (
            [{"letter": k, "letters": n} for k, n in result.by_kind.items()],
            ["letter", "letters"],
        ),
    )


# --- send ----------------------------------------------------------------------------------------


def render_send(console: Console, result: SendResult) -> None:
    if result.channel == FAKE_NOTIFY:
        console.print(FAKE_WARNING)
    console.print(
        f"Batch {result.batch_id} through {result.channel} (run {result.run_id}, as of "
        f"{result.as_of}): {result.batch_status}"
    )
    rows = [
        ["accepted by Notify", result.accepted],
        ["written to print files", result.sent],
        ["unknown (reconciled before any resend)", result.unknown],
        ["failed (refused by the channel)", result.failed],
        ["held (debt flagged)", result.held],
        ["cancelled (no longer due)", result.cancelled],
        *[[f"reconciled: {k}", n] for k, n in sorted(result.reconciled.items())],
        ["final-chance windows started", result.debts_moved],
    ]
    console.print(
        rich_table(
            "This run",
            ["", "letters"],
            [[k, f"{n:,}"] for k, n in rows if n],
            right=["letters"],
        )
    )
    console.print(
        rich_table(
            "The batch now",
            ["status", "letters"],
            [[k, f"{n:,}"] for k, n in result.by_status.items()],
            right=["letters"],
        )
    )
    q = result.quota
    if q:
        limit = "no limit" if q["limit"] is None else f"{q['limit']:,}"
        console.print(
            f"Quota {q['channel']} on {q['day']}: {q['sent_count']:,} of {limit}"
            + (" (the channel said its daily limit is reached)" if q["limit_reached"] else "")
        )
    if result.print_files is not None:
        files = result.print_files
        console.print(
            rich_table(
                f"Print files in {files.directory}"
                + ("" if files.written else " (already there: nothing new written)"),
                ["file", "letters", "sha256"],
                [[f["file"], f"{f['row_count']:,}", f["sha256"][:16] + "…"] for f in files.files],
                right=["letters"],
            )
        )
        console.print(
            "The files hold personal data and are readable by you only: hand them to the "
            "print vendor (or upload them to Notify) as they are."
        )
    if result.stop_message:
        console.print(f"[bold]Stopped ({result.stop_code}):[/] {result.stop_message}")
    waiting = result.reconciled.get("wait", 0)
    if waiting:
        console.print(
            f"{waiting:,} letters were sent moments ago and cannot be looked up yet: run "
            "`notify send` again in a few minutes to reconcile them."
        )


@notify.command()
@click.argument("batch_id", type=int, metavar="BATCH")
@click.option(
    "--channel",
    type=click.Choice(CHANNELS),
    required=True,
    help="govuk-notify (API key from NOTIFY_API_KEY), print-file (files in --out), or "
    "fake-notify (a simulated Notify for rehearsals and the demo; NOT for production).",
)
@out_option(
    "print-file: the directory the batch's files are written under (owner-only).",
    directory=True,
    required=False,
    dest="out_dir",
)
@_letters_config_option
@_limit_options
@click.option(
    "--intent-group",
    type=click.IntRange(1, 500),
    default=SendOptions.intent_group,
    show_default=True,
    help="Letters whose send intent is committed together before each is sent: a crash "
    "leaves at most this many to reconcile by reference.",
)
@_fake_options
@format_option
@pass_state
def send(
    state: CliState,
    batch_id: int,
    channel: str,
    out_dir: Path | None,
    letters_config: Path | None,
    daily_limit: int | None,
    rate_per_minute: int,
    intent_group: int,
    fake: FakeNotifyOptions,
    fmt: str,
) -> None:
    """Send approved batch BATCH, each letter exactly once.

    Holds the batch's lease (a second sender is refused); reconciles letters an earlier run
    left in flight by reference before sending anything; commits each send intent before the
    call; respects the daily quota, stopping cleanly (run again with the next day's --as-of
    to resume). Exit 6 when the batch stopped and needs a person (403, an outage, a rejection
    every letter would get). JSON keys: run_id, batch_id, channel, as_of, batch_status,
    stop_code, stop_message, accepted, sent, unknown, failed, held, cancelled, reconciled,
    debts_moved, debts_flagged, remaining, by_status, quota, print_files.
    """
    config = _config(letters_config)
    ctx = state.context()
    options = _settle(channel, daily_limit)
    options.intent_group = intent_group
    if channel == PRINT_FILE:
        options.daily_limit = daily_limit
    target = letters_channel(
        channel,
        config,
        out_dir=out_dir,
        rate_per_minute=rate_per_minute,
        fake=fake,
    )
    try:
        with progress_bars(fmt == "table") as progress:
            result = send_batch(ctx, batch_id, target, config, options=options, progress=progress)
    except BatchStopped as exc:
        _emit_send(fmt, exc.result)
        raise
    _emit_send(fmt, result)


def _emit_send(fmt: str, result: SendResult) -> None:
    emit(
        fmt,
        result,
        table=lambda c: render_send(c, result),
        csv_rows=lambda: (
            [{"status": k, "letters": n} for k, n in result.by_status.items()],
            ["status", "letters"],
        ),
    )


# --- sync ----------------------------------------------------------------------------------------


def render_sync(console: Console, result: SyncResult) -> None:
    if result.channel == FAKE_NOTIFY:
        console.print(FAKE_WARNING)
    console.print(
        f"Sync with {result.channel} (run {result.run_id}, as of {result.as_of}): "
        f"{result.polled:,} letters asked about, {result.not_found:,} no longer held by Notify, "
        f"{result.beyond_retention:,} accepted letters too old to ask about."
    )
    if result.poll_stopped:
        console.print(
            f"[bold]Polling stopped early[/] ({result.poll_stopped}): {result.not_polled:,}"
            " letters were not reached; run `notify sync` again."
        )
    rows = [
        *[[f"now {k}", n] for k, n in sorted(result.changed.items())],
        ["returned (from the returned-letters report)", result.returned_from_report],
        ["debts flagged for tracing / a caseworker", result.debts_flagged],
        ["technical failures waiting for an operator (`notify settle`)", result.technical_failures],
    ]
    console.print(
        rich_table(None, ["", "letters"], [[k, f"{n:,}"] for k, n in rows if n], right=["letters"])
    )
    if result.technical_failures:
        console.print(
            f"[bold]{result.technical_failures:,} technical failures are never resent by sync[/]"
            " (Notify: do not send them again): settle each one with `notify settle REFERENCE"
            " --resend` (after checking with Notify) or `--undeliverable`."
        )


@notify.command()
@click.option(
    "--channel",
    type=click.Choice(NOTIFY_CHANNELS),
    default=GOVUK_NOTIFY,
    show_default=True,
    help="The Notify service to ask: govuk-notify, or fake-notify (rehearsals; NOT for "
    "production).",
)
@_letters_config_option
@_limit_options
@_fake_options
@format_option
@pass_state
def sync(
    state: CliState,
    channel: str,
    letters_config: Path | None,
    daily_limit: int | None,
    rate_per_minute: int,
    fake: FakeNotifyOptions,
    fmt: str,
) -> None:
    """Poll Notify for letters not yet final and act on what comes back.

    Asks about letters accepted within Notify's 7-day retention and records each change in
    the letter's history; flags the debts of returned and permanently failed letters for
    tracing and a caseworker; flags technical failures for a caseworker and never sends them
    again (`notify settle` does, for one letter, after checking with Notify). With fake-notify
    it also reads the fake's returned-letters report. JSON keys: run_id, channel, as_of,
    polled, not_found, not_polled, poll_stopped, beyond_retention, changed,
    returned_from_report, debts_flagged, debts_moved, technical_failures.
    """
    config = _config(letters_config)
    ctx = state.context()
    target = _channel(channel, config, rate_per_minute=rate_per_minute, fake=fake)
    options = _settle(channel, daily_limit)
    report = simulated_returns(target)
    with progress_bars(fmt == "table") as progress:
        result = sync_letters(
            ctx, target, config, returned_report=report, options=options, progress=progress
        )
    emit(
        fmt,
        result,
        table=lambda c: render_sync(c, result),
        csv_rows=lambda: (
            [{"status": k, "letters": n} for k, n in sorted(result.changed.items())],
            ["status", "letters"],
        ),
    )


# --- settle --------------------------------------------------------------------------------------


@notify.command()
@click.argument("reference")
@click.option(
    "--resend",
    "action",
    flag_value=SettleAction.RESEND.value,
    help="Ask Notify for the reference first; send the letter again only if Notify holds no"
    " live letter for it.",
)
@click.option(
    "--undeliverable",
    "action",
    flag_value=SettleAction.UNDELIVERABLE.value,
    help="Never send it: cancel the letter and flag its debt for tracing and a caseworker.",
)
@click.option(
    "--channel",
    type=click.Choice(NOTIFY_CHANNELS),
    default=GOVUK_NOTIFY,
    show_default=True,
    help="The Notify service the letter went through.",
)
@_letters_config_option
@_limit_options
@_fake_options
@format_option
@pass_state
def settle(
    state: CliState,
    reference: str,
    action: str | None,
    channel: str,
    letters_config: Path | None,
    daily_limit: int | None,
    rate_per_minute: int,
    fake: FakeNotifyOptions,
    fmt: str,
) -> None:
    """Settle one technical-failure letter REFERENCE: --resend or --undeliverable.

    Notify's guidance for a technical failure is not to send the letter again, so `notify sync`
    never does. --resend looks the reference up at Notify first: a live letter found there is
    recorded instead (never sent twice); only when Notify holds none is it sent again, if still
    due, within the daily quota. --undeliverable cancels it and flags its debt for tracing and a
    caseworker. JSON keys: run_id, reference, action, outcome (resent, found_at_notify,
    undeliverable, not_resent), status, notify_id, found_at_notify, stop_code, stop_message.
    """
    if action is None:
        raise UsageError("say what to do with the letter: --resend or --undeliverable")
    config = _config(letters_config)
    ctx = state.context()
    target = _channel(channel, config, rate_per_minute=rate_per_minute, fake=fake)
    options = _settle(channel, daily_limit)
    result = settle_letter(ctx, target, config, reference, SettleAction(action), options=options)
    emit(
        fmt,
        result,
        table=lambda c: c.print(
            f"Letter {result.reference}: {result.outcome} (now {result.status};"
            f" {result.found_at_notify} letters at Notify for the reference)"
            + (
                f"\n[bold]Stopped ({result.stop_code}):[/] {result.stop_message}"
                if result.stop_message
                else ""
            )
        ),
    )


# --- returned ------------------------------------------------------------------------------------


def read_returned_report(path: Path) -> list[tuple[str | None, str | None]]:
    """(Notify id, reference) pairs from Notify's returned-letters report: a CSV with a
    ``Reference`` and/or ``Notification ID`` column (any case), or one reference a line."""
    return [(notify_id, ref) for notify_id, ref, _, _ in read_returned_rows(path)]


def read_returned_rows(
    path: Path,
) -> list[tuple[str | None, str | None, str | None, int | None]]:
    """(Notify id, reference, spreadsheet file name, spreadsheet row number) for each row of
    Notify's returned-letters report (the last two for letters of an uploaded file: Notify
    counts the file's letter rows from 1)."""
    text = path.read_text(encoding="utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return []
    header = [h.strip().lower() for h in rows[0]]
    names = {
        "reference": "reference",
        "notification id": "id",
        "notification_id": "id",
        "id": "id",
        "spreadsheet file name": "file",
        "spreadsheet row number": "row",
    }
    where = {names[h]: i for i, h in enumerate(header) if h in names}
    if "id" not in where and "reference" not in where:
        return [(None, r[0].strip(), None, None) for r in rows if r and r[0].strip()]

    def cell(row: list[str], name: str) -> str:
        return row[where[name]].strip() if name in where and len(row) > where[name] else ""

    found: list[tuple[str | None, str | None, str | None, int | None]] = []
    for line, row in enumerate(rows[1:], start=2):
        notify_id, ref, file_name, number = (
            cell(row, n) for n in ("id", "reference", "file", "row")
        )
        if not (notify_id or ref):
            continue
        if number and not number.isdigit():
            raise InputError(f"{path} line {line}: Spreadsheet row number must be a whole number")
        found.append(
            (notify_id or None, ref or None, file_name or None, int(number) if number else None)
        )
    return found


@notify.command()
@click.argument("report", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--print-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The --out directory of print-file sends: a return of an uploaded print file (no"
    " reference) is matched by its spreadsheet file name and row number through the batch"
    " manifests there.",
)
@_letters_config_option
@format_option
@pass_state
def returned(
    state: CliState, report: Path, print_dir: Path | None, letters_config: Path | None, fmt: str
) -> None:
    """Record the letters in Notify's returned-letters report REPORT as returned.

    Letters come back weeks after posting, after Notify's status retention, and only in this
    report (Notify's API keeps showing them as received): download it from Notify (a CSV with a
    Reference and/or Notification ID column; or a file of references, one a line). A letter of
    an uploaded print file has no reference: it is matched by its Notify id (see `notify
    uploaded`) or, with --print-dir, by its spreadsheet file name and row number. Each returned
    letter's debt is flagged for tracing and a caseworker; letters already recorded as returned
    are left alone; returns matching no letter are listed. JSON keys as for sync.
    """
    config = _config(letters_config)
    rows = read_returned_rows(report)
    in_files = references_in_print_files(print_dir) if print_dir is not None else {}
    pairs = [
        (notify_id, ref or (in_files.get((name, number)) if name and number else None))
        for notify_id, ref, name, number in rows
    ]
    result = record_returned(state.context(), pairs, config)
    emit(
        fmt,
        result,
        table=lambda c: c.print(
            f"{result.returned_from_report:,} letters recorded as returned; "
            f"{result.debts_flagged:,} debts flagged for tracing and a caseworker."
            + (
                f"\n[bold]{result.returned_unmatched:,} returns match no letter[/] (Notify ids:"
                f" {', '.join(result.unmatched_notify_ids[:10])}): an uploaded print file's"
                " returns carry no reference; import its upload report with `notify uploaded`"
                " and run this again, or give them to a caseworker."
                if result.returned_unmatched
                else ""
            )
        ),
        csv_rows=lambda: (
            [
                {
                    "returned": result.returned_from_report,
                    "debts_flagged": result.debts_flagged,
                    "unmatched": result.returned_unmatched,
                }
            ],
            ["returned", "debts_flagged", "unmatched"],
        ),
    )


def read_upload_report(path: Path) -> list[tuple[int, str]]:
    """(row number, notification id) pairs from Notify's upload report for one print file: a
    CSV with ``Row number`` and ``Notification ID`` columns (any case)."""
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    if not rows:
        return []
    header = [h.strip().lower().replace("_", " ") for h in rows[0]]
    if "row number" not in header or "notification id" not in header:
        raise InputError(f"{path}: an upload report needs Row number and Notification ID columns")
    at_row, at_id = header.index("row number"), header.index("notification id")
    pairs = []
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        try:
            pairs.append((int(row[at_row]), row[at_id].strip()))
        except (ValueError, IndexError):
            raise InputError(f"{path} line {line}: Row number must be a whole number") from None
    return pairs


@notify.command()
@click.argument("batch_directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("report", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--file", "file_name", required=True, help="The print file the report is for.")
@format_option
@pass_state
def uploaded(
    state: CliState, batch_directory: Path, report: Path, file_name: str, fmt: str
) -> None:
    """Record Notify's upload report REPORT for one print file of BATCH_DIRECTORY.

    A letter uploaded to Notify as a print file has no reference at Notify, so its return can
    only be matched by its Notify id: after uploading a file, download Notify's report for it
    (Row number, Notification ID) and import it here. Safe to re-run. JSON keys: run_id, file,
    rows, recorded, already.
    """
    result = record_upload_report(
        state.context(), batch_directory, file_name, read_upload_report(report)
    )
    emit(
        fmt,
        result,
        table=lambda c: c.print(
            f"{result.file}: {result.rows:,} rows; {result.recorded:,} letters given their"
            f" Notify id, {result.already:,} had it already."
        ),
    )


# --- status --------------------------------------------------------------------------------------


def render_status(console: Console, result: OutboxStatus) -> None:
    console.print(
        rich_table(
            "Batches",
            ["batch", "letter", "status", "as of", "built by", "approved by", "channel", "letters"],
            [
                [
                    b.batch_id,
                    b.letter_type or "all due",
                    b.status,
                    b.as_of,
                    b.built_by,
                    b.approved_by,
                    b.channel,
                    ", ".join(f"{k} {n:,}" for k, n in b.by_status.items()),
                ]
                for b in result.batches
            ],
        )
    )
    for b in result.batches:
        if b.stop_reason and b.status == BatchStatus.STOPPED:
            console.print(f"Batch {b.batch_id} stopped: {b.stop_reason}")
    console.print(
        rich_table(
            "Letters",
            ["purpose", "to", "status", "letters"],
            [
                [r["purpose"], r["recipient"], r["status"], f"{r['letters']:,}"]
                for r in result.by_kind
            ],
            right=["letters"],
        )
    )
    if result.attention:
        console.print(
            rich_table(
                "Needs attention",
                ["status", "letters", "what to do"],
                [[k, f"{v['letters']:,}", v["what_to_do"]] for k, v in result.attention.items()],
                right=["letters"],
            )
        )
    for title, reasons in (
        ("Held, by reason", result.held_by_reason),
        ("Failed, by reason", result.failed_by_reason),
        ("Open debts flagged by letters", result.debts_flagged_by_letters),
    ):
        if reasons:
            console.print(
                rich_table(
                    title,
                    ["reason", "count"],
                    [[k, f"{n:,}"] for k, n in reasons.items()],
                    right=["count"],
                )
            )


@notify.command()
@click.option("--batch", "batch_id", type=int, default=None, help="Only this batch's letters.")
@format_option
@pass_state
def status(state: CliState, batch_id: int | None, fmt: str) -> None:
    """Batches and letters by status, what needs attention, and the daily quotas.

    Counts only: no references, case references or personal data. JSON keys: batch_id,
    batches (batch_id, letter_type, status, as_of, built_by, built_at, approved_by,
    approved_at, channel, sent_at, stop_reason, letter_count, by_status), by_kind
    (purpose, recipient, status, letters), by_status, held_by_reason, failed_by_reason,
    attention, debts_flagged_by_letters, quota.
    """
    result = outbox_status(state.context(), batch_id=batch_id)
    emit(
        fmt,
        result,
        table=lambda c: render_status(c, result),
        csv_rows=lambda: (result.by_kind, ["purpose", "recipient", "status", "letters"]),
    )
