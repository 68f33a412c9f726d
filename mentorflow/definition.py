"""Program definitions: the schema HR writes in ``definitions/*.yaml``, and its loader.

A definition describes one cohort of one program: who organises it, who may
apply, the dates, how approval, capacity and matching work, how pairs meet and
how the program is evaluated. It is validated in two steps: the schema (types,
required fields, allowed values) and then the consistency checks that need the
whole picture (a deadline after the start, a session outside the program, a
capacity rule naming an unknown profile, ...). Every problem is reported with
the file, the field and what to do about it.

Dates without an offset are local time in the definition's ``timezone``
(Europe/Stockholm unless it says otherwise). A date may also be written as
``+<ISO 8601 duration>`` (``+PT5M``): that long after the moment the program is
validated or started, which is how the demo definition fits in a few minutes.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

DEFAULT_TIMEZONE = "Europe/Stockholm"


# --- Building blocks -------------------------------------------------------------------------


def _resolve_datetime(value: Any, info: ValidationInfo) -> Any:
    """Turn ``+PT5M`` into a time relative to the reference moment in the context."""
    if isinstance(value, str) and value.strip().startswith("+"):
        context = info.context or {}
        reference: datetime = context.get("reference_time") or datetime.now(UTC)
        offset = TypeAdapter(timedelta).validate_python(value.strip()[1:])
        return reference + offset
    return value


def _localize(value: datetime, info: ValidationInfo) -> datetime:
    """Attach the definition's timezone to a date written without an offset."""
    if value.tzinfo is None:
        context = info.context or {}
        value = value.replace(tzinfo=ZoneInfo(context.get("timezone") or DEFAULT_TIMEZONE))
    return value


ProgramDatetime = Annotated[datetime, BeforeValidator(_resolve_datetime), AfterValidator(_localize)]
"""A timezone-aware moment; naive values are local time in the program's timezone."""


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be a positive duration, such as P7D or PT30M")
    return value


Duration = Annotated[timedelta, AfterValidator(_positive)]
"""A positive ISO 8601 duration: ``P7D`` (7 days), ``PT30M`` (30 minutes), ``P2W``."""

Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")]
"""Lowercase letters, digits and dashes: ids that may appear in workflow ids and URLs."""


class Language(StrEnum):
    """Languages the emails and pages are written in."""

    SV = "sv"
    EN = "en"


class ProgramKind(StrEnum):
    """Who guides whom."""

    REVERSE = "reverse"  # the junior mentor guides the senior adept
    CLASSIC = "classic"  # the senior mentor guides the junior adept
    MUTUAL = "mutual"  # both learn from each other


class Role(StrEnum):
    MENTOR = "mentor"
    ADEPT = "adept"


class SilencePolicy(StrEnum):
    """What a manager's silence means when the answer-by time passes."""

    DECLINE = "decline"
    APPROVE = "approve"
    ESCALATE = "escalate"  # ask the organisation's HR contact to decide


class UndecidedPolicy(StrEnum):
    """What happens to an organisation whose HR did not decide by the decision deadline."""

    WAITLIST_ALL = "waitlist_all"
    ACCEPT_UP_TO_CAP = "accept_up_to_cap"
    DECLINE_ALL = "decline_all"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Contact(_Model):
    name: str = Field(min_length=1)
    email: EmailStr
    phone: str | None = None
    role: str | None = None


class Organisation(_Model):
    id: Slug
    name: str = Field(min_length=1)
    hr_contacts: list[Contact] = Field(min_length=1)
    is_organiser: bool = False


class Question(_Model):
    id: Slug
    text: str = Field(min_length=1)
    kind: Literal["text", "number", "choice", "multi_choice", "scale", "yes_no"] = "text"
    options: list[str] = Field(default_factory=list)
    scale_min: int = 1
    scale_max: int = 5
    required: bool = True
    nps: bool = False  # a 0-10 "would you recommend" question, reported as an NPS-style score

    @field_validator("options")
    @classmethod
    def _unique_options(cls, options: list[str]) -> list[str]:
        if len(set(options)) != len(options):
            raise ValueError("options must be unique")
        return options


