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

A definition file is read as hostile input: the file's size, its nesting and its
aliases are capped before anything is built from it, duplicate keys are refused,
and every text, list and number has a limit (``mentorflow.limits``). Those input
checks apply to what HR writes (:func:`load_definition`, :func:`parse_definition`);
a definition read back from the database or a workflow's history was checked when
its program started, and is read as it was then.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cache, lru_cache
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
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from mentorflow import limits

DEFAULT_TIMEZONE = "Europe/Stockholm"


# --- Building blocks -------------------------------------------------------------------------


def _from_file(info: ValidationInfo) -> bool:
    """Whether the data is what HR wrote (the input checks apply), not a stored definition."""
    return bool((info.context or {}).get("from_file"))


SECOND = timedelta(seconds=1)
LONGEST_DURATION = timedelta(days=3660)
"""Ten years: a program, a reminder or a retention period longer than that is a typo, and
a date that far out is where arithmetic on dates would overflow."""
FIRST_YEAR, LAST_YEAR = 2000, 2199

_ISO_DURATION = re.compile(
    r"P(?:(?P<years>\d+)Y)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?"
)
_DURATION_EXAMPLE = "such as P7D, PT12H or PT30M"


def parse_duration(text: str) -> timedelta:
    """An ISO 8601 duration of whole seconds (``P2W``, ``P1DT12H``, ``PT30M``); a year is
    365 days. Months are refused (``P1M`` is too easily meant as ``PT1M``), and so are
    fractions, signs and anything pydantic would also read (``3600``, ``1 day``)."""
    text = text.strip()
    match = _ISO_DURATION.fullmatch(text)
    if match is None or text in ("P", "PT"):
        if re.fullmatch(r"P(?:\d+Y)?\d+M.*", text):
            raise PydanticCustomError(
                "duration_months",
                "a month has no fixed length",
            )
        if re.search(r"\d[.,]\d", text):
            raise PydanticCustomError("duration_fraction", "durations are whole seconds")
        raise PydanticCustomError("duration_format", "is not an ISO 8601 duration")
    parts = {name: int(value) for name, value in match.groupdict().items() if value}
    if any(len(str(value)) > 6 for value in parts.values()):
        raise PydanticCustomError("duration_too_long", "longer than ten years")
    return timedelta(
        days=parts.get("years", 0) * 365 + parts.get("weeks", 0) * 7 + parts.get("days", 0),
        hours=parts.get("hours", 0),
        minutes=parts.get("minutes", 0),
        seconds=parts.get("seconds", 0),
    )


@dataclass(frozen=True)
class _Checked:
    """An after-validator for what HR writes, that also tells the JSON Schema what it
    checks (``mentorflow schema``), so an editor can flag it as HR types."""

    check: Callable[[Any, ValidationInfo], Any]
    schema: tuple[tuple[str, Any], ...] = ()

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.with_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {**handler(schema), **dict(self.schema)}


def _duration(minimum: timedelta, *, also: tuple[str, ...] = ()) -> BeforeValidator:
    """Read a duration HR wrote: an ISO 8601 string (never a bare number: YAML's ``1`` or
    ``true`` would otherwise be a second), whole seconds, at least ``minimum``, at most
    ten years. ``also``: words allowed besides a duration (``monthly``)."""

    def parse(value: Any, info: ValidationInfo) -> Any:
        if not _from_file(info) or isinstance(value, timedelta) or value in also:
            return value
        if not isinstance(value, str):
            raise PydanticCustomError("duration_type", "is not a duration")
        duration = parse_duration(value)
        if duration < minimum:
            raise PydanticCustomError(
                "duration_too_short",
                "is shorter than the least this field takes, {minimum}",
                {"minimum": _iso(minimum)},
            )
        if duration > LONGEST_DURATION:
            raise PydanticCustomError("duration_too_long", "longer than ten years")
        return duration

    return BeforeValidator(parse)


def _iso(duration: timedelta) -> str:
    seconds = int(duration.total_seconds())
    if seconds % 86400 == 0:
        return f"P{seconds // 86400}D"
    if seconds % 3600 == 0:
        return f"PT{seconds // 3600}H"
    if seconds % 60 == 0:
        return f"PT{seconds // 60}M"
    return f"PT{seconds}S"


def _resolve_datetime(value: Any, info: ValidationInfo) -> Any:
    """Turn ``+PT5M`` into a time relative to the reference moment in the context."""
    if isinstance(value, str) and value.strip().startswith("+"):
        context = info.context or {}
        reference: datetime = context.get("reference_time") or datetime.now(UTC)
        offset = parse_duration(value.strip()[1:])
        if offset > LONGEST_DURATION:
            raise PydanticCustomError("duration_too_long", "longer than ten years")
        return reference + offset
    return value


