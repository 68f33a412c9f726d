"""mentorflow.refusals: clients read what a workflow refused from its type."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError

from mentorflow import refusals


def test_a_typed_refusal_is_read_by_its_type_and_keeps_its_words() -> None:
    error = refusals.refuse("over_cap", "over_cap: Junior mentor: 5 accepted, the cap is 4")
    assert (error.type, error.non_retryable) == ("over_cap", True)
    assert refusals.of(error) == refusals.Refusal(
        "over_cap", "Junior mentor: 5 accepted, the cap is 4"
    )
    # A move's reason has no prefix: the whole message is the detail.
    moved = refusals.refuse(
        "invalid", "the new deadline (2027-01-10T12:00:00+00:00) is in the past"
    )
    assert refusals.of(moved) == refusals.Refusal("invalid", moved.message)


def test_words_that_look_like_a_kind_do_not_change_the_type() -> None:
    """A detail may contain a colon or a kind's name; the type decides."""
    error = refusals.refuse("closed", "the program is completed: stale: no")
    assert refusals.of(error).kind == "closed"


def test_refusals_of_earlier_runs_are_read_from_their_prefix() -> None:
    """ProgramWorkflowV1 (and runs of earlier code) raised ValueError: the SDK typed them
    "ValueError", and said the kind only as the message's prefix."""
    legacy = ApplicationError("already_answered: approved", type="ValueError")
    assert refusals.of(legacy) == refusals.Refusal("already_answered", "approved")


def test_only_known_kinds_are_raised() -> None:
    with pytest.raises(AssertionError):
        refusals.refuse("whatever", "no")
