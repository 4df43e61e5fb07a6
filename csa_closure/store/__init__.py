"""The working store: tables, engine set-up, migrations, runs, events, leases, moves."""
