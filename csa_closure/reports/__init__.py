"""Read-only queries over the working store, and their renderers."""