class Profile(_Model):
    """One side of a pair (mentor or adept) and who may apply for it."""

    id: Slug
    role: Role
    title: str = Field(min_length=1)
    description: str = ""
    eligibility: list[str] = Field(
        default_factory=list,
        description="Statements the applicant confirms, such as 'I am a permanent employee'.",
    )
    questions: list[Question] = Field(default_factory=list)


class ApplicationWindow(_Model):
    opens: ProgramDatetime
    deadline: ProgramDatetime
    reminders_before_deadline: list[Duration] = Field(default_factory=list)
    form_note: str = ""


class Announcement(_Model):
    """Who is told that the application window is open."""

    recipients: list[EmailStr] = Field(default_factory=list)
    message: str = ""


class ManagerApproval(_Model):
    required: bool = True
    answer_by: ProgramDatetime | None = None
    reminders_before_answer_by: list[Duration] = Field(default_factory=list)
    on_silence: SilencePolicy = SilencePolicy.DECLINE


class CapacityRule(_Model):
    organisation: Slug | Literal["*"] = "*"
    profile: Slug
    max_participants: int = Field(ge=0)


class Capacity(_Model):
    decision_by: ProgramDatetime | None = None
    reminders_before_decision: list[Duration] = Field(default_factory=list)
    when_undecided: UndecidedPolicy = UndecidedPolicy.WAITLIST_ALL
    rules: list[CapacityRule] = Field(default_factory=list)


class MatchingCriterion(_Model):
    name: Literal["shared_interests", "goals", "languages", "location", "availability", "themes"]
    weight: float = Field(1.0, gt=0)
    question: Slug | None = Field(None, description="The application question it reads.")


class MatchingRules(_Model):
    not_same_reporting_line: bool = True
    not_same_department: bool = False
    not_same_organisation: bool = False
    min_seniority_gap_years: int | None = Field(None, ge=0)
    mentor_capacity: int = Field(1, ge=1)


class Matching(_Model):
    criteria: list[MatchingCriterion] = Field(default_factory=list)
    hard_rules: MatchingRules = MatchingRules()
    fairness: bool = False
    hr_review: bool = True
    seniority_question: Slug | None = Field(
        None,
        description="The application question whose answer is years of work experience;"
        " needed by hard_rules.min_seniority_gap_years.",
    )
    introduction: str = Field(
        "", description="How a new pair gets started, told to both in their introduction."
    )


class Event(_Model):
    """A joint event on a fixed date: the kick-off or an inspiration session."""

    id: Slug
    title: str = Field(min_length=1)
    starts: ProgramDatetime
    duration: Duration = timedelta(hours=2)
    place: str | None = None
    online_url: str | None = None
    description: str = ""
    reminders_before: list[Duration] = Field(default_factory=list)