def _localize(value: datetime, info: ValidationInfo) -> datetime:
    """Attach the definition's timezone to a date written without an offset."""
    if value.tzinfo is None:
        context = info.context or {}
        value = value.replace(tzinfo=ZoneInfo(context.get("timezone") or DEFAULT_TIMEZONE))
    if _from_file(info) and not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise PydanticCustomError(
            "date_range",
            "the year {year} is outside the years a program can have ({first}-{last})",
            {"year": str(value.year), "first": str(FIRST_YEAR), "last": str(LAST_YEAR)},
        )
    return value


ProgramDatetime = Annotated[datetime, BeforeValidator(_resolve_datetime), AfterValidator(_localize)]
"""A timezone-aware moment; naive values are local time in the program's timezone."""


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be a positive duration, such as P7D or PT30M")
    return value


Duration = Annotated[timedelta, _duration(SECOND), AfterValidator(_positive)]
"""A positive ISO 8601 duration: ``P7D`` (7 days), ``PT30M`` (30 minutes), ``P2W``."""

# The least some durations take. They leave room for the demo and the tests, which run
# a whole program in minutes, and refuse what would flood people (a check-in every
# second) or purge a program's data before its report is read.
CADENCE_MINIMUM = timedelta(seconds=10)
RETENTION_MINIMUM = timedelta(hours=1)
CadenceDuration = Annotated[timedelta, _duration(CADENCE_MINIMUM), AfterValidator(_positive)]
RetentionDuration = Annotated[timedelta, _duration(RETENTION_MINIMUM), AfterValidator(_positive)]

SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}$"
Slug = Annotated[str, Field(pattern=SLUG_PATTERN)]
"""Lowercase letters, digits and dashes: ids that may appear in workflow ids and URLs."""


def is_slug(value: str) -> bool:
    """Whether ``value`` could be an id (a program's, say) at all."""
    return re.match(SLUG_PATTERN, value) is not None and "\n" not in value


