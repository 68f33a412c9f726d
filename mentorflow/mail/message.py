"""Build the MIME message of one business email, with a Message-ID derived from its key."""

from __future__ import annotations

import binascii
import email.policy
import hashlib
import io
import re
import secrets
import string
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.generator import BytesGenerator
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from functools import lru_cache

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
    # Written as they go on the wire: the email package's folding can lose the
    # space between two encoded-words ("Björn Häll haransökt").
    message.set_raw("Subject", header_value("Subject", rendered.subject))
    if rendered.reply_to is not None:
        reply_to = reply_to_value(*rendered.reply_to)
        if reply_to is not None:
            message.set_raw("Reply-To", reply_to)
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
# RFC 5322: a header line (here unfolded) holds at most 998 characters, and should hold 78.
_LONGEST_LINE = 998
_LINE = 78
# RFC 2047: a line that holds an encoded-word should be at most 76 characters long.
_ENCODED_LINE = 76
# What a Q encoded-word may hold as it is anywhere in a header (RFC 2047, 5 (3)).
_Q_LITERAL = frozenset(string.ascii_letters + string.digits + "!*+-/")
_Q_OPEN, _Q_CLOSE = "=?utf-8?q?", "?="


def _encoded_words(text: str, room: int) -> list[str]:
    """``text`` as RFC 2047 Q encoded-words of UTF-8, the first at most ``room``
    characters long and the others at most a continuation line's.

    Every character is inside a word, its spaces too (as ``_``): the whitespace
    between two encoded-words is not part of the text (RFC 2047, 6.2), so a fold
    there loses nothing. A word ends after a space where it can, else between
    two characters, never inside one (a UTF-8 sequence stays whole).
    """
    words: list[str] = []
    chunk = ""
    for char in text:
        if char == " ":
            code = "_"
        elif char in _Q_LITERAL:
            code = char
        else:
            code = "".join(f"={byte:02X}" for byte in char.encode("utf-8", "replace"))
        payload = room - len(_Q_OPEN) - len(_Q_CLOSE)
        if chunk and len(chunk) + len(code) > payload:
            cut = chunk.rfind("_") + 1 or len(chunk)  # "_" is always an encoded space
            words.append(_Q_OPEN + chunk[:cut] + _Q_CLOSE)
            chunk, room = chunk[cut:], _ENCODED_LINE - 1  # a continuation line starts with a space
            if len(chunk) + len(code) > room - len(_Q_OPEN) - len(_Q_CLOSE):
                words.append(_Q_OPEN + chunk + _Q_CLOSE)
                chunk = ""
        chunk += code
    if chunk:
        words.append(_Q_OPEN + chunk + _Q_CLOSE)
    return words


def _folded_plain(name: str, text: str) -> str | None:
    """Printable ASCII folded before its spaces into lines of at most 78 characters
    (unfolding only removes the line breaks); None when a word does not fit a line."""
    pieces = re.split(r"(?= )", text)
    lines = [f"{name}: {pieces[0]}"]
    for piece in pieces[1:]:
        if len(lines[-1]) + len(piece) > _LINE and lines[-1].strip() and piece.strip():
            lines.append(piece)
        else:
            lines[-1] += piece
    if any(len(line) > _LINE for line in lines):
        return None
    return "\n".join(lines)[len(name) + 2 :]


def header_value(name: str, text: str) -> str:
    """An unstructured header's value (a subject) as it goes on the wire, folded.

    Printable ASCII stays as it is; anything else becomes encoded-words that
    decode, in any mail client, to exactly ``text``. Give it to
    :meth:`~email.message.Message.set_raw`: the email package writes such a
    value as it is, where its own folding can drop the space between two
    encoded-words (CPython's email package, as of 3.11).
    """
    if _PLAIN_VALUE.fullmatch(text) and "=?" not in text:
        folded = _folded_plain(name, text)
        if folded is not None:
            return folded
    words = _encoded_words(text, _ENCODED_LINE - len(name) - 2)
    return "\n ".join(words)


def reply_to_value(name: str, address: str) -> str | None:
    """A Reply-To value for one person, folded; None for an address that cannot go
    into a header as it is (not ASCII: the email package would have to encode it).

    The name goes along when it fits on its line (in one encoded-word, if it is
    not ASCII: a phrase cannot hold a space between encoded-words); else the
    address alone.
    """
    if _PLAIN_ADDRESS.fullmatch(address) is None:
        return None
    prefix = len("Reply-To: ")
    if _PLAIN_VALUE.fullmatch(name) and "=?" not in name:
        phrase = formataddr((name, "x@x")).rpartition(" <")[0] if name else ""
    else:
        words = _encoded_words(name, _LINE - prefix)
        phrase = words[0] if len(words) == 1 else ""
    if not phrase or prefix + len(phrase) > _LINE:
        return address
    if prefix + len(phrase) + len(address) + 3 <= _LINE:
        return f"{phrase} <{address}>"
    return f"{phrase}\n <{address}>"


