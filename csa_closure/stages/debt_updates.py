"""Moved to :mod:`csa_closure.store.debts`, the only writer of ``debts``; kept only so modules
being rewritten on other branches still import. New code imports ``store.debts``."""

from csa_closure.store.debts import DECISION_COLUMNS, decision_stamp, update_debts

__all__ = ["DECISION_COLUMNS", "decision_stamp", "update_debts"]
