"""The explicit context every operation runs in: store, as-of date, actor, settings.

No module reads the clock, the OS random source, the environment or a global engine: the CLI
builds a ``Context`` once and passes it down, so every run is reproducible from its recorded
parameters.
"""

from __future__ import annotations

import getpass
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from typing import TYPE_CHECKING

from csa_closure.store.clock import Clock, utcnow

if TYPE_CHECKING:  # SQLAlchemy is imported by the code that makes the engine, not here
    from sqlalchemy.engine import Engine

DEFAULT_DB_URL = "sqlite:///csa_closure.db"
CHUNK_SIZE_ENV = "CSA_CLOSURE_CHUNK_SIZE"
DB_ENV = "CSA_CLOSURE_DB"
AS_OF_ENV = "CSA_CLOSURE_AS_OF"
ACTOR_ENV = "CSA_CLOSURE_ACTOR"


@dataclass(frozen=True)
class Settings:
    """Tunables that are not policy. Policy lives in rules/."""

    chunk_size: int = 20_000
    lease_seconds: int = 300

    @classmethod
    def from_environment(cls, chunk_size: int | None = None) -> Settings:
        """Settings, with the chunk size taken from CSA_CLOSURE_CHUNK_SIZE when set, else
        ``chunk_size`` (the configuration file's) when given."""
        size = os.environ.get(CHUNK_SIZE_ENV)
        if size:
            return cls(chunk_size=int(size))
        return cls(chunk_size=chunk_size) if chunk_size else cls()


@dataclass(frozen=True)
class Context:
    engine: Engine
    as_of: date
    actor: str
    settings: Settings = field(default_factory=Settings)
    clock: Clock = utcnow
    # where random tokens (letter references) come from; the demo passes a seeded one
    random_bytes: Callable[[int], bytes] = secrets.token_bytes
    # the JSON-lines log this process writes (--log-file), recorded on every run it starts
    log_file: str | None = None
    # The as-of guard (``store.runs.as_of_problem``): the CLI turns it on for every command;
    # ``allow_as_of`` (``--allow-as-of``) lets a guarded date through, recorded on the run.
    guard_as_of: bool = False
    allow_as_of: bool = False

    @property
    def host(self) -> str:
        return socket.gethostname()

    @property
    def holder(self) -> str:
        """Who holds a lease: actor, machine and process, so a stale holder can be found."""
        return f"{self.actor}@{self.host} pid {os.getpid()}"

    def on(self, as_of: date) -> Context:
        """The same context at another as-of date (the demo moves time forward)."""
        return replace(self, as_of=as_of)

    def as_actor(self, actor: str) -> Context:
        return replace(self, actor=actor)


def default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        return "unknown"
