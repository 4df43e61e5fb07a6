"""The programme's stages, one module each (pull, assess, letters_outbox, responses, resolve,
review, ledger, transfer, archive, decommission): typed functions over the run context that
the CLI and the demo call. Nothing here imports the CLI, the reports or the simulation.
"""
