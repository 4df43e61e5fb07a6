"""Moved to :mod:`csa_closure.store.debts`, the only writer of ``debts``; kept only so modules
being rewritten on other branches still import. New code imports ``store.debts``."""

from csa_closure.store.debts import check_transition, move_debts

__all__ = ["check_transition", "move_debts"]
