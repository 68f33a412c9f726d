"""The pages HR reaches from its emails: the capacity decision and the review of pairs.

Like the participants' pages, a GET (or HEAD) only shows; every change is a
POST that goes through a Workflow Update, whose validator refuses, with the
reason, what the program cannot take (above a cap, a stale proposal, a lock
that contradicts a forbid). The refusal is shown on the same page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError

from mentorflow import people
from mentorflow.definition import Contact, ProgramDefinition
from mentorflow.links import Link, LinkError, LinkSigner, Purpose
from mentorflow.models import (
    CapacityDecision,
    MatchReviewRequest,
    PairRef,
    ProgramPhase,
    ProgramResult,
    ProgramStatus,
    Selection,
    program_workflow_id,
)
from mentorflow.store import Store
from mentorflow.store.tables import Application
from mentorflow.web.numbers import count, number
from mentorflow.web.outage import ensure_up, unless_down
from mentorflow.web.participants import (
    TEMPLATES,
    load_definition_of,
    refusal,
    render_notice,
    render_page,
    text,
    when,
)
from mentorflow.web.texts import TEXTS, engine_text
from workflows.program import ProgramWorkflow


@dataclass(frozen=True)
class Opened:
    """A checked HR link: the program, who opened it, and the program's current status."""

    link: Link
    definition: ProgramDefinition
    contact: Contact
    status: ProgramStatus


