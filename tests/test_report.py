"""The report's arithmetic and the evaluation form's checks, without any server (one
test reads its dates from the database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from starlette.datastructures import FormData

from mentorflow import moments
from mentorflow.definition import Question, load_definition
from mentorflow.models import program_dates
from mentorflow.report import (
    FunnelRow,
    ProgramReport,
    QuestionResult,
    build_report,
    question_result,
    report_csv,
    report_html,
)
from mentorflow.store import Store
from mentorflow.web.evaluation import read_answers
from tests.programs import DEMO, record_program
from tests.test_closing import closing_pilot
from tests.test_definition import demo_data, problems_of

RECOMMEND = Question(id="recommend", text="?", kind="scale", scale_min=0, scale_max=10, nps=True)


def test_nps_is_promoters_minus_detractors_in_percent() -> None:
    answers = [{"recommend": v} for v in (10, 9, 9, 8, 7, 6, 0)]
    result = question_result(RECOMMEND, answers)
    assert result.nps == round(100 * (3 - 2) / 7, 1) == 14.3
    assert result.distribution["9"] == 2 and result.distribution["1"] == 0
    assert sum(result.distribution.values()) == result.answered == 7


def test_choices_count_every_option_and_skipped_answers_are_not_answers() -> None:
    themes = Question(id="themes", text="?", kind="multi_choice", options=["A", "B", "C"])
    result = question_result(themes, [{"themes": ["A", "B"]}, {"themes": ["A"]}, {"themes": []}])
    assert result.distribution == {"A": 2, "B": 1, "C": 0} and result.answered == 2
    comment = Question(id="learned", text="?", kind="text", required=False)
    texts = question_result(comment, [{"learned": "b"}, {"learned": ""}, {"learned": "a"}, {}])
    assert texts.comments == ["a", "b"] and texts.answered == 2


def test_a_purge_keeps_the_figures_and_drops_the_free_text() -> None:
    report = ProgramReport(
        program_id="p",
        name="P",
        language="en",
        start=datetime(2027, 1, 1, tzinfo=UTC),
        end=datetime(2027, 6, 1, tzinfo=UTC),
        generated_at=datetime(2027, 6, 2, tzinfo=UTC),
        funnel=[FunnelRow(organisation_id="o", organisation="O", profile_id="m", profile="M",
                          applied=3, matched=2, completed=2)],
        pairs=1,
        meetings_per_pair=[4],
        invited=2,
        responses=1,
        questions=[QuestionResult(id="learned", text="?", kind="text", answered=1,
                                  comments=["Anna was great"])],
        cost=[],
    )  # fmt: skip
    kept = report.without_comments()
    assert kept.questions[0].comments == [] and kept.comments_removed
    assert report_csv(kept) == report_csv(report)
    assert "Anna" not in report_csv(report)  # the CSV holds figures only
    assert report.summary().response_rate == 0.5


def test_the_evaluation_form_names_each_problem_in_the_program_language() -> None:
    definition = closing_pilot()
    form = FormData([("overall", "7"), ("recommend", "ten"), ("next", "maybe"), ("learned", "")])
    answers, problems, given = read_answers(definition, form)
    assert answers == {}
    assert problems == {
        "overall": "Välj ett värde från 1 till 5.",
        "recommend": "Välj ett värde från 0 till 10.",
        "next": "Välj ett alternativ.",
    }
    assert given["recommend"] == "ten"
    good = FormData(
        [("overall", "4"), ("recommend", "9"), ("next", "yes"), ("learned", " Mycket ")]
    )
    answers, problems, _ = read_answers(definition, good)
    assert problems == {}
    assert answers == {"overall": 4, "recommend": 9, "next": "yes", "learned": "Mycket"}


def test_an_nps_question_must_be_a_zero_to_ten_scale() -> None:
    data = demo_data()
    data["evaluation"]["questions"] = [
        {"id": "recommend", "text": "Recommend?", "kind": "scale", "nps": True}
    ]
    (problem,) = [p for p in problems_of(data) if "NPS" in p]
    assert "evaluation question 'recommend'" in problem and "scale_min: 0" in problem


async def test_the_report_shows_the_dates_the_program_has_now(store: Store) -> None:
    """Seen before: after a postponed start the report kept the definition's dates."""
    definition = load_definition(DEMO)
    await record_program(store, definition, "running")
    row = await store.program(definition.id)
    assert row is not None
    dates = program_dates(definition)
    moved = dates.model_copy(
        update={"start": dates.start + timedelta(days=7), "end": dates.end + timedelta(days=7)}
    )
    await store.record_event(
        program_id=definition.id,
        key="rescheduled-1",
        kind="rescheduled",
        phase="running",
        revision=row.revision + 1,
        at=datetime.now(UTC),
        dates=moved.model_dump(mode="json"),
    )
    report = await build_report(store, definition.id, datetime.now(UTC))
    assert (report.start, report.end) == (moved.start, moved.end)
    assert report.start != definition.schedule.start
    # In the program's timezone and language, as its emails say it; never "… UTC".
    page = report_html(report)
    assert " UTC" not in page
    assert moments.when(report.generated_at, definition.timezone, definition.language) in page
    assert moments.day(moved.start, definition.timezone, definition.language) in page
