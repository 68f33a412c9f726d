"""Benchmark: latency of approval clicks under concurrent clients, vs a bare Workflow Update.

Run:  .venv/bin/python bench/link_clicks.py [--clicks 500] [--clients 50] [--database-url URL]

- **project**: the production topology as processes (``mentorflow worker`` and
  ``mentorflow web``, the mail catcher, a fresh dev server). ``--clicks`` people
  apply (not timed); once every approval email arrived and the program has
  counted every application, every manager's approval link, read from its
  email, is clicked by one of ``--clients`` concurrent HTTP clients. A
  click is the whole POST: the link's signature and the database rows checked,
  the ``decide`` update on the application's workflow, the decision recorded,
  the answer page rendered.
- **baseline**: on a fresh dev server with a bare worker, the same number of
  workflows each waiting for an update that returns at once, called by the
  same number of concurrent clients.

Printed, all measured in this run: p50, p99 and the slowest click of each side,
clicks per second, the ratios, and the CPU each process used while the clicks
were timed.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from bare_program import BareApproval
from stack import (
    TASK_QUEUE,
    application_form,
    cpu_seconds,
    definition_file,
    describe_cpu,
    kept_on_failure,
    start_bare,
    start_project,
    stop,
    wait_for,
)
from temporalio.client import WorkflowHandle

from mentorflow.definition import load_definition
from mentorflow.models import ProgramPhase
from mentorflow.programs import start_program
from workflows.program import ProgramWorkflow

Call = Callable[[], Awaitable[None]]


@dataclass
class Clicks:
    latencies: list[float]
    wall: float
    cpu: str  # where the cores went while the clicks were timed


async def timed(calls: list[Callable[[], Awaitable[None]]], clients: int) -> Clicks:
    """Run ``calls`` with ``clients`` at a time; each call's latency, the wall time and
    the CPU each process used meanwhile."""
    queue: asyncio.Queue[Call] = asyncio.Queue()
    for call in calls:
        queue.put_nowait(call)
    latencies: list[float] = []

    async def client() -> None:
        while not queue.empty():
            call = queue.get_nowait()
            began = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - began)

    began, cpu_began = time.perf_counter(), cpu_seconds()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - began
    used = {label: t - cpu_began.get(label, 0.0) for label, t in cpu_seconds().items()}
    return Clicks(latencies, wall, describe_cpu(used, wall))


async def project(clicks: int, clients: int, database_url: str | None, folder: Path) -> Clicks:
    stack = await start_project(folder, database_url)
    try:
        definition = load_definition(definition_file(folder, clicks))
        handle = await start_program(
            stack.env.client, definition, store=stack.store, task_queue=TASK_QUEUE
        )

        async def window_open() -> bool:
            status = await handle.query(ProgramWorkflow.status)
            return status.phase is ProgramPhase.APPLICATION_WINDOW

        await wait_for(window_open, "the window", 60)
        rng = random.Random(7)
        async with httpx.AsyncClient(base_url=stack.web_url, timeout=120) as http:
            gate = asyncio.Semaphore(20)

            async def apply(i: int) -> None:
                profile, form = application_form(i, rng)
                async with gate:
                    answer = await http.post(
                        f"/programs/{definition.id}/apply", params={"profile": profile}, data=form
                    )
                assert answer.status_code == 200, answer.status_code

            await asyncio.gather(*(apply(i) for i in range(clicks)))
            links: list[str] = []

            async def all_asked() -> bool:
                links.extend(stack.inbox.approval_links())
                return len(links) >= clicks

            await wait_for(all_asked, "the approval emails", 600)

            async def settled() -> bool:
                rows = await stack.store.application_counts(definition.id)
                recorded = sum(n for _, _, status, _, n in rows if status == "awaiting_approval")
                return recorded >= clicks

            # The applications' first steps (records, confirmations) are the intake, not
            # the clicks: timed from when the database has them all awaiting an answer.
            await wait_for(settled, "the applications to be recorded", 600)

            def click(path: str) -> Call:
                async def call() -> None:
                    answer = await http.post(path, data={"choice": "approve"})
                    assert answer.status_code == 200, (answer.status_code, path)

                return call

            return await timed([click(path) for path in links], clients)
    finally:
        await stack.stop()


async def baseline(clicks: int, clients: int, folder: Path) -> Clicks:
    env, workers = await start_bare(folder)
    try:
        handles = [
            await env.client.start_workflow(BareApproval.run, id=f"approval-{i}", task_queue="bare")
            for i in range(clicks)
        ]

        def click(handle: WorkflowHandle[BareApproval, None]) -> Call:
            async def call() -> None:
                await handle.execute_update(BareApproval.approve)

            return call

        return await timed([click(h) for h in handles], clients)
    finally:
        for worker in workers:
            stop(worker)
        await env.shutdown()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=500)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--database-url", default=None, help="default: a SQLite file")
    args = parser.parse_args()

    with kept_on_failure() as a, kept_on_failure() as b:
        project_clicks = await project(args.clicks, args.clients, args.database_url, a)
        bare_clicks = await baseline(args.clicks, args.clients, b)
    ours, bare = project_clicks.latencies, bare_clicks.latencies

    print(f"{args.clicks} approval clicks, {args.clients} concurrent clients:")
    print("                    p50 ms   p99 ms   max ms   clicks/s")
    for name, measured in (("bare update", bare_clicks), ("approval click", project_clicks)):
        values = measured.latencies
        p50, p99 = percentile(values, 50) * 1000, percentile(values, 99) * 1000
        print(
            f"  {name:16s} {p50:7.0f}  {p99:7.0f}  {max(values) * 1000:7.0f}"
            f"  {len(values) / measured.wall:9.1f}"
        )
    print(f"  while clicking, bare    {bare_clicks.cpu}")
    print(f"  while clicking, project {project_clicks.cpu}")
    print(
        f"  ratio (click / bare): p50 {percentile(ours, 50) / percentile(bare, 50):.1f},"
        f" p99 {percentile(ours, 99) / percentile(bare, 99):.1f},"
        f" mean {statistics.mean(ours) / statistics.mean(bare):.1f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
