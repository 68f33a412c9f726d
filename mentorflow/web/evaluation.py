"""The closing evaluation page participants reach from the survey email.

The answers go straight into the database (one row per person, made unique
there), not through the program workflow: they are personal data that a purge
must be able to remove for good, and nothing of them belongs in Temporal's
history. The workflow decides when the survey opens and closes and records
the close, which this page reads.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from starlette.datastructures import FormData

from mentorflow.applications import typed_text_problem
from mentorflow.definition import ProgramDefinition, Question
from mentorflow.i18n import Texts
from mentorflow.limits import ANSWER_LIMIT
from mentorflow.links import LinkSigner, Purpose
from mentorflow.models import program_dates
from mentorflow.store import Store
from mentorflow.store.tables import Application
from mentorflow.web import notices
from mentorflow.web.links import LinkRefused, OpenedLink, link_for
from mentorflow.web.pages import render_notice, templates, texts_of, when

EVALUATION_CLOSED = "evaluation-closed"  # the program event the workflow records at the close

EvaluationLink = Annotated[OpenedLink, Depends(link_for(Purpose.EVALUATION))]


def read_answers(
    definition: ProgramDefinition, form: FormData
) -> tuple[dict[str, Any], dict[str, str], dict[str, Any]]:
    """(answers, problems by question id, the values as given, to show again)."""
    language = definition.language.value
    t = texts_of(definition)
    answers: dict[str, Any] = {}
    problems: dict[str, str] = {}
    given: dict[str, Any] = {}
    for q in definition.evaluation.questions:
        if q.kind == "multi_choice":
            chosen = [str(v) for v in form.getlist(q.id)]
            given[q.id] = chosen
            if len(set(chosen)) != len(chosen) or any(c not in q.options for c in chosen):
                problems[q.id] = t.gettext("Please choose one.")
            elif chosen:
                answers[q.id] = chosen
        else:
            value = str(form.get(q.id, "")).strip()
            given[q.id] = value
            # Refused, not cut: a cut answer would be recorded as if it were whole.
            typed = typed_text_problem(language, value, ANSWER_LIMIT, multiline=q.kind == "text")
            if typed is not None:
                problems[q.id] = typed
            elif value:
                problem, answer = _checked(q, value, t)
                if problem:
                    problems[q.id] = problem
                else:
                    answers[q.id] = answer
        if q.required and q.id not in answers and q.id not in problems:
            problems[q.id] = (
                t.gettext("Please fill this in.")
                if q.kind in ("text", "number")
                else t.gettext("Please choose one.")
            )
    return answers, problems, given


def _checked(q: Question, value: str, t: Texts) -> tuple[str | None, Any]:
    if q.kind == "scale":
        digits = value.removeprefix("-")
        # ASCII only: "²".isdigit() is true, and int() refuses it.
        if not (digits.isascii() and digits.isdigit() and len(digits) <= 4) or not (
            q.scale_min <= int(value) <= q.scale_max
        ):
            problem = t.gettext(
                "Please choose a value from %(low)s to %(high)s.", low=q.scale_min, high=q.scale_max
            )
            return problem, None
        return None, int(value)
    if q.kind == "number":
        try:
            given = float(_decimal_point(value, t.language))
        except ValueError:
            return t.gettext("Please give a number."), None
        # "inf" and "nan" are floats to Python, but not numbers to JSON or PostgreSQL.
        if not math.isfinite(given):
            return t.gettext("Please give a number."), None
        return None, given
    if q.kind == "yes_no" and value not in ("yes", "no"):
        return t.gettext("Please choose one."), None
    if q.kind == "choice" and value not in q.options:
        return t.gettext("Please choose one."), None
    return None, value


def _decimal_point(value: str, language: str) -> str:
    """A number as Swedish writes it ("3,5", "1 500") in Python's way ("3.5", "1500")."""
    if language != "sv":
        return value
    value = "".join(value.split())  # spaces out, the no-break space too
    return value.replace(",", ".") if value.count(",") == 1 and "." not in value else value


