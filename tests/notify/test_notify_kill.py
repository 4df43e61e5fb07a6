"""A send killed with SIGKILL at the worst moments and run again, and concurrent senders of one
batch: every letter reaches the (fake) Notify service exactly once, counted at the service. On
SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from csa_closure.errors import LeaseHeld
from csa_closure.simulation.fake_notify import FakeNotify, FakeNotifyChannel
from csa_closure.stages.letters_outbox import SendOptions, send_batch
from csa_closure.store.failpoints import ENV as FAILPOINT_ENV
from tests.conftest import context_for
from tests.support.builders import BookBuilder
from tests.support.notify import CONFIG, built_batch, letters_book, outbox


def _command(url: str, batch_id: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "csa_closure",
        "--db",
        url,
        "--as-of",
        "2019-03-31",
        "--actor",
        "sender",
        "notify",
        "send",
        str(batch_id),
        *extra,
        "--format",
        "json",
    ]


def _run(command: list[str], failpoint: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != FAILPOINT_ENV}
    if failpoint:
        env[FAILPOINT_ENV] = failpoint
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    "failpoint",
    [
        "notify-send:2:after_send",  # Notify accepted two letters; nothing recorded yet
        "notify-send:6:after_send",
        "notify-send:3:after_commit",  # an intent committed, no call made
        "notify-send:4:before_commit",  # outcomes written but not committed
    ],
)
def test_a_send_killed_part_way_and_rerun_sends_every_letter_exactly_once(
    make_store: Callable[[], str], tmp_path: Path, failpoint: str
) -> None:
    url = make_store()
    ctx = context_for(url)
    letters_book(ctx)
    batch_id = built_batch(ctx)
    refs = outbox(ctx).filter(pl.col("batch_id") == batch_id)["reference"].to_list()
    state = tmp_path / "fake-notify.db"
    command = _command(
        url, batch_id, "--channel", "fake-notify", "--fake-state", str(state), "--intent-group", "3"
    )
    died = _run(command, failpoint)
    assert died.returncode == -9, died.stderr
    service = FakeNotify(state)
    if failpoint == "notify-send:2:after_send":
        # the worst moment: Notify has the letters, the store only the intent
        assert service.count() == 2
        statuses = outbox(ctx).filter(pl.col("batch_id") == batch_id)["status"].to_list()
        assert statuses.count("sending") == 3 and "accepted" not in statuses
    rerun = _run(command)
    assert rerun.returncode == 0, rerun.stderr
    result = json.loads(rerun.stdout)
    assert result["batch_status"] == "sent" and result["remaining"] == 0
    assert {r: service.count(r) for r in refs} == dict.fromkeys(refs, 1)
    assert service.count() == len(refs)
    frame = outbox(ctx).filter(pl.col("batch_id") == batch_id)
    assert set(frame["status"]) == {"accepted"}
    assert frame["notify_id"].n_unique() == len(refs)
    if failpoint.endswith("after_send"):
        assert result["reconciled"].get("sent", 0) >= 1


def test_a_print_send_killed_after_writing_is_finished_by_the_rerun(
    make_store: Callable[[], str], tmp_path: Path
) -> None:
    url = make_store()
    ctx = context_for(url)
    letters_book(ctx)
    batch_id = built_batch(ctx)
    out = tmp_path / "print"
    command = _command(url, batch_id, "--channel", "print-file", "--out", str(out))
    died = _run(command, "notify-send:1:after_write")
    assert died.returncode == -9, died.stderr
    directory = out / f"batch-{batch_id}"
    written = {p.name: p.read_bytes() for p in directory.iterdir()}
    assert "manifest.json" in written
    rerun = _run(command)
    assert rerun.returncode == 0, rerun.stderr
    result = json.loads(rerun.stdout)
    assert result["print_files"]["written"] is False and result["batch_status"] == "sent"
    assert {p.name: p.read_bytes() for p in directory.iterdir()} == written
    assert set(outbox(ctx).filter(pl.col("batch_id") == batch_id)["status"]) == {"sent"}


def test_concurrent_senders_of_one_batch_send_every_letter_exactly_once(
    make_store: Callable[[], str], tmp_path: Path
) -> None:
    url = make_store()
    ctx = context_for(url)
    book = BookBuilder(ctx)
    for _ in range(30):
        book.debt(book.case(), "PWC", 200_000, state="awaiting_letter", outcome="representation")
    batch_id = built_batch(ctx)
    refs = outbox(ctx)["reference"].to_list()
    state = tmp_path / "fake-notify.db"
    FakeNotifyChannel(state, templates=CONFIG).close()  # the service's file exists up front
    start = threading.Barrier(4)

    def operator(n: int) -> list[str]:
        mine = context_for(url, actor=f"operator{n}")
        channel = FakeNotifyChannel(state, templates=CONFIG)
        options = SendOptions(intent_group=2, settle=timedelta(0))
        seen: list[str] = []
        start.wait()
        for _ in range(200):
            try:
                result = send_batch(mine, batch_id, channel, CONFIG, options=options)
            except LeaseHeld:
                seen.append("refused")
                time.sleep(0.02)
                continue
            seen.append(result.batch_status)
            if result.batch_status == "sent":
                break
        channel.close()
        mine.engine.dispose()
        return seen

    with ThreadPoolExecutor(4) as pool:
        seen = list(pool.map(operator, range(4)))
    assert any("refused" in s for s in seen)  # the lease turned the others away
    assert all(s[-1] == "sent" for s in seen)
    service = FakeNotify(state)
    assert {r: service.count(r) for r in refs} == dict.fromkeys(refs, 1)
    assert service.count() == len(refs)
