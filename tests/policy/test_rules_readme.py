"""rules/README.md stays in step with the code: features, parameters, outcomes, functions,
the default rows, and the commands policy staff are told to run."""

from __future__ import annotations

import re

import pytest

from csa_closure.domain.states import Outcome
from csa_closure.policy import FEATURE_PARAMETERS, FEATURES
from csa_closure.policy.conditions import FUNCTIONS
from csa_closure.resources import default_rules_dir
from tests.support.policy import default_rules

README = (default_rules_dir() / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("feature", FEATURES, ids=lambda f: f.name)
def test_every_feature_is_documented_with_its_type(feature) -> None:  # type: ignore[no-untyped-def]
    assert f"| `{feature.name}` | {feature.type.value} |" in README


def test_no_undocumented_feature_rows() -> None:
    documented = set(re.findall(r"^\| `([a-z_]+)` \| (?:integer|boolean|text) \|", README, re.M))
    assert documented == {f.name for f in FEATURES}


@pytest.mark.parametrize("name", sorted(FEATURE_PARAMETERS))
def test_every_feature_parameter_is_documented(name: str) -> None:
    ptype = FEATURE_PARAMETERS[name].value
    assert f"| `{name}` | {ptype} |" in README


def test_outcomes_functions_and_commands_are_documented() -> None:
    for outcome in Outcome:
        assert f"| `{outcome.value}` |" in README
    for function in FUNCTIONS:
        assert f"`{function}`" in README
    for command in (
        "csa-closure rules check --rules",
        "csa-closure rules simulate --rules",
        "--against",
        "csa-closure assess --rules",
        "csa-closure rules show",
        "csa-closure explain CASE_REF",
        "--set threshold_pence=60000",
    ):
        assert command in README
    prose = " ".join(README.replace("**", "").split())
    assert "A condition that is NULL (unknown) does not match" in prose


def test_documented_default_rows_match_the_rules() -> None:
    rows = re.findall(r"^\| ((?:PWC|SOS|COL)-\d\d) \| `(.+?)` \| (\w+) \| (\w+) \|$", README, re.M)
    rules = default_rules()
    assert len(rows) == 15  # SOS-01..04 are documented as "as PWC-01 to PWC-04"
    for rule_id, when, outcome, reason in rows:
        rule = rules.rule(rule_id)
        assert (rule.condition.text, rule.outcome.value, rule.reason) == (when, outcome, reason)
