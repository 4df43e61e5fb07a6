"""The simulated world around the programme, for tests, rehearsals, the demo and the benchmark.

Nothing in production imports this package (import-linter checks it: see ``[tool.importlinter]``
in pyproject.toml); only the CLI reaches it, for ``sample``, ``demo`` and ``--channel
fake-notify``.

- :mod:`~csa_closure.simulation.fake_notify`: a fake GOV.UK Notify service and the real Notify
  channel over it;
- :mod:`~csa_closure.simulation.legacy`: the synthetic legacy CSCS/CS2 replica;
- :mod:`~csa_closure.simulation.debts`: a synthetic frame of pulled debts, for testing the
  policy at scale;
- :mod:`~csa_closure.simulation.responses`, :mod:`~csa_closure.simulation.acknowledgements`,
  :mod:`~csa_closure.simulation.decisions`: what parents, creditors and caseworkers send back;
- :mod:`~csa_closure.simulation.seeded`: the one seeded random source they all draw from;
- :mod:`~csa_closure.simulation.demo`: the whole programme, day by day.
"""
