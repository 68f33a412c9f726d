"""The pages HR reaches from its emails: the capacity decision and the review of pairs.

Like the participants' pages, a GET (or HEAD) only shows; every change is a
POST that goes through a Workflow Update, whose validator refuses, with the
reason, what the program cannot take (above a cap, a stale proposal, a lock
that contradicts a forbid). The refusal is shown on the same page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError

from mentorflow import people
from mentorflow.definition import Contact, ProgramDefinition
from mentorflow.i18n import Texts
from mentorflow.links import Link, LinkSigner, Purpose
from mentorflow.matching import Option, Reason, Rule, read_reason
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
from mentorflow.web import notices
from mentorflow.web.links import LinkRefused, OpenedLink, link_for
from mentorflow.web.outage import ensure_up, unless_down
from mentorflow.web.pages import (
    refusal,
    render_notice,
    render_page,
    templates,
    texts_of,
    when,
)
from workflows.program import ProgramWorkflow

CapacityLink = Annotated[OpenedLink, Depends(link_for(Purpose.CAPACITY))]
ReviewLink = Annotated[OpenedLink, Depends(link_for(Purpose.REVIEW))]


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

    async def opened_by(request: Request, checked: OpenedLink) -> Opened:
        """Who a checked HR link was sent to, and the program's status now (or
        LinkRefused: not one of its HR contacts, or the program is closed)."""
        link, definition = checked.link, checked.definition
        if link.purpose is Purpose.CAPACITY:
            organisation = definition.organisation(link.application_id)
            allowed = organisation.hr_contacts if organisation else []
        else:
            allowed = definition.coordinators() if link.application_id == definition.id else []
        contact = next((c for c in allowed if signer.is_for(link, c.email)), None)
        if contact is None:
            raise LinkRefused(render_notice(request, definition, notices.HR_NOT_YOURS, 403))
        try:
            status = await handle_of(definition.id).query(ProgramWorkflow.status)
        except RPCError as error:
            await unless_down(temporal, error)
            raise LinkRefused(
                render_notice(request, definition, notices.PROGRAM_CLOSED, 410)
            ) from None
        if status.phase is ProgramPhase.CANCELLED:
            raise LinkRefused(render_notice(request, definition, notices.PROGRAM_CLOSED, 410))
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
        return templates(language).TemplateResponse(
            request,
            "capacity.html",
            {
                "lang": language,
                "program": d,
                "organisation": organisation,
                "contact": opened.contact,
                "groups": groups,
                "decided": opened.status.decisions.get(organisation.id),
                "deadline": deadline,
                "if_undecided": _if_undecided(d, deadline),
                "error": error,
                "action": request.url.path,
            },
            status_code=status,
        )

    @router.api_route("/c/{token}", methods=["GET", "HEAD"])
    async def capacity_form(request: Request, checked: CapacityLink) -> Response:
        opened = await opened_by(request, checked)
        if opened.status.phase is not ProgramPhase.AWAITING_HR_DECISION:
            return render_notice(request, opened.definition, notices.CAPACITY_CLOSED, 410)
        return await capacity_page(request, opened)

    @router.post("/c/{token}")
    async def capacity_submit(request: Request, checked: CapacityLink) -> Response:
        opened = await opened_by(request, checked)
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
            return render_notice(request, d, notices.INVALID, 400)
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
                return render_notice(request, d, notices.CAPACITY_CLOSED, 410)
            message = _refusal_text(d, kind, detail)
            return await capacity_page(request, opened, chosen=chosen, error=message, status=422)
        t = texts_of(d)
        body = t.gettext(
            "Accepted: %(accepted)s. Wait-listed: %(waitlisted)s. Not selected: %(declined)s."
            " The applicants hear from us once the pairs are confirmed.",
            accepted=t.number(result.accepted),
            waitlisted=t.number(result.waitlisted),
            declined=t.number(result.declined),
        )
        # What was recorded, person by person.
        rows = {r.id: r for r in await store.applications(d.id)}
        words = {
            Selection.ACCEPTED: t.gettext("accepted"),
            Selection.WAITLISTED: t.gettext("on the wait-list"),
            Selection.DECLINED: t.gettext("not selected"),
        }
        recorded = [
            f"{rows[key].name} ({_profile_title(d, rows[key])}): {said}"
            for selection, said in words.items()
            for key, chosen in selections.items()
            if chosen is selection and key in rows
        ]
        details = [(t.gettext("What was recorded"), recorded)] if recorded else []
        title = t.gettext("Thank you, your decision is recorded")
        return render_page(request, d, title, body, details=details)

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
        t = texts_of(d)
        confirmed = opened.status.confirmed_by is not None
        forbids = [
            (rows.get(f["mentor_id"]), rows.get(f["adept_id"])) for f in report.get("forbids", [])
        ]
        engine_options = list(report.get("options", []))
        options: list[str] = []
        elsewhere = ""
        if engine_options and not confirmed:
            # Only what this page can do; the rest is said to be decided elsewhere.
            # (A proposal made before options were codes kept the engine's English.)
            if forbids and any(o == Option.RELAX_RULES or "forbid" in o for o in engine_options):
                options.append(
                    t.gettext(
                        "Allow a forbidden pair again (under “Forbidden pairs”); a new proposal"
                        " is made at once."
                    )
                )
            if any(p.locked for p in pairs):
                options.append(
                    t.gettext(
                        "Unlock a locked pair, so that the matching may pair its people anew."
                    )
                )
            if len(pairs) > 1:
                options.append(t.gettext("Swap the mentors of two pairs (below)."))
            elsewhere = t.gettext(
                "More mentor places, more accepted mentors or other matching rules are not"
                " changed on this page: they come from the program's definition and each"
                " organisation's decision."
            )
        return templates(language).TemplateResponse(
            request,
            "review.html",
            {
                "lang": language,
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
                    (rows.get(u["id"]), u["role"], _reason_in_words(d, u["role"], u["reason"]))
                    for u in report.get("unmatched", [])
                ],
                "options": options,
                "elsewhere": elsewhere,
                "confirmed": confirmed,
                "error": _with_names(error, rows) if error else None,
                "action": request.url.path,
                "organisations": {o.id: o.name for o in d.organisations},
            },
            status_code=status,
        )

    @router.api_route("/r/{token}", methods=["GET", "HEAD"])
    async def review_form(request: Request, checked: ReviewLink) -> Response:
        opened = await opened_by(request, checked)
        if opened.status.phase not in (ProgramPhase.MATCH_REVIEW, ProgramPhase.MATCHED):
            return render_notice(request, opened.definition, notices.REVIEW_CLOSED, 410)
        return await review_page(request, opened)

    @router.post("/r/{token}")
    async def review_submit(request: Request, checked: ReviewLink) -> Response:
        opened = await opened_by(request, checked)
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
            return render_notice(request, d, notices.INVALID, 400)
        summary = opened.status.matching
        current = summary is not None and review.proposal == summary.proposal
        if action == "confirm" and current and form.get("choice") != "yes":
            # Everyone is told at once on confirming: the page asks first (nothing is sent).
            assert summary is not None
            t = texts_of(d)
            return render_page(
                request,
                d,
                t.gettext("Confirm the pairs and tell everyone?"),
                t.gettext(
                    "Confirming proposal %(proposal)s sends its %(pairs)s their introductions,"
                    " and every other applicant and the managers their outcome, now. It cannot"
                    " be undone.",
                    proposal=summary.proposal,
                    pairs=t.ngettext("%(num)s pair", "%(num)s pairs", summary.pairs),
                ),
                form={
                    "action": request.url.path,
                    "hidden": {"action": "confirm", "proposal": summary.proposal},
                    "buttons": [("yes", t.gettext("Yes, confirm and send"))],
                },
            )
        await ensure_up(temporal)
        try:
            await handle_of(d.id).execute_update(ProgramWorkflow.review_matching, review)
        except WorkflowUpdateFailedError as failure:
            kind, detail = refusal(failure)
            if kind == "closed" and opened.status.phase is not ProgramPhase.MATCH_REVIEW:
                return render_notice(request, d, notices.REVIEW_CLOSED, 410)
            message = _refusal_text(d, kind, detail)
            fresh = await opened_by(request, checked)  # the pairs as they are now
            return await review_page(request, fresh, error=message, status=409)
        if action == "confirm":
            return render_notice(request, d, notices.REVIEW_CONFIRMED)
        # Post/redirect/get: a reload of the page never repeats the action.
        return RedirectResponse(request.url.path, status_code=303)

    return router


def _refusal_text(definition: ProgramDefinition, kind: str, detail: str) -> str:
    """A validator's refusal ("over_cap: …") as a sentence in the program's language."""
    t = texts_of(definition)
    if kind == "over_cap":
        return t.gettext(
            "Too many accepted: %(detail)s. Wait-list or do not select the rest.", detail=detail
        )
    if kind == "incomplete":
        return t.gettext("Not complete: %(detail)s.", detail=detail)
    if kind in ("unknown", "conflict"):
        return t.gettext("Not possible: %(detail)s.", detail=detail)
    if kind == "stale":
        return t.gettext("The pairs changed meanwhile: %(detail)s.", detail=detail)
    return detail


def _reason_in_words(definition: ProgramDefinition, role: str, code: str) -> str:
    """Why someone was left without a pair (the matcher's reason code), in words."""
    reason = read_reason(code)
    if reason is None:
        return code  # a proposal made before reasons were codes: the engine's English
    cause, rules = reason
    t = texts_of(definition)
    if cause is Reason.HARD_RULES:
        broken = ", ".join(_rule_in_words(t, definition, rule) for rule in rules)
        if role == "mentor":
            return t.gettext(
                "every pair with an adept breaks a hard rule (%(rules)s)", rules=broken
            )
        return t.gettext("every pair with a mentor breaks a hard rule (%(rules)s)", rules=broken)
    if cause is Reason.NO_MENTOR_PLACE:
        return t.gettext("no mentor place left: more adepts than mentor places")
    if cause is Reason.MENTORS_TAKEN:
        return t.gettext("every mentor it may pair with is taken by other adepts")
    return t.gettext("every adept it may pair with is paired with someone else")


def _rule_in_words(t: Texts, definition: ProgramDefinition, rule: Rule) -> str:
    if rule is Rule.SAME_REPORTING_LINE:
        return t.gettext("same reporting line")
    if rule is Rule.SAME_ORGANISATION:
        return t.gettext("same organisation")
    if rule is Rule.SAME_DEPARTMENT:
        return t.gettext("same department")
    if rule is Rule.SENIORITY_GAP:
        years = definition.matching.hard_rules.min_seniority_gap_years or 0
        return t.ngettext(
            "seniority gap under %(num)s year", "seniority gap under %(num)s years", years
        )
    return t.gettext("forbidden by HR")


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
        name = " / ".join(dict.fromkeys(asked)) or _criterion_kind(definition, criterion.name)
        names[criterion.question or criterion.name] = (name, criterion.weight)
    return names


def _criterion_kind(definition: ProgramDefinition, kind: str) -> str:
    """What a criterion without a question is called, by its kind."""
    t = texts_of(definition)
    words = {
        "shared_interests": t.gettext("Shared interests"),
        "goals": t.gettext("Goals"),
        "languages": t.gettext("Languages"),
        "location": t.gettext("Location"),
        "availability": t.gettext("Availability"),
        "themes": t.gettext("Themes"),
    }
    return words.get(kind, kind)


def _score_in_words(definition: ProgramDefinition, breakdown: dict[str, float]) -> list[str]:
    """A pair's score, criterion by criterion, said in words: ”Vilka teman vill du prata
    om?”: mycket gemensamt (1,33 av 2)."""
    t = texts_of(definition)
    names = _criterion_names(definition)
    lines = []
    for key, points in breakdown.items():
        name, weight = names.get(key, (key, 0.0))
        share = points / weight if weight else 0.0
        agreement = (
            t.gettext("the same answers")
            if share >= 0.995
            else t.gettext("much in common")
            if share >= 0.5
            else t.gettext("a little in common")
            if share > 0
            else t.gettext("nothing in common")
        )
        lines.append(
            t.gettext(
                "“%(criterion)s”: %(agreement)s (%(points)s of %(weight)s)",
                criterion=name,
                agreement=agreement,
                points=t.number(points, decimals=2),
                weight=t.number(weight),
            )
        )
    return lines


def _if_undecided(definition: ProgramDefinition, deadline: str) -> str:
    """What the definition's policy does to an organisation whose HR does not decide."""
    t = texts_of(definition)
    policies = {
        "waitlist_all": t.gettext("every approved applicant is put on the wait-list."),
        "accept_up_to_cap": t.gettext(
            "approved applicants are accepted in the order they applied, up to the limit;"
            " the rest are put on the wait-list."
        ),
        "decline_all": t.gettext("no approved applicant is selected."),
    }
    policy = policies[definition.capacity.when_undecided.value]
    if deadline:
        return t.gettext(
            "If no decision is sent by %(deadline)s: %(policy)s", deadline=deadline, policy=policy
        )
    return t.gettext("If no decision is sent: %(policy)s", policy=policy)


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
