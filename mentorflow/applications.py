"""Taking an application: checking it, saving it, and handing it to its program.

The web form and the CSV import both go through here, so an application is
the same thing whichever way it came.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from email_validator import EmailNotValidError, validate_email
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError

from mentorflow import limits
from mentorflow.definition import ProgramDefinition, Question
from mentorflow.models import ApplicationSubmission, program_workflow_id
from mentorflow.store import Store
from mentorflow.store.tables import Application
from mentorflow.temporal import execute_update_when_admitted, is_busy
from mentorflow.web.texts import TEXTS
from workflows.program import ProgramWorkflow

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
) -> SubmitOutcome:
    """Save a checked application (once per email) and hand it to the program's workflow."""
    profile = definition.profile(profile_id)
    assert profile is not None
    saved, created = await store.save_application(
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
    handle = temporal.get_workflow_handle_for(
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
        message = getattr(error.cause, "message", str(error.cause))
        kind, _, detail = message.partition(":")
        if kind.strip() == "closed" and created:
            # It never reached the program: keep it out of every count.
            await store.set_application_status(saved.id, "late", datetime.now(UTC))
        return SubmitOutcome(saved, created, kind.strip(), detail.strip())
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
    text = TEXTS[language]
    if len(value) > limit:
        return text["too_long"].format(
            limit=count_in(language, limit), length=count_in(language, len(value))
        )
    bad = limits.unsafe_character(value, multiline=multiline)
    if bad is not None:
        return text["bad_characters"].format(character=bad)
    return None


def count_in(language: str, number: int) -> str:
    """A count as the language writes it: 2,000 in English, 2 000 in Swedish."""
    written = f"{number:,}"
    return written.replace(",", "\u00a0") if language == "sv" else written


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
    text = TEXTS[language]
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
            errors[field] = text["required"] if field != "organisation" else text["choose"]
    for field in ("email", "manager_email"):
        if values.get(field) and field not in errors:
            try:
                validate_email(values[field], check_deliverability=False)
            except EmailNotValidError:
                errors[field] = text["bad_email"]
    if (
        "email" not in errors
        and "manager_email" not in errors
        and values.get("email", "").lower() == values.get("manager_email", "").lower()
    ):
        errors["manager_email"] = text["manager_is_you"]
    if (
        values.get("organisation")
        and "organisation" not in errors
        and values["organisation"] not in {o.id for o in definition.organisations}
    ):
        errors["organisation"] = text["unknown_choice"]
    profile = definition.profile(profile_id)
    assert profile is not None
    for i, _ in enumerate(profile.eligibility):
        if values.get(f"eligible_{i}") != "yes":
            errors[f"eligible_{i}"] = text["confirm_needed"]
    for question in profile.questions:
        if question.kind == "multi_choice":
            chosen = values.get(f"q_multi_{question.id}", [])
            if question.required and not chosen:
                errors[f"q_multi_{question.id}"] = text["choose"]
            elif len(set(chosen)) != len(chosen) or any(c not in question.options for c in chosen):
                errors[f"q_multi_{question.id}"] = text["unknown_choice"]
            continue
        answer = values.get(f"q_{question.id}", "")
        if f"q_{question.id}" in errors:
            continue
        if question.required and not answer:
            errors[f"q_{question.id}"] = (
                text["required"] if question.kind == "text" else text["choose"]
            )
        elif answer and question.kind == "choice" and answer not in question.options:
            errors[f"q_{question.id}"] = text["unknown_choice"]
        elif answer and question.kind == "scale":
            allowed = {str(n) for n in range(question.scale_min, question.scale_max + 1)}
            if answer not in allowed:
                errors[f"q_{question.id}"] = text["unknown_choice"]
        elif (
            answer
            and question.kind == "number"
            # ASCII only: "²".isdigit() is true, and int() refuses it.
            and not (answer.isascii() and answer.isdigit() and int(answer) <= MAX_NUMBER)
        ):
            errors[f"q_{question.id}"] = text["whole_number"]
        elif answer and question.kind == "yes_no" and answer not in ("yes", "no"):
            errors[f"q_{question.id}"] = text["unknown_choice"]
    return errors
