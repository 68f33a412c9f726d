"""How much people may type, and which characters they may not.

One table for every door text comes in by: the application form and the CSV
import (the same checks), the closing evaluation, HR's reasons on the command
line, and the definition files. The limits are generous for what each field
is for and small enough that no field can fill an email subject, a page or a
workflow's payload (README, "Limits").
"""

from __future__ import annotations

import unicodedata
from typing import Final

# --- What people type: the application form, the CSV import, the evaluation, the CLI ------

FIELD_LIMITS: Final[dict[str, int]] = {
    "name": 200,
    "email": 254,  # the longest address SMTP carries (RFC 5321)
    "organisation": 63,
    "department": 200,
    "manager_name": 200,
    "manager_email": 254,
}
ANSWER_LIMIT: Final = 10_000
"""A free-text answer to a question of the application or the evaluation: some
1,500 words, more than a motivation takes, far less than a page can show."""
REASON_LIMIT: Final = 2000
"""HR's reason for a move, a withdrawal or a purge (``--reason``)."""
REQUEST_LIMIT_BYTES: Final = 1024 * 1024
"""The largest request body the web app reads: a form of twenty long answers, written in
Swedish and percent-encoded (up to six bytes a character), still fits."""


def field_limit(field: str) -> int:
    """The most characters ``field`` of an application (``q_<question>`` too) may hold."""
    return FIELD_LIMITS.get(field, ANSWER_LIMIT)


# --- Definitions -----------------------------------------------------------------------------

DEFINITION_FILE_BYTES: Final = 512 * 1024
"""The largest definition file read at all (the shipped ones are under 10 KB)."""
DEFINITION_PAYLOAD_BYTES: Final = 256 * 1024
"""The most a definition may weigh as the program's workflow carries it. Temporal refuses
a payload over 2 MB, and the program carries its applications and pairs beside it when it
continues as new (459 KB at 5,000 applicants)."""
DEFINITION_DEPTH: Final = 24
"""Nesting levels in a definition file; a definition uses about eight."""
DEFINITION_NODES: Final = 20_000
"""Values in a definition file with every alias expanded: the shipped ones have under 700;
a "billion laughs" file, a few lines long, would have a thousand million."""
NAME_LIMIT: Final = 200
"""A name or title, in a definition: it goes into email subjects."""
TEXT_LIMIT: Final = 2000
"""A sentence or paragraph of a definition (an eligibility statement, a question, a note)."""
DESCRIPTION_LIMIT: Final = 10_000
"""The program's description and the longest texts of a definition."""


# --- Characters ------------------------------------------------------------------------------

# Characters that reorder the text around them (U+202A-U+202E embeddings and overrides,
# U+2066-U+2069 isolates): "Trojan Source" text that reads differently from what it is.
# The marks U+200E and U+200F are ordinary in right-to-left names and stay allowed.
BIDI_CONTROLS: Final = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def unsafe_character(value: str, *, multiline: bool = False) -> str | None:
    """The first character ``value`` may not hold, named (``U+0000``), or None.

    Control characters (NUL among them: PostgreSQL cannot store it), lone surrogates
    (no encoding can write them) and the text-direction overrides above. Line breaks
    and tabs are allowed in ``multiline`` text.
    """
    for character in value:
        if multiline and character in "\n\r\t":
            continue
        if character in BIDI_CONTROLS or unicodedata.category(character) in ("Cc", "Cs"):
            return f"U+{ord(character):04X}"
    return None
