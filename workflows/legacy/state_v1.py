"""The state ``ProgramWorkflowV1`` carried across continue-as-new (frozen with it).

It kept one entry per application and per pair; the thin program keeps a tally.
"""

from __future__ import annotations

from pydantic import (
    AwareDatetime,
    BaseModel,
    Field,
    ValidationInfo,
    field_serializer,
    field_validator,
)

from mentorflow.definition import ProgramDefinition
from mentorflow.models import (
    CalendarEntry,
    DateChange,
    EvaluationProgress,
    MatchingState,
    OrganisationDecision,
    PairEntry,
    ProgramDates,
    ProgramPhase,
    PurgeRequest,
    ReportSummary,
    Selection,
)


class ApplicationEntry(BaseModel):
    organisation_id: str
    profile_id: str
    outcome: str | None = None  # an ApplicationOutcome once the application has one
    selection: Selection | None = None  # HR's capacity decision, once made


class ProgramStateV1(BaseModel):
    """What a program carries across continue-as-new, so its history stays bounded."""

    phase: ProgramPhase
    revision: int
    dates: ProgramDates
    reminders_done: list[str]
    reminders_sent: int
    announced_to: int
    reschedules: int
    applications: dict[str, ApplicationEntry]
    notices: list[DateChange] = Field(default_factory=list)
    decisions: dict[str, OrganisationDecision] = Field(default_factory=dict)
    capacity_requested: bool = False
    matching: MatchingState = Field(default_factory=MatchingState)
    calendar: dict[str, CalendarEntry] = Field(default_factory=dict)
    pairs: dict[str, PairEntry] = Field(default_factory=dict)
    pairs_to_tell: list[str] = Field(default_factory=list)
    evaluation: EvaluationProgress = Field(default_factory=EvaluationProgress)
    report: ReportSummary | None = None
    purge_at: AwareDatetime | None = None
    purge_request: PurgeRequest | None = None

    # Every application's and every pair's entry rides along on each continue-as-new. As
    # objects, 5,000 applicants' entries alone were 543 KB, over Temporal's 512 KB payload
    # warning; as short lists of their fields (trailing defaults left out) half that.
    @field_serializer("applications", "pairs")
    def _compact_entries(
        self, entries: dict[str, ApplicationEntry] | dict[str, PairEntry]
    ) -> dict[str, list[object]]:
        compact = {}
        for key, entry in entries.items():
            fields = _DEFAULTS[type(entry)]
            values = [getattr(entry, name) for name, _ in fields]
            kept = len(values)
            while kept and values[kept - 1] == fields[kept - 1][1]:
                kept -= 1
            compact[key] = values[:kept]
        return compact

    @field_validator("applications", "pairs", mode="before")
    @classmethod
    def _expand_entries(cls, value: object, info: ValidationInfo) -> object:
        """Read the short lists, and the objects of runs that handed over before them."""
        if not isinstance(value, dict):
            return value
        model = ApplicationEntry if info.field_name == "applications" else PairEntry
        names = [name for name, _ in _DEFAULTS[model]]
        return {
            key: dict(zip(names, entry, strict=False)) if isinstance(entry, list) else entry
            for key, entry in value.items()
        }


class ProgramInputV1(BaseModel):
    """What ``ProgramWorkflowV1`` was started with: the definition as it was validated.

    ``state`` is set only when the program continues as new.
    """

    definition: ProgramDefinition
    state: ProgramStateV1 | None = None
    continue_as_new_after: int = Field(
        4_000, ge=100, description="History events after which the program continues as new."
    )


# The fields of the entries ProgramState carries as short lists, in order, with their
# defaults (a required field's is a value no entry has, so it is never left out).
_REQUIRED = object()
_DEFAULTS: dict[type, list[tuple[str, object]]] = {
    model: [
        (name, _REQUIRED if field.is_required() else field.default)
        for name, field in model.model_fields.items()
    ]
    for model in (ApplicationEntry, PairEntry)
}
