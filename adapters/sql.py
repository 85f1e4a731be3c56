"""SQL at the edge: engines on SQLite or PostgreSQL, and timestamps that stay UTC on both.

The catalog, the audit log and the alerts store each keep a few tables in one database, which
SQLAlchemy Core reaches here: ``sqlite:///path`` by default (under the study's platform folder),
``postgresql+psycopg://`` in production.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.pool import StaticPool

DDL_LOCK_KEY = 0x62696F6D61726B  # "biomark"
"""The PostgreSQL advisory lock held while creating tables: ``create_all`` checks, then creates, so
two processes starting at once would both see no table and one would fail on the duplicate."""


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware UTC in, timezone-aware UTC out, on every backend.

    SQLite has no time zone type: values are stored as naive UTC text, whose fixed-width
    format keeps SQL comparisons (lease expiry) correct.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the platform stores timezone-aware UTC only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)



def _sqlite_on_connect(dbapi_connection: Any, connection_record: Any) -> None:
    # pysqlite's own BEGIN is deferred: two processes that both read and then write would
    # deadlock on the lock upgrade, and one fails at once with "database is locked".
    # Taking over BEGIN lets `_sqlite_begin` take the write lock up front instead.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # IMMEDIATE serialises catalog transactions across processes; each one is a few
    # statements, and the busy timeout makes the other process wait rather than fail.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def sql_engine(url: str | None, what: str, *, serialize_writers: bool = False) -> sa.Engine:
    """An engine on ``sqlite:///path`` (its folder created) or ``postgresql[+psycopg]://``; ``what``
    names the database in the error. ``None``: an in-memory SQLite database, one connection kept for
    the engine's life (tests and demos only: nothing is shared or kept).

    ``serialize_writers``: on SQLite every transaction takes the write lock when it begins
    (``BEGIN IMMEDIATE``), so that processes which read then write wait for each other instead of
    failing with "database is locked" (the catalog and the audit log).
    """
    if url is None:
        return sa.create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    parsed = sa.make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, connect_args={"timeout": 30.0})
        if serialize_writers:
            sa.event.listen(engine, "connect", _sqlite_on_connect)
            sa.event.listen(engine, "begin", _sqlite_begin)
        return engine
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return sa.create_engine(parsed, pool_pre_ping=True)
    raise ValueError(f"{what} URL {parsed.render_as_string(hide_password=True)!r}: only sqlite:/// and "
                     "postgresql+psycopg:// are supported")