def evaluation_router(store: Store, signer: LinkSigner) -> APIRouter:
    router = APIRouter()

    async def person_of(request: Request, checked: OpenedLink) -> Application:
        """The person a checked link was sent to (or LinkRefused)."""
        link, definition = checked.link, checked.definition
        person = await store.application(link.application_id)
        if person is None:  # purged with the rest of a finished program's personal data
            raise LinkRefused(render_notice(request, definition, notices.EVALUATION_CLOSED, 410))
        if person.program_id != link.program_id or not signer.is_for(link, person.email):
            raise LinkRefused(render_notice(request, definition, notices.NOT_YOURS, 403))
        return person

    def shown(definition: ProgramDefinition) -> Any:
        t = texts_of(definition)

        def show(question: Question, answer: Any) -> str:
            if isinstance(answer, list):
                return ", ".join(answer)
            if question.kind == "yes_no":
                return t.gettext("Yes") if answer == "yes" else t.gettext("No")
            if isinstance(answer, int | float) and not isinstance(answer, bool):
                return t.number(answer)  # "3,5" in Swedish
            return str(answer)

        return show

    def form_page(
        request: Request,
        token: str,
        definition: ProgramDefinition,
        person: Application,
        *,
        title: str,
        intro: str,
        form: bool,
        answers: dict[str, Any] | None = None,
        errors: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
        status: int = 200,
    ) -> HTMLResponse:
        return templates(definition.language.value).TemplateResponse(
            request,
            "evaluation.html",
            {
                "lang": definition.language.value,
                "program": definition,
                "title": title,
                "intro": intro,
                "questions": definition.evaluation.questions,
                "form": form,
                "action": f"/e/{token}",
                "answers": answers,
                "errors": errors or {},
                "values": values or {},
                "shown": shown(definition),
            },
            status_code=status,
        )

    async def answered_page(
        request: Request,
        token: str,
        definition: ProgramDefinition,
        person: Application,
        status: int,
    ) -> HTMLResponse | None:
        response = await store.evaluation_response(definition.id, person.id)
        if response is None:
            return None
        t = texts_of(definition)
        return form_page(
            request,
            token,
            definition,
            person,
            title=t.gettext("You have answered"),
            intro=t.gettext(
                "You answered the closing evaluation %(when)s. Each person answers once;"
                " thank you.",
                when=when(response.submitted_at, definition),
            ),
            form=False,
            answers=response.answers,
            status=status,
        )

    async def open_survey(
        request: Request, token: str, checked: OpenedLink, answered_status: int
    ) -> tuple[ProgramDefinition, Application] | HTMLResponse:
        """The program and the person, if they may still answer; else the page to show."""
        definition, person = checked.definition, await person_of(request, checked)
        done = await answered_page(request, token, definition, person, answered_status)
        if done is not None:
            return done
        if await store.has_event(definition.id, EVALUATION_CLOSED):
            return render_notice(request, definition, notices.EVALUATION_CLOSED, 410)
        return definition, person

    async def intro(definition: ProgramDefinition, person: Application) -> str:
        # The latest closing date the program recorded (at the opening, or a later move).
        closes = next(
            (
                datetime.fromisoformat(e.detail["evaluation_closes"])
                for e in reversed(await store.events(definition.id))
                if "evaluation_closes" in e.detail
            ),
            program_dates(definition).evaluation_closes,
        )
        return texts_of(definition).gettext(
            "Hello %(name)s, tell us how %(program)s went. Answers are summarised without"
            " names. The evaluation closes %(when)s.",
            name=person.name,
            program=definition.name,
            when=when(closes, definition),
        )

    @router.api_route("/e/{token}", methods=["GET", "HEAD"])
    async def evaluation_page(
        request: Request, token: str, checked: EvaluationLink
    ) -> HTMLResponse:
        opened = await open_survey(request, token, checked, 200)
        if isinstance(opened, HTMLResponse):
            return opened
        definition, person = opened
        title = texts_of(definition).gettext("Closing evaluation")
        return form_page(
            request,
            token,
            definition,
            person,
            title=title,
            intro=await intro(definition, person),
            form=True,
        )

    @router.post("/e/{token}")
    async def evaluation_answer(
        request: Request, token: str, checked: EvaluationLink
    ) -> HTMLResponse:
        opened = await open_survey(request, token, checked, 409)
        if isinstance(opened, HTMLResponse):
            return opened
        definition, person = opened
        answers, problems, given = read_answers(definition, await request.form())
        if problems:
            return form_page(
                request,
                token,
                definition,
                person,
                title=texts_of(definition).gettext("Closing evaluation"),
                intro=await intro(definition, person),
                form=True,
                errors=problems,
                values=given,
                status=422,
            )
        now = datetime.now(UTC)
        recorded = await store.record_evaluation_response(
            program_id=definition.id, application_id=person.id, answers=answers, at=now
        )
        if recorded is None:  # a second tab, a double click: the first answer stands
            done = await answered_page(request, token, definition, person, 409)
            assert done is not None
            return done
        return form_page(
            request,
            token,
            definition,
            person,
            title=texts_of(definition).gettext("Thank you for your answers"),
            intro=texts_of(definition).gettext(
                "Your answers were recorded %(when)s.", when=when(now, definition)
            ),
            form=False,
            answers=answers,
        )

    return router
