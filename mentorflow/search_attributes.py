"""The typed search attributes that make programs findable in the Temporal UI.

They carry no personal data: a program id (from the definition), a phase and a date.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

PROGRAM_ID = SearchAttributeKey.for_keyword("ProgramId")
PROGRAM_PHASE = SearchAttributeKey.for_keyword("ProgramPhase")
NEXT_DEADLINE = SearchAttributeKey.for_datetime("NextDeadline")

ALL = (PROGRAM_ID, PROGRAM_PHASE, NEXT_DEADLINE)
