"""The email ledger: each email claimed once, marked sent or released."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, Update, bindparam, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
)

from mentorflow.store.base import StoreBase
from mentorflow.store.tables import (
    EmailLedgerEntry,
)

# The email ledger as a Core table: its per-email statements skip the ORM's work.
_LEDGER = cast(Table, EmailLedgerEntry.__table__)

# A claim's statements, built once with their parameters bound at each claim: built
# and keyed for SQLAlchemy's statement cache anew at every claim, a claim of two
# emails took 3.2 ms of CPU on SQLite where it now takes 2.0.
_CLAIMED_ROWS = (
    select(_LEDGER.c.key, _LEDGER.c.status, _LEDGER.c.message_id, _LEDGER.c.attempts)
    .add_columns(_LEDGER.c.lease_until)
    .where(_LEDGER.c.key.in_(bindparam("keys", expanding=True)))
    .order_by(_LEDGER.c.key)
    .with_for_update()
)
_TAKE = (
    update(_LEDGER)
    .where(_LEDGER.c.key.in_(bindparam("keys", expanding=True)))
    .values(status="sending", lease_until=bindparam("until"), attempts=_LEDGER.c.attempts + 1)
)


@dataclass(frozen=True)
class EmailClaim:
    """The ledger's answer to "may I send this email?".

    ``claimed``: yes, and no one else may until the lease ends. ``busy``: another
    attempt holds the lease (a slow attempt that Temporal already retried), so
    wait. ``sent`` or ``rejected``: never again.
    """

    message_id: str
    status: str
    attempts: int


@dataclass(frozen=True)
class LedgerEmail:
    """One email as the ledger enters it, before it is claimed."""

    key: str
    program_id: str
    step: str
    revision: str
    recipient: str
    template: str
    message_id: str
    subject: str


def _outcome(key: str, status: str, error: str | None) -> Update:
    """The ledger's record of what the server answered for one email."""
    # A temporary error noted earlier stays: it tells ops why the email was late.
    values: dict[str, Any] = {"status": status, "lease_until": None}
    if error is not None:
        values["last_error"] = error
    if status == "sent":
        values["sent_at"] = datetime.now(UTC)
    return update(_LEDGER).where(_LEDGER.c.key == key).values(**values)


