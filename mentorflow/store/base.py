"""The store's engine and what every part of it shares: URLs, the ping, inserts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import PoolResetState

from mentorflow.store import sqlite as one_trip


class StoreUnavailable(Exception):
    """The database could not be reached; the message names the address tried."""


def _with_driver(url: str, sqlite_driver: str) -> str:
    # psycopg 3 serves PostgreSQL both ways; SQLite needs aiosqlite for asyncio.
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        parsed = parsed.set(drivername=sqlite_driver)
    elif backend == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    else:
        return url
    return parsed.render_as_string(hide_password=False)


def async_url(url: str) -> str:
    """The URL with an asyncio driver: aiosqlite for SQLite, psycopg 3 for PostgreSQL."""
    return _with_driver(url, "sqlite+aiosqlite")


def sync_url(url: str) -> str:
    """The URL with a blocking driver, for migrations."""
    return _with_driver(url, "sqlite")


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    return make_url(url).render_as_string(hide_password=True)


SQLITE_BUSY_SECONDS = 30.0


def _write_ahead(connection: Any, _: Any) -> None:
    """SQLite in write-ahead mode: the web app, the activities and the CLI are separate
    processes on one file; in the default mode each one's reads waited for the others'
    writes and the reverse (a program of 1,000 applicants spent much of its intake so)."""
    cursor = connection.cursor()
    try:
        # Synchronous stays FULL: each commit is on disk, as the email ledger needs.
        cursor.execute("PRAGMA journal_mode=WAL")
    finally:
        cursor.close()


def _end_open_transaction(dbapi_connection: Any, record: Any, state: PoolResetState) -> None:
    """Roll back, as a connection goes back to the pool, a transaction SQLite still has
    open (one whose session was dropped without closing, say): only then."""
    driver = record.driver_connection if record is not None else None
    if state.asyncio_safe and driver is not None and driver.in_transaction:
        dbapi_connection.rollback()


class StoreBase:
    """One async engine and its sessions; each aggregate of the store builds on it."""

    def __init__(self, url: str) -> None:
        self.url = url
        # SQLite has one writer at a time; the others wait. Its default of 5 s failed
        # an application ("database is locked") on a busy two-core machine.
        parsed = make_url(url)
        sqlite = parsed.get_backend_name() == "sqlite"
        driver: dict[str, Any] = {}
        if sqlite and parsed.database and not parsed.query:
            # A file: one trip to aiosqlite's thread per statement (mentorflow.store.sqlite).
            driver["async_creator"] = one_trip.connect(parsed.database, timeout=SQLITE_BUSY_SECONDS)
        elif sqlite:
            driver["connect_args"] = {"timeout": SQLITE_BUSY_SECONDS}
        self.engine: AsyncEngine = create_async_engine(
            async_url(url),
            # A local file needs no ping: it cost each session a round trip.
            pool_pre_ping=not sqlite,
            **driver,
            # A session commits or rolls back before its connection goes back to the pool,
            # and the pool's rollback on return was then a second one, a round trip
            # through aiosqlite's thread each time: a quarter of a read's CPU.
            # _end_open_transaction still ends one that was left open.
            **({"pool_reset_on_return": None} if sqlite else {}),
        )
        if sqlite:
            event.listen(self.engine.sync_engine, "connect", _write_ahead)
            event.listen(self.engine.sync_engine, "reset", _end_open_transaction)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    async def close(self) -> None:
        await self.engine.dispose()

    async def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless the database answers."""
        try:
            async with self.engine.connect() as conn:
                await conn.exec_driver_sql("SELECT 1")
        except (OSError, OperationalError, DBAPIError) as error:
            raise StoreUnavailable(
                f"cannot reach the database at {safe_url(self.url)}: {error.__class__.__name__}"
            ) from error

    def _insert(self, table: Any) -> Any:
        if self.engine.dialect.name == "postgresql":
            return pg_insert(table)
        return sqlite_insert(table)