def _short(value: Any, width: int = 60) -> str:
    """``repr(value)``, cut to ``width`` characters: messages quote what they refuse."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _text(limit: int, *, multiline: bool = False, required: bool = False) -> _Checked:
    """Text HR wrote: at most ``limit`` characters, no control or text-direction
    characters (line breaks only in ``multiline`` text), not blank when ``required``."""

    def check(value: str, info: ValidationInfo) -> str:
        if not _from_file(info):
            return value
        if len(value) > limit:
            raise PydanticCustomError(
                "text_too_long",
                "is {length} characters long; at most {limit} are allowed",
                {"length": f"{len(value):,}", "limit": f"{limit:,}"},
            )
        bad = limits.unsafe_character(value, multiline=multiline)
        if bad is not None:
            raise PydanticCustomError(
                "text_characters",
                "contains the control or text-direction character {character}",
                {"character": bad},
            )
        if required and not value.strip():
            raise PydanticCustomError("text_blank", "is blank")
        return value

    # Blank is "no character but spaces": a pattern is searched for, not matched whole.
    return _Checked(check, (("maxLength", limit), *((("pattern", r"\S"),) if required else ())))


def _at_most(limit: int) -> _Checked:
    """A list HR wrote holds at most ``limit`` entries."""

    def check(value: list[Any], info: ValidationInfo) -> list[Any]:
        if _from_file(info) and len(value) > limit:
            raise PydanticCustomError(
                "too_many",
                "has {count} entries; at most {limit} are allowed",
                {"count": f"{len(value):,}", "limit": f"{limit:,}"},
            )
        return value

    return _Checked(check, (("maxItems", limit),))


def _between(low: float, high: float) -> _Checked:
    """A number HR wrote lies within [low, high]."""

    def check(value: float, info: ValidationInfo) -> float:
        if _from_file(info) and not low <= value <= high:
            raise PydanticCustomError(
                "number_range",
                "is outside {low} to {high}",
                {"low": f"{low:g}", "high": f"{high:g}"},
            )
        return value

    return _Checked(check, (("minimum", low), ("maximum", high)))


def _web_address(value: str | None, info: ValidationInfo) -> str | None:
    # It becomes a link in emails and calendar entries: only the web's own schemes.
    if _from_file(info) and value is not None and not re.match(r"https?://\S", value):
        raise PydanticCustomError("web_address", "is not a web address")
    return value


Name = Annotated[str, Field(min_length=1), _text(limits.NAME_LIMIT, required=True)]
"""A name or title: one line, it goes into email subjects."""
Line = Annotated[str, _text(limits.NAME_LIMIT)]
"""A short line: a phone number, a place, a choice."""
Paragraph = Annotated[str, _text(limits.TEXT_LIMIT, multiline=True)]
"""A sentence or a paragraph: a question, an eligibility statement, a note."""
LongText = Annotated[str, _text(limits.DESCRIPTION_LIMIT, multiline=True)]
"""The longest texts: the program's description, a profile's, the announcement."""
WebAddress = Annotated[
    str, _text(limits.TEXT_LIMIT), _Checked(_web_address, (("pattern", r"^https?://\S"),))
]


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
    name: Name
    email: EmailStr
    phone: Line | None = None
    role: Line | None = None


class Organisation(_Model):
    id: Slug
    name: Name
    hr_contacts: Annotated[list[Contact], Field(min_length=1), _at_most(20)]
    is_organiser: bool = False


class Question(_Model):
    id: Slug
    text: Annotated[Paragraph, Field(min_length=1)]
    kind: Literal["text", "number", "choice", "multi_choice", "scale", "yes_no"] = "text"
    options: Annotated[list[Line], _at_most(50)] = Field(default_factory=list)
    scale_min: Annotated[int, _between(-100, 100)] = 1
    scale_max: Annotated[int, _between(-100, 100)] = 5
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
    title: Name
    description: LongText = ""
    eligibility: Annotated[list[Paragraph], _at_most(20)] = Field(
        default_factory=list,
        description="Statements the applicant confirms, such as 'I am a permanent employee'.",
    )
    questions: Annotated[list[Question], _at_most(50)] = Field(default_factory=list)


Reminders = Annotated[list[Duration], _at_most(10)]


class ApplicationWindow(_Model):
    opens: ProgramDatetime
    deadline: ProgramDatetime
    reminders_before_deadline: Reminders = Field(default_factory=list)
    form_note: Paragraph = ""


class Announcement(_Model):
    """Who is told that the application window is open."""

    recipients: Annotated[list[EmailStr], _at_most(1000)] = Field(default_factory=list)
    message: LongText = ""


class ManagerApproval(_Model):
    required: bool = True
    answer_by: ProgramDatetime | None = None
    reminders_before_answer_by: Reminders = Field(default_factory=list)
    on_silence: SilencePolicy = SilencePolicy.DECLINE


class CapacityRule(_Model):
    organisation: Slug | Literal["*"] = "*"
    profile: Slug
    max_participants: Annotated[int, Field(ge=0), _between(0, 100_000)]


class Capacity(_Model):
    decision_by: ProgramDatetime | None = None
    reminders_before_decision: Reminders = Field(default_factory=list)
    when_undecided: UndecidedPolicy = UndecidedPolicy.WAITLIST_ALL
    rules: Annotated[list[CapacityRule], _at_most(1000)] = Field(default_factory=list)


class MatchingCriterion(_Model):
    name: Literal["shared_interests", "goals", "languages", "location", "availability", "themes"]
    weight: Annotated[float, Field(gt=0), _between(0, 1000)] = 1.0
    question: Slug | None = Field(None, description="The application question it reads.")


class MatchingRules(_Model):
    not_same_reporting_line: bool = True
    not_same_department: bool = False
    not_same_organisation: bool = False
    min_seniority_gap_years: Annotated[int, Field(ge=0), _between(0, 60)] | None = None
    mentor_capacity: Annotated[int, Field(ge=1), _between(1, 50)] = 1


class Matching(_Model):
    criteria: Annotated[list[MatchingCriterion], _at_most(20)] = Field(default_factory=list)
    hard_rules: MatchingRules = MatchingRules()
    fairness: bool = False
    hr_review: bool = True
    seniority_question: Slug | None = Field(
        None,
        description="The application question whose answer is years of work experience;"
        " needed by hard_rules.min_seniority_gap_years.",
    )
    introduction: Paragraph = Field(
        "", description="How a new pair gets started, told to both in their introduction."
    )


class Event(_Model):
    """A joint event on a fixed date: the kick-off or an inspiration session."""

    id: Slug
    title: Name
    starts: ProgramDatetime
    duration: Duration = timedelta(hours=2)
    place: Line | None = None
    online_url: WebAddress | None = None
    description: Paragraph = ""
    reminders_before: Reminders = Field(default_factory=list)


class CadenceStep(_Model):
    """Meet ``every`` so often, ``for`` so long (the last step lasts until the end)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    # One validator for both forms, so a wrong value gets one message, not one per form.
    every: Annotated[
        Annotated[timedelta, AfterValidator(_positive)] | Literal["monthly"],
        _duration(CADENCE_MINIMUM, also=("monthly",)),
    ]
    for_: CadenceDuration | None = Field(None, alias="for")


