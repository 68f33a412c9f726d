"""Every email template, in every language: it fits a phone, it ends with the
program's contacts, and the announcement carries HR's own message."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import get_args

import pytest

from mentorflow.definition import Contact, Language
from mentorflow.mail.render import render
from mentorflow.models import CapacityRow, EmailFacts, EmailTemplate, ReportSummary

NOW = datetime(2027, 2, 15, 8, 0, tzinfo=UTC)
TEMPLATES: tuple[EmailTemplate, ...] = get_args(EmailTemplate)
# Long enough to push any layout that does not wrap it past a phone's width.
LONG_URL = "https://mentorflow.example/programs/omvant-mentorskap/" + "x" * 240
CONTACTS = [
    Contact(name="Linnéa Jönsson", email="linnea.jonsson@myndigheten.example", role="HR-strateg"),
    Contact(name="Björn Häll", email="bjorn.hall@myndigheten.example", phone="010-123 45 67"),
]
LINKS = {
    name: LONG_URL
    for name in (
        "approve_url",
        "check_in_url",
        "decide_url",
        "evaluation_url",
        "report_url",
        "review_url",
        "withdraw_url",
    )
}
# Each language's heading of the contacts: for participants, and for HR.
HEADINGS = {
    Language.EN: ("Questions? Contact:", "The program's contacts:"),
    Language.SV: ("Frågor? Kontakta:", "Programmets kontakter:"),
}
# A phone's CSS width is 320-430 px: nothing wider than this may be fixed.
PHONE = 390


def facts(language: Language, contacts: list[Contact] = CONTACTS) -> EmailFacts:
    """Facts with every field an email may show filled in."""
    return EmailFacts(
        program_name="Omvänt mentorskap 2027",
        description="Yngre medarbetare blir mentorer åt chefer.",
        organisers=["Myndigheten", "Handelskammaren"],
        contacts=contacts,
        language=language,
        timezone="Europe/Stockholm",
        opens=NOW,
        deadline=NOW + timedelta(days=30),
        start=NOW + timedelta(days=77),
        end=NOW + timedelta(days=288),
        previous_deadline=NOW + timedelta(days=20),
        previous_start=NOW + timedelta(days=70),
        time_left=timedelta(days=3),
        reason="Lokalen är upptagen.",
        form_note="Tala med din chef först.",
        apply_url=LONG_URL,
        applicant_name="Åsa Öberg",
        manager_name="Örjan Ärlig",
        profile_title="Junior mentor",
        answer_by=NOW + timedelta(days=40),
        organisation_name="Myndigheten",
        capacity_rows=[CapacityRow(profile_title="Junior mentor", approved=3, cap=2)],
        decide_by=NOW + timedelta(days=45),
        pairs=3,
        unmatched=1,
        selection="matched",
        partner_name="Kim Ek",
        partner_email="kim.ek.with.a.rather.long.address@myndigheten.example",
        partner_title="Senior adept",
        partner_organisation="Handelskammaren",
        introduction="Ni träffas först på kick-offen.",
        kickoff_title="Kick-off",
        kickoff_starts=NOW + timedelta(days=78),
        kickoff_place="Stora salen",
        event_title="Inspirationsträff",
        event_starts=NOW + timedelta(days=100),
        event_ends=NOW + timedelta(days=100, hours=2),
        event_place="Stora salen",
        event_online_url=LONG_URL,
        event_description="Om förtroende.",
        check_in_number="1",
        next_meeting_by=NOW + timedelta(days=114),
        meeting_length=timedelta(hours=2),
        last_met=NOW + timedelta(days=90),
        pair_label="Kim Ek (kim.ek@myndigheten.example) & Åsa Öberg (asa@myndigheten.example)",
        answer="mentor",
        evaluation_closes=NOW + timedelta(days=300),
        report=ReportSummary(
            applied=10,
            matched=8,
            completed=6,
            withdrawn=2,
            invited=12,
            responses=9,
            response_rate=0.75,
            nps={"value": 40.0},
            total_cost=50000.0,
            currency="SEK",
        ),
        purge_at=NOW + timedelta(days=400),
    )


EVERY_EMAIL = pytest.mark.parametrize(
    ("language", "template"), [(lang, t) for lang in Language for t in TEMPLATES]
)


def test_every_template_and_language_is_covered() -> None:
    assert set(Language) == {Language.EN, Language.SV}
    assert len(TEMPLATES) >= 20


@EVERY_EMAIL
def test_every_email_fits_a_phone(language: Language, template: EmailTemplate) -> None:
    html = render(template, facts(language), links=LINKS).html
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert "@media" in html  # phones get their own rules where clients read <style>...
    # ...and the inline styles alone keep the layout fluid where they do not.
    assert "max-width:600px" in html
    # Outlook for Windows reads neither max-width nor media queries: it alone gets
    # a fixed 600 px frame, in a conditional comment that every other client skips.
    layout = re.sub(r"<!--\[if mso\]>.*?<!\[endif\]-->", "", html, flags=re.S)
    fixed = [int(w) for w in re.findall(r'\bwidth="(\d+)"', layout)]
    fixed += [int(w) for w in re.findall(r"(?<![-\w])(?:min-)?width\s*:\s*(\d+)px", layout)]
    assert all(width <= PHONE for width in fixed), fixed
    # Long links (signed URLs, addresses) and buttons wrap instead of widening the page.
    links = re.findall(r"<a\s[^>]*>", html)
    assert links  # every email links at least its contacts
    for link in links:
        style = re.search(r'style="([^"]*)"', link)
        assert style is not None and "overflow-wrap:anywhere" in style.group(1), link
        assert "word-break:break-word" in style.group(1), link


@EVERY_EMAIL
def test_every_email_ends_with_the_programs_contacts_in_its_language(
    language: Language, template: EmailTemplate
) -> None:
    rendered = render(template, facts(language), links=LINKS)
    lines = rendered.text.rstrip("\n").split("\n")
    assert lines[-3:] == [
        lines[-3],
        "- Linnéa Jönsson (HR-strateg): linnea.jonsson@myndigheten.example",
        "- Björn Häll: bjorn.hall@myndigheten.example, 010-123 45 67",
    ]
    assert lines[-3] in HEADINGS[language] and lines[-4] == ""
    heading = re.search(r"border-top[^>]*>\s*([^<]*?)\s*<br>", rendered.html)
    assert heading is not None and heading.group(1) in HEADINGS[language]
    footer = rendered.html[heading.end() :]
    for contact in CONTACTS:
        assert f'href="mailto:{contact.email}"' in footer and contact.name in footer
    assert "010-123 45 67" in footer
    assert rendered.reply_to == ("Linnéa Jönsson", "linnea.jonsson@myndigheten.example")


@EVERY_EMAIL
def test_an_email_without_contacts_has_no_footer(
    language: Language, template: EmailTemplate
) -> None:
    rendered = render(template, facts(language, contacts=[]), links=LINKS)
    for heading in HEADINGS[language]:
        assert heading not in rendered.text and heading not in rendered.html
    assert "mailto:linnea" not in rendered.html and rendered.reply_to is None


@pytest.mark.parametrize("language", list(Language))
def test_the_announcement_carries_hrs_message_escaped_with_its_line_breaks(
    language: Language,
) -> None:
    message = "Hej alla!\nVälkomna till <b>årets</b> omgång & lycka till.\n\n\nMvh\nHR"
    rendered = render("announcement", facts(language), announcement_message=message)
    assert "Hej alla!\nVälkomna till <b>årets</b> omgång & lycka till.\n\nMvh\nHR\n" in (
        rendered.text
    )
    assert (
        "<p>Hej alla!<br>\nVälkomna till &lt;b&gt;årets&lt;/b&gt; omgång &amp; lycka till.</p>\n"
        "<p>Mvh<br>\nHR</p>"
    ) in rendered.html
    assert "<b>årets</b>" not in rendered.html
    # Before the program's description; and without a message, no trace of one.
    assert rendered.text.index("Mvh") < rendered.text.index("Yngre medarbetare")
    plain = render("announcement", facts(language))
    assert "Hej alla" not in plain.text and "<p></p>" not in plain.html