class CadenceStep(_Model):
    """Meet ``every`` so often, for ``for_`` (the last step lasts until the end)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    every: Duration | Literal["monthly"]
    for_: Duration | None = Field(None, alias="for")


class Meetings(_Model):
    cadence: list[CadenceStep] = Field(min_length=1)
    length: Duration = timedelta(minutes=90)
    check_ins: bool = True
    stalled_after: Duration | None = Field(
        None, description="A pair that has not met for this long is flagged to HR."
    )
    midpoint_pulse: bool = False


class Evaluation(_Model):
    opens: ProgramDatetime | None = None
    closes: ProgramDatetime | None = None
    reminders_before_close: list[Duration] = Field(default_factory=list)
    questions: list[Question] = Field(default_factory=list)


class Schedule(_Model):
    start: ProgramDatetime
    end: ProgramDatetime
    kickoff: Event | None = None
    sessions: list[Event] = Field(default_factory=list)


class Cost(_Model):
    per_person: float = Field(ge=0)
    currency: str = Field("SEK", pattern=r"^[A-Z]{3}$")
    note: str = ""


class Retention(_Model):
    personal_data_after_end: Duration = timedelta(days=365)


class ProgramDefinition(_Model):
    """One cohort of one mentorship program, as HR writes it."""

    id: Slug = Field(description="Stable id of the cohort; it names the Temporal workflow.")
    name: str = Field(min_length=1)
    description: str = ""
    kind: ProgramKind = ProgramKind.REVERSE
    language: Language = Language.SV
    timezone: str = DEFAULT_TIMEZONE
    organisers: list[str] = Field(min_length=1)
    organisations: list[Organisation] = Field(min_length=1)
    profiles: list[Profile] = Field(min_length=2)
    application: ApplicationWindow
    announcement: Announcement = Announcement()
    approval: ManagerApproval = ManagerApproval()
    capacity: Capacity = Capacity()
    matching: Matching = Matching()
    schedule: Schedule
    meetings: Meetings
    evaluation: Evaluation = Evaluation()
    contacts: list[Contact] = Field(default_factory=list)
    cost: Cost | None = None
    retention: Retention = Retention()

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r}") from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def profile(self, profile_id: str) -> Profile | None:
        return next((p for p in self.profiles if p.id == profile_id), None)

    def organisation(self, organisation_id: str) -> Organisation | None:
        return next((o for o in self.organisations if o.id == organisation_id), None)

    def cap(self, organisation_id: str, profile_id: str) -> int | None:
        """The most an organisation may accept for a profile: its own rule, else ``*``'s."""
        for wanted in (organisation_id, "*"):
            for rule in self.capacity.rules:
                if rule.organisation == wanted and rule.profile == profile_id:
                    return rule.max_participants
        return None

    def coordinators(self) -> list[Contact]:
        """Who reviews the pairs: the program's contacts, else the organisers' HR, else all HR."""
        contacts = (
            list(self.contacts)
            or [c for o in self.organisations if o.is_organiser for c in o.hr_contacts]
            or [c for o in self.organisations for c in o.hr_contacts]
        )
        unique: dict[str, Contact] = {}
        for contact in contacts:
            unique.setdefault(contact.email.lower(), contact)
        return list(unique.values())


# --- Consistency checks ----------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a definition: where, what, and how to fix it."""

    field: str
    problem: str
    fix: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.field} (line {self.line})" if self.line else self.field
        return f"{where}: {self.problem}. Fix: {self.fix}."


class DefinitionError(Exception):
    """A definition file that cannot be used, with every problem found in it."""

    def __init__(self, file: str, problems: list[Problem]) -> None:
        self.file = file
        self.problems = problems
        super().__init__(self.render())

    def render(self) -> str:
        count = len(self.problems)
        lines = [f"{self.file}: {count} problem{'s' if count != 1 else ''}"]
        lines += [f"  - {problem}" for problem in self.problems]
        return "\n".join(lines)


def _fmt(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M %Z").strip()


def _span(duration: timedelta) -> str:
    """A duration as people write it: 3d, 2h30m, 45s."""
    seconds = int(duration.total_seconds())
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts)


