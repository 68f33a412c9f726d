"""Benchmark: how long one activation takes when many workflows are woken at once.

Run:  .venv/bin/python bench/activation_burst.py [--workflows 300] [--rounds 3]
                                                 [--cpu-ms 15] [--slots 100 8 4]

A worker's workflow activations run on threads that take turns at one
interpreter lock, and the SDK fails one that has not finished 2 s after it was
handed to its thread (TMPRL1101). Here ``--workflows`` workflows, each needing
about ``--cpu-ms`` of CPU per activation, are all signalled at once, ``--rounds``
times, on a fresh dev server, by a worker that takes at most ``--slots`` workflow
tasks at once (the SDK's default is 100; mentorflow's worker takes
``MENTORFLOW_WORKER_WORKFLOW_TASKS``, 8). Printed per setting: the wall time of
the bursts and the activations' p50, p99 and max (from the SDK's metrics), and
each against the SDK's default measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from temporalio import workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from mentorflow.temporal import binary
from worker.metrics import LatencySummary, WorkflowTaskTimes


@workflow.defn(sandboxed=False)  # defined in a script: the sandbox cannot re-import it
class Burst:
    def __init__(self) -> None:
        self._signals = 0

    @workflow.run
    async def run(self, rounds: int, loops: int) -> None:
        for done in range(rounds):
            await workflow.wait_condition(lambda: self._signals > done)  # noqa: B023
            total = 0
            for i in range(loops):  # CPU work, deterministic
                total += i

    @workflow.signal
    def go(self) -> None:
        self._signals += 1


def loops_for(cpu_ms: float) -> int:
    began, loops = time.perf_counter(), 1_000_000
    total = 0
    for i in range(loops):
        total += i
    return int(loops * cpu_ms / 1000 / (time.perf_counter() - began))


async def one(slots: int, workflows: int, rounds: int, loops: int) -> tuple[float, LatencySummary]:
    times = WorkflowTaskTimes()
    with tempfile.TemporaryDirectory() as folder:
        env = await WorkflowEnvironment.start_local(
            runtime=times.runtime,
            dev_server_existing_path=str(binary("temporal")),
            dev_server_database_filename=str(Path(folder) / "temporal.db"),
        )
        async with (
            env,
            Worker(
                env.client,
                task_queue="burst",
                workflows=[Burst],
                max_cached_workflows=workflows * 2,
                max_concurrent_workflow_tasks=slots,
            ),
        ):
            handles = [
                await env.client.start_workflow(
                    Burst.run, args=[rounds, loops], id=f"burst-{i}", task_queue="burst"
                )
                for i in range(workflows)
            ]
            await asyncio.sleep(3)  # every first activation done
            times.reset()
            began = time.perf_counter()
            for _ in range(rounds):
                await asyncio.gather(*(h.signal(Burst.go) for h in handles))
            await asyncio.gather(*(h.result() for h in handles))
            wall = time.perf_counter() - began
    return wall, times.summary()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cpu-ms", type=float, default=15)
    parser.add_argument("--slots", type=int, nargs="+", default=[100, 8, 4])
    args = parser.parse_args()
    loops = loops_for(args.cpu_ms)
    results = [(s, *await one(s, args.workflows, args.rounds, loops)) for s in args.slots]
    base_wall, base = results[0][1], results[0][2]
    print(
        f"{args.workflows} workflows signalled at once, {args.rounds} times,"
        f" ~{args.cpu_ms:g} ms of CPU per activation:"
    )
    print("  tasks at once   wall s   p50 ms   p99 ms   max ms   max vs first")
    for slots, wall, summary in results:
        print(
            f"  {slots:13d} {wall:8.1f} {summary.p50_ms:8.0f} {summary.p99_ms:8.0f}"
            f" {summary.max_ms:8.0f}   {summary.max_ms / base.max_ms:6.2f}"
            f"  (wall {wall / base_wall:.2f})"
        )


if __name__ == "__main__":
    asyncio.run(main())