def hr_router(store: Store, temporal: Client, signer: LinkSigner) -> APIRouter:
    router = APIRouter()

    def handle_of(program_id: str) -> WorkflowHandle[ProgramWorkflow, ProgramResult]:
        return temporal.get_workflow_handle_for(
            ProgramWorkflow.run, program_workflow_id(program_id)
        )

    async def open_link(request: Request, token: str, purpose: Purpose) -> Opened | HTMLResponse:
        """Check the token and who it was sent to; return what it opens, or the page to show."""
        try:
            link = signer.check(token, purpose)
        except LinkError as error:
            definition = (
                await load_definition_of(store, error.link.program_id) if error.link else None
            )
            if error.reason == "expired" and error.link is not None:
                return render_notice(
                    request,
                    definition,
                    "hr_expired",
                    410,
                    when=when(error.link.expires_at, definition) if definition else "",
                )
            return render_notice(request, definition, "invalid", 400)
        definition = await load_definition_of(store, link.program_id)
        if definition is None:
            return render_notice(request, None, "invalid", 400)
        if purpose is Purpose.CAPACITY:
            organisation = definition.organisation(link.application_id)
            allowed = organisation.hr_contacts if organisation else []
        else:
            allowed = definition.coordinators() if link.application_id == definition.id else []
        contact = next((c for c in allowed if signer.is_for(link, c.email)), None)
        if contact is None:
            return render_notice(request, definition, "hr_not_yours", 403)
        try:
            status = await handle_of(definition.id).query(ProgramWorkflow.status)
        except RPCError as error:
            await unless_down(temporal, error)
            return render_notice(request, definition, "program_closed", 410)
        if status.phase is ProgramPhase.CANCELLED:
            return render_notice(request, definition, "program_closed", 410)
        return Opened(link, definition, contact, status)

    # --- Capacity decision ------------------------------------------------------------------

    async def capacity_page(
        request: Request,
        opened: Opened,
        *,
        chosen: dict[str, str] | None = None,
        error: str | None = None,
        status: int = 200,
    ) -> HTMLResponse:
        d = opened.definition
        organisation = d.organisation(opened.link.application_id)
        assert organisation is not None
        rows = [
            row
            for row in await store.applications(d.id)
            if row.organisation_id == organisation.id and row.status == "approved"
        ]
        groups = []
        for profile in d.profiles:
            applicants = [r for r in rows if r.profile_id == profile.id]
            cap = d.cap(organisation.id, profile.id)
            defaults = _default_selections(applicants, cap)
            groups.append(
                {
                    "profile": profile,
                    "cap": cap,
                    "applicants": [
                        {
                            "row": r,
                            "answers": _answers_text(d, r),
                            "selection": (chosen or {}).get(r.id) or r.selection or defaults[r.id],
                        }
                        for r in applicants
                    ],
                }
            )
        language = d.language.value
        deadline = when(opened.status.next_deadline, d) if opened.status.next_deadline else ""
        return TEMPLATES.TemplateResponse(
            request,
            "capacity.html",
            {
                "lang": language,
                "t": TEXTS[language],
                "program": d,
                "organisation": organisation,
                "contact": opened.contact,
                "groups": groups,
                "decided": opened.status.decisions.get(organisation.id),
                "deadline": deadline,
                "if_undecided": _if_undecided(d, deadline),
                "error": error,
                "action": request.url.path,
                **_numbers(language),
            },
            status_code=status,
        )

    @router.api_route("/c/{token}", methods=["GET", "HEAD"])
    async def capacity_form(request: Request, token: str) -> Response:
        opened = await open_link(request, token, Purpose.CAPACITY)
        if isinstance(opened, HTMLResponse):
            return opened
        if opened.status.phase is not ProgramPhase.AWAITING_HR_DECISION:
            return render_notice(request, opened.definition, "capacity_closed", 410)
        return await capacity_page(request, opened)

    @router.post("/c/{token}")
    async def capacity_submit(request: Request, token: str) -> Response:
        opened = await open_link(request, token, Purpose.CAPACITY)
        if isinstance(opened, HTMLResponse):
            return opened
        d = opened.definition
        form = await request.form()
        chosen = {
            key.removeprefix("sel_"): str(value)
            for key, value in form.items()
            if key.startswith("sel_")
        }
        try:
            selections = {k: Selection(v) for k, v in chosen.items()}
        except ValueError:
            return render_notice(request, d, "invalid", 400)
        await ensure_up(temporal)
        try:
            result = await handle_of(d.id).execute_update(
                ProgramWorkflow.decide_capacity,
                CapacityDecision(
                    organisation_id=opened.link.application_id,
                    selections=selections,
                    decided_by=people.reference_of(d, str(opened.contact.email)),
                    channel="hr_link",
                ),
            )
        except WorkflowUpdateFailedError as failure:
            kind, detail = refusal(failure)
            if kind == "closed":
                return render_notice(request, d, "capacity_closed", 410)
            message = _refusal_text(d, kind, detail)
            return await capacity_page(request, opened, chosen=chosen, error=message, status=422)
        language = d.language.value
        body = text(
            d,
            "capacity_thanks_body",
            accepted=number(result.accepted, language),
            waitlisted=number(result.waitlisted, language),
            declined=number(result.declined, language),
        )
        # What was recorded, person by person.
        rows = {r.id: r for r in await store.applications(d.id)}
        recorded = [
            f"{rows[key].name} ({_profile_title(d, rows[key])}): "
            + text(d, f"selection_{selection.value}")
            for selection in (Selection.ACCEPTED, Selection.WAITLISTED, Selection.DECLINED)
            for key, chosen in selections.items()
            if chosen is selection and key in rows
        ]
        details = [(text(d, "capacity_recorded"), recorded)] if recorded else []
        return render_page(request, d, text(d, "capacity_thanks_title"), body, details=details)

    # --- Review of the pairs ----------------------------------------------------------------

    async def review_page(
        request: Request, opened: Opened, *, error: str | None = None, status: int = 200
    ) -> HTMLResponse:
        d = opened.definition
        summary = opened.status.matching
        stored = await store.proposal(d.id, summary.proposal if summary else None)
        rows = {r.id: r for r in await store.applications(d.id)}
        pairs, report = ([], {}) if stored is None else (stored[1], stored[0].report)
        language = d.language.value
        confirmed = opened.status.confirmed_by is not None
        forbids = [
            (rows.get(f["mentor_id"]), rows.get(f["adept_id"])) for f in report.get("forbids", [])
        ]
        engine_options = list(report.get("options", []))
        options: list[str] = []
        elsewhere = ""
        if engine_options and not confirmed:
            # Only what this page can do; the rest is said to be decided elsewhere.
            if forbids and any("forbid" in o for o in engine_options):
                options.append(text(d, "option_allow"))
            if any(p.locked for p in pairs):
                options.append(text(d, "option_unlock"))
            if len(pairs) > 1:
                options.append(text(d, "option_swap"))
            elsewhere = text(d, "options_elsewhere")
        return TEMPLATES.TemplateResponse(
            request,
            "review.html",
            {
                "lang": language,
                "t": TEXTS[language],
                "program": d,
                "contact": opened.contact,
                "proposal": stored[0] if stored else None,
                "pairs": [
                    {
                        "pair": p,
                        "number": position,
                        "mentor": rows.get(p.mentor_application_id),
                        "adept": rows.get(p.adept_application_id),
                        "why": _score_in_words(d, p.breakdown),
                    }
                    for position, p in enumerate(pairs, start=1)
                ],
                "forbids": forbids,
                "unmatched": [
                    (rows.get(u["id"]), u["role"], engine_text(u["reason"], language))
                    for u in report.get("unmatched", [])
                ],
                "options": options,
                "elsewhere": elsewhere,
                "confirmed": confirmed,
                "error": _with_names(error, rows) if error else None,
                "action": request.url.path,
                "organisations": {o.id: o.name for o in d.organisations},
                **_numbers(language),
            },
            status_code=status,
        )

    @router.api_route("/r/{token}", methods=["GET", "HEAD"])
    async def review_form(request: Request, token: str) -> Response:
        opened = await open_link(request, token, Purpose.REVIEW)
        if isinstance(opened, HTMLResponse):
            return opened
        if opened.status.phase not in (ProgramPhase.MATCH_REVIEW, ProgramPhase.MATCHED):
            return render_notice(request, opened.definition, "review_closed", 410)
        return await review_page(request, opened)

    @router.post("/r/{token}")
    async def review_submit(request: Request, token: str) -> Response:
        opened = await open_link(request, token, Purpose.REVIEW)
        if isinstance(opened, HTMLResponse):
            return opened
        d = opened.definition
        form = await request.form()
        action = str(form.get("action", ""))
        try:
            review = MatchReviewRequest(
                action=action,  # checked by the model: a wrong one is a ValueError
                pair=_pair(str(form.get("pair", ""))),
                other=_pair(str(form.get("other", ""))),
                proposal=int(str(form["proposal"])) if form.get("proposal") else None,
                by=people.reference_of(d, str(opened.contact.email)),
            )
        except ValueError:
            return render_notice(request, d, "invalid", 400)
        summary = opened.status.matching
        current = summary is not None and review.proposal == summary.proposal
        if action == "confirm" and current and form.get("choice") != "yes":
            # Everyone is told at once on confirming: the page asks first (nothing is sent).
            assert summary is not None
            language = d.language.value
            return render_page(
                request,
                d,
                text(d, "review_ask_title"),
                text(
                    d,
                    "review_ask_body",
                    proposal=summary.proposal,
                    pairs=count(summary.pairs, "pairs", language),
                ),
                form={
                    "action": request.url.path,
                    "hidden": {"action": "confirm", "proposal": summary.proposal},
                    "buttons": [("yes", text(d, "review_ask_yes"))],
                },
            )
        await ensure_up(temporal)
        try:
            await handle_of(d.id).execute_update(ProgramWorkflow.review_matching, review)
        except WorkflowUpdateFailedError as failure:
            kind, detail = refusal(failure)
            if kind == "closed" and opened.status.phase is not ProgramPhase.MATCH_REVIEW:
                return render_notice(request, d, "review_closed", 410)
            message = _refusal_text(d, kind, detail)
            fresh = await open_link(request, token, Purpose.REVIEW)
            assert not isinstance(fresh, HTMLResponse)
            return await review_page(request, fresh, error=message, status=409)
        if action == "confirm":
            return render_notice(request, d, "review_confirmed")
        # Post/redirect/get: a reload of the page never repeats the action.
        return RedirectResponse(request.url.path, status_code=303)

    return router


