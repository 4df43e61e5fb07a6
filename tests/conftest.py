"""Shared fixtures: a migrated working store on SQLite and, when configured, PostgreSQL.

PostgreSQL tests read the server URL from CSA_CLOSURE_TEST_POSTGRES_URL and run each test in
its own schema (dropped afterwards), so tests never see each other's rows. Without the
variable they are skipped with that reason; .ci/run sets CSA_CLOSURE_REQUIRE_POSTGRES=1, which
turns a missing or unreachable server into a failure instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine

from csa_closure.context import Context, Settings
from csa_closure.store import migrate
from csa_closure.store.engine import make_engine

PG_ENV = "CSA_CLOSURE_TEST_POSTGRES_URL"
REQUIRE_PG_ENV = "CSA_CLOSURE_REQUIRE_POSTGRES"
SKIP_REASON = (
    f"PostgreSQL tests need {PG_ENV} "
    "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test); .ci/run sets it"
)

AS_OF = date(2019, 3, 31)


def _pg_server_url() -> str | None:
    url = os.environ.get(PG_ENV)
    if not url:
        if os.environ.get(REQUIRE_PG_ENV) == "1":
            pytest.fail(f"{REQUIRE_PG_ENV}=1 but {PG_ENV} is not set")
        pytest.skip(SKIP_REASON)
    return url


def _with_search_path(url: str, schema: str) -> str:
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options={quote(f'-csearch_path={schema}')}"


@pytest.fixture
def pg_schemas() -> Iterator[Callable[[], str]]:
    """Make fresh, empty PostgreSQL schemas (dropped after the test); returns their URLs."""
    server = _pg_server_url()
    assert server is not None
    admin = create_engine(server)
    made: list[str] = []

    def make() -> str:
        schema = f"t_{uuid.uuid4().hex[:16]}"
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        made.append(schema)
        return _with_search_path(server, schema)

    try:
        yield make
    finally:
        with admin.begin() as conn:
            for schema in made:
                conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.dispose()


@pytest.fixture
def pg_schema_url(pg_schemas: Callable[[], str]) -> str:
    """A URL whose connections work in a fresh, empty PostgreSQL schema."""
    return pg_schemas()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """An empty database URL, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("pg_schema_url"))


@pytest.fixture
def store_url(db_url: str) -> str:
    """A migrated working store URL (both databases)."""
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    engine.dispose()
    return db_url


class SteppingClock:
    """A clock for tests: starts at a fixed instant and moves only when told."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2019, 3, 31, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def ctx(store_url: str) -> Iterator[Context]:
    """A context on a migrated store (both databases), as of 31 March 2019."""
    engine = make_engine(store_url)
    yield Context(engine=engine, as_of=AS_OF, actor="tester", settings=Settings(chunk_size=50))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def make_store(request: pytest.FixtureRequest, tmp_path) -> Callable[[], str]:  # type: ignore[no-untyped-def]
    """Make fresh migrated working stores on one database kind (both kinds, parametrised)."""
    counter = iter(range(1, 1000))

    def make() -> str:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path / f'store{next(counter)}.db'}"
        else:
            url = request.getfixturevalue("pg_schemas")()
        engine = make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        return url

    return make


def context_for(
    url: str, *, as_of: date = AS_OF, actor: str = "tester", chunk_size: int = 50
) -> Context:
    return Context(
        engine=make_engine(url), as_of=as_of, actor=actor, settings=Settings(chunk_size=chunk_size)
    )
