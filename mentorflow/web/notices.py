"""The short pages that tell a person where they stand: a title and a sentence each.

English message ids (``N_`` marks them for the catalog), translated into the
program's language when a page shows them (mentorflow.web.participants.render_notice);
a body's ``%(name)s`` is filled from the values the page is given.
"""

from __future__ import annotations

from dataclasses import dataclass

from mentorflow.i18n import N_


@dataclass(frozen=True)
class Notice:
    title: str
    body: str


NOT_FOUND = Notice(N_("Not found"), N_("There is no such program."))
NO_PAGE = Notice(
    N_("Page not found"),
    N_("There is no page at this address. Please use the link exactly as it is in your email."),
)
INVALID = Notice(
    N_("This link is not valid"),
    N_(
        "The link is incomplete or was changed. Please use the link exactly as it is in your email."
    ),
)
NOT_YOURS = Notice(
    N_("This link is not for you"),
    N_(
        "This link belongs to someone who can no longer answer this application (for example,"
        " a manager who was replaced)."
    ),
)
HR_EXPIRED = Notice(
    N_("This link has expired"),
    N_("The link was valid until %(when)s. Contact the program's coordinators."),
)
HR_NOT_YOURS = Notice(
    N_("This link is not for you"),
    N_("This link belongs to an HR contact of another organisation or program."),
)
TOO_LARGE = Notice(
    N_("The form is too large"),
    N_(
        "What was sent is larger than any form here takes (%(limit)s). Please shorten the"
        " longest answers and send it again."
    ),
)
UNAVAILABLE = Notice(
    N_("Please try again in a few minutes"),
    N_(
        "The service cannot be reached just now: a part of it is down or being restarted."
        " Nothing has been lost. Please try again in a few minutes; if you were sending a form"
        " or pressing a button, do it again then: nothing is recorded twice."
    ),
)
ERROR = Notice(
    N_("Something went wrong"),
    N_(
        "The page could not be shown because of an error on our side. Please try again later;"
        " if it keeps happening, contact the program's coordinators."
    ),
)

# Applying and answering applications
CLOSED = Notice(
    N_("Applications are closed"),
    N_("The application deadline was %(when)s. Applications are no longer accepted."),
)
NOT_OPEN = Notice(
    N_("Applications are not open yet"),
    N_("Applications open %(opens)s. The deadline is %(when)s."),
)
PROGRAM_CLOSED = Notice(
    N_("The program is closed"),
    N_("This program has been closed; nothing can be answered any more."),
)
ALREADY = Notice(
    N_("Already answered"), N_("This application has already been answered: %(outcome)s.")
)
BUSY_APPLY = Notice(
    N_("Please send the form again in a minute"),
    N_(
        "Your application is saved, but the program could not take it just now because many"
        " people are applying at once. Please send the form again in a minute: you will not"
        " apply twice, and you will get a confirmation by email."
    ),
)
BUSY_ANSWER = Notice(
    N_("Please try again in a minute"),
    N_(
        "Your answer could not be recorded just now because many people are answering at"
        " once. Please press the button again in a minute; nothing has been decided yet."
    ),
)

# HR's pages
CAPACITY_CLOSED = Notice(
    N_("The decision is closed"),
    N_("HR's decision on who takes part is no longer open for this program."),
)
REVIEW_CLOSED = Notice(
    N_("The review is closed"), N_("The pairs of this program are not under review.")
)
REVIEW_CONFIRMED = Notice(
    N_("The pairs are confirmed"),
    N_(
        "Every participant now gets their pair introduction, and the others a message;"
        " managers are informed."
    ),
)

# Check-ins and the closing evaluation
PAIR_CLOSED = Notice(
    N_("This pair has ended"),
    N_("This pair is no longer running, so the check-in cannot be answered."),
)
CHECK_IN_ALREADY = Notice(
    N_("Already answered"), N_("You have already answered this check-in: %(answer)s.")
)
EVALUATION_CLOSED = Notice(
    N_("The evaluation is closed"),
    N_("The closing evaluation of this program has closed; answers are no longer taken."),
)
