"""The closing evaluation, the report and retention (the purge)."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    Field,
)

from mentorflow.models.email import EmailFacts


class EvaluationEmailInput(BaseModel):
    """The survey (or its reminder) to every participant who has not answered yet."""

    program_id: str
    kind: Literal["invitation", "reminder"]
    reminder_key: str = ""  # with "reminder": which reminder, for the email's business key
    facts: EmailFacts
    closes: AwareDatetime
    time_left: timedelta | None = None


class EvaluationEmailResult(BaseModel):
    invited: int  # participants the survey is for
    sent: int
    already_sent: int
    already_answered: int


class ReportInput(BaseModel):
    program_id: str
    at: AwareDatetime


class PurgeInput(BaseModel):
    program_id: str
    at: AwareDatetime
    reason: str = ""


class PurgeResult(BaseModel):
    """What a purge removed (counts only) and the report it kept."""

    applications: int
    evaluation_responses: int
    emails: int
    events_scrubbed: int


class PurgeRequest(BaseModel):
    """HR asks to purge a finished program's personal data now, before its retention date."""

    requested_by: str = Field("", max_length=200)
    reason: str = Field("", max_length=500)