class EmailRecorder:
    """Marks emails in the ledger on one connection, held for a whole batch.

    The record after each accepted email is the ledger's one write per email.
    Through the pool it costs a checkout, a liveness ping, BEGIN, the UPDATE and
    COMMIT; here it is the UPDATE alone, in autocommit: still its own durable
    transaction, committed before :meth:`mark` returns. A connection that fails
    is dropped, and the next mark takes a fresh one (checked by the pool's ping).
    """

    _sent = (
        update(_LEDGER)
        .where(_LEDGER.c.key == bindparam("k"))
        .values(status="sent", lease_until=None, sent_at=bindparam("at"))
    )

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._conn: AsyncConnection | None = None

    async def mark(self, key: str, status: str, *, error: str | None = None) -> None:
        """:meth:`Store.mark_email`, on the held connection."""
        if self._conn is None:
            conn = await self._engine.connect()
            try:
                self._conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            except BaseException:
                await conn.close()
                raise
        try:
            if status == "sent" and error is None:  # the common case, compiled once
                await self._conn.execute(self._sent, {"k": key, "at": datetime.now(UTC)})
            else:
                await self._conn.execute(_outcome(key, status, error))
        except BaseException:
            await self._drop(invalidate=True)
            raise

    async def close(self) -> None:
        await self._drop(invalidate=False)

    async def _drop(self, *, invalidate: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if invalidate:
                await conn.invalidate()
            await conn.close()
        except (DBAPIError, OSError):
            pass  # already broken: the pool forgets it


class EmailLedger(StoreBase):
    """The email ledger: each email claimed once, marked sent or released."""

    @functools.cached_property
    def _enter(self) -> Any:
        """claim_emails' insert, in the database's dialect. No conflict target, as in
        claim_email: the key or the message id may collide."""
        return self._insert(_LEDGER).on_conflict_do_nothing()

    # --- email ledger -----------------------------------------------------------------------

    async def claim_email(
        self,
        *,
        key: str,
        program_id: str,
        step: str,
        revision: str,
        recipient: str,
        template: str,
        message_id: str,
        subject: str,
        lease: timedelta,
    ) -> EmailClaim:
        """Enter the email in the ledger (once) and try to take the right to send it."""
        now = datetime.now(UTC)
        insert = (
            self._insert(EmailLedgerEntry)
            .values(
                key=key,
                program_id=program_id,
                step=step,
                revision=revision,
                recipient=recipient,
                template=template,
                message_id=message_id,
                subject=subject,
                status="pending",
                attempts=0,
                created_at=now,
            )
            # No conflict target: message_id is unique too and derives from the key, so a
            # concurrent claim of the same email may collide on either constraint.
            .on_conflict_do_nothing()
        )
        async with self._sessions.begin() as session:
            await session.execute(insert)
            entry = await session.get(EmailLedgerEntry, key, with_for_update=True)
            assert entry is not None
            if entry.status in ("sent", "rejected"):
                return EmailClaim(entry.message_id, entry.status, entry.attempts)
            if entry.status == "sending" and entry.lease_until and entry.lease_until > now:
                return EmailClaim(entry.message_id, "busy", entry.attempts)
            # Pending, or an attempt that died while sending (its lease ran out): ours now.
            entry.status = "sending"
            entry.lease_until = now + lease
            entry.attempts += 1
            return EmailClaim(entry.message_id, "claimed", entry.attempts)

    async def mark_email(self, key: str, status: str, *, error: str | None = None) -> None:
        """Record the outcome: ``sent`` (accepted by the server) or ``rejected`` (permanently)."""
        async with self.engine.begin() as conn:
            await conn.execute(_outcome(key, status, error))

    async def release_email(self, key: str, error: str) -> None:
        """Give the email back after a temporary failure; keep why, so ops can see it."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(EmailLedgerEntry)
                .where(EmailLedgerEntry.key == key, EmailLedgerEntry.status == "sending")
                .values(status="pending", lease_until=None, last_error=error)
            )

    async def claim_emails(
        self, emails: Sequence[LedgerEmail], *, lease: timedelta
    ) -> dict[str, EmailClaim]:
        """:meth:`claim_email` for a whole chunk of emails, in one transaction.

        Enters the emails not in the ledger yet (one multi-row insert), reads every
        row locked (one select) and takes the ones nobody holds (one update): three
        round trips and one commit however many emails, where claiming each alone
        costs a commit per email. Keys are taken in order, so two attempts claiming
        overlapping chunks lock rows in the same order and cannot deadlock.
        """
        if not emails:
            return {}
        now = datetime.now(UTC)
        ordered = sorted({e.key: e for e in emails}.values(), key=lambda e: e.key)
        keys = [e.key for e in ordered]
        rows = [
            {
                "key": e.key,
                "program_id": e.program_id,
                "step": e.step,
                "revision": e.revision,
                "recipient": e.recipient,
                "template": e.template,
                "message_id": e.message_id,
                "subject": e.subject,
                "status": "pending",
                "attempts": 0,
                "created_at": now,
            }
            for e in ordered
        ]
        claims: dict[str, EmailClaim] = {}
        taken: list[str] = []
        async with self.engine.begin() as conn:
            await conn.execute(self._enter, rows)
            found = await conn.execute(_CLAIMED_ROWS, {"keys": keys})
            for key, status, message, attempts, lease_until in found:
                if status in ("sent", "rejected"):
                    claims[key] = EmailClaim(message, status, attempts)
                elif status == "sending" and lease_until and lease_until > now:
                    claims[key] = EmailClaim(message, "busy", attempts)
                else:
                    claims[key] = EmailClaim(message, "claimed", attempts + 1)
                    taken.append(key)
            if taken:
                await conn.execute(_TAKE, {"keys": taken, "until": now + lease})
        return claims

    def email_recorder(self) -> EmailRecorder:
        """A recorder of email outcomes for one batch; close it when the batch is done."""
        return EmailRecorder(self.engine)

    async def release_emails(self, keys: Sequence[str], error: str | None) -> None:
        """:meth:`release_email` for several emails claimed together, in one statement.

        ``error`` None: given back unsent without a failure (a lease that ran
        short), so the last error noted stays.
        """
        if not keys:
            return
        values: dict[str, Any] = {"status": "pending", "lease_until": None}
        if error is not None:
            values["last_error"] = error
        async with self.engine.begin() as conn:
            await conn.execute(
                update(_LEDGER)
                .where(_LEDGER.c.key.in_(list(keys)), _LEDGER.c.status == "sending")
                .values(**values)
            )

    async def emails(self, program_id: str) -> list[EmailLedgerEntry]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(EmailLedgerEntry)
                .where(EmailLedgerEntry.program_id == program_id)
                .order_by(EmailLedgerEntry.created_at, EmailLedgerEntry.key)
            )
            return list(rows)
