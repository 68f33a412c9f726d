"""One way to write a moment: the program's language and zone (``mentorflow/moments.py``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from mentorflow import moments
from mentorflow.definition import Language

ZONES = st.sampled_from(["Europe/Stockholm", "Europe/London", "America/New_York", "UTC"])
MOMENTS = st.integers(0, 20 * 365 * 24 * 60).map(
    lambda minutes: datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)
)


@given(MOMENTS, ZONES)
def test_hrs_stamp_is_the_english_emails_moment_with_its_zone_named(
    moment: datetime, zone: str
) -> None:
    # The stamp is written without Babel (workflows use it); it must still read exactly
    # as the English emails and pages do, plus the zone's name.
    stamp = moments.stamp(moment, zone)
    written = moments.when(moment, zone, Language.EN)
    assert stamp.startswith(written + " ")
    assert stamp.removeprefix(written + " ") == moment.astimezone(ZoneInfo(zone)).tzname()


def test_swedish_and_english_moments_in_the_programs_zone() -> None:
    moment = datetime(2027, 4, 8, 21, 59, tzinfo=UTC)
    assert moments.when(moment, "Europe/Stockholm", Language.SV) == "torsdag 8 april 2027 kl. 23:59"
    assert moments.stamp(moment, "Europe/Stockholm") == "Thursday 8 April 2027 at 23:59 CEST"
    assert moments.day(moment, "Europe/Stockholm", Language.EN) == "8 April 2027"
