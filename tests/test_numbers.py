"""Numbers on the pages and in the report as the program's language writes them.

Swedish: a decimal comma and thousands grouped by a (no-break) space, "3,6" and
"15 000"; English: "3.6" and "15,000"; a count's noun agrees with it ("1 godkänd",
"2 godkända"). No server needed.
"""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.datastructures import FormData

from mentorflow.definition import Question
from mentorflow.i18n import number, percent, texts
from mentorflow.report import CostRow, FunnelRow, ProgramReport, QuestionResult, report_csv
from mentorflow.report import report_html as render_report
from mentorflow.web.evaluation import read_answers
from tests.test_closing import closing_pilot

NBSP = "\u00a0"  # what Swedish groups thousands with (CLDR), so "15 000" never breaks


def a_report(language: str) -> ProgramReport:
    return ProgramReport(
        program_id="p",
        name="P",
        language=language,
        start=datetime(2027, 1, 1, tzinfo=UTC),
        end=datetime(2027, 6, 1, tzinfo=UTC),
        generated_at=datetime(2027, 6, 2, tzinfo=UTC),
        funnel=[FunnelRow(organisation_id="o", organisation="O", profile_id="m", profile="M",
                          applied=15000, approved=1, matched=2, completed=2)],
        pairs=1,
        meetings_per_pair=[1],
        invited=3,
        responses=2,
        questions=[QuestionResult(id="overall", text="How?", kind="scale", answered=2,
                                  distribution={"3": 1, "4": 1}, mean=3.6, nps=-12.5)],
        cost=[CostRow(organisation_id="o", organisation="O", participants=3, cost=45000)],
        currency="SEK",
        per_person=15000,
    )  # fmt: skip


def test_numbers_and_counts_in_swedish_and_english() -> None:
    def count(n: int, noun: str, language: str) -> str:
        t = texts(language)
        if noun == "approved":
            return t.ngettext("%(num)s approved", "%(num)s approved", n)
        if noun == "pairs":
            return t.ngettext("%(num)s pair", "%(num)s pairs", n)
        return t.ngettext("%(num)s meeting", "%(num)s meetings", n)

    assert number(3.6, "sv") == "3,6" and number(15000, "sv") == f"15{NBSP}000"
    assert number(3.6, "en") == "3.6" and number(15000, "en") == "15,000"
    assert number(2, "sv", decimals=2) == "2,00" and number(1234.5, "en", decimals=0) == "1,234"
    assert number(1.3333, "sv", decimals=2) == "1,33" and number(4.0, "sv") == "4"
    assert percent(0.6, "sv") == f"60{NBSP}%" and percent(0.6, "en") == "60%"
    # The noun takes the number's form, by the language's plural rule (ngettext).
    assert count(1, "approved", "sv") == "1 godkänd"
    assert count(2, "approved", "sv") == "2 godkända"
    assert count(0, "approved", "sv") == "0 godkända"
    assert count(15000, "approved", "sv") == f"15{NBSP}000 godkända"
    assert count(1, "pairs", "en") == "1 pair" and count(3, "pairs", "en") == "3 pairs"
    assert count(1, "meetings", "sv") == "1 träff" and count(2, "meetings", "sv") == "2 träffar"
    # As the capacity page says it.
    cap = "Room for at most %(cap)s; %(approved)s."
    sv = texts("sv")
    assert sv.gettext(cap, cap=number(4, "sv"), approved=count(1, "approved", "sv")) == (
        "Plats för högst 4; 1 godkänd."
    )
    assert sv.gettext(cap, cap=number(4, "sv"), approved=count(5, "approved", "sv")) == (
        "Plats för högst 4; 5 godkända."
    )


def test_the_report_writes_numbers_as_its_language_does() -> None:
    swedish = render_report(a_report("sv"))
    assert f">15{NBSP}000<" in swedish  # applied, in the table (and its chart)
    assert "Medel: 3,6." in swedish and "<strong>-12,5</strong>" in swedish
    assert f"2 av 3 svarade (67{NBSP}%)." in swedish
    assert f"15{NBSP}000 SEK per deltagare." in swedish and f">45{NBSP}000<" in swedish
    assert "(1 par, 1 träff, i snitt 1 per par)" in swedish  # "1 träff", not "1 träffar"
    assert "3.6" not in swedish and "15000" not in swedish

    english = render_report(a_report("en"))
    assert ">15,000<" in english and "Average: 3.6." in english
    assert "2 of 3 answered (67%)." in english and "15,000 SEK per participant." in english
    assert "(1 pair, 1 meeting, on average 1 per pair)" in english  # not "1 pairs"

    # The CSV is for machines: its figures keep Python's plain form in either language.
    assert report_csv(a_report("sv")) == report_csv(a_report("en"))
    assert ",3.6\n" in report_csv(a_report("sv")) and ",15000\n" in report_csv(a_report("sv"))


def test_a_swedish_evaluation_takes_and_shows_a_decimal_comma() -> None:
    pilot = closing_pilot()
    hours = Question(id="hours", text="Hur många timmar?", kind="number", required=False)
    evaluation = pilot.evaluation.model_copy(update={"questions": [hours]})
    definition = pilot.model_copy(update={"evaluation": evaluation})
    answers, problems, _ = read_answers(definition, FormData([("hours", "3,5")]))
    assert problems == {} and answers == {"hours": 3.5}
    answers, problems, _ = read_answers(definition, FormData([("hours", "1 500")]))
    assert problems == {} and answers == {"hours": 1500.0}
    _, problems, _ = read_answers(definition, FormData([("hours", "3,5,1")]))
    assert problems == {"hours": "Ange ett tal."}
