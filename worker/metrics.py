"""How long workflow tasks take, read from the Temporal SDK's own metrics.

A workflow task (one activation of a workflow) must finish within the SDK's two
seconds, or the task fails as a potential deadlock and is retried. The SDK times
every task it completes as ``temporal_workflow_task_execution_latency`` (sdk-core's
``workflow_task_execution_latency`` with the default ``temporal_`` prefix; in
milliseconds). A long-running process serves it to Prometheus
(``MENTORFLOW_METRICS_ADDRESS``); a benchmark or a test that hosts its worker in
its own process reads it here instead::

    times = WorkflowTaskTimes()
    client = await Client.connect(address, runtime=times.runtime)
    ...  # run a worker on ``client`` and some workflows
    print(times.summary())  # count, p50, p99 and max in ms

The buffer must be drained now and then (``collect``) when many tasks run: it
holds ``buffer_size`` updates of every SDK metric and drops what does not fit.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from temporalio.client import Client
from temporalio.common import MetricHistogramFloat
from temporalio.runtime import (
    MetricBuffer,
    MetricBufferDurationFormat,
    Runtime,
    TelemetryConfig,
)

WORKFLOW_TASK_EXECUTION_LATENCY = "temporal_workflow_task_execution_latency"
"""The SDK's histogram of workflow task durations (execution, not replay), in ms."""

WORKFLOW_ACTIVATION_LATENCY = "mentorflow_workflow_activation_latency"
"""mentorflow's histogram of activations in a workflows worker (worker.pauses.Activations),
in ms: one turn of workflow code, which the two-second deadline applies to. A workflow
task that runs a local activity holds two activations and the activity between them."""

WORKFLOW_TASK_DEADLINE_MS = 2_000.0
"""The SDK fails a workflow task that holds the event loop longer than this (TMPRL1101)."""


@dataclass(frozen=True)
class LatencySummary:
    """Durations of workflow tasks, in milliseconds; an empty one has ``count`` 0."""

    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    @property
    def over_deadline(self) -> bool:
        """Whether any task took longer than the SDK's two-second deadline."""
        return self.max_ms > WORKFLOW_TASK_DEADLINE_MS

    def __str__(self) -> str:
        if not self.count:
            return "no workflow tasks"
        return (
            f"{self.count} workflow tasks: p50 {self.p50_ms:.0f} ms,"
            f" p99 {self.p99_ms:.0f} ms, max {self.max_ms:.0f} ms"
        )


def percentile(ordered: list[float], fraction: float) -> float:
    """The nearest-rank percentile of an ascending list (``fraction`` in 0..1)."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summarise(durations_ms: Iterable[float]) -> LatencySummary:
    """Count, p50, p99 and max of some durations in milliseconds."""
    ordered = sorted(durations_ms)
    if not ordered:
        return LatencySummary(0, 0.0, 0.0, 0.0)
    return LatencySummary(
        count=len(ordered),
        p50_ms=percentile(ordered, 0.50),
        p99_ms=percentile(ordered, 0.99),
        max_ms=ordered[-1],
    )


class WorkflowTaskTimes:
    """A Temporal runtime whose metrics go to a buffer, and the workflow task durations
    read from it, per workflow type.

    Give ``runtime`` to ``Client.connect`` (or ``WorkflowEnvironment.start_*``); every
    worker on that client then reports here. A runtime is process-wide and heavy: make
    one per benchmark, not per test step.
    """

    def __init__(self, buffer_size: int = 200_000) -> None:
        self._buffer = MetricBuffer(buffer_size, MetricBufferDurationFormat.MILLISECONDS)
        self.runtime = Runtime(telemetry=TelemetryConfig(metrics=self._buffer))
        self._durations: dict[str, list[float]] = defaultdict(list)

    def collect(self) -> None:
        """Drain the buffer, keeping the workflow task durations (call it every few seconds
        while many tasks run, and before reading ``summary``)."""
        for update in self._buffer.retrieve_updates():
            if update.metric.name == WORKFLOW_TASK_EXECUTION_LATENCY:
                workflow_type = str(update.attributes.get("workflow_type", ""))
                self._durations[workflow_type].append(float(update.value))

    def durations(self, workflow_type: str | None = None) -> list[float]:
        """Every duration seen so far (ms), of one workflow type or of all."""
        self.collect()
        if workflow_type is not None:
            return list(self._durations.get(workflow_type, []))
        return [d for values in self._durations.values() for d in values]

    def summary(self, workflow_type: str | None = None) -> LatencySummary:
        """p50, p99 and max of the workflow tasks so far, of one workflow type or of all."""
        return summarise(self.durations(workflow_type))

    def by_workflow_type(self) -> dict[str, LatencySummary]:
        """One summary per workflow type seen so far."""
        self.collect()
        return {name: summarise(values) for name, values in sorted(self._durations.items())}

    def reset(self) -> None:
        """Forget what was seen (e.g. the warm-up of a benchmark)."""
        self.collect()
        self._durations.clear()


def activation_histogram(client: Client) -> MetricHistogramFloat:
    """The histogram ``WORKFLOW_ACTIVATION_LATENCY`` on the client's runtime: served with
    the SDK's metrics where the runtime serves them, with the same buckets."""
    runtime = client.service_client.config.runtime or Runtime.default()
    return runtime.metric_meter.create_histogram_float(
        WORKFLOW_ACTIVATION_LATENCY,
        "Workflow activations in this workflows worker, from hand-over to done (the"
        " span the SDK's two-second deadline counts).",
        "ms",
    )
