"""The pages participants and managers reach from their emails.

Links are safe to fetch: email scanners open every link, so a GET (or HEAD)
only ever shows a page; only the page's button (a POST) acts, through a
Workflow Update whose validator decides whether the answer may be taken.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime, timedelta
from typing import Annotated, Any, NamedTuple

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from mentorflow.applications import check_application, submit_application
from mentorflow.definition import ProgramDefinition
from mentorflow.links import Link, LinkSigner, Purpose
from mentorflow.models import (
    ApplicationResult,
    ApplicationStatus,
    DecisionRequest,
    ProgramPhase,
    ProgramResult,
    WithdrawalRequest,
    application_workflow_id,
    program_workflow_id,
)
from mentorflow.store import Store
from mentorflow.store.tables import Application, Program
from mentorflow.temporal import execute_update_when_admitted, is_busy
from mentorflow.web import notices
from mentorflow.web.links import LinkRefused, OpenedLink, link_for
from mentorflow.web.notices import Notice
from mentorflow.web.outage import ensure_up, unless_down
from mentorflow.web.pages import (
    definition_of,
    load_definition_of,
    load_program_row,
    refusal,
    render_page,
    templates,
    texts_of,
    when,
)
from mentorflow.web.pages import render_notice as render_notice  # tests import it from here
from workflows.application import ApplicationWorkflow
from workflows.program import ProgramWorkflow

# The links' pages: each checks its token with the one link check (mentorflow.web.links).
ApprovalLink = Annotated[OpenedLink, Depends(link_for(Purpose.APPROVAL))]
WithdrawalLink = Annotated[OpenedLink, Depends(link_for(Purpose.WITHDRAWAL))]

log = logging.getLogger("mentorflow.web")

# How long a page waits for an application workflow's state before the busy page.
STATUS_SECONDS = 15.0


class Window(NamedTuple):
    """The application window as the program knows it: its phase, deadline and opening."""

    phase: ProgramPhase | None
    deadline: datetime | None
    opens: datetime | None = None


def participant_router(store: Store, temporal: Client, signer: LinkSigner) -> APIRouter:
    router = APIRouter()

    async def load_program(program_id: str) -> ProgramDefinition | None:
        return await load_definition_of(store, program_id)

    page, notice, t = render_page, render_notice, texts_of

    # --- Applying ---------------------------------------------------------------------------

    async def window(program_id: str) -> Window:
        """The program's phase, current deadline and opening, as the workflow knows them.

        While a workflow task is in flight the server holds only one query per
        workflow and refuses the rest ("consistent query buffer is full"); then
        the database's copy answers instead.
        """
        handle: WorkflowHandle[ProgramWorkflow, ProgramResult] = temporal.get_workflow_handle_for(
            ProgramWorkflow.run, program_workflow_id(program_id)
        )
        try:
            status = await handle.query(ProgramWorkflow.status)
        except RPCError as error:
            if error.status is RPCStatusCode.RESOURCE_EXHAUSTED:
                return await recorded_window(program_id)
            # Not "closed" while Temporal is down: the form is open, it cannot be reached.
            await unless_down(temporal, error)
            return Window(None, None)
        return Window(status.phase, status.dates.deadline, status.dates.opens)

    async def recorded_window(program_id: str) -> Window:
        """The phase and deadline the workflow last recorded in the database.

        It can trail the workflow by a moment, so it only decides what to show;
        whether an application is still taken is the workflow's to say.
        """
        return window_of(await store.program(program_id))

    def window_of(program: Program | None) -> Window:
        """The window as recorded in the program's row (see :func:`recorded_window`)."""
        if program is None:
            return Window(None, None)
        phase = ProgramPhase(program.phase)
        # Only in the window is the recorded next deadline the application deadline.
        return Window(
            phase, program.next_deadline if phase is ProgramPhase.APPLICATION_WINDOW else None
        )

    @router.api_route("/programs/{program_id}/apply", methods=["GET", "HEAD"])
    async def apply_form(request: Request, program_id: str, profile: str | None = None) -> Any:
        definition = await load_program(program_id)
        if definition is None:
            return notice(request, None, notices.NOT_FOUND, 404)
        phase, deadline, opens = await window(program_id)
        if phase is not ProgramPhase.APPLICATION_WINDOW:
            return closed_page(request, definition, phase, deadline, opens)
        chosen = definition.profile(profile) if profile else None
        return apply_page(request, definition, deadline, chosen.id if chosen else None, {}, {})

    def closed_page(
        request: Request,
        definition: ProgramDefinition,
        phase: ProgramPhase | None,
        deadline: datetime | None,
        opens: datetime | None = None,
    ) -> HTMLResponse:
        if phase is ProgramPhase.CANCELLED:
            return notice(request, definition, notices.PROGRAM_CLOSED, 410)
        closes_at = when(deadline or definition.application.deadline, definition)
        if phase is ProgramPhase.SCHEDULED:
            # Not open yet: when it opens, and its deadline (still to come, not "was").
            opens_at = when(opens or definition.application.opens, definition)
            return notice(
                request, definition, notices.NOT_OPEN, 410, opens=opens_at, when=closes_at
            )
        return notice(request, definition, notices.CLOSED, 410, when=closes_at)

    def apply_page(
        request: Request,
        definition: ProgramDefinition,
        deadline: datetime | None,
        profile_id: str | None,
        values: dict[str, Any],
        errors: dict[str, str],
        status: int = 200,
    ) -> HTMLResponse:
        language = definition.language.value
        return templates(language).TemplateResponse(
            request,
            "apply.html",
            {
                "lang": language,
                "program": definition,
                "deadline": when(deadline or definition.application.deadline, definition),
                "profile": definition.profile(profile_id) if profile_id else None,
                "values": values,
                "errors": errors,
            },
            status_code=status,
        )

    @router.post("/programs/{program_id}/apply")
    async def apply_submit(request: Request, program_id: str, profile: str) -> Any:
        # One read of the program's row gives its definition, its window and (below)
        # what the submission checks: each read is a round trip to the database.
        program = await load_program_row(store, program_id)
        definition = definition_of(program)
        chosen = definition.profile(profile) if definition else None
        if program is None or definition is None or chosen is None:
            return notice(request, definition, notices.NOT_FOUND, 404)
        # Not a query: many applicants submit at once, and each query would wait its
        # turn at the program's workflow. The database's record is what decides.
        phase, deadline, _ = window_of(program)
        if phase not in (ProgramPhase.SCHEDULED, ProgramPhase.APPLICATION_WINDOW):
            return closed_page(request, definition, phase, deadline)
        form = await request.form()
        values: dict[str, Any] = {
            key: [str(v) for v in form.getlist(key)]
            if key.startswith("q_multi_")
            else str(form.get(key, "")).strip()
            for key in form.keys()  # noqa: SIM118 - a multi-dict
        }
        errors = check_application(definition, chosen.id, values)
        if errors:
            return apply_page(request, definition, deadline, chosen.id, values, errors, 422)
        await ensure_up(temporal)
        outcome = await submit_application(
            store, temporal, definition, chosen.id, values, channel="web_form", program=program
        )
        if outcome.refusal == "busy":
            await ensure_up(temporal)  # gone down meanwhile: say so, not "many apply"
            return busy_page(request, definition, notices.BUSY_APPLY)
        if outcome.refusal == "closed":
            return closed_page(request, definition, *await window(program_id))
        if outcome.refusal == "already_answered":
            return notice(
                request,
                definition,
                notices.ALREADY,
                409,
                outcome=state_word(definition, outcome.detail),
            )
        saved, created = outcome.application, outcome.created
        assert saved is not None
        said = t(definition)
        body = (
            said.gettext(
                "We have sent a confirmation to %(email)s and asked %(manager)s to approve it.",
                email=saved.email,
                manager=saved.manager_name,
            )
            if created
            else said.gettext(
                "Your application was updated. A confirmation went to %(email)s.",
                email=saved.email,
            )
        )
        return page(request, definition, said.gettext("Thank you for your application"), body)

    def state_word(definition: ProgramDefinition | None, state: str) -> str:
        """An application's state in words: withdrawn, approved, declined."""
        said = t(definition)
        words = {
            "withdrawn": said.gettext("withdrawn by the applicant"),
            "approved": said.gettext("approved"),
            "declined": said.gettext("declined"),
        }
        return words.get(state, state)

    # --- Links ------------------------------------------------------------------------------

    async def application_of(request: Request, opened: OpenedLink) -> Application:
        """The application a checked link answers (or LinkRefused: it is not here)."""
        application = await store.application(opened.link.application_id)
        if application is None:
            raise LinkRefused(notice(request, opened.definition, notices.INVALID, 400))
        return application

    async def application_status(
        request: Request, definition: ProgramDefinition, link: Link
    ) -> ApplicationStatus:
        """The application's state as its workflow says it; a workflow too busy to answer
        within STATUS_SECONDS gives the busy page (LinkRefused), never a page held longer."""
        handle: WorkflowHandle[ApplicationWorkflow, ApplicationResult] = (
            temporal.get_workflow_handle_for(
                ApplicationWorkflow.run,
                application_workflow_id(link.program_id, link.application_id),
            )
        )
        try:
            return await handle.query(
                ApplicationWorkflow.status, rpc_timeout=timedelta(seconds=STATUS_SECONDS)
            )
        except RPCError as error:
            await unless_down(temporal, error)  # Temporal down: the outage page says so
            if not is_busy(error):
                raise
            raise LinkRefused(busy_page(request, definition, notices.BUSY_ANSWER)) from error

    async def settled_page(
        request: Request, definition: ProgramDefinition, status: ApplicationStatus
    ) -> HTMLResponse | None:
        """The page for an application that can no longer be answered, if it is one."""
        if status.program_closed:
            return notice(request, definition, notices.PROGRAM_CLOSED, 410)
        if status.state in ("approved", "declined", "withdrawn"):
            return notice(
                request,
                definition,
                notices.ALREADY,
                409,
                outcome=state_word(definition, status.state),
            )
        return None

    def busy_page(request: Request, definition: ProgramDefinition, said: Notice) -> HTMLResponse:
        """The workflow could not be reached in time (overloaded): nothing lost, try again."""
        # For ops: the only sign in the logs that people are being asked to come back.
        log.warning(
            "program %s: Temporal did not take a click in time; answered 503 (Retry-After 60)",
            definition.id,
        )
        response = notice(request, definition, said, 503)
        response.headers["Retry-After"] = "60"
        return response

    async def finished_page(
        request: Request, definition: ProgramDefinition, link: Link
    ) -> HTMLResponse:
        """The application's workflow has finished: it was answered, or the program closed."""
        status = await application_status(request, definition, link)
        settled = await settled_page(request, definition, status)
        if settled is not None:
            return settled
        return notice(request, definition, notices.PROGRAM_CLOSED, 410)

    @router.api_route("/a/{token}", methods=["GET", "HEAD"])
    async def approval_page(request: Request, token: str, opened: ApprovalLink) -> HTMLResponse:
        link, definition = opened.link, opened.definition
        application = await application_of(request, opened)
        status = await application_status(request, definition, link)
        if (settled := await settled_page(request, definition, status)) is not None:
            return settled
        approver = _approver_name(signer, link, definition, application)
        if approver is None:
            return notice(request, definition, notices.NOT_YOURS, 403)
        profile = definition.profile(application.profile_id)
        said = t(definition)
        intro = said.gettext(
            "You answer as %(approver)s for %(applicant)s's application to %(program)s"
            " (as %(profile)s).",
            approver=approver,
            applicant=application.name,
            program=definition.name,
            profile=profile.title if profile else "",
        )
        form = {
            "action": f"/a/{token}",
            "buttons": [
                ("approve", said.gettext("Approve")),
                ("decline", said.gettext("Decline")),
            ],
        }
        title = said.gettext("Approve or decline an application")
        return page(request, definition, title, intro, form=form)

    @router.post("/a/{token}")
    async def approval_answer(request: Request, opened: ApprovalLink) -> HTMLResponse:
        link, definition = opened.link, opened.definition
        application = await application_of(request, opened)
        choice = str((await request.form()).get("choice", ""))
        if choice not in ("approve", "decline"):
            return notice(request, definition, notices.INVALID, 400)
        await ensure_up(temporal)
        channel = "email_link" if signer.is_for(link, application.manager_email) else "hr_link"
        handle: WorkflowHandle[ApplicationWorkflow, ApplicationResult] = (
            temporal.get_workflow_handle_for(
                ApplicationWorkflow.run,
                application_workflow_id(link.program_id, link.application_id),
            )
        )
        try:
            await execute_update_when_admitted(
                handle,
                ApplicationWorkflow.decide,
                DecisionRequest(
                    approve=choice == "approve", fingerprint=link.person, channel=channel
                ),
            )
        except WorkflowUpdateFailedError as error:
            return await refused_page(request, definition, link, error)
        except RPCError as error:
            await unless_down(temporal, error)
            if is_busy(error):
                return busy_page(request, definition, notices.BUSY_ANSWER)
            return await finished_page(request, definition, link)
        said = t(definition)
        body = (
            said.gettext("You approved %(applicant)s's application.", applicant=application.name)
            if choice == "approve"
            else said.gettext(
                "You declined %(applicant)s's application.", applicant=application.name
            )
        )
        return page(request, definition, said.gettext("Thank you"), body)

    async def refused_page(
        request: Request,
        definition: ProgramDefinition,
        link: Link,
        error: WorkflowUpdateFailedError,
    ) -> HTMLResponse:
        kind, detail = refusal(error)
        if kind == "not_your_link":
            return notice(request, definition, notices.NOT_YOURS, 403)
        with contextlib.suppress(LinkRefused):  # busy: the refusal's own word will do
            status = await application_status(request, definition, link)
            settled = await settled_page(request, definition, status)
            if settled is not None:
                return settled
        outcome = state_word(definition, detail)
        return notice(request, definition, notices.ALREADY, 409, outcome=outcome)

    @router.api_route("/w/{token}", methods=["GET", "HEAD"])
    async def withdrawal_page(request: Request, token: str, opened: WithdrawalLink) -> HTMLResponse:
        link, definition = opened.link, opened.definition
        application = await application_of(request, opened)
        status = await application_status(request, definition, link)
        if status.program_closed or status.state in ("declined", "withdrawn"):
            settled = await settled_page(request, definition, status)
            assert settled is not None
            return settled
        if not signer.is_for(link, application.email):
            return notice(request, definition, notices.NOT_YOURS, 403)
        said = t(definition)
        intro = said.gettext(
            "%(applicant)s, do you want to withdraw your application to %(program)s?",
            applicant=application.name,
            program=definition.name,
        )
        form = {
            "action": f"/w/{token}",
            "buttons": [("withdraw", said.gettext("Withdraw my application"))],
        }
        title = said.gettext("Withdraw your application")
        return page(request, definition, title, intro, form=form)

    @router.post("/w/{token}")
    async def withdrawal_answer(request: Request, opened: WithdrawalLink) -> HTMLResponse:
        link, definition = opened.link, opened.definition
        await application_of(request, opened)  # still here (else: not valid)
        await ensure_up(temporal)
        handle: WorkflowHandle[ApplicationWorkflow, ApplicationResult] = (
            temporal.get_workflow_handle_for(
                ApplicationWorkflow.run,
                application_workflow_id(link.program_id, link.application_id),
            )
        )
        try:
            await execute_update_when_admitted(
                handle, ApplicationWorkflow.withdraw, WithdrawalRequest(fingerprint=link.person)
            )
        except WorkflowUpdateFailedError as error:
            return await refused_page(request, definition, link, error)
        except RPCError as error:
            await unless_down(temporal, error)
            if is_busy(error):
                return busy_page(request, definition, notices.BUSY_ANSWER)
            return await finished_page(request, definition, link)
        said = t(definition)
        return page(
            request,
            definition,
            said.gettext("Your application is withdrawn"),
            said.gettext(
                "You have withdrawn your application to %(program)s.", program=definition.name
            ),
        )

    return router


def _approver_name(
    signer: LinkSigner, link: Link, definition: ProgramDefinition, application: Any
) -> str | None:
    """Who the link was sent to: the manager, or an HR contact after escalation."""
    if signer.is_for(link, application.manager_email):
        return str(application.manager_name or application.manager_email)
    organisation = next(
        (o for o in definition.organisations if o.id == application.organisation_id), None
    )
    for contact in organisation.hr_contacts if organisation else []:
        if signer.is_for(link, contact.email):
            return f"{contact.name} (HR)"
    return None