_PER_RECIPIENT = {
    "to": "To",
    "message-id": "Message-ID",
    "date": "Date",
    "x-mentorflow-key": "X-Mentorflow-Key",
}


class MessageTemplate:
    """One rendered email, built once, for any number of recipients.

    Only To, Message-ID, Date and the ledger key differ per recipient, so the
    message's bytes are made once with those four fields left open, and
    :meth:`fill` writes them in per recipient. The bytes are written here
    directly (:func:`_compose`): the email package parses every header it is
    given and encodes each part through its policies, about 1.4 ms a message,
    more than sending it. A sender the email package must encode (not ASCII) is
    encoded by it, once per process; the parts are what it would make of them
    (the same headers, the same decoded content, ``tests/test_email_activity.py``).
    """

    def __init__(self, *, sender: str, rendered: RenderedEmail, language: str, cte_type: str):
        self._slots, self._body = _compose(sender, rendered, language, cte_type)
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


@lru_cache(maxsize=16)
def _from_field(sender: str, cte_type: str) -> bytes:
    """The From field as the email package writes it on the wire (it encodes a name
    that is not ASCII); one sender per process, so made once."""
    message = EmailMessage()
    message["From"] = sender
    policy = email.policy.SMTP.clone(cte_type=cte_type)
    with io.BytesIO() as out:
        BytesGenerator(out, policy=policy).flatten(message)
        return out.getvalue().partition(b"\r\n\r\n")[0]


# A text line of a part goes as it is (7bit or 8bit) up to the email package's 78
# characters; a longer one, or a control character, and the part is quoted-printable.
_MAX_LINE = 78
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _part(content_type: str, text: str, cte_type: str) -> bytes:
    """One leaf part: its two header fields, a blank line and its body in CRLF lines
    (as ``set_content`` makes it: lines as ``splitlines`` finds them, a final break)."""
    lines = text.encode("utf-8", "surrogateescape").splitlines()
    data = b"\r\n".join(lines) + b"\r\n"
    plain = max((len(line) for line in lines), default=0) <= _MAX_LINE and not _CONTROL.search(data)
    if plain and data.isascii():
        cte = "7bit"
    elif plain and cte_type == "8bit":
        cte = "8bit"
    else:
        cte = "quoted-printable"
        data = binascii.b2a_qp(data, istext=True)
    head = f"Content-Type: {content_type}\r\nContent-Transfer-Encoding: {cte}\r\n\r\n"
    return head.encode("ascii") + data


def _compose(
    sender: str, rendered: RenderedEmail, language: str, cte_type: str
) -> tuple[list[bytes | str], bytes]:
    """The header fields (a name from ``_PER_RECIPIENT`` where each recipient's value
    goes) and everything after them, of the message :func:`build_message` makes."""
    parts = [
        _part('text/plain; charset="utf-8"', rendered.text, cte_type),
        _part('text/html; charset="utf-8"', rendered.html, cte_type),
    ]
    if rendered.calendar is not None:
        method = rendered.calendar_method or "REQUEST"
        if not _PLAIN_VALUE.fullmatch(method) or '"' in method or "\\" in method:
            method = "REQUEST"
        content_type = f'text/calendar; charset="utf-8"; method="{method}"'
        parts.append(_part(content_type, rendered.calendar, cte_type))
    boundary = "=_" + secrets.token_hex(16)
    while any(boundary.encode() in part for part in parts):  # as good as never
        boundary = "=_" + secrets.token_hex(16)
    delimiter = f"--{boundary}\r\n".encode()
    # The line break before a delimiter belongs to it (RFC 2046, 5.1.1), not to the part.
    body = (
        b"\r\n\r\n"
        + b"".join(delimiter + part + b"\r\n" for part in parts)
        + f"--{boundary}--\r\n".encode()
    )

    def field(name: str, value: str) -> bytes:
        return f"{name}: {value}".replace("\n", "\r\n").encode("ascii")

    slots: list[bytes | str] = [_from_field(sender, cte_type), "to"]
    slots.append(field("Subject", header_value("Subject", rendered.subject)))
    if rendered.reply_to is not None:
        reply_to = reply_to_value(*rendered.reply_to)
        if reply_to is not None:
            slots.append(field("Reply-To", reply_to))
    slots += ["message-id", "date", "x-mentorflow-key", b"Auto-Submitted: auto-generated"]
    slots.append(b"MIME-Version: 1.0")
    slots.append(field("Content-Type", f'multipart/alternative;\n boundary="{boundary}"'))
    slots.append(field("Content-Language", header_value("Content-Language", str(language))))
    return slots, body
