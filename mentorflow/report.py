"""A program's report for HR: who took part, how the pairs met, what the evaluation said, cost.

The report is computed from the database (:func:`build_report`), stored when the
program completes, and rendered the same way for the web page, the file that
``mentorflow program report`` writes and the email to HR: HTML with charts
(inline SVG, so the page needs no script and prints well) and CSV (the figures).
After a purge only the stored figures remain; the free-text answers go with
the rest of the personal data.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections import Counter
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import AwareDatetime, BaseModel, Field

from mentorflow import i18n, moments
from mentorflow.definition import Question, stored_definition
from mentorflow.i18n import Texts
from mentorflow.models import ProgramDates, ReportSummary
from mentorflow.store import Store

STAGES = ("applied", "approved", "accepted", "matched", "completed", "withdrawn")


class FunnelRow(BaseModel):
    """How many of one organisation's applicants for one profile reached each stage."""

    organisation_id: str
    organisation: str
    profile_id: str
    profile: str
    applied: int = 0
    approved: int = 0
    accepted: int = 0
    matched: int = 0
    completed: int = 0  # in a pair that ran to the program's end
    withdrawn: int = 0


class QuestionResult(BaseModel):
    id: str
    text: str
    kind: str
    answered: int
    distribution: dict[str, int] = Field(default_factory=dict)  # answer -> how many
    mean: float | None = None
    nps: float | None = None  # % promoters (9-10) minus % detractors (0-6)
    comments: list[str] = Field(default_factory=list)  # free text, without names


class CostRow(BaseModel):
    organisation_id: str
    organisation: str
    participants: int
    cost: float


class ProgramReport(BaseModel):
    program_id: str
    name: str
    language: str
    timezone: str = "Europe/Stockholm"  # reports stored before it had one
    start: AwareDatetime
    end: AwareDatetime
    generated_at: AwareDatetime
    funnel: list[FunnelRow]
    pairs: int
    meetings_per_pair: list[int]  # one number per pair (no names), from check-ins answered "yes"
    invited: int
    responses: int
    questions: list[QuestionResult]
    cost: list[CostRow]
    currency: str | None = None
    per_person: float | None = None
    comments_removed: bool = False  # the free text went with a purge

    def totals(self) -> dict[str, int]:
        return {stage: sum(getattr(row, stage) for row in self.funnel) for stage in STAGES}

    @property
    def response_rate(self) -> float | None:
        return round(self.responses / self.invited, 4) if self.invited else None

    @property
    def total_cost(self) -> float | None:
        return sum(row.cost for row in self.cost) if self.per_person is not None else None

    def summary(self) -> ReportSummary:
        totals = self.totals()
        return ReportSummary(
            applied=totals["applied"],
            matched=totals["matched"],
            completed=totals["completed"],
            withdrawn=totals["withdrawn"],
            invited=self.invited,
            responses=self.responses,
            response_rate=self.response_rate,
            nps={q.id: q.nps for q in self.questions if q.kind == "scale" and q.nps is not None},
            total_cost=self.total_cost,
            currency=self.currency,
        )

    def without_comments(self) -> ProgramReport:
        """The figures only: what a purge keeps."""
        return self.model_copy(
            update={
                "questions": [q.model_copy(update={"comments": []}) for q in self.questions],
                "comments_removed": True,
            }
        )


