"""The built-in mail catcher's SMTP server (mentorflow.mail.catcher)."""

from __future__ import annotations

from pathlib import Path

import aiosmtplib
import pytest
from aiosmtpd.smtp import SMTP

from mentorflow.mail.catcher import _SMTP, CatchingHandler, MailCatcher
from tests.conftest import free_port


def _handler() -> CatchingHandler:
    return CatchingHandler.__new__(CatchingHandler)  # no Maildir: nothing is delivered


@pytest.mark.parametrize(
    "argument",
    [
        "<a@b>",
        "<noreply@mentorflow.local> SIZE=1234",
        "<anna.b+hr@ex-ample.se>  BODY=8BITMIME SMTPUTF8",
        "<a@b>\t",
        # Not the usual form: aiosmtpd's own parser reads them.
        "<x..y@b>",
        "<.x@b>",
        '<"quoted local"@b.se>',
        "a@b.se",
        "<a@[127.0.0.1]>",
        "<>",
        "<a@b",
        "",
    ],
)
def test_an_address_reads_as_aiosmtpds_parser_reads_it(argument: str) -> None:
    assert _SMTP(_handler())._getaddr(argument) == SMTP(_handler())._getaddr(argument)


def test_a_local_part_over_a_set_limit_is_refused_as_aiosmtpd_refuses_it() -> None:
    long = f"<{'a' * 65}@b.se>"
    ours, theirs = _SMTP(_handler()), SMTP(_handler())
    ours.local_part_limit = theirs.local_part_limit = 64
    assert ours._getaddr(long) == theirs._getaddr(long) == (None, None)
    ours.local_part_limit = 65
    assert ours._getaddr(long) == (long[1:-1], "")


async def test_a_message_is_caught_with_its_envelopes_recipients(tmp_path: Path) -> None:
    catcher = MailCatcher(tmp_path / "mail", port=free_port())
    catcher.start()
    try:
        await aiosmtplib.send(
            b"Subject: Hej\r\nMessage-ID: <m1@x>\r\n\r\nHej!\r\n",
            sender="hr@example.se",
            recipients=["anna.b+hr@ex-ample.se", '"odd one"@example.se'],
            hostname=catcher.host,
            port=catcher.port,
        )
    finally:
        catcher.stop()
    [caught] = catcher.messages()
    assert caught.recipients == ["anna.b+hr@ex-ample.se", '"odd one"@example.se']
    assert caught.subject == "Hej" and caught.message_id == "<m1@x>"
