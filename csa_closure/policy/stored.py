"""Rebuild a rule set from the canonical JSON stored with the decisions it made.

Every assess run stores its rule set's canonical form in ``rule_sets``; ``explain`` and
``rules simulate`` rebuild it from there, so a decision is explained by the rules that made
it even after the files under rules/ have changed.
"""

from __future__ import annotations

import json
from typing import Any

from csa_closure.policy.errors import PolicyInternalError
from csa_closure.policy.loader import rule_set_from_documents
from csa_closure.policy.ruleset import COLLECTABILITY, PWC, SOS, RuleSet


def rule_set_from_canonical(text: str) -> RuleSet:
    """The rule set whose ``canonical_json()`` is ``text``; its hash is checked."""
    canonical: dict[str, Any] = json.loads(text)
    tables = canonical["tables"]
    documents = {
        "ruleset": {
            "format": canonical["format"],
            "name": canonical["name"],
            "description": canonical["description"],
        },
        "parameters": canonical["parameters"],
        "reasons": canonical["reasons"],
        "eligibility": {PWC: tables[PWC], SOS: tables[SOS]},
        "collectability": {COLLECTABILITY: tables[COLLECTABILITY]},
    }
    rule_set = rule_set_from_documents(documents)
    if rule_set.canonical_json() != text:
        raise PolicyInternalError(
            f"the stored rule set {canonical['name']!r} does not rebuild to the same form"
        )
    return rule_set