async def build_report(store: Store, program_id: str, at: datetime) -> ProgramReport:
    """Compute the report from what the database holds now."""
    program = await store.program(program_id)
    if program is None:
        raise LookupError(f"no program {program_id!r}")
    definition = stored_definition(program.definition)
    applications = await store.applications(program_id)
    approved = await store.approved_ids(program_id)
    pairs = await store.pairs(program_id)
    in_pair = {p.mentor_application_id for p in pairs} | {p.adept_application_id for p in pairs}
    completed = {
        person
        for p in pairs
        if p.status == "ended"
        for person in (p.mentor_application_id, p.adept_application_id)
    }
    rows: dict[tuple[str, str], FunnelRow] = {}
    for organisation in definition.organisations:
        for profile in definition.profiles:
            rows[organisation.id, profile.id] = FunnelRow(
                organisation_id=organisation.id,
                organisation=organisation.name,
                profile_id=profile.id,
                profile=profile.title,
            )
    for application in applications:
        row = rows.get((application.organisation_id, application.profile_id))
        if row is None:  # an organisation or profile no longer in the definition
            continue
        row.applied += 1
        row.approved += application.id in approved
        row.accepted += application.selection == "accepted"
        row.matched += application.id in in_pair
        row.completed += application.id in completed
        row.withdrawn += application.status == "withdrawn"

    met: dict[str, set[str]] = {p.id: set() for p in pairs}
    for check_in in await store.check_ins_of(program_id):
        if check_in.answer == "yes" and check_in.number.isdigit():
            met[check_in.pair_id].add(check_in.number)

    responses = [r.answers for r in await store.evaluation_responses(program_id)]
    invited = {
        e.recipient
        for e in await store.emails(program_id)
        if e.step == "evaluation/invitation" and e.status == "sent"
    }
    per_organisation = Counter(
        a.organisation_id for a in applications if a.id in in_pair or a.id in completed
    )
    per_person = definition.cost.per_person if definition.cost else None
    # The dates as the program last recorded them: a postponed start is the start.
    dates = ProgramDates.model_validate(program.dates) if program.dates else None
    return ProgramReport(
        program_id=program_id,
        name=definition.name,
        language=definition.language.value,
        timezone=definition.timezone,
        start=dates.start if dates else definition.schedule.start,
        end=dates.end if dates else definition.schedule.end,
        generated_at=at,
        funnel=[row for row in rows.values() if row.applied],
        pairs=len(pairs),
        meetings_per_pair=sorted(len(numbers) for numbers in met.values()),
        invited=len(invited),
        responses=len(responses),
        questions=[question_result(q, responses) for q in definition.evaluation.questions],
        cost=[
            CostRow(
                organisation_id=o.id,
                organisation=o.name,
                participants=per_organisation[o.id],
                cost=per_organisation[o.id] * (per_person or 0),
            )
            for o in definition.organisations
            if per_organisation[o.id]
        ],
        currency=definition.cost.currency if definition.cost else None,
        per_person=per_person,
    )


async def current_report(store: Store, program_id: str, at: datetime) -> ProgramReport:
    """The stored report (the only one left after a purge), else one computed at ``at``."""
    stored = await store.report(program_id)
    if stored is not None:
        return ProgramReport.model_validate(stored.report)
    return await build_report(store, program_id, at)


async def purge(store: Store, program_id: str, at: datetime) -> dict[str, int]:
    """Remove a program's personal data; keep its report's figures (made now if need be,
    e.g. for a cancelled program that never reported)."""
    report = await current_report(store, program_id, at)
    return await store.purge_personal_data(
        program_id, report.without_comments().model_dump(mode="json"), at
    )


def question_result(question: Question, responses: list[dict[str, Any]]) -> QuestionResult:
    """One evaluation question's answers, counted (or listed, for free text)."""
    given = [r[question.id] for r in responses if r.get(question.id) not in (None, "", [])]
    result = QuestionResult(
        id=question.id, text=question.text, kind=question.kind, answered=len(given)
    )
    if question.kind == "text":
        result.comments = sorted(str(answer) for answer in given)
        return result
    if question.kind == "scale":
        values = [int(v) for v in given]
        scale = range(question.scale_min, question.scale_max + 1)
        result.distribution = {str(v): values.count(v) for v in scale}
        result.mean = round(statistics.fmean(values), 2) if values else None
        if question.nps and values:
            promoters = sum(v >= 9 for v in values)
            detractors = sum(v <= 6 for v in values)
            result.nps = round(100 * (promoters - detractors) / len(values), 1)
        return result
    if question.kind == "number":
        numbers = [float(v) for v in given]
        result.mean = round(statistics.fmean(numbers), 2) if numbers else None
        return result
    options = ["yes", "no"] if question.kind == "yes_no" else question.options
    chosen = Counter(
        option for answer in given for option in (answer if isinstance(answer, list) else [answer])
    )
    result.distribution = {option: chosen[option] for option in options}
    return result


# --- Rendering -------------------------------------------------------------------------------


@cache
def _environment(language: str) -> Environment:
    """The report's template, saying its messages and numbers in ``language``."""
    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "web" / "templates"),
        autoescape=select_autoescape(["html"]),
    )
    i18n.install(env, language)
    return env


