"""The write-off policy as data: load, validate, evaluate, check, simulate and explain rules.

Library only: pure functions over polars frames, no database access and no printing.

- ``load_rule_set(path=None, overrides={})`` -> ``RuleSet`` (refuses a bad rule set with
  ``RuleSetError``, an ``InputError``, naming file, rule id and problem);
- ``compute_features(debts, as_of, params)`` -> features frame (see ``FEATURES``);
- ``decide(rule_set, features)`` / ``collectability(rule_set, features)`` -> frame of
  ``debt_id, outcome, reason, rule_id``;
- ``check_rules(rule_set, features)`` -> ``CheckReport``;
- ``simulate(new, current, features)`` -> ``SimulationResult``;
- ``explain_debt(rule_set, features_row)`` -> ``DebtExplanation``.
"""

from __future__ import annotations

from csa_closure.policy.check import CheckReport, RuleCheck, TableCheck, check_rules
from csa_closure.policy.errors import (
    ConditionError,
    FeatureInputError,
    OverrideError,
    PolicyInternalError,
    RuleProblem,
    RuleSetError,
)
from csa_closure.policy.evaluate import (
    DECISION_COLUMNS,
    collectability,
    decide,
    reference_decide,
    reference_first_hit,
)
from csa_closure.policy.explain import (
    DebtExplanation,
    ParameterValue,
    RuleTrial,
    TableTrace,
    explain_debt,
)
from csa_closure.policy.features import (
    FEATURE_PARAMETERS,
    FEATURES,
    INPUT_COLUMNS,
    OUTPUT_COLUMNS,
    Feature,
    FeatureParameters,
    InputColumn,
    bind_features,
    compute_features,
)
from csa_closure.policy.loader import load_rule_set, rule_set_from_documents
from csa_closure.policy.params import Parameter, ParamType
from csa_closure.policy.ruleset import TABLES, Reason, Rule, RuleSet, RuleTable
from csa_closure.policy.simulate import (
    ChangeCell,
    CollectionForecast,
    LetterCounts,
    OutcomeTotal,
    RuleSetOutcomes,
    SimulationResult,
    simulate,
)

__all__ = [
    "DECISION_COLUMNS",
    "FEATURES",
    "FEATURE_PARAMETERS",
    "INPUT_COLUMNS",
    "OUTPUT_COLUMNS",
    "TABLES",
    "ChangeCell",
    "CheckReport",
    "CollectionForecast",
    "ConditionError",
    "DebtExplanation",
    "Feature",
    "FeatureInputError",
    "FeatureParameters",
    "InputColumn",
    "LetterCounts",
    "OutcomeTotal",
    "OverrideError",
    "ParamType",
    "Parameter",
    "ParameterValue",
    "PolicyInternalError",
    "Reason",
    "Rule",
    "RuleCheck",
    "RuleProblem",
    "RuleSet",
    "RuleSetError",
    "RuleSetOutcomes",
    "RuleTable",
    "RuleTrial",
    "SimulationResult",
    "TableCheck",
    "TableTrace",
    "bind_features",
    "check_rules",
    "collectability",
    "compute_features",
    "decide",
    "explain_debt",
    "load_rule_set",
    "reference_decide",
    "reference_first_hit",
    "rule_set_from_documents",
    "simulate",
]