_KNOWN = {"over_cap", "incomplete", "unknown", "conflict", "stale"}


def _refusal_text(definition: ProgramDefinition, kind: str, detail: str) -> str:
    """A validator's refusal ("over_cap: …") as a sentence in the program's language."""
    return text(definition, f"refused_{kind}", detail=detail) if kind in _KNOWN else detail


def _numbers(language: str) -> dict[str, Any]:
    """The number and count helpers a template writes its figures with."""
    return {
        "num": lambda value, decimals=None: number(value, language, decimals=decimals),
        "count": lambda value, key: count(value, key, language),
    }


def _criterion_names(definition: ProgramDefinition) -> dict[str, tuple[str, float]]:
    """Each matching criterion by its key in a pair's score breakdown (its question's
    id, else its name): (what it is called in the program's language, its weight).

    A criterion that reads a question is called by the question's text (each profile's
    text, when they differ); one without a question by its kind, in words."""
    names: dict[str, tuple[str, float]] = {}
    for criterion in definition.matching.criteria:
        asked = [
            q.text
            for p in definition.profiles
            for q in p.questions
            if criterion.question is not None and q.id == criterion.question
        ]
        name = " / ".join(dict.fromkeys(asked)) or text(definition, f"criterion_{criterion.name}")
        names[criterion.question or criterion.name] = (name, criterion.weight)
    return names