def consistency_problems(d: ProgramDefinition) -> Iterator[Problem]:
    """The contradictions that the schema alone cannot see."""
    app, sched = d.application, d.schedule
    if app.deadline <= app.opens:
        yield Problem(
            "application.deadline",
            f"the deadline ({_fmt(app.deadline)}) is not after the window opens"
            f" ({_fmt(app.opens)})",
            "set application.deadline after application.opens",
        )
    if app.deadline >= sched.start:
        yield Problem(
            "application.deadline",
            f"the deadline ({_fmt(app.deadline)}) is not before the program starts"
            f" ({_fmt(sched.start)})",
            "move the deadline earlier or schedule.start later",
        )
    if sched.end <= sched.start:
        yield Problem(
            "schedule.end",
            f"the program ends ({_fmt(sched.end)}) before it starts ({_fmt(sched.start)})",
            "set schedule.end after schedule.start",
        )
    window = app.deadline - app.opens
    for i, before in enumerate(app.reminders_before_deadline):
        if before >= window:
            yield Problem(
                f"application.reminders_before_deadline[{i}]",
                f"a reminder {_span(before)} before the deadline falls before the window opens",
                f"use a duration shorter than the window ({_span(window)})",
            )
    approval = d.approval
    if approval.required and approval.answer_by is not None:
        if approval.answer_by <= app.deadline:
            yield Problem(
                "approval.answer_by",
                "managers must answer after the application deadline, not before it",
                "set approval.answer_by after application.deadline",
            )
        if approval.answer_by >= sched.start:
            yield Problem(
                "approval.answer_by",
                "managers would answer after the program has started",
                "set approval.answer_by before schedule.start",
            )
        span = approval.answer_by - app.deadline
        for i, before in enumerate(approval.reminders_before_answer_by):
            if before >= span:
                yield Problem(
                    f"approval.reminders_before_answer_by[{i}]",
                    f"a reminder {_span(before)} before answer-by falls before applications close",
                    f"use a duration shorter than {_span(span)}",
                )
    if approval.required and approval.answer_by is None:
        yield Problem(
            "approval.answer_by",
            "manager approval is required but has no answer-by time",
            "add approval.answer_by (after the deadline, before the start)",
        )
    if approval.on_silence is SilencePolicy.ESCALATE and not all(
        o.hr_contacts for o in d.organisations
    ):
        yield Problem(
            "approval.on_silence",
            "silence escalates to HR, but an organisation has no HR contact",
            "add hr_contacts to every organisation",
        )
    cap = d.capacity
    if cap.decision_by is not None:
        after = approval.answer_by or app.deadline
        if not (after < cap.decision_by < sched.start):
            yield Problem(
                "capacity.decision_by",
                "HR's capacity decision must come after approvals and before the start",
                f"set it between {_fmt(after)} and {_fmt(sched.start)}",
            )
    profile_ids = {p.id for p in d.profiles}
    org_ids = {o.id for o in d.organisations}
    for i, rule in enumerate(cap.rules):
        if rule.profile not in profile_ids:
            yield Problem(
                f"capacity.rules[{i}].profile",
                f"unknown profile {rule.profile!r}",
                f"use one of: {', '.join(sorted(profile_ids))}",
            )
        if rule.organisation != "*" and rule.organisation not in org_ids:
            yield Problem(
                f"capacity.rules[{i}].organisation",
                f"unknown organisation {rule.organisation!r}",
                f"use '*' or one of: {', '.join(sorted(org_ids))}",
            )
    roles = {p.role for p in d.profiles}
    if roles != {Role.MENTOR, Role.ADEPT}:
        yield Problem(
            "profiles",
            "a program needs at least one mentor profile and one adept profile",
            "give each profile role: mentor or role: adept",
        )
    for duplicate in _duplicates(p.id for p in d.profiles):
        yield Problem("profiles", f"profile id {duplicate!r} is used twice", "make ids unique")
    for duplicate in _duplicates(o.id for o in d.organisations):
        yield Problem(
            "organisations", f"organisation id {duplicate!r} is used twice", "make ids unique"
        )
    events = ([("schedule.kickoff", sched.kickoff)] if sched.kickoff else []) + [
        (f"schedule.sessions[{i}]", s) for i, s in enumerate(sched.sessions)
    ]
    for duplicate in _duplicates(e.id for _, e in events):
        yield Problem(
            "schedule.sessions", f"event id {duplicate!r} is used twice", "make ids unique"
        )
    for where, event in events:
        if not (sched.start <= event.starts and event.starts + event.duration <= sched.end):
            yield Problem(
                f"{where}.starts",
                f"{event.title!r} ({_fmt(event.starts)}) is outside the program"
                f" ({_fmt(sched.start)} – {_fmt(sched.end)})",
                "move the event inside the program, or move schedule.start or schedule.end",
            )
        if event.place is None and event.online_url is None:
            yield Problem(
                f"{where}.place",
                f"{event.title!r} has neither a place nor a link",
                "add place, online_url or both",
            )
    ev = d.evaluation
    if ev.opens is not None and ev.opens < sched.start:
        yield Problem(
            "evaluation.opens",
            "the evaluation opens before the program starts",
            "set evaluation.opens near schedule.end",
        )
    if ev.opens is not None and ev.closes is not None and ev.closes <= ev.opens:
        yield Problem(
            "evaluation.closes",
            "the evaluation closes before it opens",
            "set evaluation.closes after evaluation.opens",
        )
    for question in ev.questions:
        if question.nps and (question.kind, question.scale_min, question.scale_max) != (
            "scale",
            0,
            10,
        ):
            yield Problem(
                f"evaluation question {question.id!r}",
                "an NPS question must be a 0-10 scale",
                "use kind: scale, scale_min: 0, scale_max: 10, or drop nps",
            )
    for i, question in enumerate([*ev.questions, *(q for p in d.profiles for q in p.questions)]):
        if question.kind in ("choice", "multi_choice") and not question.options:
            yield Problem(
                f"question {question.id!r}",
                f"a {question.kind} question has no options",
                "list its options, or make it kind: text",
            )
        if question.kind == "scale" and question.scale_min >= question.scale_max:
            yield Problem(
                f"question {question.id!r}",
                "scale_min is not below scale_max",
                "use e.g. scale_min: 1 and scale_max: 5",
            )
        del i
    yield from _matching_problems(d)
    meetings = d.meetings
    for i, step in enumerate(meetings.cadence[:-1]):
        if step.for_ is None:
            yield Problem(
                f"meetings.cadence[{i}].for",
                "only the last cadence step may run until the end",
                "say how long this step lasts, e.g. for: P12W",
            )


