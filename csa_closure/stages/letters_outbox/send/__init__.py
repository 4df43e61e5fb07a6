"""``notify send``: send an approved batch through GOV.UK Notify (or the fake) or as print files.

One module per part: :mod:`.options` (options, stops, the result), :mod:`.batch` (the batch's
start and finish), :mod:`.sender` (what both paths share), :mod:`.notify` (the Notify path,
for any :class:`~csa_closure.channels.base.LetterChannel`) and :mod:`.printing` (the print-file
path, for any :class:`~csa_closure.channels.base.PrintChannel`).

**Claim.** The sender holds the lease ``letter_batch:<id>`` for the whole run (renewed in every
transaction it commits), so of two operators sending one batch exactly one proceeds; the other
is refused, naming the holder. A batch is sent through one channel and with one letters
configuration: once a letter of it has been tried, another channel or configuration is refused.

**Notify, one letter at a time, exactly once.** Notify has no idempotency key, so:

0. *Templates first.* Before the first letter, every template the batch's letters use is
   fetched from Notify and compared with the letters configuration
   (:mod:`.templates`): a difference refuses the batch before anything is sent.
1. *Reconcile first.* Every letter left ``sending`` or ``unknown`` by an earlier run is looked
   up by its reference (:func:`~csa_closure.channels.reconcile`) before anything new is sent:
   found -> recorded as Notify has it (never sent again); found twice -> recorded and flagged for
   a person; found only as a technical failure -> recorded as that (never resent: Notify's
   guidance; ``notify settle`` decides); not found -> back to ``pending`` (safe to send
   again); too soon to tell -> left for the next run; too old to tell (past Notify's
   retention) -> flagged for a person.
2. *Intent before the call.* Letters go in small groups (``intent_group``, default 100). For
   each group one transaction reserves the group in the day's quota and marks its letters
   ``sending`` with the attempt time and the letter date; only then is Notify called, once per
   letter. A crash at any moment leaves at most one group ``sending``, which step 1 settles by
   reference on the re-run: no letter is ever sent twice, none is lost. (One transaction per
   group instead of per letter keeps the database's share of a send small; the price is that a
   crash costs up to ``intent_group`` lookups by reference. At 100 instead of 20 the store's
   two transactions a group are shared by five times the letters: the default demo went from
   73 s to 58 s of CPU (2026-12-03); a crash then costs about two seconds of lookups at
   Notify's 3,000 requests a minute.)
3. *Outcome after the calls.* One transaction per group records what Notify said: accepted
   (with Notify's id; a final-chance letter starts its debt's response window), ``unknown``
   (timeout, dropped connection, 5xx: reconciled before any resend), ``failed`` (400: the
   reason, with no personal data; the debt flagged), and letters never called (the batch
   stopped first) back to ``pending`` with their quota given back.

The batch **stops** (status ``stopped``, with the reason; run ``notify send`` again to resume)
when the day's quota is used (checked before every group; Notify's own daily limit, 429
``TooManyRequestsError``, marks the day used up), or Notify refuses the key (403), or a
rejection says every letter would fail (the service may not send letters, a template deleted
or of the wrong type, a team key or trial mode: stopped after that one letter, with the cause
named), or Notify stays
unavailable, or ``max_ambiguous_in_a_row`` sends in a row were ambiguous (an outage). Stops that
need a person raise :class:`BatchStopped` after everything is recorded; the daily quota does
not (resume with the next day's ``--as-of``).

**Print files.** The batch's letters are marked ``sending`` (the intent), composed and written
as Notify's bulk-upload CSV per template plus ``manifest.json`` (owner-only, written once), then
marked ``sent``. A re-run after a crash finds the complete files by their manifest and only
records them; sending a sent batch again writes nothing. The letters are screened and composed
a page at a time as frames (:func:`~csa_closure.letters.compose.compose_frame`, which composes
exactly what ``prepare_letter`` does) and the files streamed page by page
(:func:`~csa_closure.channels.write_print_frames`), so a batch of any size is never in memory.

Letters are composed at send time, for their recipient only, with the date kept on the letter
from its first send intent, so a resend says exactly what the first attempt said. Before
composing, every letter is checked to be still due (:func:`.outgoing.still_due`): no longer due
-> ``cancelled``; addressed to a party who is no longer the case's parent, an address no longer
usable or a fact missing -> ``held`` and the debt flagged.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from csa_closure.channels import LetterChannel, PrintChannel
from csa_closure.context import Context
from csa_closure.letters import LettersConfig
from csa_closure.progress import NO_PROGRESS, Progress
from csa_closure.stages.letters_outbox.common import SEND_STAGE, batch_lease
from csa_closure.stages.letters_outbox.send.batch import (
    finish_batch,
    refuse_example_config,
    start_batch,
)
from csa_closure.stages.letters_outbox.send.notify import NotifySender, template_stop
from csa_closure.stages.letters_outbox.send.options import (
    BatchStopped,
    PrintFiles,
    SendOptions,
    SendResult,
    Stop,
    StopCode,
    counts,
)
from csa_closure.stages.letters_outbox.send.printing import PrintSender
from csa_closure.stages.letters_outbox.send.sender import Sender
from csa_closure.store.runs import Run, stage_run


def send_batch(
    ctx: Context,
    batch_id: int,
    channel: LetterChannel | PrintChannel,
    config: LettersConfig,
    *,
    options: SendOptions | None = None,
    progress: Progress = NO_PROGRESS,
) -> SendResult:
    """Send approved batch ``batch_id`` through ``channel`` (see the module doc)."""
    options = options or SendOptions()
    refuse_example_config(channel.name, config)
    parameters: dict[str, Any] = {
        "batch_id": batch_id,
        "channel": channel.name,
        "letters_config": config.source,
        "letters_config_sha256": config.sha256,
        "daily_limit": options.daily_limit,
        "intent_group": options.intent_group,
    }
    result = SendResult(None, batch_id, channel.name, ctx.as_of.isoformat())
    path: Callable[[Run], Sender]
    if isinstance(channel, PrintChannel):  # the one place the two paths part
        parameters["out_dir"] = str(Path(channel.out_dir).resolve())
        printer = channel
        path = lambda run: PrintSender(run, batch_id, printer, config, options, result, progress)  # noqa: E731
    else:
        notify = channel
        path = lambda run: NotifySender(run, batch_id, notify, config, options, result, progress)  # noqa: E731
    with stage_run(ctx, SEND_STAGE, parameters, claims=[batch_lease(batch_id)]) as run:
        result.run_id = run.run_id
        with run.chunk() as conn:
            work = start_batch(conn, run, batch_id, channel.name, config)
        stop = None
        if work:
            stop = path(run).send()
        with run.chunk() as conn:
            finish_batch(conn, run, batch_id, stop, result, options)
        run.counts.update(counts(result))
        if stop is not None and stop.needs_person:
            raise BatchStopped(stop.message, result)
    return result


__all__ = [
    "BatchStopped",
    "NotifySender",
    "PrintFiles",
    "SendOptions",
    "SendResult",
    "Stop",
    "StopCode",
    "finish_batch",
    "refuse_example_config",
    "send_batch",
    "template_stop",
]