class Meetings(_Model):
    cadence: Annotated[list[CadenceStep], Field(min_length=1), _at_most(20)]
    length: Duration = timedelta(minutes=90)
    check_ins: bool = True
    stalled_after: Duration | None = Field(
        None, description="A pair that has not met for this long is flagged to HR."
    )
    midpoint_pulse: bool = False


class Evaluation(_Model):
    opens: ProgramDatetime | None = None
    closes: ProgramDatetime | None = None
    reminders_before_close: Reminders = Field(default_factory=list)
    questions: Annotated[list[Question], _at_most(50)] = Field(default_factory=list)


class Schedule(_Model):
    start: ProgramDatetime
    end: ProgramDatetime
    kickoff: Event | None = None
    sessions: Annotated[list[Event], _at_most(100)] = Field(default_factory=list)


class Cost(_Model):
    per_person: Annotated[float, Field(ge=0), _between(0, 10_000_000)]
    currency: str = Field("SEK", pattern=r"^[A-Z]{3}$")
    note: Paragraph = ""


class Retention(_Model):
    personal_data_after_end: RetentionDuration = timedelta(days=365)


class ProgramDefinition(_Model):
    """One cohort of one mentorship program, as HR writes it."""

    id: Slug = Field(description="Stable id of the cohort; it names the Temporal workflow.")
    name: Name
    description: LongText = ""
    kind: ProgramKind = ProgramKind.REVERSE
    language: Language = Language.SV
    timezone: str = DEFAULT_TIMEZONE
    organisers: Annotated[list[Name], Field(min_length=1), _at_most(50)]
    organisations: Annotated[list[Organisation], Field(min_length=1), _at_most(200)]
    profiles: Annotated[list[Profile], Field(min_length=2), _at_most(20)]
    application: ApplicationWindow
    announcement: Announcement = Announcement()
    approval: ManagerApproval = ManagerApproval()
    capacity: Capacity = Capacity()
    matching: Matching = Matching()
    schedule: Schedule
    meetings: Meetings
    evaluation: Evaluation = Evaluation()
    contacts: Annotated[list[Contact], _at_most(50)] = Field(default_factory=list)
    cost: Cost | None = None
    retention: Retention = Retention()

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        if not _is_timezone(value):
            raise PydanticCustomError("timezone", "unknown timezone")
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


# --- JSON Schema -----------------------------------------------------------------------------

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

# A duration as parse_duration reads it: at least one part; no months, fractions or signs.
DURATION_PATTERN = (
    r"P(?=\d|T\d)(?:\d+Y)?(?:\d+W)?(?:\d+D)?"  # the date part, then the time part
    r"(?:T(?=\d)(?:\d+H)?(?:\d+M)?(?:\d+S)?)?"
)
# A date as pydantic reads it (a date alone is its midnight; T, t, _ or a space before the
# time; seconds and an offset optional), or +<duration> from when the program is started.
DATETIME_PATTERN = (
    r"^(?:\d{4}-\d{2}-\d{2}(?:[Tt _]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?"
    rf"(?:[Zz]|[+-]\d{{2}}:?\d{{2}})?)?|\+{DURATION_PATTERN})$"
)


