"""worker/pauses.py: full collections wait for a moment without activations; long
collections are logged, short ones are not."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading

import pytest

from worker import pauses


def _cycles(count: int) -> None:
    for _ in range(count):
        a: list[object] = []
        a.append(a)


def test_a_collection_longer_than_the_limit_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    stop = pauses.watch_collections(longer_than=0.0)
    try:
        _cycles(1000)
        with caplog.at_level(logging.WARNING, logger=pauses.__name__):
            gc.collect()
    finally:
        stop()
    logged = [r.getMessage() for r in caplog.records if r.name == pauses.__name__]
    assert logged and "garbage collection of generation 2 held the worker for" in logged[-1]
    assert "objects collected" in logged[-1]


def test_a_short_collection_is_not_logged_and_watching_stops(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = pauses.watch_collections(longer_than=60.0)
    try:
        with caplog.at_level(logging.WARNING, logger=pauses.__name__):
            gc.collect()
    finally:
        stop()
    assert not [r for r in caplog.records if r.name == pauses.__name__]
    before = len(gc.callbacks)
    pauses.watch_collections()()
    assert len(gc.callbacks) == before


def test_the_activations_pool_counts_those_running_and_waiting() -> None:
    pool = pauses.Activations(max_workers=1)
    release = threading.Event()
    try:
        first = pool.submit(release.wait, 10)
        second = pool.submit(lambda: "done")  # waits for the only thread
        assert pool.running == 2
        release.set()
        assert first.result(10) is True and second.result(10) == "done"
        assert pool.running == 0
    finally:
        pool.shutdown()


async def test_full_collections_wait_until_no_activation_runs() -> None:
    pool = pauses.Activations(max_workers=1)
    release = threading.Event()
    collections: list[int] = []
    thresholds = gc.get_threshold()
    busy = pool.submit(release.wait, 10)
    collector = asyncio.create_task(
        pauses.collect_between_activations(
            pool,
            every=0.05,
            at_the_latest=60,
            look_every=0.01,
            collect=lambda: collections.append(pool.running),
        )
    )
    try:
        await asyncio.sleep(0.3)  # due six times over, but an activation runs
        assert collections == []
        # Meanwhile the interpreter starts no full collection of its own.
        assert gc.get_threshold()[:2] == thresholds[:2]
        assert gc.get_threshold()[2] > 10**9
        release.set()
        busy.result(10)
        await asyncio.sleep(0.3)
        assert collections and set(collections) == {0}  # only while none ran
    finally:
        collector.cancel()
        await asyncio.gather(collector, return_exceptions=True)
        pool.shutdown()
    assert gc.get_threshold() == thresholds


async def test_a_worker_never_idle_still_collects_at_the_latest() -> None:
    pool = pauses.Activations(max_workers=1)
    release = threading.Event()
    collections: list[int] = []
    busy = pool.submit(release.wait, 10)
    collector = asyncio.create_task(
        pauses.collect_between_activations(
            pool,
            every=0.01,
            at_the_latest=0.1,
            look_every=0.01,
            collect=lambda: collections.append(pool.running),
        )
    )
    try:
        await asyncio.sleep(0.5)
        assert collections and set(collections) == {1}
    finally:
        release.set()
        busy.result(10)
        collector.cancel()
        await asyncio.gather(collector, return_exceptions=True)
        pool.shutdown()
