"""Build the MIME message of one business email, with a Message-ID derived from its key."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

from mentorflow.mail.render import RenderedEmail


def email_key(program_id: str, step: str, recipient: str, revision: str) -> str:
    """The business identity of an email: one program, step, recipient and revision."""
    return f"{program_id}/{step}/{recipient.strip().lower()}/{revision}"


def message_id(key: str, sender: str) -> str:
    """A Message-ID that is the same every time the same email is built."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "mentorflow.localhost"
    digest = hashlib.sha256(key.encode()).hexdigest()[:40]
    return f"<{digest}@{domain}>"


def build_message(
    *,
    sender: str,
    recipient: str,
    rendered: RenderedEmail,
    message_id: str,
    language: str,
    key: str,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = rendered.subject
    message["Message-ID"] = message_id
    message["Date"] = format_datetime(datetime.now(UTC))
    # Lets ops trace a message back to its ledger entry without a lookup table.
    message["X-Mentorflow-Key"] = key
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    if rendered.calendar is not None:
        # The last alternative is the richest: calendar clients offer to add or
        # update the event from it (iMIP, RFC 6047).
        message.add_alternative(
            rendered.calendar,
            subtype="calendar",
            params={"method": rendered.calendar_method or "REQUEST"},
        )
    # After the body: set_content() and add_alternative() drop or move Content-* headers.
    message["Content-Language"] = str(language)
    return message


def address_is_valid(recipient: str) -> bool:
    """A cheap syntax check, so an obviously broken address is rejected without a round trip."""
    try:
        Address(addr_spec=recipient)
    except (ValueError, IndexError):
        return False
    return "@" in recipient
