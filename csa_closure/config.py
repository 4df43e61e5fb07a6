"""The configuration file: ``csa-closure.toml`` in the working directory, or the file named
by ``CSA_CLOSURE_CONFIG``, as ``alembic.ini`` or dbt's profiles are.

It holds what an operator would otherwise repeat on every command::

    database_url = "postgresql+psycopg://ops@db-host/closure"
    actor = "j.smith"
    letters_config = "letters.toml"   # relative paths are from this file's folder
    chunk_size = 20000

Every key is optional. An option on the command line wins, then the environment variable
(``CSA_CLOSURE_DB``, ``CSA_CLOSURE_ACTOR``, ``CSA_CLOSURE_LETTERS_CONFIG``,
``CSA_CLOSURE_CHUNK_SIZE``), then this file, then the built-in default. An unknown key or a
value of the wrong type is refused, naming the file and the key. Secrets (the Notify API
key) are never read from it: they come from the environment only.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from csa_closure.errors import UsageError

CONFIG_ENV = "CSA_CLOSURE_CONFIG"
CONFIG_FILE = "csa-closure.toml"
KEYS: dict[str, type] = {
    "database_url": str,
    "actor": str,
    "letters_config": str,
    "chunk_size": int,
}


@dataclass(frozen=True)
class FileConfig:
    path: Path | None = None  # the file read, or None when there is none
    database_url: str | None = None
    actor: str | None = None
    letters_config: str | None = None  # resolved against the file's folder
    chunk_size: int | None = None


def load_config(cwd: Path | None = None, env: Mapping[str, str] | None = None) -> FileConfig:
    """The file named by ``CSA_CLOSURE_CONFIG`` (which must exist), else ``csa-closure.toml``
    in ``cwd`` if there is one, else an empty configuration."""
    env = os.environ if env is None else env
    named = env.get(CONFIG_ENV)
    if named:
        path = Path(named)
        if not path.is_file():
            raise UsageError(f"{CONFIG_ENV} names {path}, which is not a file")
    else:
        path = (cwd or Path.cwd()) / CONFIG_FILE
        if not path.is_file():
            return FileConfig()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise UsageError(
            f"{path}: unknown key(s) {', '.join(unknown)}; it may hold {', '.join(KEYS)}"
        )
    for key, wanted in KEYS.items():
        value = data.get(key)
        if value is not None and (type(value) is not wanted):
            kind = "whole number" if wanted is int else "string"
            raise UsageError(f"{path}: {key} must be a {kind}, not {value!r}")
    chunk = data.get("chunk_size")
    if chunk is not None and chunk < 1:
        raise UsageError(f"{path}: chunk_size must be at least 1, not {chunk}")
    letters = data.get("letters_config")
    if letters is not None:
        letters = str((path.parent / letters).resolve())
    return FileConfig(
        path=path.resolve(),
        database_url=data.get("database_url"),
        actor=data.get("actor"),
        letters_config=letters,
        chunk_size=chunk,
    )
