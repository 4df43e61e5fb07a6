"""``csa-closure docs``: the bundled documentation, and --help that points to it rather than
to files only a source checkout has."""

from __future__ import annotations

import re
from pathlib import Path

import click
from click.testing import CliRunner

from csa_closure.cli import cli
from csa_closure.docs import TOPICS

ROOT = Path(__file__).resolve().parents[2]


def _commands(group: click.Group, prefix: str = "csa-closure"):  # type: ignore[no-untyped-def]
    yield prefix, group
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _commands(command, f"{prefix} {name}")
        else:
            yield f"{prefix} {name}", command


def test_docs_lists_topics_and_shows_each_file() -> None:
    runner = CliRunner()
    listed = runner.invoke(cli, ["docs"])
    assert listed.exit_code == 0, listed.output
    assert all(topic in listed.output for topic in TOPICS)
    for topic, (relative, _) in TOPICS.items():
        shown = runner.invoke(cli, ["docs", topic])
        assert shown.exit_code == 0, shown.output
        assert shown.output == (ROOT / relative).read_text(encoding="utf-8")
    unknown = runner.invoke(cli, ["docs", "nope"])
    assert unknown.exit_code == 2 and "topics: readme" in unknown.output


def test_help_points_to_bundled_docs_not_checkout_paths() -> None:
    checkout_path = re.compile(r"\b(runbooks|docs|rules|sql|sample_data)/[\w./-]+")
    wrong = []
    topics = set()
    for path, command in _commands(cli):
        texts = [command.help or ""] + [
            p.help or "" for p in command.params if isinstance(p, click.Option)
        ]
        for text in texts:
            wrong += [f"{path}: {m.group(0)}" for m in checkout_path.finditer(text)]
            topics |= set(re.findall(r"csa-closure docs (\w+)", text))
    assert wrong == []
    assert topics and topics <= set(TOPICS)  # every topic --help names exists


def test_the_wheel_bundles_every_topic() -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    for relative, _ in TOPICS.values():
        top = relative.split("/")[0]
        assert f'"{top}" = "csa_closure/_bundled/{top}"' in text, relative