def _score_in_words(definition: ProgramDefinition, breakdown: dict[str, float]) -> list[str]:
    """A pair's score, criterion by criterion, said in words: ”Vilka teman vill du prata
    om?”: mycket gemensamt (1,33 av 2)."""
    language = definition.language.value
    names = _criterion_names(definition)
    lines = []
    for key, points in breakdown.items():
        name, weight = names.get(key, (key, 0.0))
        share = points / weight if weight else 0.0
        agreement = (
            "full"
            if share >= 0.995
            else "much"
            if share >= 0.5
            else "some"
            if share > 0
            else "none"
        )
        lines.append(
            text(
                definition,
                "criterion_score",
                criterion=name,
                agreement=text(definition, f"agreement_{agreement}"),
                points=number(points, language, decimals=2),
                weight=number(weight, language),
            )
        )
    return lines


def _if_undecided(definition: ProgramDefinition, deadline: str) -> str:
    """What the definition's policy does to an organisation whose HR does not decide."""
    policy = text(definition, f"policy_{definition.capacity.when_undecided.value}")
    if deadline:
        return text(definition, "capacity_if_undecided", deadline=deadline, policy=policy)
    return text(definition, "capacity_if_undecided_undated", policy=policy)


def _profile_title(definition: ProgramDefinition, row: Application) -> str:
    profile = definition.profile(row.profile_id)
    return profile.title if profile else row.profile_id


def _pair(value: str) -> PairRef | None:
    """``mentor-id:adept-id`` from a form, or None when the field is empty."""
    if not value:
        return None
    mentor, sep, adept = value.partition(":")
    if not sep or not mentor or not adept:
        raise ValueError(f"not a pair: {value!r}")
    return PairRef(mentor_id=mentor, adept_id=adept)


def _default_selections(applicants: list[Application], cap: int | None) -> dict[str, str]:
    """What the form proposes before HR chooses: accept up to the cap, wait-list the rest."""
    return {
        row.id: Selection.ACCEPTED if cap is None or i < cap else Selection.WAITLISTED
        for i, row in enumerate(applicants)
    }


def _answers_text(definition: ProgramDefinition, row: Application) -> str:
    profile = definition.profile(row.profile_id)
    parts = []
    for question in profile.questions if profile else []:
        answer = row.answers.get(question.id)
        if answer:
            shown = ", ".join(answer) if isinstance(answer, list) else str(answer)
            parts.append(f"{question.text} {shown}")
    return " · ".join(parts)


def _with_names(message: str, rows: dict[str, Application]) -> str:
    """Application ids in a refusal replaced by the names HR knows them by."""
    for application_id, row in rows.items():
        message = message.replace(application_id, row.name)
    return message
