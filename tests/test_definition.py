"""Program definitions: the shipped files, the schema, and the messages for broken ones."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from mentorflow.definition import (
    DefinitionError,
    ProgramDefinition,
    load_definition,
    parse_definition,
    parse_duration,
)

DEFINITIONS = Path(__file__).parent.parent / "definitions"
DEMO = DEFINITIONS / "demo.yaml"


def write(tmp_path: Path, text: str, name: str = "program.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def demo_data() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load(DEMO.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def problems_of(data: object, reference_time: datetime | None = None) -> list[str]:
    with pytest.raises(DefinitionError) as caught:
        parse_definition(data, file="x.yaml", reference_time=reference_time)
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize("path", sorted(DEFINITIONS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_definitions_are_valid(path: Path) -> None:
    definition = load_definition(path)
    assert definition.application.deadline.tzinfo is not None
    assert (
        definition.application.opens < definition.application.deadline < definition.schedule.start
    )


def test_seed_001_shape() -> None:
    d = load_definition(DEFINITIONS / "cross-agency-2027.yaml")
    assert d.kind == "reverse" and d.language == "sv"
    assert {p.role for p in d.profiles} == {"mentor", "adept"}
    assert all("tillsvidareanställd" in " ".join(p.eligibility) for p in d.profiles)
    assert d.approval.required and d.cost is not None and d.cost.per_person == 5000
    assert len(d.schedule.sessions) >= 2
    # Naive local times are Stockholm time, with daylight saving applied.
    assert d.application.deadline.utcoffset() == timedelta(hours=2)
    assert d.application.opens.utcoffset() == timedelta(hours=1)
    assert d.application.deadline.astimezone(UTC) == datetime(2027, 4, 8, 21, 59, tzinfo=UTC)


def test_seed_000_shape() -> None:
    d = load_definition(DEFINITIONS / "lighting-pilot-2027.yaml")
    assert {o.id for o in d.organisations} == {"fagerhult", "handelskammaren"}
    assert d.schedule.kickoff is not None
    assert timedelta(days=175) < d.schedule.end - d.schedule.start < timedelta(days=190)
    caps = {(r.organisation, r.profile): r.max_participants for r in d.capacity.rules}
    assert caps[("fagerhult", "senior-leader")] == 6


def test_demo_dates_are_minutes_from_the_reference_time() -> None:
    reference = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    d = load_definition(DEMO, reference_time=reference)
    assert d.application.opens == reference + timedelta(seconds=20)
    assert d.application.deadline == reference + timedelta(minutes=4)
    assert d.schedule.end - reference == timedelta(minutes=30)
    assert d.application.reminders_before_deadline == [timedelta(minutes=2), timedelta(minutes=1)]


def test_explicit_timezone_and_offsets() -> None:
    data = demo_data()
    data["timezone"] = "America/New_York"
    data["application"]["opens"] = "2031-03-01 09:00"
    data["application"]["deadline"] = "2031-03-10T12:00:00+00:00"
    data["schedule"]["start"] = "2031-04-01 09:00"
    data["schedule"]["end"] = "2031-09-01 09:00"
    data["approval"]["answer_by"] = "2031-03-15 09:00"
    data["capacity"]["decision_by"] = "2031-03-20 09:00"
    data["schedule"]["kickoff"]["starts"] = "2031-04-02 09:00"
    data["evaluation"] = {}
    d = parse_definition(data)
    assert d.application.opens.tzinfo == ZoneInfo("America/New_York")
    assert d.application.deadline.utcoffset() == timedelta(0)


def test_contradictions_name_field_and_fix(tmp_path: Path) -> None:
    text = (DEFINITIONS / "cross-agency-2027.yaml").read_text(encoding="utf-8")
    text = text.replace("deadline: 2027-04-08 23:59", "deadline: 2027-05-20 23:59")
    text = text.replace(
        "profile: senior-adept, max_participants", "profile: senior, max_participants"
    )
    text = text.replace("starts: 2027-09-14 13:00", "starts: 2027-12-14 13:00")
    path = write(tmp_path, text)
    with pytest.raises(DefinitionError) as caught:
        load_definition(path)
    rendered = caught.value.render()
    assert rendered.startswith(f"{path}: ")
    fields = {p.field for p in caught.value.problems}
    assert "application.deadline" in fields  # after the start
    assert "capacity.rules[1].profile" in fields  # unknown profile
    assert "schedule.sessions[1].starts" in fields  # outside the program
    unknown = next(p for p in caught.value.problems if p.field == "capacity.rules[1].profile")
    assert "senior" in unknown.problem and "senior-adept" in unknown.fix
    outside = next(p for p in caught.value.problems if p.field == "schedule.sessions[1].starts")
    assert outside.line is not None and "starts: 2027-12-14" in text.splitlines()[outside.line - 1]
    assert "Fix:" in rendered


def test_reminder_before_window_opens_is_refused() -> None:
    data = demo_data()
    data["application"]["reminders_before_deadline"] = ["PT10M"]
    problems = problems_of(data)
    assert any("application.reminders_before_deadline[0]" in p for p in problems)
    assert any("falls before the window opens" in p for p in problems)


def test_schema_errors_are_listed_with_fixes() -> None:
    data = demo_data()
    del data["name"]
    data["language"] = "de"
    data["application"]["deadline"] = "next friday"
    data["application"]["dedline"] = "PT4M"
    data["id"] = "Demo Program"
    data["announcement"]["recipients"] = ["not-an-email"]
    problems = problems_of(data)
    joined = "\n".join(problems)
    assert "name: Field required. Fix: add this field" in joined
    assert "language:" in joined and "'sv' or 'en'" in joined
    assert "application.deadline:" in joined and "2027-04-08 23:59" in joined
    assert "application.dedline:" in joined and "did you mean 'deadline'" in joined
    assert "id:" in joined and "lowercase letters" in joined
    assert "announcement.recipients[0]:" in joined


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, "id: x\nname: [unclosed\nkind: reverse\n")
    with pytest.raises(DefinitionError) as caught:
        load_definition(path)
    (problem,) = caught.value.problems
    assert problem.field == "(syntax)" and problem.line is not None


def test_missing_file_and_non_mapping(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="does not exist"):
        load_definition(tmp_path / "nope.yaml")
    with pytest.raises(DefinitionError, match="not a mapping"):
        load_definition(write(tmp_path, "- just\n- a list\n"))


def test_unknown_timezone() -> None:
    data = demo_data()
    data["timezone"] = "Europe/Stockholmm"
    assert any("unknown timezone" in p for p in problems_of(data))


# Any mutation of a valid definition is either accepted or refused with
# DefinitionError: never another exception, never a traceback.
_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-10, max_value=10_000),
    st.text(max_size=12),
    st.sampled_from(["+PT1M", "-P1D", "P7D", "2027-02-30 10:00", "mentor", "*", "monthly", ""]),
    st.lists(st.text(max_size=5), max_size=2),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
)


def _paths(data: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    found = [prefix] if prefix else []
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found += _paths(value, (*prefix, i))
    return found


_DEMO_PATHS = _paths(yaml.safe_load(DEMO.read_text(encoding="utf-8")))


def assert_clear_if_refused(data: Any, path: tuple[object, ...], value: object) -> None:
    """Set ``value`` at ``path`` in ``data``: the definition parses, or every problem
    names its field, what is wrong and the fix (never another exception)."""
    target = data
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    try:
        parse_definition(data)
    except DefinitionError as error:
        assert error.problems
        for problem in error.problems:
            assert problem.field and problem.problem and problem.fix


@settings(max_examples=150, deadline=None)
@given(path=st.sampled_from(_DEMO_PATHS), value=_VALUES)
def test_mutated_definitions_fail_only_with_definition_errors(
    path: tuple[object, ...], value: object
) -> None:
    assert_clear_if_refused(demo_data(), path, value)


def test_a_key_given_twice_is_refused_naming_the_key_and_both_lines(tmp_path: Path) -> None:
    text = DEMO.read_text(encoding="utf-8").replace("language: en", "language: en\nlanguage: sv")
    with pytest.raises(DefinitionError) as caught:
        load_definition(write(tmp_path, text))
    (problem,) = caught.value.problems
    first = text.splitlines().index("language: en") + 1
    assert problem.field == "language" and problem.line == first + 1
    assert f"'language' is given twice, on lines {first} and {first + 1}" in problem.problem


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("P2W", timedelta(weeks=2)),
        ("P1DT12H", timedelta(days=1, hours=12)),
        ("PT30M", timedelta(minutes=30)),
        ("PT90S", timedelta(seconds=90)),
        ("P1Y", timedelta(days=365)),
    ],
)
def test_durations_are_iso_8601_of_whole_seconds(written: str, meant: timedelta) -> None:
    assert parse_duration(written) == meant


@pytest.mark.parametrize(
    ("written", "says"),
    [
        (1, "is not a duration"),
        (True, "is not a duration"),
        (1.5, "is not a duration"),
        ("3600", "is not an ISO 8601 duration"),
        ("1 day", "is not an ISO 8601 duration"),
        ("01:00:00", "is not an ISO 8601 duration"),
        ("-P1D", "is not an ISO 8601 duration"),
        ("PT0.5S", "durations are whole seconds"),
        ("P1M", "a month has no fixed length"),
        ("PT0S", "is shorter than the least this field takes, PT1S"),
        ("P4000D", "longer than ten years"),
    ],
)
def test_a_duration_that_is_not_one_is_refused(written: object, says: str) -> None:
    data = demo_data()
    data["meetings"]["length"] = written
    (problem,) = problems_of(data)
    assert problem.startswith("meetings.length: " + says), problem


def test_each_duration_has_the_minimum_its_field_needs() -> None:
    data = demo_data()
    data["meetings"]["cadence"] = [{"every": "PT9S"}]
    data["retention"]["personal_data_after_end"] = "PT59M"
    problems = problems_of(data)
    assert any(p.startswith("meetings.cadence[0].every: is shorter than") for p in problems)
    assert any("PT10S" in p for p in problems) and any("PT1H" in p for p in problems)


def test_organisers_questions_and_rules_must_add_up() -> None:
    data = demo_data()
    data["organisers"] = ["Demo Company", "demo-company", "Someone Else"]
    data["profiles"][0]["questions"].append({"id": "motivation", "text": "Again?"})
    problems = problems_of(data)
    assert any(p.startswith("organisers[2]: 'Someone Else' is not one of") for p in problems)
    assert not any(p.startswith(("organisers[0]", "organisers[1]")) for p in problems)
    assert any("question id 'motivation' is used twice in profile 'mentor'" in p for p in problems)


def test_a_started_programs_definition_is_read_back_as_it_was_started() -> None:
    """The input checks apply to what HR writes. A definition stored when its program
    started (or in a workflow's history) is read as it was then, even if written before
    a limit existed, so a running program never stops on a newer rule."""
    definition = parse_definition(demo_data())
    older = definition.model_dump(mode="json", by_alias=True)
    older["name"] = "N" * 300  # longer than a definition may now be
    older["meetings"]["cadence"] = [{"every": "PT1S"}]  # a check-in every second
    older["organisers"] = ["Nobody"]
    again = ProgramDefinition.model_validate(older)
    assert again.name == "N" * 300 and again.meetings.cadence[0].every == timedelta(seconds=1)
    with pytest.raises(DefinitionError):
        parse_definition(older)


# The same with every field of the schema present (the defaults and the empty optional
# ones too, which the demo leaves out), so each field's checks meet every kind of value.
_FULL = parse_definition(demo_data()).model_dump(mode="json", by_alias=True)
_FULL_PATHS = _paths(_FULL)


@settings(max_examples=300, deadline=None)
@given(path=st.sampled_from(_FULL_PATHS), value=_VALUES | st.floats() | st.just("P1M"))
def test_every_field_mutated_fails_only_with_definition_errors(
    path: tuple[object, ...], value: object
) -> None:
    assert_clear_if_refused(copy.deepcopy(_FULL), path, value)
