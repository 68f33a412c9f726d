"""worker/pauses.py: long garbage collections are logged; short ones are not."""

from __future__ import annotations

import gc
import logging

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
