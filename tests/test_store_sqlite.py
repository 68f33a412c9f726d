"""SQLite connections that run a statement in one trip to their thread (mentorflow.store.sqlite)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from mentorflow.store import Store, migrate
from mentorflow.store import sqlite as one_trip


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[collections.Counter[str]]:
    """Every trip to a connection's thread, by what it ran."""
    counted: collections.Counter[str] = collections.Counter()
    real = one_trip.Connection._execute

    async def counting(self: one_trip.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        counted[getattr(fn, "__name__", repr(fn))] += 1
        return await real(self, fn, *args, **kwargs)

    monkeypatch.setattr(one_trip.Connection, "_execute", counting)
    yield counted


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    url = f"sqlite:///{tmp_path / 'one-trip.db'}"
    migrate(url)
    store = Store(url)
    yield store
    await store.close()


async def test_a_read_runs_in_place_and_a_write_takes_one_trip(
    store: Store, trips: collections.Counter[str]
) -> None:
    await store.ping()  # the pool's first connection, and its WAL pragma, made
    trips.clear()
    assert await store.program("nowhere") is None
    # Was: cursor, execute, fetchall, close, and two rollbacks; then the statement and a
    # rollback; now none: a read cannot wait in write-ahead mode, and it opens no
    # transaction to roll back.
    assert trips == {}
    key = await store.save_note("p1", "a note", "hr", datetime.now(UTC))
    # The INSERT may wait for another connection's write lock, and the COMMIT for the
    # disk: on the thread.
    assert trips == {"_run": 1, "commit": 1}
    assert (await store.note("p1", key))["text"] == "a note"


async def test_a_write_waits_for_the_lock_on_its_thread_and_a_read_does_not_wait(
    store: Store, tmp_path: Path
) -> None:
    """Another process holds the write lock: a write waits for it without holding the
    event loop, and a read (in place) is answered meanwhile."""
    await store.save_note("p1", "before", "hr", datetime.now(UTC))
    with contextlib.closing(sqlite3.connect(tmp_path / "one-trip.db", timeout=5)) as other:
        other.execute("BEGIN IMMEDIATE")  # the write lock, as another process's write holds it
        write = asyncio.create_task(store.save_note("p1", "after", "hr", datetime.now(UTC)))
        ticks = 0
        for _ in range(20):  # 0.4 s in which the loop must keep turning
            await asyncio.sleep(0.02)
            ticks += 1
        assert not write.done()  # still waiting for the lock, on its thread
        assert await store.program("nowhere") is None  # a read does not wait
        other.rollback()  # the lock let go
    key = await write
    assert ticks == 20 and (await store.note("p1", key))["text"] == "after"


async def test_a_rollback_with_a_transaction_open_still_rolls_it_back(
    store: Store, trips: collections.Counter[str]
) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (v TEXT)"))
    trips.clear()
    async with store.engine.connect() as conn:
        await conn.execute(text("INSERT INTO t VALUES ('undone')"))
        await conn.rollback()  # in place: the transaction holds the lock
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == 0
    assert trips == {"_run": 1}  # the INSERT, which could wait for the lock
    autocommit = await (await store.engine.connect()).execution_options(
        isolation_level="AUTOCOMMIT"
    )
    trips.clear()
    await autocommit.execute(text("INSERT INTO t VALUES ('kept')"))
    await autocommit.commit()  # nothing open: committed as it ran
    assert trips == {"_run": 1}
    await autocommit.close()
    async with store.engine.connect() as conn:
        assert (await conn.execute(text("SELECT v FROM t"))).scalars().all() == ["kept"]


async def test_the_database_file_is_in_write_ahead_log_mode(store: Store, tmp_path: Path) -> None:
    await store.ping()  # every connection sets it as it opens (mentorflow.store.base)
    with contextlib.closing(sqlite3.connect(tmp_path / "one-trip.db")) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_rows_counts_and_errors_are_the_drivers(store: Store) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)"))
        inserted = await conn.execute(text("INSERT INTO t (v) VALUES ('a')"))
        assert inserted.lastrowid == 1 and inserted.rowcount == 1
        many = await conn.execute(text("INSERT INTO t (v) VALUES (:v)"), [{"v": "b"}, {"v": "c"}])
        assert many.rowcount == 2
        returned = await conn.execute(text("UPDATE t SET v = v || '!' WHERE id > 1 RETURNING id"))
        assert sorted(returned.scalars()) == [2, 3]
        rows = await conn.execute(text("SELECT id, v FROM t ORDER BY id"))
        assert list(rows.keys()) == ["id", "v"]
        assert [tuple(r) for r in rows] == [(1, "a"), (2, "b!"), (3, "c!")]
        assert (await conn.execute(text("SELECT v FROM t WHERE id = 99"))).first() is None
    with pytest.raises(IntegrityError):
        async with store.engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (v) VALUES ('a')"))
    async with store.engine.connect() as conn:  # the failed transaction left nothing
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == 3


async def test_a_transaction_left_open_is_rolled_back_as_its_connection_returns(
    store: Store,
) -> None:
    """The pool does not roll back what a session ended already; what SQLite still
    has open (a connection dropped mid-transaction) it does."""
    async with store.engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (v TEXT)"))
    conn = await store.engine.connect()
    await conn.execute(text("INSERT INTO t VALUES ('never')"))
    raw = await conn.get_raw_connection()
    assert raw.driver_connection is not None and raw.driver_connection.in_transaction
    # Back to the pool without the Connection's own rollback, as a lost one goes.
    raw._checkin()
    async with store.engine.connect() as other:  # the same pooled connection
        assert (await other.execute(text("SELECT count(*) FROM t"))).scalar_one() == 0
        driver = (await other.get_raw_connection()).driver_connection
        assert driver is not None and not driver.in_transaction


async def test_statements_at_once_each_get_their_own_rows(store: Store) -> None:
    async def one(i: int) -> int:
        async with store.engine.connect() as conn:
            return int((await conn.execute(text(f"SELECT {i}"))).scalar_one())

    assert await asyncio.gather(*(one(i) for i in range(30))) == list(range(30))
