"""worker/pauses.py: full collections wait for a moment without activations; long
collections are logged, short ones are not."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

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


def _soon(condition: Callable[[], bool]) -> bool:
    """A future's done callbacks run just after its result is set: wait a moment for them."""
    end = time.monotonic() + 5
    while not condition() and time.monotonic() < end:
        time.sleep(0.001)
    return condition()


def test_the_activations_pool_counts_those_running_and_waiting() -> None:
    pool = pauses.Activations(max_workers=1)
    release = threading.Event()
    try:
        first = pool.submit(release.wait, 10)
        second = pool.submit(lambda: "done")  # waits for the only thread
        assert pool.running == 2
        release.set()
        assert first.result(10) is True and second.result(10) == "done"
        assert _soon(lambda: pool.running == 0)
    finally:
        pool.shutdown()


def test_each_activation_is_timed_from_hand_over_waiting_for_a_thread_included() -> None:
    """What the SDK's two-second deadline counts: a wait for a thread is part of it."""
    durations: list[float] = []
    pool = pauses.Activations(max_workers=1, observe=durations.append)
    release = threading.Event()
    try:
        first = pool.submit(release.wait, 10)
        second = pool.submit(lambda: "quick")  # waits for the only thread
        time.sleep(0.05)  # both handed over before this: each takes at least as long
        release.set()
        assert first.result(10) is True and second.result(10) == "quick"
        assert _soon(lambda: len(durations) == 2)
    finally:
        pool.shutdown()
    assert all(50 <= d < 1000 for d in durations), durations


def test_an_activation_cancelled_before_it_ran_is_not_counted_as_running() -> None:
    pool = pauses.Activations(max_workers=1)
    release = threading.Event()
    try:
        first = pool.submit(release.wait, 10)
        waiting = pool.submit(lambda: "never")
        assert waiting.cancel()  # as asyncio.wait_for's timeout does to a waiting one
        assert pool.running == 1
        release.set()
        first.result(10)
        assert _soon(lambda: pool.running == 0)
    finally:
        pool.shutdown()


async def test_from_the_loop_an_activation_counts_until_the_loop_has_its_result() -> None:
    """As the SDK hands them out: run_in_executor, its 2 s timer asyncio.wait_for, which
    cancels one still waiting for a thread when the time is up."""
    loop = asyncio.get_running_loop()
    pool = pauses.Activations(max_workers=1)
    release = threading.Event()
    try:
        first = loop.run_in_executor(pool, release.wait, 10)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(loop.run_in_executor(pool, lambda: "never"), 0.05)
        await asyncio.sleep(0.05)
        assert pool.running == 1  # the one that timed out waiting for its thread is not
        release.set()
        assert await first is True
        await asyncio.sleep(0.05)
        assert pool.running == 0
    finally:
        pool.shutdown()


@dataclass
class Busy:
    """A pool with one activation running until ``release``, and the collector watching
    it, which notes how many activations ran at each full collection it started."""

    pool: pauses.Activations
    release: threading.Event
    collections: list[int]


@contextlib.asynccontextmanager
async def busy_worker(every: float, at_the_latest: float) -> AsyncIterator[Busy]:
    busy = Busy(pauses.Activations(max_workers=1), threading.Event(), [])
    activation = busy.pool.submit(busy.release.wait, 10)
    collector = asyncio.create_task(
        pauses.collect_between_activations(
            busy.pool,
            every=every,
            at_the_latest=at_the_latest,
            look_every=0.01,
            collect=lambda: busy.collections.append(busy.pool.running),
        )
    )
    try:
        yield busy
    finally:
        busy.release.set()
        activation.result(10)
        collector.cancel()
        await asyncio.gather(collector, return_exceptions=True)
        busy.pool.shutdown()


async def test_full_collections_wait_until_no_activation_runs() -> None:
    thresholds = gc.get_threshold()
    async with busy_worker(every=0.05, at_the_latest=60) as busy:
        await asyncio.sleep(0.3)  # due six times over, but an activation runs
        assert busy.collections == []
        # Meanwhile the interpreter starts no full collection of its own.
        assert gc.get_threshold()[:2] == thresholds[:2]
        assert gc.get_threshold()[2] > 10**9
        busy.release.set()
        await asyncio.sleep(0.3)
        assert busy.collections and set(busy.collections) == {0}  # only while none ran
    assert gc.get_threshold() == thresholds


async def test_a_worker_never_idle_still_collects_at_the_latest() -> None:
    async with busy_worker(every=0.01, at_the_latest=0.1) as busy:
        await asyncio.sleep(0.5)
        assert busy.collections and set(busy.collections) == {1}
