"""The one window where an email can go out twice, and what keeps it harmless.

The ledger is claimed before an email is sent and marked once the SMTP server has
accepted it. A worker killed between the two leaves the entry "sending"; after its
lease the retry cannot know whether the server got the email, and sends it again
(README, "Exactly-once email"). The resend carries the same Message-ID, derived from
the email's business key, so mail clients and servers that de-duplicate show it once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from temporalio.testing import ActivityEnvironment

from activities.email import EmailActivities
from mentorflow.mail.catcher import MailCatcher
from mentorflow.mail.message import email_key, message_id
from mentorflow.store import Store
from mentorflow.store.tables import EmailLedgerEntry
from tests.conftest import settings_for
from tests.test_email_activity import batch

# The database matters here: these run on SQLite and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.database


async def lose_the_record(store: Store, key: str) -> None:
    """The ledger as a worker killed after the server's "250 accepted" leaves it: the
    entry still "sending", and its lease run out by the time Temporal retries."""
    async with store.engine.begin() as connection:
        await connection.execute(
            update(EmailLedgerEntry)
            .where(EmailLedgerEntry.key == key)
            .values(
                status="sending",
                sent_at=None,
                lease_until=datetime.now(UTC) - timedelta(seconds=1),
            )
        )


async def test_a_resend_after_the_record_was_lost_keeps_the_message_id(
    mail_catcher: MailCatcher, store: Store, database_url: str
) -> None:
    settings = settings_for(task_queue="-", database_url=database_url, smtp_port=mail_catcher.port)
    activities = EmailActivities(store, settings)
    key = email_key("p1", "announcement", "kim@example.org", "1")

    await ActivityEnvironment().run(activities.send_email_batch, batch(["kim@example.org"]))
    await lose_the_record(store, key)
    retry = await ActivityEnvironment().run(activities.send_email_batch, batch(["kim@example.org"]))

    first, second = mail_catcher.messages()
    assert retry.sent == 1  # the window: the server had it, the ledger did not know
    assert first.recipients == second.recipients == ["kim@example.org"]
    expected = message_id(key, settings.mail_from)
    assert first.message_id == second.message_id == expected
    assert first.message["X-Mentorflow-Key"] == second.message["X-Mentorflow-Key"] == key
    (entry,) = await store.emails("p1")
    assert (entry.status, entry.message_id) == ("sent", expected)