class _FileSchema(GenerateJsonSchema):
    """Dates and durations as a definition file writes them, not as pydantic's defaults
    (``format: date-time``, which refuses ``2027-04-08 23:59`` and ``+PT5M``)."""

    def datetime_schema(self, schema: core_schema.DatetimeSchema) -> JsonSchemaValue:
        return {
            "type": "string",
            "pattern": DATETIME_PATTERN,
            "description": "A date and time such as 2027-04-08 23:59 (local time in the"
            " program's timezone unless an offset follows), or +PT5M: that long after the"
            " program is started.",
        }

    def timedelta_schema(self, schema: core_schema.TimedeltaSchema) -> JsonSchemaValue:
        return {
            "type": "string",
            "pattern": f"^{DURATION_PATTERN}$",
            "description": f"An ISO 8601 duration {_DURATION_EXAMPLE}; no months (P30D or P4W).",
        }


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a definition file, for editors that check YAML as it is typed
    (``mentorflow schema`` writes it to ``definitions/schema.json``).

    It describes the fields, their types and the limits on each value; the checks that
    need the whole definition (a deadline before the start, a rule naming a known
    profile) are ``mentorflow validate``'s.
    """
    schema = ProgramDefinition.model_json_schema(
        by_alias=True, mode="validation", schema_generator=_FileSchema
    )
    return {"$schema": JSON_SCHEMA_DIALECT, **schema}


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

    # A thousand bad entries make a thousand problems; the first ones show what to fix.
    SHOWN = 50

    def render(self) -> str:
        count = len(self.problems)
        lines = [f"{self.file}: {count} problem{'s' if count != 1 else ''}"]
        lines += [f"  - {problem}" for problem in self.problems[: self.SHOWN]]
        if count > self.SHOWN:
            lines.append(f"  … and {count - self.SHOWN} more like them")
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
    for i, profile in enumerate(d.profiles):
        for duplicate in _duplicates(q.id for q in profile.questions):
            yield Problem(
                f"profiles[{i}].questions",
                f"question id {duplicate!r} is used twice in profile {profile.id!r}",
                "give each question of a profile its own id",
            )
    for duplicate in _duplicates(q.id for q in d.evaluation.questions):
        yield Problem(
            "evaluation.questions",
            f"question id {duplicate!r} is used twice",
            "give each evaluation question its own id",
        )
    names = {_folded(o.name) for o in d.organisations} | {o.id for o in d.organisations}
    for i, organiser in enumerate(d.organisers):
        if _folded(organiser) not in names:
            yield Problem(
                f"organisers[{i}]",
                f"{_short(organiser)} is not one of the organisations",
                "write the name (or id) of an organisation listed under organisations:"
                f" {', '.join(repr(o.name) for o in d.organisations[:5])}",
            )
    pairs = [(r.organisation, r.profile) for r in cap.rules]
    for i, pair in enumerate(pairs):
        if pair in pairs[:i]:
            yield Problem(
                f"capacity.rules[{i}]",
                f"a second rule for organisation {pair[0]!r} and profile {pair[1]!r}",
                f"keep one rule per organisation and profile (the first is"
                f" capacity.rules[{pairs.index(pair)}])",
            )
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
    for i, step in enumerate(meetings.cadence):
        if isinstance(step.every, timedelta) and step.for_ is not None and step.for_ < step.every:
            yield Problem(
                f"meetings.cadence[{i}].for",
                f"the step lasts {_span(step.for_)}, less than one interval ({_span(step.every)})",
                "make for at least as long as every",
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


def _folded(name: str) -> str:
    return " ".join(name.split()).casefold()


def _is_timezone(name: str) -> bool:
    if len(name) > 64:
        return False  # the longest IANA name is 32; a longer one is not a file name
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _duplicates(values: Iterator[str]) -> list[str]:
    seen: set[str] = set()
    repeated: list[str] = []
    for value in values:
        if value in seen and value not in repeated:
            repeated.append(value)
        seen.add(value)
    return repeated


# --- Loading ---------------------------------------------------------------------------------

Path_ = tuple[int | str, ...]


class _Refused(Exception):
    """A file refused while it is read, before anything is built from it."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


