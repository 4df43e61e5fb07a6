"""The domain's rules that more than one stage applies, each written once.

Modules here import only the vocabulary (:mod:`csa_closure.states`) and polars: no store, no
stage, no rendering, so letters and resolve (and anything later) can share them.
"""
