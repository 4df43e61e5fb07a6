"""``csa-closure docs [TOPIC]``: the bundled documentation, from any installation."""

from __future__ import annotations

import sys

import click
from rich.markdown import Markdown

from csa_closure.cli.output import console, rich_table
from csa_closure.docs import TOPICS, topic_text


@click.command()
@click.argument("topic", required=False)
def docs(topic: str | None) -> None:
    """Show the documentation bundled with csa-closure: the README, each runbook, the rules
    guide and the JSON reference. Without TOPIC, list the topics.

    Shell completion: `eval "$(_CSA_CLOSURE_COMPLETE=bash_source csa-closure)"` in
    ~/.bashrc (zsh_source for zsh, fish_source for fish); see `csa-closure docs readme`.
    """
    out = console()
    if topic is None:
        out.print(
            rich_table(
                "Documentation topics (csa-closure docs TOPIC)",
                ["topic", "what"],
                [[name, what] for name, (_, what) in TOPICS.items()],
            )
        )
        return
    text = topic_text(topic)
    if sys.stdout.isatty():
        out.print(Markdown(text))
    else:
        click.echo(text, nl=False)