class _Loader(yaml.SafeLoader):
    """A YAML loader for files nobody vouches for.

    It leaves timestamps as strings, so the schema decides what they mean: PyYAML
    would otherwise turn ``2027-04-08 23:59`` into a naive datetime and an
    offset-carrying one into UTC, losing the local time the author wrote. And it
    stops at ``DEFINITION_DEPTH`` levels while it composes: the composer recurses
    once per level, so 5,000 nested brackets were a RecursionError.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0
        self.nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if self.depth >= limits.DEFINITION_DEPTH:
            raise _Refused(_too_deep(event.start_mark.line + 1))
        # Counted as they are read, so a file of a hundred thousand values stops early.
        self.nodes += 1
        if self.nodes > limits.DEFINITION_NODES:
            raise _Refused(_too_many(event.start_mark.line + 1))
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


_Loader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

_MERGE = "tag:yaml.org,2002:merge"


def _too_deep(line: int | None) -> Problem:
    return Problem(
        "(syntax)",
        f"values are nested more than {limits.DEFINITION_DEPTH} levels deep",
        "check the brackets and the indentation; a definition nests about eight levels",
        line,
    )


def _too_many(line: int | None) -> Problem:
    return Problem(
        "(syntax)",
        f"the file holds more than {limits.DEFINITION_NODES:,} values (an alias, *name,"
        " counts as the values it stands for)",
        "a definition has a few hundred values: write them out instead of aliasing aliases,"
        " and check that this is the right file",
        line,
    )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_expansion(root: yaml.Node) -> None:
    """Refuse aliases that expand past ``DEFINITION_NODES`` values or nest too deep.

    An alias is the node it names, shared: nothing is copied while the file is
    read, but everything downstream (the schema, the line index) walks the
    values as if written out, so a "billion laughs" file of a few lines walked
    a thousand million values. Counted once per node here, so the count is cheap.
    """
    sizes: dict[int, tuple[int, int]] = {}  # node -> (values, levels) when written out
    open_: set[int] = set()

    def measure(node: yaml.Node, depth: int) -> tuple[int, int]:
        line = node.start_mark.line + 1
        known = sizes.get(id(node))
        if known is not None:
            if depth + known[1] - 1 > limits.DEFINITION_DEPTH:
                raise _Refused(_too_deep(line))
            return known
        if depth > limits.DEFINITION_DEPTH:
            raise _Refused(_too_deep(line))
        if id(node) in open_:
            raise _Refused(
                Problem(
                    "(syntax)",
                    "an alias names a value that contains the alias itself",
                    "write the value out instead of the alias",
                    line,
                )
            )
        open_.add(id(node))
        total, levels = 1, 0
        for child in _children(node):
            count, height = measure(child, depth + 1)
            total += count
            levels = max(levels, height)
            if total > limits.DEFINITION_NODES:
                raise _Refused(_too_many(line))
        open_.discard(id(node))
        sizes[id(node)] = (total, levels + 1)
        return sizes[id(node)]

    measure(root, 1)


def _walk(root: yaml.Node) -> tuple[dict[Path_, int], list[Problem]]:
    """Each YAML path's 1-based line, so problems can point into the file; and every
    key given twice in one mapping (YAML would keep the last one silently)."""
    index: dict[Path_, int] = {}
    problems: list[Problem] = []
    checked: set[int] = set()

    def walk(node: yaml.Node, path: Path_) -> None:
        index.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], int] = {}
            for key, value in node.value:
                # A key that is a list or a mapping is the constructor's to refuse.
                scalar = isinstance(key, yaml.ScalarNode)
                child = (*path, str(key.value) if scalar else "?")
                line = key.start_mark.line + 1
                ident = (key.tag, key.value) if scalar else ("?", str(line))
                if scalar and key.tag != _MERGE:
                    seen = first.get(ident)
                    if seen is None:
                        first[ident] = line
                    elif id(node) not in checked:
                        problems.append(
                            Problem(
                                _field_path(child),
                                f"{_short(key.value)} is given twice, on "
                                + (f"lines {seen} and {line}" if seen != line else f"line {line}")
                                + "; YAML would use the last one silently",
                                "keep one of them",
                                line,
                            )
                        )
                walk(value, child)
                if first.get(ident, line) == line:
                    index[child] = line  # the key's line, not its value's
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*path, i))
        checked.add(id(node))

    walk(root, ())
    return index, problems


def _yaml_problem(error: yaml.YAMLError, text: str) -> Problem:
    """A YAML error as a problem whose fix fits it."""
    if isinstance(error, yaml.reader.ReaderError):
        character = error.character
        code = character if isinstance(character, int) else ord(str(character)[:1] or " ")
        return Problem(
            "(syntax)",
            f"the file holds the control character U+{code:04X}, which YAML does not allow",
            "remove it; a definition is plain UTF-8 text",
            text[: int(error.position)].count("\n") + 1,
        )
    mark = getattr(error, "problem_mark", None)
    line = mark.line + 1 if mark is not None else None
    reason = str(getattr(error, "problem", None) or error)
    fix = "fix the indentation or quoting"
    context = str(getattr(error, "context", None) or "")
    if isinstance(error, yaml.constructor.ConstructorError):
        tag = re.search(r"constructor for the tag '([^']*)'", reason)
        if tag is not None:
            reason = f"the tag {tag.group(1).replace('tag:yaml.org,2002:', '!!')} is not allowed"
            fix = "remove the tag: a definition holds only text, numbers, lists and mappings"
        elif "merging" in reason or "merging" in context:
            fix = "merge a mapping (<<: *name), or remove the << key"
        elif "base64" in reason:
            fix = "remove the !!binary tag: a definition holds text"
        else:
            fix = "write keys as plain text and values as text, numbers, lists or mappings"
    elif isinstance(error, yaml.composer.ComposerError):
        if "undefined alias" in reason:
            fix = "define the anchor (&name) before its alias (*name), or write the value out"
        elif "duplicate anchor" in context:
            reason = context.replace("; first occurrence", "")
            fix = "give each anchor (&name) its own name"
        else:
            fix = "keep one document in the file (no second ---)"
    return Problem("(syntax)", f"not valid YAML: {reason}", fix, line)


def _read_yaml(text: str) -> tuple[Any, dict[Path_, int], list[Problem]]:
    """The file's data, its line index and its duplicate keys; :class:`_Refused` when it
    cannot be read safely, or is not YAML."""
    loader: _Loader | None = None
    try:
        loader = _Loader(text)  # it refuses control characters here, before parsing
        root = loader.get_single_node()
        if root is None:
            return None, {}, []
        _check_expansion(root)
        index, duplicates = _walk(root)
        data = loader.construct_document(root)
    except yaml.YAMLError as error:
        raise _Refused(_yaml_problem(error, text)) from None
    except (ValueError, OverflowError) as error:
        # Python refuses to read a number of more than 4,300 digits (CVE-2020-10735).
        reason = str(error).split(":")[0] if "digits" in str(error) else _short(str(error))
        raise _Refused(
            Problem("(syntax)", f"a value cannot be read ({reason})", "shorten the number")
        ) from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, index, duplicates


_TEXT_FIX = "shorten it"
_DURATION_FIX = f"write an ISO 8601 duration {_DURATION_EXAMPLE}"
_FIXES = {
    "missing": "add this field",
    "extra_forbidden": "remove it, or check its spelling against the documented fields",
    "datetime_from_date_parsing": "write a date and time such as 2027-04-08 23:59, or +PT5M",
    "datetime_parsing": "write a date and time such as 2027-04-08 23:59, or +PT5M",
    "datetime_type": "write a date and time such as 2027-04-08 23:59, or +PT5M",
    "time_delta_parsing": _DURATION_FIX,
    "time_delta_type": _DURATION_FIX,
    "duration_type": f"{_DURATION_FIX} (a bare number is not one: seconds or days?)",
    "duration_format": _DURATION_FIX,
    "duration_months": "write days or weeks (P30D, P4W), or PT1M for a minute",
    "duration_fraction": "round it to whole seconds, e.g. PT1S",
    "duration_too_short": "use a longer duration",
    "duration_too_long": "use at most P3650D, or check the units (PT = time: PT5M is 5 minutes)",
    "date_range": "check the year",
    "string_pattern_mismatch": "use lowercase letters, digits and dashes (2-63 characters)",
    "enum": "use one of the allowed values",
    "literal_error": "use one of the allowed values",
    "value_error": "correct the value",
    "too_short": "add at least one entry",
    "too_many": "remove entries, or split the program",
    "string_too_short": "write a value",
    "string_type": "write text (put it in quotes if it looks like a number or yes/no)",
    "text_blank": "write a value",
    "text_too_long": _TEXT_FIX,
    "text_characters": "remove it (text copied from documents can carry invisible characters)",
    "number_range": "use a number within the range",
    "web_address": "write an address starting with https://",
    "bool_parsing": "write true or false",
    "int_parsing": "write a whole number",
    "int_from_float": "write a whole number",
    "float_parsing": "write a number",
    "greater_than": "use a larger number",
    "greater_than_equal": "use a larger number",
    "list_type": "write a list: [a, b], or one '- item' per line",
    "model_type": "write its fields, one 'key: value' per line",
    "model_attributes_type": "write its fields, one 'key: value' per line",
    "timezone": "use a name of the IANA time zone database, such as Europe/Stockholm",
    "string_unicode": "write the character itself, not an escaped half of one (\\ud800)",
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


def _line_index(text: str) -> dict[Path_, int]:
    """Map each YAML path to its 1-based line (empty when the text cannot be read)."""
    try:
        return _read_yaml(text)[1]
    except _Refused:
        return {}


def _line_for(index: Mapping[Path_, int], field: str) -> int | None:
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
    return _validated(data, file, index, reference_time)


def _validated(
    data: Any, file: str, index: Mapping[Path_, int], reference_time: datetime | None
) -> ProgramDefinition:
    if not isinstance(data, dict):
        raise DefinitionError(
            file,
            [Problem("(top level)", "the file is not a mapping of fields", "start with `id: ...`")],
        )
    timezone = data.get("timezone") or DEFAULT_TIMEZONE
    if not isinstance(timezone, str) or not _is_timezone(timezone):
        timezone = DEFAULT_TIMEZONE  # the schema reports the bad name itself
    # Whole seconds keep relative dates (+PT5M) readable in emails and the UI.
    reference = (reference_time or datetime.now(UTC)).replace(microsecond=0)
    context = {"timezone": timezone, "reference_time": reference, "from_file": True}
    try:
        definition = ProgramDefinition.model_validate(data, context=context)
    except ValidationError as error:
        problems = []
        for e in error.errors(include_url=False):
            field = _field_path(e["loc"])
            message = e["msg"].removeprefix("Value error, ")
            if (
                e["type"] not in ("missing", "text_too_long")
                and "input" in e
                and not isinstance(e["input"], dict | list)
            ):
                message += f" (got {_short(e['input'])})"
            fix = _FIXES.get(e["type"], "correct the value")
            last = e["loc"][-1] if e["loc"] else ""
            if e["type"] == "extra_forbidden" and isinstance(last, str) and len(last) <= 64:
                close = difflib.get_close_matches(last, _field_names(), n=1)
                if close:
                    fix = f"did you mean {close[0]!r}? Otherwise remove it"
            problems.append(Problem(field, message, fix, _line_for(index, field)))
        raise DefinitionError(file, problems) from None
    problems = [
        Problem(p.field, p.problem, p.fix, _line_for(index, p.field))
        for p in consistency_problems(definition)
    ]
    size = len(json.dumps(definition.model_dump(mode="json", by_alias=True)).encode())
    if size > limits.DEFINITION_PAYLOAD_BYTES:
        problems.append(
            Problem(
                "(file)",
                f"the program's workflow would carry {size / 1024:,.0f} KB of definition; at"
                f" most {limits.DEFINITION_PAYLOAD_BYTES // 1024} KB fit beside its"
                " applications in one Temporal payload (2 MB)",
                "shorten the longest texts (description, messages) or list fewer entries",
            )
        )
    if problems:
        raise DefinitionError(file, problems)
    return definition


def load_definition(
    path: str | Path, *, reference_time: datetime | None = None
) -> ProgramDefinition:
    """Read and validate one definition file."""
    path = Path(path)
    return definition_from_text(_read_file(path), file=str(path), reference_time=reference_time)


def stored_definition(data: Mapping[str, Any]) -> ProgramDefinition:
    """A program's definition as the database stores it (its JSON), validated.

    Every page behind a link and every email batch reads it, and validating one takes
    a millisecond or more: each content is validated once per process and the result
    shared (a definition is frozen). A changed definition is another content.
    """
    return _stored(json.dumps(data, sort_keys=True, separators=(",", ":")))


@lru_cache(maxsize=64)
def _stored(text: str) -> ProgramDefinition:
    return ProgramDefinition.model_validate(json.loads(text))


def definition_from_text(
    text: str, *, file: str = "<definition>", reference_time: datetime | None = None
) -> ProgramDefinition:
    """Validate a definition's YAML text; :class:`DefinitionError` with every problem."""
    if len(text.encode("utf-8", "surrogatepass")) > limits.DEFINITION_FILE_BYTES:
        raise DefinitionError(file, [_too_large()])
    try:
        data, index, duplicates = _read_yaml(text)
    except _Refused as refused:
        raise DefinitionError(file, [refused.problem]) from None
    if duplicates:
        raise DefinitionError(file, duplicates)
    return _validated(data, file, index, reference_time)


