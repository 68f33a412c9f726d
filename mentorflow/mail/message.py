"""Build the MIME message of one business email, with a Message-ID derived from its key."""

from __future__ import annotations

import email.policy
import hashlib
import io
import re
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.generator import BytesGenerator
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

from mentorflow.mail.render import RenderedEmail

# An address that goes into a header and an SMTP command as it is: dot-atoms of
# ASCII on both sides, no quoting, no comment, no display name. Anything else
# takes the email package's slower path.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")


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
    if _PLAIN_ADDRESS.fullmatch(recipient):
        return True  # RFC 5322 dot-atoms: valid without the email package's parser
    try:
        Address(addr_spec=recipient)
    except (ValueError, IndexError, HeaderParseError):  # "@x" raises the last one
        return False
    return "@" in recipient


# Printable ASCII on one line: safe in a header without encoding.
_PLAIN_VALUE = re.compile(r"[\x20-\x7e]*")
# RFC 5322: a header line (here unfolded) holds at most 998 characters.
_LONGEST_LINE = 998
_PER_RECIPIENT = {
    "to": "To",
    "message-id": "Message-ID",
    "date": "Date",
    "x-mentorflow-key": "X-Mentorflow-Key",
}


class MessageTemplate:
    """One rendered email, built and flattened once, for any number of recipients.

    The email package parses every header it is given and encodes the body on
    each build; for a batch that shares one rendering, only To, Message-ID, Date
    and the ledger key differ per recipient. So the message is built once with
    placeholders, flattened to the bytes an SMTP client sends, and those four
    header fields are written per recipient into the bytes (:meth:`fill`).
    """

    def __init__(self, *, sender: str, rendered: RenderedEmail, language: str, cte_type: str):
        prototype = build_message(
            sender=sender,
            recipient="recipient@placeholder.invalid",
            rendered=rendered,
            message_id="<placeholder@placeholder.invalid>",
            language=language,
            key="placeholder",
        )
        policy = email.policy.SMTP.clone(cte_type=cte_type)
        with io.BytesIO() as out:
            BytesGenerator(out, policy=policy).flatten(prototype)
            flat = out.getvalue()
        head, _, body = flat.partition(b"\r\n\r\n")
        # Header fields, each with its folded continuation lines.
        fields: list[bytes] = []
        for line in head.split(b"\r\n"):
            if line[:1] in (b" ", b"\t") and fields:
                fields[-1] += b"\r\n" + line
            else:
                fields.append(line)
        self._slots: list[bytes | str] = []
        for field in fields:
            name = field.partition(b":")[0].decode("ascii").strip().lower()
            self._slots.append(name if name in _PER_RECIPIENT else field)
        self._body = b"\r\n\r\n" + body
        self.cte_type = cte_type

    def fill(self, *, recipient: str, message_id: str, key: str, date: str) -> bytes | None:
        """The message's bytes for one recipient; None when a value needs the email
        package's encoding (build that message with :func:`build_message`)."""
        values = {"to": recipient, "message-id": message_id, "date": date, "x-mentorflow-key": key}
        if _PLAIN_ADDRESS.fullmatch(recipient) is None or not all(
            _PLAIN_VALUE.fullmatch(v) and len(v) < _LONGEST_LINE - 20 for v in values.values()
        ):
            return None
        lines = [
            slot if isinstance(slot, bytes) else f"{_PER_RECIPIENT[slot]}: {values[slot]}".encode()
            for slot in self._slots
        ]
        return b"\r\n".join(lines) + self._body
