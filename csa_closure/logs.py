"""Logs an operator can keep: ``-v`` to the terminal, ``--log-file`` as JSON lines.

The terminal gets warnings, or with ``-v`` each stage's runs and chunks (``-vv``: debug
detail, which may quote a failing row). The log file gets the toolkit's own INFO records
whatever the verbosity, one JSON object a line: ``at`` (UTC), ``level``, ``logger``,
``message`` and the structured fields a record carries (``run_id``, ``stage``, ``chunk``,
``counts``, ...). It never carries personal data: only the toolkit's loggers write to it,
their messages hold references, codes and counts, and an exception is named by its type
alone (its text may quote a row). Every run started while a log file is open records its
path (``stage_runs.log_file``), so ``report runs`` leads to the log.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LOG_FILE_ENV = "CSA_CLOSURE_LOG_FILE"
ROOT_LOGGER = "csa_closure"
# the structured fields a record may carry into the file (``extra=`` of a log call)
FIELDS = ("run_id", "stage", "status", "as_of", "chunk", "chunks", "counts", "system", "rows")


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            if name in record.__dict__:
                entry[name] = record.__dict__[name]
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_info[0].__name__  # never its text
        return json.dumps(entry, default=str, sort_keys=False)


def configure_logging(verbosity: int, log_file: str | None = None) -> None:
    """Terminal logging at the verbosity asked for; and, given a path, the JSON-lines file
    (appended to, created readable by its owner only)."""
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    toolkit = logging.getLogger(ROOT_LOGGER)
    for handler in [h for h in toolkit.handlers if isinstance(h.formatter, JsonLines)]:
        toolkit.removeHandler(handler)
        handler.close()
    toolkit.setLevel(logging.NOTSET)
    if log_file is None:
        return
    path = Path(log_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(JsonLines())
    toolkit.addHandler(handler)
    # the file wants INFO even when the terminal shows only warnings
    toolkit.setLevel(logging.INFO if verbosity < 2 else logging.DEBUG)
    if verbosity == 0:
        for h in logging.getLogger().handlers:
            h.setLevel(logging.WARNING)