def _stage_names(t: Texts) -> dict[str, str]:
    return {
        "applied": t.gettext("Applied"),
        "approved": t.gettext("Approved"),
        "accepted": t.gettext("Accepted"),
        "matched": t.gettext("Matched"),
        "completed": t.gettext("Completed"),
        "withdrawn": t.gettext("Withdrawn"),
    }


class Bar(BaseModel):
    label: str
    value: float
    shown: str  # the value as printed beside the bar


def bars(values: dict[str, float], language: str = "en") -> list[Bar]:
    """Chart bars, each value printed as ``language`` writes numbers ("3,5", "1 200")."""
    return [Bar(label=k, value=v, shown=i18n.number(v, language)) for k, v in values.items()]


def report_html(report: ProgramReport, csv_url: str | None = None) -> str:
    """The report as one self-contained HTML page (charts as inline SVG)."""
    language = report.language
    t = i18n.texts(language)
    stages = _stage_names(t)
    answers = {"yes": t.gettext("Yes"), "no": t.gettext("No")}
    totals = report.totals()
    meetings = Counter(report.meetings_per_pair)
    histogram = {str(n): float(meetings[n]) for n in range(max(meetings, default=0) + 1)}
    mean = round(statistics.fmean(report.meetings_per_pair), 1) if report.meetings_per_pair else 0
    return (
        _environment(language)
        .get_template("report.html")
        .render(
            r=report,
            generated=moments.when(report.generated_at, report.timezone, language),
            period=(
                moments.day(report.start, report.timezone, language),
                moments.day(report.end, report.timezone, language),
            ),
            stages=stages,
            totals=totals,
            funnel_chart=bars({stages[s]: float(totals[s]) for s in STAGES}, language),
            meetings_chart=bars(histogram, language),
            meetings_note=t.gettext(
                "Meetings the pairs confirmed in their check-ins (%(pairs)s, %(meetings)s, on"
                " average %(mean)s per pair).",
                pairs=t.ngettext("%(num)s pair", "%(num)s pairs", report.pairs),
                meetings=t.ngettext(
                    "%(num)s meeting", "%(num)s meetings", sum(report.meetings_per_pair)
                ),
                mean=t.number(mean),
            ),
            question_charts={
                q.id: bars(
                    {answers.get(k, k): float(v) for k, v in q.distribution.items()}, language
                )
                for q in report.questions
                if q.distribution
            },
            response_rate=t.gettext(
                "%(responses)s of %(invited)s answered (%(rate)s).",
                responses=t.number(report.responses),
                invited=t.number(report.invited),
                rate=t.percent(report.response_rate) if report.response_rate is not None else "–",
            ),
            csv_url=csv_url,
        )
    )


def report_csv(report: ProgramReport) -> str:
    """The report's figures as CSV: one row per figure (section, group, measure, value)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["section", "group", "measure", "value"])
    writer.writerow(["program", report.program_id, "start", report.start.isoformat()])
    writer.writerow(["program", report.program_id, "end", report.end.isoformat()])
    for row in report.funnel:
        group = f"{row.organisation_id}/{row.profile_id}"
        for stage in STAGES:
            writer.writerow(["participation", group, stage, getattr(row, stage)])
    for stage, value in report.totals().items():
        writer.writerow(["participation", "total", stage, value])
    writer.writerow(["meetings", "total", "pairs", report.pairs])
    for number, meetings in enumerate(report.meetings_per_pair, start=1):
        writer.writerow(["meetings", f"pair {number}", "meetings", meetings])
    writer.writerow(["evaluation", "total", "invited", report.invited])
    writer.writerow(["evaluation", "total", "responses", report.responses])
    writer.writerow(["evaluation", "total", "response_rate", _number(report.response_rate)])
    for question in report.questions:
        writer.writerow(["evaluation", question.id, "answered", question.answered])
        for answer, count in question.distribution.items():
            writer.writerow(["evaluation", question.id, f"answer:{answer}", count])
        if question.mean is not None:
            writer.writerow(["evaluation", question.id, "mean", _number(question.mean)])
        if question.nps is not None:
            writer.writerow(["evaluation", question.id, "nps", _number(question.nps)])
    for cost in report.cost:
        writer.writerow(["cost", cost.organisation_id, "participants", cost.participants])
        writer.writerow(["cost", cost.organisation_id, "cost", _number(cost.cost)])
    if report.total_cost is not None:
        writer.writerow(["cost", "total", report.currency or "", _number(report.total_cost)])
    return out.getvalue()


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"
