"""Taking an application: checking it, saving it, and starting its workflow.

The web form and the CSV import both go through here, so an application is
the same thing whichever way it came. The program is not asked: whether it
takes applications now is read from its row in the database (its dates and
phase, which its workflow records), and the application's own workflow tells
the program that it applied. So a thousand people applying at once is a
thousand workflow starts, not a thousand messages to one program.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from email_validator import EmailNotValidError, validate_email
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from mentorflow import i18n, limits, refusals, timeline
from mentorflow import search_attributes as sa
from mentorflow.definition import ProgramDefinition, Question
from mentorflow.models import (
    ApplicationInput,
    ApplicationSubmission,
    ManagerChange,
    ProgramDates,
    ProgramPhase,
    ProgramResult,
    application_workflow_id,
    participant_task_queue,
    program_workflow_id,
)
from mentorflow.people import without_people
from mentorflow.store import Store
from mentorflow.store.tables import Application, Program
from mentorflow.temporal import execute_update_when_admitted, is_busy
from workflows.legacy.program_v1 import ProgramWorkflowV1 as ProgramWorkflow

MAX_NUMBER = 100  # a number answer is a count such as years of experience


@dataclass(frozen=True)
class SubmitOutcome:
    application: Application | None
    created: bool
    # closed | already_answered | the validator's word | busy (saved, not yet handed
    # over: the program could not take it in time; sending it again does)
    refusal: str | None = None
    detail: str = ""


async def submit_application(
    store: Store,
    temporal: Client,
    definition: ProgramDefinition,
    profile_id: str,
    values: dict[str, Any],
    *,
    channel: str,
    program: Program | None = None,
) -> SubmitOutcome:
    """Save a checked application (once per email) and start its workflow; applying
    again updates the same application, whose workflow asks the manager again.

    ``program``: the program's row, when the caller has just read it (else it is read).
    """
    if program is None:
        program = await store.program(definition.id)
    if program is None or program.dates is None:
        return await _submit_to_v1(store, temporal, definition, profile_id, values, channel=channel)
    refusal = _closed(program)
    if refusal is not None:
        return SubmitOutcome(None, False, "closed", refusal)
    earlier = await store.application_by_email(definition.id, values["email"])
    if earlier is not None and earlier.status in ANSWERED:
        return SubmitOutcome(earlier, False, "already_answered", earlier.status)
    saved, created = await _save(store, definition, profile_id, values, channel)
    workflow_id = application_workflow_id(definition.id, saved.id)
    try:
        await temporal.start_workflow(
            "ApplicationWorkflow",  # by name: the core does not import the workflows
            _application_input(definition, ProgramDates.model_validate(program.dates), saved),
            id=workflow_id,
            task_queue=participant_task_queue(await _task_queue(temporal, definition.id)),
            # Once per application: applying again reaches the same workflow.
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes(
                [SearchAttributePair(sa.PROGRAM_ID, definition.id)]
            ),
            static_summary=f"application to {definition.id}",
        )
    except WorkflowAlreadyStartedError:
        # Applied again: the database may name another manager, whom it asks (an
        # unchanged one is not emailed twice: the email ledger's key holds the address).
        try:
            await temporal.get_workflow_handle(workflow_id).signal(
                "manager_changed", ManagerChange()
            )
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:  # finished meanwhile: nothing to ask
                raise
    except RPCError as error:
        if not is_busy(error):
            raise
        return SubmitOutcome(saved, created, "busy", "saved; send it again in a minute")
    return SubmitOutcome(saved, created)


# An application with one of these has its answer: applying again changes nothing.
ANSWERED = ("approved", "declined", "withdrawn")


def _closed(program: Program) -> str | None:
    """Why the program takes no application now, or None.

    The phase its workflow recorded decides, not this machine's clock: the program
    opens and closes its window on its own timers (and a test server's skipped time).
    An application that arrives between the deadline and that record is still counted.
    """
    assert program.dates is not None
    dates = ProgramDates.model_validate(program.dates)
    if program.phase == ProgramPhase.APPLICATION_WINDOW.value:
        return None
    if program.phase == ProgramPhase.SCHEDULED.value:
        return f"applications open at {dates.opens.isoformat()}"
    if program.phase == ProgramPhase.CANCELLED.value:
        return "the program was cancelled"
    return "the application deadline has passed"


def _application_input(
    definition: ProgramDefinition, dates: ProgramDates, application: Application
) -> ApplicationInput:
    """What the application's workflow needs: ids, dates and the program's plan (its
    people as references, like the program's own definition: mentorflow.people)."""
    plan = without_people(definition)
    organisation = next(o for o in plan.organisations if o.id == application.organisation_id)
    profile = plan.profile(application.profile_id)
    assert profile is not None
    return ApplicationInput(
        program_id=plan.id,
        application_id=application.id,
        organisation_id=application.organisation_id,
        profile_id=application.profile_id,
        profile_title=profile.title,
        hr_contacts=list(organisation.hr_contacts),
        approval_required=plan.approval.required,
        answer_by=timeline.answer_by(plan, dates),
        reminders_before_answer_by=list(plan.approval.reminders_before_answer_by),
        on_silence=plan.approval.on_silence.value,
        decide_escalated_by=timeline.escalation_due(plan, dates),
        facts=timeline.facts(plan, dates),
        report_to_program=True,
    )


_task_queues: dict[tuple[str, str, str], str] = {}


async def _task_queue(temporal: Client, program_id: str) -> str:
    """The task queue the program runs on (its applications run beside it); asked once."""
    key = (temporal.service_client.config.target_host, temporal.namespace, program_id)
    if key not in _task_queues:
        described = await temporal.get_workflow_handle(program_workflow_id(program_id)).describe()
        _task_queues[key] = described.raw_description.execution_config.task_queue.name
    return _task_queues[key]


async def _save(
    store: Store,
    definition: ProgramDefinition,
    profile_id: str,
    values: dict[str, Any],
    channel: str,
) -> tuple[Application, bool]:
    profile = definition.profile(profile_id)
    assert profile is not None
    return await store.save_application(
        new_id=secrets.token_hex(8),
        program_id=definition.id,
        email=values["email"],
        name=values["name"],
        organisation_id=values["organisation"],
        department=values.get("department", ""),
        profile_id=profile_id,
        manager_email=values["manager_email"],
        manager_name=values["manager_name"],
        answers=answers_from(profile.questions, values),
        eligibility_confirmed=True,
        channel=channel,
        at=datetime.now(UTC),
    )


async def _submit_to_v1(
    store: Store,
    temporal: Client,
    definition: ProgramDefinition,
    profile_id: str,
    values: dict[str, Any],
    *,
    channel: str,
) -> SubmitOutcome:
    """A program run by ProgramWorkflowV1 (started before the thin program) takes each
    application as an update, and starts its workflow itself."""
    saved, created = await _save(store, definition, profile_id, values, channel)
    handle: WorkflowHandle[ProgramWorkflow, ProgramResult] = temporal.get_workflow_handle_for(
        ProgramWorkflow.run, program_workflow_id(definition.id)
    )
    try:
        await execute_update_when_admitted(
            handle,
            ProgramWorkflow.submit_application,
            # Ids only: the people are in the database (mentorflow.people).
            ApplicationSubmission(
                application_id=saved.id,
                organisation_id=saved.organisation_id,
                profile_id=saved.profile_id,
                created=created,
            ),
        )
    except WorkflowUpdateFailedError as error:
        refused = refusals.of(error)
        if refused.kind == "closed" and created:
            # It never reached the program: keep it out of every count.
            await store.set_application_status(saved.id, "late", datetime.now(UTC))
        return SubmitOutcome(saved, created, refused.kind, refused.detail)
    except RPCError as error:
        if not is_busy(error):
            raise
        return SubmitOutcome(saved, created, "busy", "saved; send it again in a minute")
    return SubmitOutcome(saved, created)


def answers_from(questions: list[Question], values: dict[str, Any]) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    for question in questions:
        if question.kind == "multi_choice":
            answers[question.id] = values.get(f"q_multi_{question.id}", [])
        else:
            answers[question.id] = values.get(f"q_{question.id}", "")
    return answers


def typed_text_problem(language: str, value: str, limit: int, *, multiline: bool) -> str | None:
    """What is wrong with text a person typed, in ``language``: too long (the limit is
    said), or a character that cannot be kept (NUL: PostgreSQL refuses it; the
    text-direction overrides make a name read differently from what it is)."""
    t = i18n.texts(language)
    if len(value) > limit:
        # Numbers as the language writes them: 2,000 in English, 2 000 in Swedish.
        return t.gettext(
            "Please shorten this to at most %(limit)s characters (it has %(length)s).",
            limit=t.number(limit),
            length=t.number(len(value)),
        )
    bad = limits.unsafe_character(value, multiline=multiline)
    if bad is not None:
        return t.gettext(
            "This holds a character that cannot be used (%(character)s), an invisible control"
            " or text-direction character. Please type the text again.",
            character=bad,
        )
    return None


def _typed_fields(definition: ProgramDefinition, profile_id: str) -> dict[str, bool]:
    """The fields of the form that keep what a person typed; True where line breaks may
    be kept (the answers to text questions)."""
    profile = definition.profile(profile_id)
    fields = dict.fromkeys(limits.FIELD_LIMITS, False)
    for question in profile.questions if profile else []:
        if question.kind != "multi_choice":
            fields[f"q_{question.id}"] = question.kind == "text"
    return fields


def check_application(
    definition: ProgramDefinition, profile_id: str, values: dict[str, Any]
) -> dict[str, str]:
    """Field name -> message, in the program's language; empty when the form is right."""
    language = definition.language.value
    t = i18n.texts(language)
    required, choose = t.gettext("Please fill this in."), t.gettext("Please choose one.")
    unknown_choice = t.gettext("Please choose one of the options.")
    errors: dict[str, str] = {}
    # The text itself first: nothing else about a field matters if it cannot be kept.
    for field, multiline in _typed_fields(definition, profile_id).items():
        value = values.get(field, "")
        if isinstance(value, str):
            problem = typed_text_problem(
                language, value, limits.field_limit(field), multiline=multiline
            )
            if problem is not None:
                errors[field] = problem
    for field in ("name", "email", "organisation", "manager_name", "manager_email"):
        if not values.get(field) and field not in errors:
            errors[field] = required if field != "organisation" else choose
    for field in ("email", "manager_email"):
        if values.get(field) and field not in errors:
            try:
                validate_email(values[field], check_deliverability=False)
            except EmailNotValidError:
                errors[field] = t.gettext("This is not a valid email address.")
    if (
        "email" not in errors
        and "manager_email" not in errors
        and values.get("email", "").lower() == values.get("manager_email", "").lower()
    ):
        errors["manager_email"] = t.gettext("Your manager must be someone else.")
    if (
        values.get("organisation")
        and "organisation" not in errors
        and values["organisation"] not in {o.id for o in definition.organisations}
    ):
        errors["organisation"] = unknown_choice
    profile = definition.profile(profile_id)
    assert profile is not None
    for i, _ in enumerate(profile.eligibility):
        if values.get(f"eligible_{i}") != "yes":
            errors[f"eligible_{i}"] = t.gettext("Please confirm this.")
    for question in profile.questions:
        if question.kind == "multi_choice":
            chosen = values.get(f"q_multi_{question.id}", [])
            if question.required and not chosen:
                errors[f"q_multi_{question.id}"] = choose
            elif len(set(chosen)) != len(chosen) or any(c not in question.options for c in chosen):
                errors[f"q_multi_{question.id}"] = unknown_choice
            continue
        answer = values.get(f"q_{question.id}", "")
        if f"q_{question.id}" in errors:
            continue
        if question.required and not answer:
            errors[f"q_{question.id}"] = required if question.kind == "text" else choose
        elif answer and question.kind == "choice" and answer not in question.options:
            errors[f"q_{question.id}"] = unknown_choice
        elif answer and question.kind == "scale":
            allowed = {str(n) for n in range(question.scale_min, question.scale_max + 1)}
            if answer not in allowed:
                errors[f"q_{question.id}"] = unknown_choice
        elif (
            answer
            and question.kind == "number"
            # ASCII only: "²".isdigit() is true, and int() refuses it.
            and not (answer.isascii() and answer.isdigit() and int(answer) <= MAX_NUMBER)
        ):
            errors[f"q_{question.id}"] = t.gettext("Please write a whole number, such as 12.")
        elif answer and question.kind == "yes_no" and answer not in ("yes", "no"):
            errors[f"q_{question.id}"] = unknown_choice
    return errors
