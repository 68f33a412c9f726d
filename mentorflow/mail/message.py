"""Build the MIME message of one business email, with a Message-ID derived from its key."""

from __future__ import annotations

import email.policy
import hashlib
import io
import re
import string
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.generator import BytesGenerator
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr

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