def _matching_problems(d: ProgramDefinition) -> Iterator[Problem]:
    """Matching reads application answers: the questions it names must exist."""
    asked = {q.id for p in d.profiles for q in p.questions}
    matching = d.matching
    for i, criterion in enumerate(matching.criteria):
        if criterion.question is not None and criterion.question not in asked:
            yield Problem(
                f"matching.criteria[{i}].question",
                f"no profile asks the question {criterion.question!r}",
                f"use one of: {', '.join(sorted(asked)) or '(no questions yet)'}",
            )
    question = matching.seniority_question
    if question is not None and question not in asked:
        yield Problem(
            "matching.seniority_question",
            f"no profile asks the question {question!r}",
            f"use one of: {', '.join(sorted(asked)) or '(no questions yet)'}",
        )
    if matching.hard_rules.min_seniority_gap_years is not None and question is None:
        yield Problem(
            "matching.hard_rules.min_seniority_gap_years",
            "a seniority gap needs to know each applicant's years of experience",
            "add matching.seniority_question naming a question such as 'years', or remove the gap",
        )


def _duplicates(values: Iterator[str]) -> list[str]:
    seen: set[str] = set()
    repeated: list[str] = []
    for value in values:
        if value in seen and value not in repeated:
            repeated.append(value)
        seen.add(value)
    return repeated


