"""The domain's rules that more than one stage applies, each written once.

The vocabulary (:mod:`.states`, :mod:`.events`, :mod:`.codes`) and the rules written on it
(:mod:`.notice`, :mod:`.reconciliation`). Modules here import only each other and polars: no
store, no stage, no rendering, so every layer can share them.
"""
