"""Benchmark: how long a run grows past its continue-as-new point while signals keep coming.

Run:  .venv/bin/python bench/signal_storm.py [--after 500] [--seconds 20] [--senders 2 20]

Temporal does not let a run close (continue as new) while new signals wait:
the worker's completion is refused and the task retried with them, so under a
steady stream the run keeps growing. A workflow that continues as new once its
history reaches ``--after`` events is signalled by ``--senders`` clients as fast
as they can for ``--seconds`` on a fresh dev server; printed per number of
senders: the signals sent (and any refused by the server), the runs, and the
longest run against ``--after``. Every mentorflow application signals its
program twice: this is what a storm of applications or decisions does to the
program's history (README, Performance).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from temporalio import workflow
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from mentorflow.temporal import binary


@workflow.defn(sandboxed=False)  # defined in a script: the sandbox cannot re-import it
class Sink:
    @workflow.run
    async def run(self, after: int) -> None:
        await workflow.wait_condition(lambda: workflow.info().get_current_history_length() >= after)
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(after)

    @workflow.signal
    def news(self, _: int) -> None:
        """One application's news: nothing to keep for this measurement."""


async def history_lengths(client: Client) -> list[int]:
    lengths = []
    async for execution in client.list_workflows("WorkflowId = 'sink'"):
        handle = client.get_workflow_handle("sink", run_id=execution.run_id)
        lengths.append(len([e async for e in handle.fetch_history_events()]))
    return sorted(lengths, reverse=True)


async def one(after: int, seconds: float, senders: int) -> tuple[int, str, list[int]]:
    with tempfile.TemporaryDirectory() as folder:
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=str(binary("temporal")),
            dev_server_database_filename=str(Path(folder) / "temporal.db"),
        )
        async with env, Worker(env.client, task_queue="storm", workflows=[Sink]):
            await env.client.start_workflow(Sink.run, after, id="sink", task_queue="storm")
            end, sent, refused = time.monotonic() + seconds, 0, ""

            async def send() -> None:
                nonlocal sent, refused
                handle = env.client.get_workflow_handle("sink")
                while time.monotonic() < end and not refused:
                    try:
                        await handle.signal(Sink.news, sent)
                    except RPCError as error:
                        refused = str(error)
                        return
                    sent += 1

            await asyncio.gather(*(send() for _ in range(senders)))
            await asyncio.sleep(5)  # the last runs settle
            return sent, refused, await history_lengths(env.client)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--after", type=int, default=500, help="continue as new at this length")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--senders", type=int, nargs="+", default=[2, 20])
    args = parser.parse_args()
    print(f"continue as new at {args.after} events; signals for {args.seconds:g} s:")
    for senders in args.senders:
        sent, refused, lengths = await one(args.after, args.seconds, senders)
        print(
            f"  {senders:3d} senders: {sent} signals, {len(lengths)} runs, longest"
            f" {lengths[0]} events ({lengths[0] / args.after:.1f}x the point)"
            + (f"; then refused: {refused}" if refused else "")
        )


if __name__ == "__main__":
    asyncio.run(main())
