"""The ``mentorflow`` command: what HR coordinators and ops type.

Every failure the user can cause or meet (a broken definition, a refused date,
an unreachable server) ends in one clear message and a non-zero exit, never a
traceback.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

import typer
from temporalio.client import WorkflowHandle

from mentorflow import moments
from mentorflow.codec import PayloadKeyError
from mentorflow.definition import DefinitionError, is_slug, load_definition
from mentorflow.limits import REASON_LIMIT, unsafe_character
from mentorflow.models import (
    PairStatus,
    ProgramDates,
    ProgramResult,
    RescheduleRequest,
    program_workflow_id,
)
from mentorflow.settings import Settings, with_local_signing_key
from mentorflow.store import StoreUnavailable
from mentorflow.temporal import TemporalUnavailable, connect
from worker.kinds import WorkerKind

T = TypeVar("T")

app = typer.Typer(
    help="mentorflow: run mentorship programs as durable Temporal workflows.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
program_app = typer.Typer(
    help="Start, inspect, reschedule and cancel programs.", no_args_is_help=True
)
db_app = typer.Typer(help="The state database.", no_args_is_help=True)
pair_app = typer.Typer(
    help="The running pairs: list them, record a withdrawal, re-match from the wait-list.",
    no_args_is_help=True,
)
applications_app = typer.Typer(
    help="Applications collected outside the web form.", no_args_is_help=True
)
capacity_app = typer.Typer(
    help="HR's decision on who takes part (the CLI twin of the emailed decision page).",
    no_args_is_help=True,
)
person_app = typer.Typer(help="One person's data, on request.", no_args_is_help=True)
app.add_typer(program_app, name="program")
app.add_typer(person_app, name="person")
app.add_typer(capacity_app, name="capacity")
app.add_typer(pair_app, name="pair")
app.add_typer(db_app, name="db")
app.add_typer(applications_app, name="applications")


class Failure(Exception):
    """A user-facing error: printed as one message, exit status 1."""


async def _note(settings: Settings, program_id: str, text: str = "", by: str = "") -> str:
    """Keep HR's words (a reason, who acted) in the database; the workflow gets the key."""
    from mentorflow.store import Store, migrate

    await asyncio.to_thread(migrate, settings.effective_database_url)
    store = Store(settings.effective_database_url)
    try:
        return await store.save_note(
            program_id, text, by or os.environ.get("USER", "cli"), datetime.now(UTC)
        )
    finally:
        await store.close()


def fail(message: str) -> None:
    raise Failure(message)


def _run(coroutine_factory: Callable[[], Awaitable[T]]) -> T:
    async def wrapped() -> T:
        return await coroutine_factory()

    return asyncio.run(wrapped())


def _settings() -> Settings:
    return Settings()


def _service_settings() -> Settings:
    """Settings for the worker and the web app, which sign and check the links in emails:
    refused, in one line, when the key is one that anyone can know or guess. Only the
    local stack (``mentorflow dev``) runs without setting one: it makes its own."""
    settings = _settings()
    problem = settings.signing_key_problem()
    if problem is not None:
        fail(problem)
    return settings


def _reason(value: str) -> str:
    """HR's ``--reason``: kept as a note, told to people; refused (a usage error, nothing
    done) when longer than a form's answer may be or when it holds control characters."""
    if len(value) > REASON_LIMIT:
        raise typer.BadParameter(
            f"at most {REASON_LIMIT:,} characters (this one has {len(value):,})"
        )
    if (bad := unsafe_character(value, multiline=True)) is not None:
        raise typer.BadParameter(f"holds the control or text-direction character {bad}")
    return value


def _ui_link(settings: Settings, workflow_id: str) -> str:
    base = settings.temporal_ui_url.rstrip("/")
    return f"{base}/namespaces/{settings.temporal_namespace}/workflows/{workflow_id}"


def _local(moment: datetime | None, zone: ZoneInfo) -> str:
    if moment is None:
        return "-"
    return moments.stamp(moment, zone.key)


# --- validate --------------------------------------------------------------------------------


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="Definition files (YAML).")],
) -> None:
    """Check program definitions; print every problem with its file, field and fix."""
    broken = 0
    for file in files:
        try:
            definition = load_definition(file)
        except DefinitionError as error:
            broken += 1
            typer.echo(error.render(), err=True)
            continue
        typer.echo(
            f"{file}: ok — {definition.id} ({definition.name}), applications"
            f" {_local(definition.application.opens, definition.zone)} →"
            f" {_local(definition.application.deadline, definition.zone)}, program"
            f" {_local(definition.schedule.start, definition.zone)} →"
            f" {_local(definition.schedule.end, definition.zone)}"
        )
    if broken:
        raise typer.Exit(1)


# --- schema ----------------------------------------------------------------------------------

SCHEMA_FILE = Path("definitions/schema.json")


def schema_text() -> str:
    """The JSON Schema of definition files, as ``mentorflow schema`` writes it."""
    from mentorflow.definition import json_schema

    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


@app.command()
def schema(
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="Where to write it; - writes it to the standard output."
        ),
    ] = SCHEMA_FILE,
) -> None:
    """Write the JSON Schema of definition files, so editors check them as HR types
    (README, "Checking as you type")."""
    text = schema_text()
    if str(output) == "-":
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as error:
        fail(f"cannot write {output}: {error.strerror or error}")
    typer.echo(f"Wrote {output}: the JSON Schema of program definitions.")


# --- program ---------------------------------------------------------------------------------


