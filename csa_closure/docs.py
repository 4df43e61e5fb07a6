"""The documentation a wheel user has: the README, the runbooks, the rules guide and the JSON
reference are bundled with the package and shown by ``csa-closure docs [TOPIC]``.

``--help`` texts point here (``csa-closure docs letters``), never to a path in a source
checkout a wheel user does not have.
"""

from __future__ import annotations

from csa_closure.errors import UsageError
from csa_closure.resources import resource_file

# topic -> (file from the top of the repository, what it is)
TOPICS: dict[str, tuple[str, str]] = {
    "readme": ("README.md", "what the toolkit does, setting up, every command"),
    "runbooks": ("runbooks/README.md", "the operator's runbooks, in order"),
    "pull": ("runbooks/01-pull.md", "runbook 01: pulling the legacy systems, quarantine"),
    "assess": ("runbooks/02-assess.md", "runbook 02: deciding every debt"),
    "letters": ("runbooks/03-letters.md", "runbook 03: letters by Notify or print file"),
    "responses": ("runbooks/04-responses.md", "runbook 04: parents' responses"),
    "resolve": (
        "runbooks/05-resolve-and-transfer.md",
        "runbook 05: resolve, review, ledger and transfer",
    ),
    "reports": (
        "runbooks/06-reports-and-decommission.md",
        "runbook 06: reports, evidence and the decommission gate",
    ),
    "rules": ("rules/README.md", "the policy as data, for policy staff"),
    "json": ("docs/json-output.md", "the JSON every command prints with --format json"),
}


def topic_text(topic: str) -> str:
    """The text of ``topic``; refuses an unknown one, listing the topics."""
    if topic not in TOPICS:
        raise UsageError(f"no documentation topic {topic!r}; topics: {', '.join(TOPICS)}")
    return resource_file(TOPICS[topic][0]).read_text(encoding="utf-8")
