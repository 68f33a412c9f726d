"""Refusals: how a workflow says no, and how its clients read it.

A workflow refuses an update with an ``ApplicationError`` whose ``type`` is one
of ``KINDS`` (``closed``, ``over_cap`` …) and whose message a person can read
("closed: the decision deadline has passed"). Clients match on the type, never
on the words. Runs of earlier code said the kind only as the message's prefix
(and ``ProgramWorkflowV1`` still does); ``of`` reads both.
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.exceptions import ApplicationError

KINDS = frozenset(
    {
        "closed",  # the phase or the deadline for it has passed
        "already_answered",
        "not_your_link",
        "withdrawn",
        "program_closed",
        "unknown",  # names an applicant, pair or event the program does not have
        "incomplete",
        "over_cap",
        "conflict",
        "stale",  # acts on a proposal that was replaced
        "personal_data",  # carries a person where a reference or note key belongs
        "invalid",  # a move the program cannot take (the message says why)
    }
)


def refuse(kind: str, message: str) -> ApplicationError:
    """The error a validator or handler raises: ``kind`` typed, ``message`` for people.

    ``message`` is kept as it reads ("closed: …", or a move's reason without prefix).
    """
    assert kind in KINDS, kind
    return ApplicationError(message, type=kind, non_retryable=True)


@dataclass(frozen=True)
class Refusal:
    kind: str
    detail: str


def of(error: BaseException) -> Refusal:
    """What a failed update (``WorkflowUpdateFailedError``) or its cause refused, and why."""
    cause = getattr(error, "cause", None) or error
    message = str(getattr(cause, "message", None) or cause)
    prefix, colon, rest = message.partition(":")
    typed = getattr(cause, "type", None)
    if typed in KINDS:
        detail = rest.strip() if colon and prefix.strip() == typed else message
        return Refusal(str(typed), detail)
    return Refusal(prefix.strip(), rest.strip())  # the prefix, as earlier runs said it
