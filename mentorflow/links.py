"""Signed, expiring, purpose-bound tokens for the links in emails.

A token names an application (a random id, no personal data), the purpose it
may be used for (approve/decline as the manager, withdraw as the applicant),
a fingerprint of the person it was sent to, and when it expires. It is signed
with the current secret key; older keys still verify, so keys can be rotated
without breaking links already sent.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from itsdangerous import BadSignature, URLSafeSerializer


class Purpose(StrEnum):
    APPROVAL = "approval"  # the manager approves or declines
    WITHDRAWAL = "withdrawal"  # the applicant withdraws
    CAPACITY = "capacity"  # an organisation's HR decides who takes part (names the organisation)
    REVIEW = "review"  # a coordinator reviews the proposed pairs (names the program)
    CHECK_IN = "check_in"  # a participant answers a check-in (names "<pair id>/<number>")
    EVALUATION = "evaluation"  # a participant answers the closing evaluation
    REPORT = "report"  # a coordinator reads the program's report (names the program)


class LinkError(Exception):
    """A token that cannot be used; ``reason`` says which way it failed."""

    def __init__(self, reason: str, link: Link | None = None) -> None:
        super().__init__(reason)
        self.reason = reason  # forged | wrong_purpose | expired
        self.link = link


@dataclass(frozen=True)
class Link:
    program_id: str
    application_id: str
    purpose: Purpose
    person: str  # fingerprint of the addressee, see fingerprint()
    expires_at: datetime


class LinkSigner:
    """Makes and checks tokens; ``keys`` are newest first (the first one signs)."""

    def __init__(self, keys: list[str]) -> None:
        if not keys or not all(keys):
            raise ValueError("at least one non-empty secret key is needed")
        self._keys = keys
        # itsdangerous signs with the last key and verifies with all of them.
        self._serializer = URLSafeSerializer(list(reversed(keys)), salt="mentorflow-link")

    def fingerprint(self, email: str) -> str:
        """A keyed hash of an address: ties a link to its addressee without revealing it."""
        digest = hmac.new(self._keys[0].encode(), email.strip().lower().encode(), hashlib.sha256)
        return digest.hexdigest()[:16]

    def make(
        self,
        *,
        program_id: str,
        application_id: str,
        purpose: Purpose,
        email: str,
        expires_at: datetime,
    ) -> str:
        return str(
            self._serializer.dumps(
                {
                    "p": program_id,
                    "a": application_id,
                    "u": purpose.value,
                    "f": self.fingerprint(email),
                    "e": int(expires_at.timestamp()),
                }
            )
        )

    def check(self, token: str, purpose: Purpose, *, now: datetime | None = None) -> Link:
        """The link the token stands for, or :class:`LinkError`."""
        try:
            data = self._serializer.loads(token)
            link = Link(
                program_id=str(data["p"]),
                application_id=str(data["a"]),
                purpose=Purpose(data["u"]),
                person=str(data["f"]),
                expires_at=datetime.fromtimestamp(int(data["e"]), UTC),
            )
        except (BadSignature, KeyError, TypeError, ValueError):
            raise LinkError("forged") from None
        if link.purpose is not purpose:
            raise LinkError("wrong_purpose", link)
        if (now or datetime.now(UTC)) >= link.expires_at:
            raise LinkError("expired", link)
        return link

    def is_for(self, link: Link, email: str) -> bool:
        """Whether the link was sent to ``email`` (under any current or previous key)."""
        return any(
            hmac.compare_digest(
                link.person,
                hmac.new(key.encode(), email.strip().lower().encode(), hashlib.sha256).hexdigest()[
                    :16
                ],
            )
            for key in self._keys
        )
