"""The built-in mail catcher: a real SMTP server (aiosmtpd) that keeps every message.

Messages are kept in a Maildir, so they survive restarts of ``mentorflow dev``
and the inbox page can show them; tests read them back to count what arrived.
"""

from __future__ import annotations

import email
import email.policy
import mailbox
import re
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass(frozen=True)
class CaughtMessage:
    key: str
    message: EmailMessage

    @property
    def recipients(self) -> list[str]:
        return [r.strip() for r in str(self.message.get("X-Envelope-To", "")).split(",") if r]

    @property
    def caught_at_ns(self) -> int:
        return int(str(self.message.get("X-Caught-At-Ns", "0")))

    @property
    def subject(self) -> str:
        return " ".join(str(self.message["Subject"]).split())

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])

    def body(self, subtype: str = "plain") -> str:
        part = self.message.get_body(preferencelist=(subtype,))
        return str(part.get_content()) if part is not None else ""

    @property
    def calendar(self) -> str | None:
        """The text/calendar part of an invitation, if the message has one."""
        for part in self.message.walk():
            if part.get_content_type() == "text/calendar":
                return str(part.get_content())
        return None


class CatchingHandler:
    """aiosmtpd handler that stores each delivered message in a Maildir."""

    def __init__(self, maildir: Path) -> None:
        # Maildir(create=True) makes tmp/, new/ and cur/ only for a folder it creates itself.
        maildir.parent.mkdir(parents=True, exist_ok=True)
        self._box = mailbox.Maildir(maildir, create=True)
        self._lock = threading.Lock()

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        # Kept as it came, with the envelope's recipients and the moment in two headers
        # on top: parsing and writing out each message again cost the catcher more than
        # the SMTP conversation did (a program of 1,000 applicants sends 4,000 emails).
        on_top = (
            f"X-Envelope-To: {', '.join(envelope.rcpt_tos)}\nX-Caught-At-Ns: {time.time_ns()}\n"
        ).encode()
        with self._lock:
            self._box.add(on_top + raw.replace(b"\r\n", b"\n"))
        return "250 Message accepted"

    def messages(self) -> list[CaughtMessage]:
        with self._lock:
            self._box.clean()
            items = []
            for key in self._box.iterkeys():
                raw = self._box.get_bytes(key)
                parsed = email.message_from_bytes(raw, policy=email.policy.default)
                assert isinstance(parsed, EmailMessage)
                items.append(CaughtMessage(key, parsed))
        return sorted(items, key=lambda m: m.caught_at_ns)

    def get(self, key: str) -> CaughtMessage | None:
        with self._lock:
            try:
                raw = self._box.get_bytes(key)
            except KeyError:
                return None
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return CaughtMessage(key, parsed)

    def clear(self) -> None:
        with self._lock:
            self._box.clear()


# An address as SMTP clients send it after MAIL FROM: and RCPT TO:, in angle brackets,
# made of dot-atoms (RFC 5321's usual form); any other form goes to aiosmtpd's parser.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_ADDRESS = re.compile(rf"<((?:{_ATOM}\.)*{_ATOM}@(?:[A-Za-z0-9-]+\.)*[A-Za-z0-9-]+)>")


class _SMTP(SMTP):
    """aiosmtpd's server, reading the usual address without its parser: for every MAIL
    and RCPT, aiosmtpd builds a class and runs the email package's header parser, about
    0.1 ms of CPU each, as long as the rest of the catcher's work on an email."""

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        plain = _PLAIN_ADDRESS.match(arg)
        if plain is None:
            return super()._getaddr(arg)
        address = plain.group(1)
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, arg[plain.end() :].lstrip()


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _SMTP(self.handler, **self.SMTP_kwargs)


class MailCatcher:
    """Start and stop the catching SMTP server on a host and port."""

    def __init__(
        self, maildir: Path, host: str = "127.0.0.1", port: int = 1025, handler: Any | None = None
    ) -> None:
        self.handler: CatchingHandler = handler or CatchingHandler(maildir)
        self.host, self.port = host, port
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = _Controller(self.handler, hostname=self.host, port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def messages(self) -> list[CaughtMessage]:
        return self.handler.messages()