# --- Loading ---------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """A YAML loader that leaves timestamps as strings, so the schema decides what they mean.

    PyYAML would otherwise turn ``2027-04-08 23:59`` into a naive datetime and an
    offset-carrying one into UTC, losing the local time the author wrote.
    """


_Loader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

_FIXES = {
    "missing": "add this field",
    "extra_forbidden": "remove it, or check its spelling against the documented fields",
    "datetime_from_date_parsing": "write a date and time such as 2027-04-08 23:59, or +PT5M",
    "datetime_parsing": "write a date and time such as 2027-04-08 23:59, or +PT5M",
    "datetime_type": "write a date and time such as 2027-04-08 23:59, or +PT5M",
    "time_delta_parsing": "write an ISO 8601 duration such as P7D, PT12H or PT30M",
    "time_delta_type": "write an ISO 8601 duration such as P7D, PT12H or PT30M",
    "string_pattern_mismatch": "use lowercase letters, digits and dashes (2-63 characters)",
    "enum": "use one of the allowed values",
    "literal_error": "use one of the allowed values",
    "value_error": "correct the value",
    "too_short": "add at least one entry",
    "string_too_short": "write a value",
    "bool_parsing": "write true or false",
}


@cache
def _field_names() -> list[str]:
    """Every field name the schema knows, for "did you mean" hints."""
    names: set[str] = set()
    pending: list[type[BaseModel]] = [ProgramDefinition]
    seen: set[type[BaseModel]] = set()
    while pending:
        model = pending.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, field in model.model_fields.items():
            names.add(field.alias or name)
            for arg in _type_args(field.annotation):
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    pending.append(arg)
    return sorted(names)


def _type_args(annotation: Any) -> list[Any]:
    found = [annotation]
    for arg in get_args(annotation):
        found += _type_args(arg)
    return found


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif "[" in part or "," in part or part.startswith(("function-", "lax-or")):
            continue  # pydantic's internal branch names of unions and validators
        else:
            path += f".{part}" if path else part
    return path or "(top level)"


def _line_index(text: str) -> dict[tuple[int | str, ...], int]:
    """Map each YAML path to its 1-based line, so problems can point into the file."""
    index: dict[tuple[int | str, ...], int] = {}
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError:
        return index

    def walk(node: yaml.Node, path: tuple[int | str, ...]) -> None:
        index[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = (*path, str(key.value))
                index[child] = key.start_mark.line + 1
                walk(value, child)
                index[child] = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*path, i))

    if root is not None:
        walk(root, ())
    return index


def _line_for(index: Mapping[tuple[int | str, ...], int], field: str) -> int | None:
    parts: list[int | str] = []
    for token in re.findall(r"[^.\[\]]+|\[\d+\]", field):
        parts.append(int(token[1:-1]) if token.startswith("[") else token)
    while parts:
        if (line := index.get(tuple(parts))) is not None:
            return line
        parts.pop()
    return None


def parse_definition(
    data: Any,
    *,
    file: str = "<definition>",
    text: str | None = None,
    reference_time: datetime | None = None,
) -> ProgramDefinition:
    """Validate already-parsed YAML data; raise :class:`DefinitionError` with every problem."""
    index = _line_index(text) if text is not None else {}
    if not isinstance(data, dict):
        raise DefinitionError(
            file,
            [Problem("(top level)", "the file is not a mapping of fields", "start with `id: ...`")],
        )
    timezone = data.get("timezone") or DEFAULT_TIMEZONE
    try:
        ZoneInfo(str(timezone))
    except (ZoneInfoNotFoundError, ValueError):
        timezone = DEFAULT_TIMEZONE  # the schema reports the bad name itself
    # Whole seconds keep relative dates (+PT5M) readable in emails and the UI.
    reference = (reference_time or datetime.now(UTC)).replace(microsecond=0)
    context = {"timezone": timezone, "reference_time": reference}
    try:
        definition = ProgramDefinition.model_validate(data, context=context)
    except ValidationError as error:
        problems = []
        for e in error.errors(include_url=False):
            field = _field_path(e["loc"])
            message = e["msg"].removeprefix("Value error, ")
            if e["type"] != "missing" and "input" in e and not isinstance(e["input"], dict | list):
                message += f" (got {e['input']!r})"
            fix = _FIXES.get(e["type"], "correct the value")
            if e["type"] == "extra_forbidden" and e["loc"]:
                close = difflib.get_close_matches(str(e["loc"][-1]), _field_names(), n=1)
                if close:
                    fix = f"did you mean {close[0]!r}? Otherwise remove it"
            problems.append(Problem(field, message, fix, _line_for(index, field)))
        raise DefinitionError(file, problems) from None
    problems = [
        Problem(p.field, p.problem, p.fix, _line_for(index, p.field))
        for p in consistency_problems(definition)
    ]
    if problems:
        raise DefinitionError(file, problems)
    return definition


def load_definition(
    path: str | Path, *, reference_time: datetime | None = None
) -> ProgramDefinition:
    """Read and validate one definition file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DefinitionError(
            str(path), [Problem("(file)", "the file does not exist", "check the path")]
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise DefinitionError(
            str(path), [Problem("(file)", f"cannot be read ({error})", "save it as UTF-8 text")]
        ) from None
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(error, "problem", None) or str(error)
        raise DefinitionError(
            str(path),
            [
                Problem(
                    "(syntax)", f"not valid YAML: {reason}", "fix the indentation or quoting", line
                )
            ],
        ) from None
    return parse_definition(data, file=str(path), text=text, reference_time=reference_time)
