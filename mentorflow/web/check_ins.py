"""The check-in page participants reach from "Have you met?" (and the mid-point pulse).

As with approvals, a GET only shows the question; the page's button (a POST)
answers, through the pair workflow's ``check_in`` update, whose validator
refuses a reused link, an answer from someone outside the pair, or a pair
that has closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError

from mentorflow.definition import ProgramDefinition
from mentorflow.links import Link, LinkSigner, Purpose
from mentorflow.models import (
    CHECK_IN_ANSWERS,
    PULSE,
    PULSE_ANSWERS,
    CheckInRequest,
    PairStatus,
    pair_workflow_id,
)
from mentorflow.store import Store
from mentorflow.store.tables import Application
from mentorflow.web import notices
from mentorflow.web.links import LinkRefused, OpenedLink, link_for
from mentorflow.web.outage import ensure_up, unless_down
from mentorflow.web.pages import refusal, render_notice, render_page, texts_of, when
from workflows.pair import PairWorkflow

CheckInLink = Annotated[OpenedLink, Depends(link_for(Purpose.CHECK_IN))]


@dataclass(frozen=True)
class Opened:
    """A checked check-in link: which check-in of which pair, and who opened it."""

    link: Link
    definition: ProgramDefinition
    pair_id: str
    number: str  # "1", "2", ... or PULSE
    role: str  # the person's side of the pair: mentor | adept
    person: Application
    partner: Application


def check_in_router(store: Store, temporal: Client, signer: LinkSigner) -> APIRouter:
    router = APIRouter()
    page, notice, t = render_page, render_notice, texts_of

    async def check_in_of(request: Request, checked: OpenedLink) -> Opened:
        """The checked link's check-in and the person who opened it (or LinkRefused)."""
        link, definition = checked.link, checked.definition
        pair_id, _, number = link.application_id.partition("/")
        if not number:
            raise LinkRefused(notice(request, definition, notices.INVALID, 400))
        pair = await store.pair(pair_id)
        if pair is None:  # a signed link to a pair that is gone: purged after the program
            raise LinkRefused(notice(request, definition, notices.PAIR_CLOSED, 410))
        mentor = await store.application(pair.mentor_application_id)
        adept = await store.application(pair.adept_application_id)
        assert mentor is not None and adept is not None
        if signer.is_for(link, mentor.email):
            return Opened(link, definition, pair_id, number, "mentor", mentor, adept)
        if signer.is_for(link, adept.email):
            return Opened(link, definition, pair_id, number, "adept", adept, mentor)
        raise LinkRefused(notice(request, definition, notices.NOT_YOURS, 403))

    def answers_of(number: str) -> tuple[str, ...]:
        return PULSE_ANSWERS if number == PULSE else CHECK_IN_ANSWERS

    def label(definition: ProgramDefinition, answer: str) -> str:
        """An answer's words on its button ("Yes, we have met"); the pulse's are its numbers."""
        said = t(definition)
        words = {
            "yes": said.gettext("Yes, we have met"),
            "not_yet": said.gettext("Not yet"),
            "need_help": said.gettext("We need help"),
        }
        return words.get(answer, answer)

    @router.api_route("/k/{token}", methods=["GET", "HEAD"])
    async def check_in_page(
        request: Request, token: str, checked: CheckInLink, answer: str | None = None
    ) -> HTMLResponse:
        opened = await check_in_of(request, checked)
        definition, number = opened.definition, opened.number
        names = {"person": opened.person.name, "partner": opened.partner.name}
        said = t(definition)
        # The question, always: on its own, before the choice made in the email, or
        # above the answer already given.
        if number == PULSE:
            question = said.gettext(
                "%(person)s, how valuable are your meetings with %(partner)s so far, from 1"
                " (not at all) to 5 (very)?",
                **names,
            )
            title = said.gettext("Halfway: how is it going?")
        else:
            question = said.gettext(
                "%(person)s, have you and %(partner)s met since the last check-in?", **names
            )
            title = said.gettext("Have you met?")
        given = next(
            (
                c
                for c in await store.check_ins(opened.pair_id)
                if c.number == number and c.role == opened.role
            ),
            None,
        )
        if given is not None:  # answered: the answer as recorded, and no buttons
            heading = said.gettext(
                "You answered %(when)s:", when=when(given.answered_at, definition)
            )
            details = [(heading, [label(definition, given.answer)])]
            return page(request, definition, title, question, details=details)
        choices = answers_of(number)
        if answer in choices:
            # The email's button chose already; the page asks only to confirm it.
            question += " " + said.gettext("Confirm your answer:")
            buttons = [(answer, label(definition, answer))]
        else:
            buttons = [(choice, label(definition, choice)) for choice in choices]
        form = {"action": f"/k/{token}", "buttons": buttons}
        return page(request, definition, title, question, form=form)

    @router.post("/k/{token}")
    async def check_in_answer(request: Request, checked: CheckInLink) -> HTMLResponse:
        opened = await check_in_of(request, checked)
        link, definition, number = opened.link, opened.definition, opened.number
        choice = str((await request.form()).get("choice", ""))
        if choice not in answers_of(number):
            return notice(request, definition, notices.INVALID, 400)
        pair_id = link.application_id.partition("/")[0]
        await ensure_up(temporal)
        handle: WorkflowHandle[PairWorkflow, PairStatus] = temporal.get_workflow_handle_for(
            PairWorkflow.run, pair_workflow_id(link.program_id, pair_id)
        )
        try:
            await handle.execute_update(
                PairWorkflow.check_in,
                CheckInRequest(number=number, answer=choice, fingerprint=link.person),
            )
        except WorkflowUpdateFailedError as error:
            kind, detail = refusal(error)
            if kind == "already_answered":
                return notice(
                    request,
                    definition,
                    notices.CHECK_IN_ALREADY,
                    409,
                    answer=label(definition, detail),
                )
            if kind == "not_your_link":
                return notice(request, definition, notices.NOT_YOURS, 403)
            if kind == "closed":
                return notice(request, definition, notices.PAIR_CLOSED, 410)
            return notice(request, definition, notices.INVALID, 400)
        except RPCError as error:  # the pair's workflow has finished: the program ended
            await unless_down(temporal, error)
            return notice(request, definition, notices.PAIR_CLOSED, 410)
        said = t(definition)
        thanks = {
            "yes": said.gettext("Good to hear. Keep the rhythm going!"),
            "not_yet": said.gettext("Thank you. Perhaps book a time now, while you think of it."),
            "need_help": said.gettext(
                "The program's HR contacts have been told and will be in touch with you."
            ),
        }
        body = said.gettext("Thank you for your answer.") if number == PULSE else thanks[choice]
        return page(request, definition, said.gettext("Thank you"), body)

    return router
