"""Moved to :mod:`csa_closure.domain.states`; kept only so modules being rewritten on other
branches still import. New code imports :mod:`csa_closure.domain.states`. Remove this file
once nothing imports it (tests/test_code_rules.py lists who still does)."""

from csa_closure.domain.states import *  # noqa: F403
