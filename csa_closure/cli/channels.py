"""The letters channel, built from a command's options in one place: ``notify send``, ``notify
sync``, ``notify settle`` and the demo all get theirs from :func:`letters_channel`.

The simulated Notify (``--channel fake-notify``) is simulation, not production: it is imported
here only when asked for, so no production module, and no other channel, loads it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from csa_closure.channels import LetterChannel, NotifyChannel, PrintFileChannel, TokenBucket
from csa_closure.channels.ratelimit import DEFAULT_RATE_PER_MINUTE
from csa_closure.errors import UsageError
from csa_closure.letters import LettersConfig
from csa_closure.stages.letters_outbox import CHANNELS, FAKE_NOTIFY, GOVUK_NOTIFY, PRINT_FILE
from csa_closure.stages.letters_outbox.send import refuse_example_config


@dataclass(frozen=True)
class FakeNotifyOptions:
    """How the simulated Notify behaves: its state file, fault and fate rates, seed, clock."""

    state: Path
    faults: Mapping[str, float] = field(default_factory=dict)
    fates: Mapping[str, float] = field(default_factory=dict)
    seed: int = 0
    clock: Callable[[], datetime] | None = None


def letters_channel(
    name: str,
    config: LettersConfig,
    *,
    out_dir: Path | None = None,
    rate_per_minute: int = DEFAULT_RATE_PER_MINUTE,
    fake: FakeNotifyOptions | None = None,
) -> LetterChannel | PrintFileChannel:
    """The channel ``name`` (one of ``CHANNELS``) sends through: print files under ``out_dir``,
    GOV.UK Notify (API key from the environment) throttled to ``rate_per_minute``, or the
    simulated Notify as ``fake`` describes it. Refuses options for another channel, and a live
    Notify send with the bundled example letters configuration."""
    if name not in CHANNELS:
        raise UsageError(f"unknown channel {name!r}: one of {', '.join(CHANNELS)}")
    if name == PRINT_FILE:
        if out_dir is None:
            raise UsageError("--channel print-file needs --out DIR for the files")
        return PrintFileChannel(out_dir, config)
    if out_dir is not None:
        raise UsageError("--out is for --channel print-file only")
    if name != FAKE_NOTIFY and fake is not None and (fake.faults or fake.fates):
        raise UsageError("--fake-fault and --fake-fate are for --channel fake-notify only")
    refuse_example_config(name, config)
    if name == GOVUK_NOTIFY:
        return NotifyChannel.from_env(limiter=TokenBucket(rate_per_minute=rate_per_minute))
    from csa_closure.simulation.fake_notify import FakeNotifyChannel, Fates, Faults

    if fake is None:
        raise UsageError("--channel fake-notify needs the simulated service's options")
    return FakeNotifyChannel(
        fake.state,
        faults=Faults(**fake.faults),  # type: ignore[arg-type]
        fates=Fates(**fake.fates),  # type: ignore[arg-type]
        seed=fake.seed,
        clock=fake.clock,
        templates=config,
    )


def simulated_returns(channel: LetterChannel) -> list[tuple[str | None, str | None]] | None:
    """The simulated Notify's returned-letters report as (Notify id, reference) pairs; ``None``
    for any other channel (GOV.UK Notify's report is a download: ``notify returned``)."""
    if channel.name != FAKE_NOTIFY:
        return None
    from csa_closure.simulation.fake_notify import FakeNotifyChannel

    assert isinstance(channel, FakeNotifyChannel)
    return [(notify_id, ref) for notify_id, ref, _ in channel.service.returned_letters()]
