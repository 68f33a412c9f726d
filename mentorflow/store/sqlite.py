"""SQLite connections that run each statement in one trip to their thread.

aiosqlite runs every call on the connection's own thread, and each call is a
trip there and back: a queue, a thread switch, the event loop woken through its
self-pipe. SQLAlchemy's adapter makes a cursor, executes, fetches the rows and
closes the cursor, four trips for one statement; with the transaction's COMMIT
or ROLLBACK, a read took five and a write four. Those trips were most of the
store's CPU, which on a busy two-core machine the Temporal server needs (py-spy,
``bench/program_scale.py``). Here a statement and its rows are one trip: the
cursor is made, run, read and closed on the thread, and SQLAlchemy is handed
the rows.

A trip still costs about 0.2 ms of CPU on this project's two-core machines (a
thread hand-over each way: ``loop.run_in_executor`` costs the same), more than the
statement. It is needed only where a statement may wait, which would hold the event
loop: for another connection's write lock (SQLite's busy timeout, up to half a
minute), or for the disk (a COMMIT syncs the log). So a statement runs in place, on
the caller's thread, when it cannot wait: a SELECT outside a transaction (in
write-ahead mode readers do not wait for writers), and every statement and the
ROLLBACK of a transaction that already holds the write lock (the driver opens one
only with its first write). A transaction's first write, its COMMIT and anything
else go to the thread; and nothing runs in place while something of this
connection's is still on its thread (a cancelled caller's statement runs on).

Only the cursor changes: the connection, its thread, its transactions and its
errors are aiosqlite's, so SQLAlchemy's aiosqlite dialect drives it as before
(``create_async_engine(..., async_creator=connect(path, timeout))``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Generator, Iterable, Sequence
from typing import Any, cast

import aiosqlite

_Ran = tuple[Any, int, int | None, list[Any]]


def _run(connection: sqlite3.Connection, sql: str, parameters: Any, many: bool) -> _Ran:
    """On the connection's thread: the statement run, its rows read, its cursor closed."""
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(sql, parameters)
        else:
            cursor.execute(sql, parameters)
        rows = cursor.fetchall() if cursor.description else []
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


class Cursor:
    """A DB-API cursor whose statement runs and whose rows are read in one trip;
    fetching then hands out the rows already read."""

    arraysize = 1

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._rows: list[Any] = []
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None

    async def execute(self, sql: str, parameters: Any = None) -> Cursor:
        await self._trip(sql, () if parameters is None else parameters, many=False)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> Cursor:
        await self._trip(sql, list(parameters), many=True)
        return self

    async def _trip(self, sql: str, parameters: Any, *, many: bool) -> None:
        connection = self._connection
        if connection.may_run_here(sql):
            ran = _run(connection._conn, sql, parameters, many)
        else:
            trip = cast(Callable[..., Awaitable[_Ran]], connection._execute)
            ran = await trip(_run, connection._conn, sql, parameters, many)
        self.description, self.rowcount, self.lastrowid, self._rows = ran

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        size = self.arraysize if size is None else size
        taken, self._rows = self._rows[:size], self._rows[size:]
        return taken

    async def fetchall(self) -> list[Any]:
        taken, self._rows = self._rows, []
        return taken

    async def close(self) -> None:
        self._rows = []

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()


class _NewCursor:
    """What ``Connection.cursor()`` returns: awaited or entered, a cursor, made
    without a trip (its sqlite3 cursor is made on the thread, per statement)."""

    def __init__(self, cursor: Cursor) -> None:
        self._cursor = cursor

    def __await__(self) -> Generator[Any, None, Cursor]:
        return self._cursor.__aenter__().__await__()

    async def __aenter__(self) -> Cursor:
        return self._cursor

    async def __aexit__(self, *_: object) -> None:
        await self._cursor.close()


class Connection(aiosqlite.Connection):
    """An aiosqlite connection whose cursors run a statement in one trip, or in place
    when it cannot wait for a lock."""

    # Calls sent to the thread, counted here, and done there, counted there: each count
    # written by one thread only, so neither loses a step.
    _sent = 0
    _done = 0

    def cursor(self) -> _NewCursor:  # type: ignore[override]
        return _NewCursor(Cursor(self))

    def may_run_here(self, sql: str | None = None) -> bool:
        """Whether ``sql`` (None: a ROLLBACK) may run in place: nothing of this
        connection's on its thread, and it needs no lock it might wait for."""
        if self._sent != self._done:
            return False
        if self._conn.in_transaction:  # the write lock is ours until COMMIT or ROLLBACK
            return True
        return sql is not None and sql.lstrip()[:6].upper() == "SELECT"

    async def _execute(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        queue = cast(Callable[..., Awaitable[Any]], super()._execute)
        if not self._running or not self._connection:
            return await queue(fn, *args, **kwargs)  # refused: nothing is queued

        def counted() -> Any:
            try:
                return fn(*args, **kwargs)
            finally:
                self._done += 1

        self._sent += 1
        return await queue(counted)

    # With no transaction open, sqlite3's commit and rollback do nothing, and the trip
    # to do nothing cost as much CPU as a statement: every read ends in a rollback
    # (a session closing), every autocommitted write in a commit. So they are skipped,
    # unless something of this connection's is still on its thread (it could open one).

    async def commit(self) -> None:
        if self._conn.in_transaction or self._sent != self._done:
            await super().commit()  # it syncs the disk: on the thread

    async def rollback(self) -> None:
        if self.may_run_here():
            self._conn.rollback()
        elif self._conn.in_transaction or self._sent != self._done:
            await super().rollback()


def connect(database: str, *, timeout: float) -> Callable[[], Any]:
    """An ``async_creator`` for SQLAlchemy: connections to ``database`` as SQLAlchemy's
    aiosqlite dialect makes them (``check_same_thread`` off: the thread is aiosqlite's)."""

    async def creator() -> Connection:
        def connector() -> sqlite3.Connection:
            return sqlite3.connect(database, timeout=timeout, check_same_thread=False)

        connection = Connection(connector, iter_chunk_size=64)
        # As SQLAlchemy does for aiosqlite's own: a forgotten connection does not keep
        # the process alive.
        connection._thread.daemon = True
        await connection  # starts its thread and connects
        return connection

    return creator


__all__: Sequence[str] = ["Connection", "Cursor", "connect"]