def _read_file(path: Path) -> str:
    """The file's text; :class:`DefinitionError` with the right fix when it has none."""

    def refuse(problem: str, fix: str) -> DefinitionError:
        return DefinitionError(str(path), [Problem("(file)", problem, fix)])

    try:
        if path.is_dir():
            raise refuse("is a folder, not a file", "give the path of a definition file (.yaml)")
        if path.exists() and not path.is_file():  # a pipe or a device: opening may block
            raise refuse("is not a regular file", "give the path of a definition file (.yaml)")
        with path.open("rb") as handle:
            raw = handle.read(limits.DEFINITION_FILE_BYTES + 1)
    except FileNotFoundError:
        raise refuse("the file does not exist", "check the path") from None
    except PermissionError:
        raise refuse("cannot be read: permission denied", "check the file's permissions") from None
    except (OSError, ValueError) as error:  # ValueError: a NUL in the path
        raise refuse(f"cannot be read ({error})", "check the path") from None
    if len(raw) > limits.DEFINITION_FILE_BYTES:
        raise DefinitionError(str(path), [_too_large()])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise refuse(
            f"is not UTF-8 text (byte 0x{raw[error.start]:02x} at position {error.start})",
            "save it as UTF-8 text",
        ) from None


def _too_large() -> Problem:
    return Problem(
        "(file)",
        f"is larger than {limits.DEFINITION_FILE_BYTES // 1024} KB",
        "shorten it: a definition is usually under 10 KB (is it the right file?)",
    )