@program_app.command("start")
def program_start(
    file: Annotated[Path, typer.Argument(help="The program's definition file.")],
    program_id: Annotated[
        str | None,
        typer.Option(
            "--id",
            help="Start it as a cohort with this id instead of the file's (e.g. a demo re-run).",
        ),
    ] = None,
) -> None:
    """Start a program from its definition (once: the same id never starts twice)."""
    from mentorflow.definition import parse_definition
    from mentorflow.programs import start_program
    from mentorflow.store import Store, migrate

    try:
        definition = load_definition(file)
        if program_id is not None:
            data = definition.model_dump(mode="json", by_alias=True) | {"id": program_id}
            definition = parse_definition(data, file=f"{file} (--id)")
    except DefinitionError as error:
        typer.echo(error.render(), err=True)
        typer.echo("Nothing was started.", err=True)
        raise typer.Exit(1) from None
    settings = _settings()

    async def start() -> str:
        client = await connect(settings)
        await asyncio.to_thread(migrate, settings.effective_database_url)
        store = Store(settings.effective_database_url)
        try:
            handle = await start_program(
                client, definition, store=store, task_queue=settings.temporal_task_queue
            )
        finally:
            await store.close()
        return handle.id

    workflow_id = _run(start)
    typer.echo(f"Started program {definition.id} ({definition.name}).")
    typer.echo(
        f"Applications open {_local(definition.application.opens, definition.zone)},"
        f" deadline {_local(definition.application.deadline, definition.zone)}."
    )
    typer.echo(f"Follow it: mentorflow program status {definition.id}")
    typer.echo(f"Temporal UI: {_ui_link(settings, workflow_id)}")


@program_app.command("list")
def program_list() -> None:
    """List programs with their phase and next deadline."""
    from mentorflow.programs import list_programs

    settings = _settings()

    async def fetch() -> list[Any]:
        return await list_programs(await connect(settings))

    programs = _run(fetch)
    if not programs:
        typer.echo("No programs yet. Start one: mentorflow program start definitions/<file>.yaml")
        return
    zone = ZoneInfo("Europe/Stockholm")
    rows = [("PROGRAM", "STATUS", "PHASE", "NEXT DEADLINE", "STARTED")]
    for p in programs:
        rows.append(
            (
                p.program_id,
                p.status,
                p.phase or "-",
                _local(p.next_deadline, zone),
                _local(p.started_at, zone),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


@program_app.command("status")
def program_status_command(
    program_id: Annotated[str, typer.Argument(help="The program id (from its definition).")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show a program's phase, next deadline and counts."""
    settings = _settings()

    async def fetch() -> Any:
        state, status = await _answering_status(settings, await connect(settings), program_id)
        return state, await _counted_on_record(settings, status)

    state, status = _run(fetch)
    if as_json:
        typer.echo(json.dumps({"workflow_status": state, **status.model_dump(mode="json")}))
        return
    zone = ZoneInfo(status.timezone)
    d = status.dates
    next_line = (
        f"{status.next_deadline_label}: {_local(status.next_deadline, zone)}"
        if status.next_deadline
        else "-"
    )
    lines = [
        ("Program", f"{status.program_id} — {status.name}"),
        ("Workflow", f"{program_workflow_id(status.program_id)} ({state})"),
        ("Phase", status.phase.value),
        ("Next deadline", next_line),
        ("Next step", status.next_step),
        (
            "Dates",
            f"opens {_local(d.opens, zone)} · deadline {_local(d.deadline, zone)} ·"
            f" start {_local(d.start, zone)} · end {_local(d.end, zone)}",
        ),
        ("Counts", ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in status.counts.items())),
        *(
            (f"  {key}", ", ".join(f"{k}: {v}" for k, v in row.items()))
            for key, row in status.applications.items()
        ),
        *(
            (f"  decided: {org}", f"{decision.decided_by} ({decision.channel})")
            for org, decision in status.decisions.items()
        ),
        *((("Undecided", ", ".join(status.undecided)),) if status.undecided else ()),
        *(
            (
                (
                    "Pairs",
                    f"proposal {status.matching.proposal}: {status.matching.pairs} pairs"
                    f" ({status.matching.locked} locked), unmatched"
                    f" {status.matching.unmatched_mentors} mentor(s) and"
                    f" {status.matching.unmatched_adepts} adept(s)"
                    + (f"; confirmed by {status.confirmed_by}" if status.confirmed_by else ""),
                ),
            )
            if status.matching
            else ()
        ),
        (
            "Evaluation",
            f"{_local(d.evaluation_opens, zone)} – {_local(d.evaluation_closes, zone)}"
            + (
                f"; {status.evaluation.invited} invited"
                if status.evaluation.invited is not None
                else ""
            )
            + ("; closed" if status.evaluation.closed else ""),
        ),
        *(
            (
                (
                    "Report",
                    f"applied {status.report.applied}, matched {status.report.matched},"
                    f" completed {status.report.completed}, withdrew {status.report.withdrawn};"
                    f" evaluation {status.report.responses}/{status.report.invited} answered"
                    f" (`mentorflow program report {status.program_id} -o report.html`)",
                ),
            )
            if status.report
            else ()
        ),
        *((("Purge", _local(status.purge_at, zone)),) if status.purge_at else ()),
        ("Temporal UI", _ui_link(settings, program_workflow_id(status.program_id))),
        (
            "Apply page",
            f"{settings.public_base_url.rstrip('/')}/programs/{status.program_id}/apply",
        ),
    ]
    width = max(len(label) for label, _ in lines) + 2
    for label, value in lines:
        typer.echo(f"{label + ':':<{width}}{value}")


async def _counted_on_record(settings: Settings, status: Any) -> Any:
    """``status`` with the application counts the database has now (the workflow counts
    them only when a phase needs them, so between its counts the database is ahead;
    after a purge the database has none, and the workflow's last stand), and with who
    decided for each organisation as HR named them."""
    from mentorflow import tally
    from mentorflow.store import Store

    store = Store(settings.effective_database_url)
    try:
        recorded = tally.on_record(await store.application_counts(status.program_id))
        # Who decided, as HR typed it: the workflow holds only the note's key.
        decisions = {
            organisation: decision.model_copy(
                update={"decided_by": await _who(store, status.program_id, decision.decided_by)}
            )
            for organisation, decision in status.decisions.items()
        }
    finally:
        await store.close()
    status = status.model_copy(update={"decisions": decisions})
    if not recorded.count("applied"):
        return status
    kept = {k: v for k, v in status.counts.items() if k not in tally.COUNTED}
    return status.model_copy(
        update={"counts": {**kept, **recorded.totals()}, "applications": recorded.breakdown()}
    )


async def _who(store: Any, program_id: str, decided_by: str) -> str:
    """A note's author for its key (the key itself once purged); anything else as it is."""
    from mentorflow.people import NOTE_PREFIX

    if not decided_by.startswith(NOTE_PREFIX):
        return decided_by
    return (await store.note(program_id, decided_by)).get("by") or decided_by


# How long `program status` waits for the workflow's answer. A healthy program answers
# in well under a second (a replay from history in a few); the server itself gives up
# on a workflow whose task never completes only after 30 seconds. A workflow whose task
# is being retried after a failure gets a short wait: usually its query then waits for
# a task that fails again.
STATUS_QUERY_SECONDS = 10.0
FAILING_QUERY_SECONDS = 3.0


async def _failed_task_attempts(client: Any, program_id: str) -> int:
    """How many times the program's pending workflow task has failed (0 when none is
    pending, or when Temporal does not say)."""
    from temporalio.service import RPCError

    from mentorflow.programs import handle_for

    try:
        description = await asyncio.wait_for(handle_for(client, program_id).describe(), 5)
    except (TimeoutError, RPCError):
        return 0  # not found, or Temporal is busy: the query that follows tells
    return max(0, description.raw_description.pending_workflow_task.attempt - 1)


async def _answering_status(settings: Settings, client: Any, program_id: str) -> Any:
    """(workflow status, the program's status), or, when the workflow cannot answer (its
    task keeps failing, or no worker takes it), a Failure saying so in one line, with
    what the database still knows."""
    from temporalio.client import WorkflowQueryFailedError
    from temporalio.service import RPCError

    from mentorflow.programs import program_status

    failed = await _failed_task_attempts(client, program_id)
    patience = FAILING_QUERY_SECONDS if failed else STATUS_QUERY_SECONDS
    try:
        return await asyncio.wait_for(program_status(client, program_id), patience)
    except (TimeoutError, RPCError, WorkflowQueryFailedError) as error:
        failed = await _failed_task_attempts(client, program_id)
        why = _why_not_answering(error, patience, failed)
        raise Failure(await _not_answering(settings, program_id, why)) from None


def _why_not_answering(error: BaseException, waited: float, failed: int) -> str:
    """Why the workflow did not answer, as far as Temporal tells."""
    from temporalio.client import WorkflowQueryFailedError
    from temporalio.service import RPCError

    from mentorflow.temporal import workflow_task_failing

    if isinstance(error, WorkflowQueryFailedError):
        return f"its status query failed: {str(error).strip().splitlines()[0]}"
    if failed:
        return f"its workflow task is failing: {failed} failed attempt{'s' * (failed > 1)}"
    if isinstance(error, RPCError) and workflow_task_failing(error):
        return "its workflow task is failing"  # the server's "Workflow Task in failed state"
    if isinstance(error, TimeoutError):
        return (
            f"no answer within {waited:.0f} s: its workflow task is failing,"
            " or no worker is running"
        )
    return "its workflow task is failing, or no worker is running"


async def _not_answering(settings: Settings, program_id: str, why: str) -> str:
    """One line: the program's workflow does not answer, ``why``, where to look, and the
    phase and next deadline the database recorded last."""
    from mentorflow.store import Store

    link = _ui_link(settings, program_workflow_id(program_id))
    store = Store(settings.effective_database_url)
    try:
        program = await asyncio.wait_for(store.program(program_id), 5)
    except Exception:  # the database's view is a bonus; never a traceback here
        known = "the database could not be read either"
    else:
        if program is None:
            known = "the database has no record of it"
        else:
            definition = program.definition if isinstance(program.definition, dict) else {}
            zone = ZoneInfo(str(definition.get("timezone") or "Europe/Stockholm"))
            known = (
                f"the database last recorded phase {program.phase}, next deadline"
                f" {_local(program.next_deadline, zone)} (at {_local(program.updated_at, zone)})"
            )
    finally:
        await store.close()
    return (
        f"program {program_id!r}: its workflow is not answering ({why};"
        f" see the Temporal UI: {link}); {known}"
    )


def _parse_moment(text: str, current: datetime, zone: ZoneInfo, name: str) -> datetime:
    """A date or date-time typed by a person, in the program's timezone.

    A bare date keeps the time of day the date already had.
    """
    text = text.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            local_time = current.astimezone(zone).timetz().replace(tzinfo=None)
            return datetime.combine(day, local_time).replace(tzinfo=zone)
        moment = datetime.fromisoformat(text.replace(" ", "T", 1))
    except ValueError:
        fail(
            f"--{name} {text!r} is not a date; write 2027-04-22 or '2027-04-22 23:59'"
            f" (times are {zone.key} unless you add an offset)"
        )
        raise  # unreachable; keeps type checkers content
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


@program_app.command("reschedule")
def program_reschedule(
    program_id: Annotated[str, typer.Argument(help="The program id.")],
    deadline: Annotated[
        str | None, typer.Option(help="New application deadline, e.g. '2027-04-22 23:59'.")
    ] = None,
    start: Annotated[
        str | None, typer.Option(help="New program start (a postponed start).")
    ] = None,
    opens: Annotated[
        str | None, typer.Option(help="New opening of the application window.")
    ] = None,
    end: Annotated[str | None, typer.Option(help="New end of the program.")] = None,
    evaluation_opens: Annotated[
        str | None, typer.Option(help="New opening of the closing evaluation.")
    ] = None,
    evaluation_closes: Annotated[
        str | None, typer.Option(help="New closing date of the closing evaluation.")
    ] = None,
    event: Annotated[
        list[str] | None,
        typer.Option(
            help="Move the kick-off or a joint session: ID=WHEN, e.g. kickoff='2027-10-19 08:30'."
            " Repeat for several."
        ),
    ] = None,
    cancel_event: Annotated[
        list[str] | None,
        typer.Option(help="Cancel a joint session by its id; calendars remove it."),
    ] = None,
    reason: Annotated[
        str, typer.Option(help="Why; it is told to the people affected.", callback=_reason)
    ] = "",
) -> None:
    """Move dates or joint events of a running program; the people affected are told."""
    from mentorflow.programs import reschedule_program

    events = event or []
    cancelled = cancel_event or []
    if not any(
        (deadline, start, opens, end, evaluation_opens, evaluation_closes, events, cancelled)
    ):
        fail(
            "say what to move: --deadline, --start, --opens, --end, --evaluation-opens,"
            " --evaluation-closes, --event or --cancel-event"
        )
    for item in events:
        if "=" not in item:
            fail(f"--event {item!r}: write ID=WHEN, e.g. kickoff='2027-10-19 08:30'")
    settings = _settings()

    async def move() -> tuple[Any, ZoneInfo]:
        client = await connect(settings)
        _, status = await _answering_status(settings, client, program_id)
        zone = ZoneInfo(status.timezone)
        current: ProgramDates = status.dates
        starts = {entry.event.id: entry.event.starts for entry in status.calendar}
        moves = {}
        for item in events:
            event_id, _, when = item.partition("=")
            event_id = event_id.strip()
            moves[event_id] = _parse_moment(
                when, starts.get(event_id, current.start), zone, f"event {event_id}"
            )
        request = RescheduleRequest(
            opens=_parse_moment(opens, current.opens, zone, "opens") if opens else None,
            deadline=(
                _parse_moment(deadline, current.deadline, zone, "deadline") if deadline else None
            ),
            start=_parse_moment(start, current.start, zone, "start") if start else None,
            end=_parse_moment(end, current.end, zone, "end") if end else None,
            evaluation_opens=(
                _parse_moment(evaluation_opens, current.evaluation_opens, zone, "evaluation opens")
                if evaluation_opens
                else None
            ),
            evaluation_closes=(
                _parse_moment(
                    evaluation_closes, current.evaluation_closes, zone, "evaluation closes"
                )
                if evaluation_closes
                else None
            ),
            events=moves,
            cancel_events=[c.strip() for c in cancelled],
            reason=await _note(settings, program_id, reason) if reason else "",
            requested_by="cli",
        )
        return await reschedule_program(client, program_id, request), zone

    result, zone = _run(move)
    d = result.dates
    typer.echo(
        f"Rescheduled {program_id} (revision {result.revision}): moved {', '.join(result.moved)}."
    )
    typer.echo(
        f"Now: opens {_local(d.opens, zone)} · deadline {_local(d.deadline, zone)} ·"
        f" start {_local(d.start, zone)} · end {_local(d.end, zone)} ·"
        f" evaluation {_local(d.evaluation_opens, zone)} – {_local(d.evaluation_closes, zone)}"
    )


@program_app.command("cancel")
def program_cancel(
    program_id: Annotated[str, typer.Argument(help="The program id.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Cancel a running program; people already told about it are told it is cancelled."""
    from mentorflow.programs import cancel_program

    if not yes and not typer.confirm(f"Cancel program {program_id}?", default=False):
        typer.echo("Nothing was changed.")
        raise typer.Exit(1)
    settings = _settings()

    async def cancel() -> None:
        await cancel_program(await connect(settings), program_id)

    _run(cancel)
    typer.echo(
        f"Cancellation of {program_id} requested; `mentorflow program status {program_id}`"
        " shows when it is done."
    )


@program_app.command("report")
def program_report(
    program_id: Annotated[str, typer.Argument(help="The program id.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The file to write: .html (charts) or .csv.")
    ],
) -> None:
    """Write the program's report (the same as HR's report page) to a file.

    A completed program's stored report; a program still running, its figures so far.
    """
    from mentorflow.report import current_report, report_csv, report_html
    from mentorflow.store import Store, migrate

    if output.suffix.lower() not in (".html", ".csv"):
        fail(f"{output}: write the report to a .html or a .csv file")
    settings = _settings()

    async def make() -> Any:
        await asyncio.to_thread(migrate, settings.effective_database_url)
        store = Store(settings.effective_database_url)
        try:
            if await store.program(program_id) is None:
                fail(f"no program with id {program_id!r} in the database")
            return await current_report(store, program_id, datetime.now(UTC))
        finally:
            await store.close()

    report = _run(make)
    content = report_csv(report) if output.suffix.lower() == ".csv" else report_html(report)
    output.write_text(content, encoding="utf-8")
    summary = report.summary()
    typer.echo(
        f"Wrote {output}: applied {summary.applied}, matched {summary.matched},"
        f" completed {summary.completed}, withdrew {summary.withdrawn};"
        f" evaluation {summary.responses}/{summary.invited} answered."
    )


@program_app.command("purge")
def program_purge(
    program_id: Annotated[str, typer.Argument(help="The program id.")],
    reason: Annotated[str, typer.Option(help="Why now (recorded).", callback=_reason)] = "",
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove a finished program's personal data now; its report's figures remain.

    Completed programs purge themselves at the end of the definition's retention
    period; this does it earlier, or for a program that was cancelled.
    """
    from mentorflow.models import PurgeRequest
    from mentorflow.programs import purge_program
    from mentorflow.store import Store, migrate

    if not yes and not typer.confirm(
        f"Remove every applicant's and participant's data in {program_id}? This cannot be undone.",
        default=False,
    ):
        typer.echo("Nothing was changed.")
        raise typer.Exit(1)
    settings = _settings()

    async def run() -> Any:
        await asyncio.to_thread(migrate, settings.effective_database_url)
        store = Store(settings.effective_database_url)
        try:
            note = await store.save_note(
                program_id, reason, os.environ.get("USER", "cli"), datetime.now(UTC)
            )
            request = PurgeRequest(requested_by="cli", reason=note)
            return await purge_program(await connect(settings), program_id, request, store)
        finally:
            await store.close()

    result = _run(run)
    typer.echo(
        f"Purged {program_id}: {result.applications} applications,"
        f" {result.evaluation_responses} evaluation answers and {result.emails} email records"
        f" removed; {result.events_scrubbed} log entries cleaned. The report's figures remain."
    )


# --- people ----------------------------------------------------------------------------------


@person_app.command("export")
def person_export(
    email: Annotated[str, typer.Argument(help="The person's email address.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the JSON here (default: stdout).")
    ] = None,
) -> None:
    """Everything mentorflow holds about one person, as JSON (a data subject access request)."""
    from mentorflow.store import Store, migrate

    settings = _settings()

    async def export() -> list[dict[str, Any]]:
        await asyncio.to_thread(migrate, settings.effective_database_url)
        store = Store(settings.effective_database_url)
        try:
            return await store.person(email)
        finally:
            await store.close()

    found = _run(export)
    document = json.dumps(
        {"email": email.strip().lower(), "records": found}, indent=2, ensure_ascii=False
    )
    if output is None:
        typer.echo(document)
    else:
        output.write_text(document + "\n", encoding="utf-8")
        typer.echo(f"Wrote {output}: {len(found)} record(s) about {email}.")


# --- applications ----------------------------------------------------------------------------

CSV_COLUMNS = (
    "name",
    "email",
    "organisation",
    "department",
    "profile",
    "manager_name",
    "manager_email",
)


@applications_app.command("import")
def applications_import(
    file: Annotated[Path, typer.Argument(help="CSV with a header row (see README).")],
    program_id: Annotated[str, typer.Option("--program", help="The program id.")],
) -> None:
    """Import applications HR collected another way; importing again updates, never doubles."""
    from mentorflow.applications import check_application, submit_application
    from mentorflow.definition import stored_definition
    from mentorflow.store import Store, migrate

    settings = _settings()
    if not is_slug(program_id):
        fail(f"--program {_cut(program_id)} is not a program id (lowercase letters, digits, -)")
    header, rows = _read_csv(file)

    async def run() -> tuple[int, int, int]:
        await asyncio.to_thread(migrate, settings.effective_database_url)
        store = Store(settings.effective_database_url)
        try:
            program = await store.program(program_id)
            if program is None:
                fail(f"no program with id {program_id!r} in the database")
            assert program is not None
            definition = stored_definition(program.definition)
            _check_columns(file, header, definition)
            client = await connect(settings)
            imported = updated = refused = 0
            first_line: dict[str, int] = {}

            def refuse(line: int, why: str) -> None:
                nonlocal refused
                refused += 1
                typer.echo(f"{file}:{line}: {why}", err=True)

            for done, (line, cells) in enumerate(rows):
                if len(cells) != len(header):
                    refuse(
                        line,
                        f"{len(cells)} fields where the header has {len(header)}"
                        " (a comma too many or too few?)",
                    )
                    continue
                values: dict[str, Any] = {k: v.strip() for k, v in zip(header, cells, strict=True)}
                profile = definition.profile(values.get("profile", ""))
                if profile is None:
                    known = ", ".join(p.id for p in definition.profiles)
                    refuse(line, f"profile: unknown {_cut(values['profile'])}; use one of: {known}")
                    continue
                # HR vouches for eligibility when importing what it collected.
                values.update({f"eligible_{i}": "yes" for i in range(len(profile.eligibility))})
                for question in profile.questions:
                    if question.kind == "multi_choice":
                        raw = values.pop(f"q_{question.id}", "")
                        values[f"q_multi_{question.id}"] = [
                            part.strip() for part in raw.split(";") if part.strip()
                        ]
                errors = check_application(definition, profile.id, values)
                if errors:
                    refused += 1
                    for field, why in errors.items():  # one line per field, as HR fixes them
                        typer.echo(f"{file}:{line}: {field}: {why}", err=True)
                    continue
                email = values["email"].lower()
                if email in first_line:
                    refuse(
                        line,
                        f"email: {email} is on line {first_line[email]} too; a person is one"
                        " row (this one is not imported)",
                    )
                    continue
                first_line[email] = line
                outcome = await submit_application(
                    store, client, definition, profile.id, values, channel="csv_import"
                )
                if outcome.refusal == "closed":
                    # The program takes no more applications: once is enough to say so.
                    refuse(line, "refused: the program no longer takes applications")
                    rest = len(rows) - done - 1
                    if rest:
                        refused += rest
                        typer.echo(f"{file}: the {rest} row(s) after it were not tried", err=True)
                    break
                if outcome.refusal is not None:
                    refuse(
                        line,
                        "saved, but the program is too busy to take it now;"
                        " import the file again in a minute (nothing is doubled)"
                        if outcome.refusal == "busy"
                        else f"refused: {outcome.refusal} {outcome.detail}".rstrip(),
                    )
                    continue
                imported += outcome.created
                updated += not outcome.created
                typer.echo(f"{file}:{line}: {'imported' if outcome.created else 'updated'}")
            return imported, updated, refused
        finally:
            await store.close()

    imported, updated, refused = _run(run)
    summary = f"{file}: {imported} imported, {updated} updated, {refused} refused"
    if refused:
        typer.echo(f"{summary}; fix the refused rows and import the file again.", err=True)
        raise typer.Exit(1)
    typer.echo(summary)


CSV_LIMIT_BYTES = 10 * 1024 * 1024  # about 20,000 applications; split a larger file


def _read_csv(file: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the rows (with the line each starts on) of a CSV file, or one
    message saying why it cannot be read; nothing is imported from a file that is
    not CSV all the way through."""
    import csv

    try:
        if file.is_dir():
            fail(f"{file}: is a folder; give the CSV file")
        if file.exists() and not file.is_file():  # a pipe or a device: reading may not end
            fail(f"{file}: is not a regular file; give the CSV file")
        with file.open("rb") as handle:
            raw = handle.read(CSV_LIMIT_BYTES + 1)
    except (OSError, ValueError) as error:  # ValueError: a NUL in the path
        fail(f"{file}: cannot be read ({getattr(error, 'strerror', None) or error})")
        raise  # unreachable: fail() exits
    if len(raw) > CSV_LIMIT_BYTES:
        fail(f"{file}: larger than {CSV_LIMIT_BYTES // 1024 // 1024} MB; split it into parts")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        fail(f"{file}: not UTF-8 text (byte at {error.start}); save it as CSV UTF-8")
        raise  # unreachable
    # strict: a stray or unclosed quote is an error, not a field that swallows the rest.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[tuple[int, list[str]]] = []
    start = 1
    try:
        for cells in reader:
            if any(cell.strip() for cell in cells):
                rows.append((start, cells))
            start = reader.line_num + 1
    except csv.Error as error:
        why = (
            'a quote (") opens a field that is never closed'
            if "unexpected end of data" in str(error)
            else f"not valid CSV ({error}); quote a field that holds a comma or a quote"
        )
        fail(f"{file}:{start}: {why}; nothing was imported")
    if not rows:
        fail(f"{file}: empty; it needs a header row ({', '.join(CSV_COLUMNS)}) and rows")
    (_, header), *data = rows
    header = [name.strip() for name in header]
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        hint = " (is it separated by ';'? save it with commas)" if ";" in "".join(header) else ""
        fail(
            f"{file}: the header row lacks {', '.join(missing)}{hint}; the columns are"
            f" {', '.join(CSV_COLUMNS)} and q_<question id>"
        )
    doubled = sorted({name for name in header if header.count(name) > 1})
    if doubled:
        fail(f"{file}: the header names {', '.join(doubled)} twice")
    if not data:
        fail(f"{file}: has a header row but no applications")
    return header, data


def _check_columns(file: Path, header: list[str], definition: Any) -> None:
    """Refuse columns the program does not know: a misspelt question column would
    otherwise import every row without its answer."""
    questions = {f"q_{q.id}" for p in definition.profiles for q in p.questions}
    unknown = [name for name in header if name not in (*CSV_COLUMNS, *questions)]
    if unknown:
        fail(
            f"{file}: unknown column(s) {', '.join(_cut(name) for name in unknown)}; the"
            f" columns are {', '.join(CSV_COLUMNS)}"
            + (f" and {', '.join(sorted(questions))}" if questions else "")
            + "; nothing was imported"
        )


def _cut(value: str, width: int = 40) -> str:
    """``repr(value)`` cut to ``width``: a message quotes what it refuses, not all of it."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


# --- capacity --------------------------------------------------------------------------------


def _emails(values: list[str] | None) -> list[str]:
    """Emails given as repeated options or comma-separated, lowercased."""
    return [e.strip().lower() for v in values or [] for e in v.split(",") if e.strip()]


async def _approved(settings: Settings, program_id: str, organisation: str) -> list[Any]:
    from mentorflow.store import Store, migrate

    await asyncio.to_thread(migrate, settings.effective_database_url)
    store = Store(settings.effective_database_url)
    try:
        if await store.program(program_id) is None:
            fail(f"no program with id {program_id!r} in the database")
        return [
            row
            for row in await store.applications(program_id)
            if row.organisation_id == organisation and row.status == "approved"
        ]
    finally:
        await store.close()


@capacity_app.command("show")
def capacity_show(
    program_id: Annotated[str, typer.Argument(help="The program id.")],
    organisation: Annotated[str, typer.Option("--organisation", help="The organisation id.")],
) -> None:
    """List an organisation's approved applicants and HR's decision on each."""
    rows = _run(lambda: _approved(_settings(), program_id, organisation))
    if not rows:
        typer.echo(f"{organisation} has no approved applicants in {program_id}.")
        return
    for row in rows:
        typer.echo(f"{row.profile_id:<20} {row.email:<40} {row.selection or 'undecided'}")


@capacity_app.command("decide")
def capacity_decide(
    program_id: Annotated[str, typer.Argument(help="The program id.")],
    organisation: Annotated[str, typer.Option("--organisation", help="The organisation id.")],
    accept: Annotated[
        list[str] | None, typer.Option(help="Emails to accept (repeat, or comma-separate).")
    ] = None,
    waitlist: Annotated[list[str] | None, typer.Option(help="Emails to wait-list.")] = None,
    decline: Annotated[list[str] | None, typer.Option(help="Emails not to select.")] = None,
    rest: Annotated[
        str | None,
        typer.Option(help="What happens to everyone not named: waitlist or decline."),
    ] = None,
    by: Annotated[str, typer.Option(help="Who decides (recorded with the decision).")] = "",
) -> None:
    """Decide who of an organisation's approved applicants takes part, within its caps."""

    from mentorflow.models import CapacityDecision, Selection
    from workflows.program import ProgramWorkflow

    if rest not in (None, "waitlist", "decline"):
        fail(f"--rest {rest!r}: use waitlist or decline")
    settings = _settings()
    named = {
        **{e: Selection.ACCEPTED for e in _emails(accept)},
        **{e: Selection.WAITLISTED for e in _emails(waitlist)},
        **{e: Selection.DECLINED for e in _emails(decline)},
    }
    clashes = [e for e in named if sum(e in _emails(v) for v in (accept, waitlist, decline)) > 1]
    if clashes:
        fail(f"named twice with different decisions: {', '.join(sorted(clashes))}")

    async def decide() -> Any:
        rows = await _approved(settings, program_id, organisation)
        by_email = {row.email: row for row in rows}
        unknown = sorted(set(named) - set(by_email))
        if unknown:
            fail(
                f"not an approved applicant of {organisation}: {', '.join(unknown)}"
                f" (see `mentorflow capacity show {program_id} --organisation {organisation}`)"
            )
        left = [email for email in by_email if email not in named]
        if left and rest is None:
            fail(
                f"no decision for {len(left)} applicant(s): {', '.join(left)};"
                " name them, or add --rest waitlist (or --rest decline)"
            )
        fallback = Selection.DECLINED if rest == "decline" else Selection.WAITLISTED
        selections = {row.id: named.get(email, fallback) for email, row in by_email.items()}
        client = await connect(settings)
        handle: WorkflowHandle[ProgramWorkflow, ProgramResult] = client.get_workflow_handle_for(
            ProgramWorkflow.run, program_workflow_id(program_id)
        )
        return await _update(
            handle,
            ProgramWorkflow.decide_capacity,
            CapacityDecision(
                organisation_id=organisation,
                selections=selections,
                decided_by=await _note(settings, program_id, by=by or ""),
                channel="cli",
            ),
            program_id=program_id,
        )

    result = _run(decide)
    typer.echo(
        f"{organisation}: accepted {result.accepted}, wait-listed {result.waitlisted},"
        f" not selected {result.declined}"
    )


async def _update(
    handle: Any, update: Any, argument: Any, *, program_id: str, workflow: str = "program"
) -> Any:
    """Run a workflow update; a refusal by its validator, or by a server that cannot
    deliver it now, is one line on stderr and exit 1."""
    from temporalio.client import WorkflowUpdateFailedError
    from temporalio.service import RPCError

    from mentorflow.programs import not_now

    try:
        return await handle.execute_update(update, argument)
    except WorkflowUpdateFailedError as error:
        fail(f"refused: {getattr(error.cause, 'message', str(error.cause))}")
        raise  # unreachable: fail() exits
    except RPCError as error:
        raise not_now(program_id, error, "nothing was changed", workflow=workflow) from None


# --- pairs -----------------------------------------------------------------------------------


async def _program_people(settings: Settings, program_id: str) -> tuple[list[Any], list[Any]]:
    """(applications, pairs) of a program, from the database."""
    from mentorflow.store import Store, migrate

    await asyncio.to_thread(migrate, settings.effective_database_url)
    store = Store(settings.effective_database_url)
    try:
        if await store.program(program_id) is None:
            fail(f"no program with id {program_id!r} in the database")
        return await store.applications(program_id), await store.pairs(program_id)
    finally:
        await store.close()


def _application_of(rows: list[Any], email: str, program_id: str) -> Any:
    found = next((row for row in rows if row.email == email.strip().lower()), None)
    if found is None:
        fail(f"nobody applied to {program_id} with {email!r}")
    return found


@pair_app.command("list")
def pair_list(program_id: Annotated[str, typer.Argument(help="The program id.")]) -> None:
    """Every pair with its status, and the wait-list HR can re-match from."""
    settings = _settings()
    rows, pairs = _run(lambda: _program_people(settings, program_id))
    by_id = {row.id: row for row in rows}
    for pair in pairs:
        mentor, adept = by_id[pair.mentor_application_id], by_id[pair.adept_application_id]
        met = f", last met {pair.last_met_at:%Y-%m-%d}" if pair.last_met_at else ""
        typer.echo(f"{pair.id}  {pair.status:<7} {mentor.email} & {adept.email}{met}")
    waiting = [row for row in rows if row.selection == "waitlisted" and row.status == "approved"]
    if waiting:
        typer.echo("Wait-list: " + ", ".join(f"{row.email} ({row.profile_id})" for row in waiting))


@pair_app.command("withdraw")
def pair_withdraw(
    program_id: Annotated[str, typer.Argument(help="The program id.")],
    email: Annotated[str, typer.Argument(help="The participant who leaves.")],
    reason: Annotated[
        str, typer.Option(help="Why; told to HR, not to the partner.", callback=_reason)
    ] = "",
) -> None:
    """Record that a participant leaves: the pair closes, the partner and HR are told."""

    from mentorflow.models import PairClosure, pair_workflow_id
    from workflows.pair import PairWorkflow

    settings = _settings()

    async def withdraw() -> Any:
        rows, pairs = await _program_people(settings, program_id)
        person = _application_of(rows, email, program_id)
        pair = next(
            (
                p
                for p in pairs
                if p.status == "active"
                and person.id in (p.mentor_application_id, p.adept_application_id)
            ),
            None,
        )
        if pair is None:
            fail(f"{email} is not in a running pair of {program_id}")
        assert pair is not None
        client = await connect(settings)
        handle: WorkflowHandle[PairWorkflow, PairStatus] = client.get_workflow_handle_for(
            PairWorkflow.run, pair_workflow_id(program_id, pair.id)
        )
        return await _update(
            handle,
            PairWorkflow.withdraw,
            PairClosure(
                application_id=person.id,
                reason=await _note(settings, program_id, reason),
                by="cli",
            ),
            program_id=program_id,
            workflow="pair",
        )

    status = _run(withdraw)
    typer.echo(
        f"Pair {status.pair_id} is {status.status}; the partner and HR have been told."
        f" Re-match with `mentorflow pair rematch {program_id} --remaining EMAIL --with EMAIL`."
    )


@pair_app.command("rematch")
def pair_rematch(
    program_id: Annotated[str, typer.Argument(help="The program id.")],
    remaining: Annotated[str, typer.Option(help="The partner left behind (email).")],
    with_: Annotated[str, typer.Option("--with", help="Who from the wait-list (email).")],
) -> None:
    """Pair the remaining participant of a closed pair with someone from the wait-list."""

    from mentorflow.models import RematchRequest
    from workflows.program import ProgramWorkflow

    settings = _settings()

    async def rematch() -> str:
        rows, _ = await _program_people(settings, program_id)
        left = _application_of(rows, remaining, program_id)
        partner = _application_of(rows, with_, program_id)
        client = await connect(settings)
        handle: WorkflowHandle[ProgramWorkflow, ProgramResult] = client.get_workflow_handle_for(
            ProgramWorkflow.run, program_workflow_id(program_id)
        )
        pair_id: str = await _update(
            handle,
            ProgramWorkflow.rematch,
            RematchRequest(
                remaining_id=left.id, partner_id=partner.id, by=await _note(settings, program_id)
            ),
            program_id=program_id,
        )
        return pair_id

    pair_id = _run(rematch)
    typer.echo(
        f"New pair {pair_id}: {remaining} & {with_}. Both are introduced and get the"
        " upcoming joint events in their calendars."
    )


# --- services --------------------------------------------------------------------------------


@app.command()
def worker(
    only: Annotated[
        WorkerKind | None,
        typer.Option(
            "--only",
            help="Host only the workflows or only the activities (default: both). Production"
            ' runs them in separate processes (docs/ops.md, "The two worker kinds").',
        ),
    ] = None,
) -> None:
    """Run a worker: it hosts the workflows and sends the emails."""
    from mentorflow.logs import configure_logging
    from mentorflow.services import run_until_signalled
    from worker.main import run_worker

    settings = _service_settings()
    configure_logging()

    async def main(stop: asyncio.Event) -> None:
        client = await connect(settings, serve_metrics=True)
        await run_worker(settings, client, stop, kind=only)

    run_until_signalled(main)


@app.command()
def web() -> None:
    """Run the web app (the pages linked from emails, and /health)."""
    from mentorflow.logs import configure_logging
    from mentorflow.services import run_until_signalled
    from mentorflow.web.app import serve

    settings = _service_settings()
    configure_logging()

    async def main(stop: asyncio.Event) -> None:
        # The pages linked from emails answer through Temporal.
        await serve(settings, stop, temporal=await connect(settings, serve_metrics=True))

    run_until_signalled(main)


@app.command()
def dev(
    data_dir: Annotated[
        Path | None, typer.Option(help="Where the stack keeps its files (default .mentorflow).")
    ] = None,
) -> None:
    """Run the whole stack locally: Temporal dev server, a workflows and an activities
    worker (child processes), web app, mail catcher."""
    from mentorflow.dev import run_dev_stack
    from mentorflow.logs import configure_logging

    settings = _settings()
    if data_dir is not None:
        settings = settings.model_copy(update={"data_dir": data_dir})
    settings = with_local_signing_key(settings)
    configure_logging()
    run_dev_stack(settings)


@app.command()
def setup(
    retention_days: Annotated[
        int,
        typer.Option(
            min=1, help="For a new namespace: days Temporal keeps a closed workflow's history."
        ),
    ] = 30,
) -> None:
    """Prepare a new environment (idempotent): namespace, search attributes, database."""
    from datetime import timedelta

    from mentorflow.store import migrate
    from mentorflow.temporal import ensure_namespace, register_search_attributes

    settings = _settings()
    namespace = settings.temporal_namespace

    async def prepare() -> tuple[bool, list[str]]:
        client = await connect(settings)
        created = await ensure_namespace(client, namespace, timedelta(days=retention_days))
        return created, await register_search_attributes(client, namespace)

    created, added = _run(prepare)
    typer.echo(
        f"Namespace {namespace}: "
        + (f"created (retention {retention_days} days)" if created else "already there")
    )
    typer.echo(f"Search attributes added: {', '.join(added) if added else 'none (all present)'}")
    migrate(settings.effective_database_url)
    typer.echo("Database schema is up to date.")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations."""
    from mentorflow.store import migrate

    settings = _settings()
    migrate(settings.effective_database_url)
    typer.echo("Database schema is up to date.")


def _exit_now(code: int) -> None:
    """Exit without interpreter finalization.

    After a failed connection the SDK's native runtime may still hold a thread
    that aborts the process during finalization ("PyGILState_Release"), turning
    a clean one-line error into a crash report; there is nothing left to clean up.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main() -> None:
    """Entry point: run the command; expected failures become one line on stderr."""
    from sqlalchemy.exc import OperationalError

    from mentorflow.programs import ProgramError

    code = 0
    try:
        app()
    except SystemExit as exit_:
        # Typer ends every command (and usage errors, --help) with SystemExit.
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except (Failure, ProgramError, TemporalUnavailable, StoreUnavailable, PayloadKeyError) as error:
        typer.echo(f"error: {error}", err=True)
        code = 1
    except KeyboardInterrupt:
        code = 130
    except OperationalError as error:
        # Migrations meet an unreachable database as SQLAlchemy's error; one line is enough.
        from mentorflow.store.store import safe_url

        typer.echo(
            f"error: cannot reach the database at"
            f" {safe_url(Settings().effective_database_url)}:"
            f" {str(error.orig).strip().splitlines()[0]}",
            err=True,
        )
        code = 1
    except Exception:
        logging.getLogger("mentorflow").exception("unexpected error")
        code = 1
    _exit_now(code)
