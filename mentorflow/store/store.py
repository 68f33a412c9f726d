"""Reads and writes of program state, shared by activities, the CLI and the web app."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, Update, bindparam, delete, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    async_sessionmaker,
    create_async_engine,
)

from mentorflow.store.tables import (
    Application,
    ApprovalDecision,
    CheckIn,
    EmailLedgerEntry,
    EvaluationResponse,
    MatchPair,
    MatchProposal,
    Pair,
    Program,
    ProgramEvent,
    ProgramReport,
)

# The email ledger as a Core table: its per-email statements skip the ORM's work.
_LEDGER = cast(Table, EmailLedgerEntry.__table__)


class StoreUnavailable(Exception):
    """The database could not be reached; the message names the address tried."""


def _with_driver(url: str, sqlite_driver: str) -> str:
    # psycopg 3 serves PostgreSQL both ways; SQLite needs aiosqlite for asyncio.
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        parsed = parsed.set(drivername=sqlite_driver)
    elif backend == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    else:
        return url
    return parsed.render_as_string(hide_password=False)


def async_url(url: str) -> str:
    """The URL with an asyncio driver: aiosqlite for SQLite, psycopg 3 for PostgreSQL."""
    return _with_driver(url, "sqlite+aiosqlite")


def sync_url(url: str) -> str:
    """The URL with a blocking driver, for migrations."""
    return _with_driver(url, "sqlite")


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    return make_url(url).render_as_string(hide_password=True)


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


class Store:
    """Program state in a SQL database, through one async engine."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: AsyncEngine = create_async_engine(async_url(url), pool_pre_ping=True)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    async def close(self) -> None:
        await self.engine.dispose()

    async def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless the database answers."""
        try:
            async with self.engine.connect() as conn:
                await conn.exec_driver_sql("SELECT 1")
        except (OSError, OperationalError, DBAPIError) as error:
            raise StoreUnavailable(
                f"cannot reach the database at {safe_url(self.url)}: {error.__class__.__name__}"
            ) from error

    def _insert(self, table: Any) -> Any:
        if self.engine.dialect.name == "postgresql":
            return pg_insert(table)
        return sqlite_insert(table)

    # --- programs ---------------------------------------------------------------------------

    async def save_program(
        self,
        *,
        program_id: str,
        name: str,
        workflow_id: str,
        definition: dict[str, Any] | None,
        phase: str,
        revision: int,
        next_deadline: datetime | None,
        at: datetime,
        dates: dict[str, str] | None = None,
    ) -> None:
        """Create the program's row, or bring it up to date.

        ``definition`` None keeps the stored one: the workflow registering itself
        holds only the definition without its people (see mentorflow.people).
        ``dates`` None keeps the stored dates.
        """
        values = {
            "id": program_id,
            "name": name,
            "workflow_id": workflow_id,
            "definition": definition if definition is not None else {},
            "phase": phase,
            "revision": revision,
            "next_deadline": next_deadline,
            "created_at": at,
            "updated_at": at,
        }
        if dates is not None:
            values["dates"] = dates
        kept = (
            ("id", "created_at") if definition is not None else ("id", "created_at", "definition")
        )
        statement = self._insert(Program).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=[Program.id],
            set_={k: statement.excluded[k] for k in values if k not in kept},
        )
        async with self._sessions.begin() as session:
            await session.execute(statement)

    async def program(self, program_id: str) -> Program | None:
        async with self._sessions() as session:
            return await session.get(Program, program_id)

    # --- notes: HR's free text, kept here so that workflows carry only its key --------------

    async def save_note(self, program_id: str, text: str, by: str, at: datetime) -> str:
        """Keep HR's text (a reason, who asked) and return the key that workflows carry."""
        key = f"note-{secrets.token_hex(8)}"
        async with self._sessions.begin() as session:
            session.add(
                ProgramEvent(
                    program_id=program_id,
                    key=key,
                    kind="note",
                    phase="",
                    revision=-1,
                    occurred_at=at,
                    detail={"text": text, "by": by},
                )
            )
        return key

    async def note(self, program_id: str, key: str) -> dict[str, str]:
        """A note's text and author ({} once purged or for an unknown key)."""
        async with self._sessions() as session:
            event = await session.scalar(
                select(ProgramEvent).where(
                    ProgramEvent.program_id == program_id, ProgramEvent.key == key
                )
            )
        return {str(k): str(v) for k, v in event.detail.items()} if event is not None else {}

    # --- events -----------------------------------------------------------------------------

    async def record_event(
        self,
        *,
        program_id: str,
        key: str,
        kind: str,
        phase: str,
        revision: int,
        at: datetime,
        detail: dict[str, Any] | None = None,
        next_deadline: datetime | None = None,
        dates: dict[str, str] | None = None,
    ) -> bool:
        """Record an event once, and the program's current phase (and ``dates``, when
        given); False if it was already there."""
        insert = (
            self._insert(ProgramEvent)
            .values(
                program_id=program_id,
                key=key,
                kind=kind,
                phase=phase,
                revision=revision,
                occurred_at=at,
                detail=detail or {},
            )
            .on_conflict_do_nothing(index_elements=[ProgramEvent.program_id, ProgramEvent.key])
            .returning(ProgramEvent.id)
        )
        async with self._sessions.begin() as session:
            # RETURNING, not rowcount: drivers disagree on rowcount after ON CONFLICT.
            created = (await session.execute(insert)).first() is not None
            if created:
                await session.execute(
                    update(Program)
                    .where(Program.id == program_id, Program.revision <= revision)
                    .values(
                        phase=phase,
                        revision=revision,
                        next_deadline=next_deadline,
                        updated_at=at,
                        **({"dates": dates} if dates is not None else {}),
                    )
                )
        return created

    async def events(self, program_id: str) -> list[ProgramEvent]:
        """What happened to the program, in order (HR's notes are not events)."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(ProgramEvent)
                .where(ProgramEvent.program_id == program_id, ProgramEvent.kind != "note")
                .order_by(ProgramEvent.occurred_at, ProgramEvent.id)
            )
            return list(rows)

    async def has_event(self, program_id: str, key: str) -> bool:
        async with self._sessions() as session:
            found = await session.scalar(
                select(ProgramEvent.id).where(
                    ProgramEvent.program_id == program_id, ProgramEvent.key == key
                )
            )
            return found is not None

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
        await self._ledger_journal()
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
            # No conflict target, as in claim_email: the key or the message id may collide.
            await conn.execute(self._insert(_LEDGER).on_conflict_do_nothing(), rows)
            found = await conn.execute(
                select(_LEDGER.c.key, _LEDGER.c.status, _LEDGER.c.message_id, _LEDGER.c.attempts)
                .add_columns(_LEDGER.c.lease_until)
                .where(_LEDGER.c.key.in_(keys))
                .order_by(_LEDGER.c.key)
                .with_for_update()
            )
            for key, status, message, attempts, lease_until in found:
                if status in ("sent", "rejected"):
                    claims[key] = EmailClaim(message, status, attempts)
                elif status == "sending" and lease_until and lease_until > now:
                    claims[key] = EmailClaim(message, "busy", attempts)
                else:
                    claims[key] = EmailClaim(message, "claimed", attempts + 1)
                    taken.append(key)
            if taken:
                await conn.execute(
                    update(_LEDGER)
                    .where(_LEDGER.c.key.in_(taken))
                    .values(
                        status="sending", lease_until=now + lease, attempts=_LEDGER.c.attempts + 1
                    )
                )
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

    _journal_checked = False  # per store, once _ledger_journal has run

    async def _ledger_journal(self) -> None:
        """Put a SQLite database in write-ahead-log mode, once per store.

        The ledger commits once per email sent (the record after the server
        accepted it). In SQLite's default rollback journal each commit syncs the
        journal and the database file and deletes the journal (6-13 ms on this
        project's machines); in WAL mode a commit appends to the log and syncs it
        once (well under 1 ms). Durability is the same: ``synchronous`` stays
        FULL, so a committed record survives a crash of the machine too. The
        mode is a property of the database file, so it holds for every process
        that opens it, and readers no longer wait for writers.
        """
        if self._journal_checked or self.engine.dialect.name != "sqlite":
            return
        # Tried once: a database that cannot switch now (another connection in a
        # transaction) works as before, only slower; an in-memory one stays "memory".
        self._journal_checked = True
        try:
            async with self.engine.connect() as conn:
                await conn.exec_driver_sql("PRAGMA journal_mode=WAL")
        except DBAPIError:
            pass

    async def emails(self, program_id: str) -> list[EmailLedgerEntry]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(EmailLedgerEntry)
                .where(EmailLedgerEntry.program_id == program_id)
                .order_by(EmailLedgerEntry.created_at, EmailLedgerEntry.key)
            )
            return list(rows)

    # --- applications -----------------------------------------------------------------------

    async def save_application(
        self,
        *,
        new_id: str,
        program_id: str,
        email: str,
        name: str,
        organisation_id: str,
        department: str,
        profile_id: str,
        manager_email: str,
        manager_name: str,
        answers: dict[str, Any],
        eligibility_confirmed: bool,
        channel: str,
        at: datetime,
    ) -> tuple[Application, bool]:
        """Create the application, or update the one with the same email; (row, created)."""
        email = email.strip().lower()
        values = {
            "name": name,
            "organisation_id": organisation_id,
            "department": department,
            "profile_id": profile_id,
            "manager_email": manager_email.strip().lower(),
            "manager_name": manager_name,
            "answers": answers,
            "eligibility_confirmed": eligibility_confirmed,
            "channel": channel,
            "updated_at": at,
        }
        insert = (
            self._insert(Application)
            .values(
                id=new_id,
                program_id=program_id,
                email=email,
                status="submitted",
                created_at=at,
                **values,
            )
            .on_conflict_do_update(
                index_elements=[Application.program_id, Application.email], set_=values
            )
        )
        async with self._sessions.begin() as session:
            await session.execute(insert)
            row = await session.scalar(
                select(Application).where(
                    Application.program_id == program_id, Application.email == email
                )
            )
        assert row is not None
        return row, row.id == new_id

    async def application_by_email(self, program_id: str, email: str) -> Application | None:
        """The program's application from ``email`` (as saved: trimmed, lower case)."""
        async with self._sessions() as session:
            return await session.scalar(
                select(Application).where(
                    Application.program_id == program_id,
                    Application.email == email.strip().lower(),
                )
            )

    async def application(self, application_id: str) -> Application | None:
        async with self._sessions() as session:
            return await session.get(Application, application_id)

    async def applications(self, program_id: str) -> list[Application]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(Application)
                .where(Application.program_id == program_id)
                .order_by(Application.created_at, Application.id)
            )
            return list(rows)

    async def record_decision(
        self,
        *,
        application_id: str,
        key: str,
        decision: str,
        decided_by: str,
        channel: str,
        at: datetime,
        status: str,
    ) -> bool:
        """Record a decision once (by ``key``) and the application's new status."""
        insert = (
            self._insert(ApprovalDecision)
            .values(
                application_id=application_id,
                key=key,
                decision=decision,
                decided_by=decided_by,
                channel=channel,
                decided_at=at,
            )
            .on_conflict_do_nothing()
            .returning(ApprovalDecision.id)
        )
        async with self._sessions.begin() as session:
            created = (await session.execute(insert)).first() is not None
            if created:
                await session.execute(
                    update(Application)
                    .where(Application.id == application_id)
                    .values(status=status, updated_at=at)
                )
        return created

    async def set_application_status(self, application_id: str, status: str, at: datetime) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(Application)
                .where(Application.id == application_id)
                .values(status=status, updated_at=at)
            )

    async def decisions(self, application_id: str) -> list[ApprovalDecision]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(ApprovalDecision)
                .where(ApprovalDecision.application_id == application_id)
                .order_by(ApprovalDecision.decided_at, ApprovalDecision.id)
            )
            return list(rows)

    # --- capacity decisions and matching ----------------------------------------------------

    async def record_selections(
        self,
        *,
        program_id: str,
        selections: dict[str, str],
        decided_by: str,
        channel: str,
        at: datetime,
    ) -> None:
        """Record HR's decision (accepted, waitlisted, declined) on each named application."""
        async with self._sessions.begin() as session:
            for application_id, selection in sorted(selections.items()):
                await session.execute(
                    update(Application)
                    .where(Application.id == application_id, Application.program_id == program_id)
                    .values(
                        selection=selection,
                        selected_by=decided_by,
                        selection_channel=channel,
                        selected_at=at,
                        updated_at=at,
                    )
                )

    async def save_proposal(
        self,
        *,
        program_id: str,
        number: int,
        total_score: float,
        worst_score: float | None,
        report: dict[str, Any],
        pairs: list[tuple[str, str, float, dict[str, float], bool]],
        at: datetime,
    ) -> bool:
        """Store proposal ``number`` with its pairs once; False if it was already stored."""
        insert = (
            self._insert(MatchProposal)
            .values(
                program_id=program_id,
                number=number,
                status="proposed",
                total_score=total_score,
                worst_score=worst_score,
                report=report,
                created_at=at,
            )
            .on_conflict_do_nothing()
            .returning(MatchProposal.id)
        )
        async with self._sessions.begin() as session:
            row = (await session.execute(insert)).first()
            if row is None:
                return False
            session.add_all(
                MatchPair(
                    proposal_id=row[0],
                    mentor_application_id=mentor,
                    adept_application_id=adept,
                    score=score,
                    breakdown=parts,
                    locked=locked,
                )
                for mentor, adept, score, parts, locked in pairs
            )
        return True

    async def proposal(
        self, program_id: str, number: int | None = None
    ) -> tuple[MatchProposal, list[MatchPair]] | None:
        """Proposal ``number`` (the latest when None) and its pairs, best score first."""
        async with self._sessions() as session:
            query = select(MatchProposal).where(MatchProposal.program_id == program_id)
            if number is not None:
                query = query.where(MatchProposal.number == number)
            found = await session.scalar(query.order_by(MatchProposal.number.desc()).limit(1))
            if found is None:
                return None
            pairs = await session.scalars(
                select(MatchPair)
                .where(MatchPair.proposal_id == found.id)
                .order_by(MatchPair.score.desc(), MatchPair.adept_application_id)
            )
            return found, list(pairs)

    async def confirm_proposal(
        self, *, program_id: str, number: int, confirmed_by: str, at: datetime
    ) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(MatchProposal)
                .where(
                    MatchProposal.program_id == program_id,
                    MatchProposal.number == number,
                    MatchProposal.status == "proposed",
                )
                .values(status="confirmed", confirmed_by=confirmed_by, confirmed_at=at)
            )

    # --- Running pairs ------------------------------------------------------------------

    async def open_pairs(
        self, *, program_id: str, pairs: list[tuple[str, str, str]], source: str, at: datetime
    ) -> None:
        """Record each (pair id, mentor id, adept id) as an active pair, once."""
        if not pairs:
            return
        async with self._sessions.begin() as session:
            await session.execute(
                self._insert(Pair)
                .values(
                    [
                        {
                            "id": pair_id,
                            "program_id": program_id,
                            "mentor_application_id": mentor,
                            "adept_application_id": adept,
                            "status": "active",
                            "source": source,
                            "started_at": at,
                        }
                        for pair_id, mentor, adept in pairs
                    ]
                )
                .on_conflict_do_nothing()
            )

    async def pair(self, pair_id: str) -> Pair | None:
        async with self._sessions() as session:
            return await session.get(Pair, pair_id)

    async def pairs(self, program_id: str) -> list[Pair]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(Pair).where(Pair.program_id == program_id).order_by(Pair.started_at, Pair.id)
            )
            return list(rows)

    async def pair_of(self, application_id: str) -> Pair | None:
        """The active pair an application is in, if any."""
        async with self._sessions() as session:
            return await session.scalar(
                select(Pair).where(
                    Pair.status == "active",
                    (Pair.mentor_application_id == application_id)
                    | (Pair.adept_application_id == application_id),
                )
            )

    async def set_pair_status(
        self, pair_id: str, status: str, at: datetime, reason: str | None = None
    ) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(Pair)
                .where(Pair.id == pair_id, Pair.status == "active")
                .values(status=status, closed_at=at, closed_reason=reason)
            )

    async def record_check_in(
        self, *, pair_id: str, number: str, role: str, answer: str, at: datetime
    ) -> None:
        """Record one answer once; a "yes" moves the pair's last meeting."""
        async with self._sessions.begin() as session:
            await session.execute(
                self._insert(CheckIn)
                .values(pair_id=pair_id, number=number, role=role, answer=answer, answered_at=at)
                .on_conflict_do_nothing()
            )
            if answer == "yes":
                await session.execute(update(Pair).where(Pair.id == pair_id).values(last_met_at=at))

    async def check_ins(self, pair_id: str) -> list[CheckIn]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(CheckIn).where(CheckIn.pair_id == pair_id).order_by(CheckIn.id)
            )
            return list(rows)

    async def participants(
        self, program_id: str, statuses: tuple[str, ...] = ("active",)
    ) -> list[tuple[Application, str]]:
        """(application, role) of everyone in a pair of these statuses, mentors first."""
        async with self._sessions() as session:
            active = list(
                await session.scalars(
                    select(Pair).where(Pair.program_id == program_id, Pair.status.in_(statuses))
                )
            )
            ids = {p.mentor_application_id: "mentor" for p in active} | {
                p.adept_application_id: "adept" for p in active
            }
            if not ids:
                return []
            rows = await session.scalars(select(Application).where(Application.id.in_(ids)))
            found = sorted(rows, key=lambda row: (ids[row.id] != "mentor", row.id))
            return [(row, ids[row.id]) for row in found]

    # --- The closing evaluation ------------------------------------------------------------

    async def record_evaluation_response(
        self, *, program_id: str, application_id: str, answers: dict[str, Any], at: datetime
    ) -> EvaluationResponse | None:
        """Record a participant's answers once; None if they had already answered."""
        try:
            async with self._sessions.begin() as session:
                row = EvaluationResponse(
                    program_id=program_id,
                    application_id=application_id,
                    answers=answers,
                    submitted_at=at,
                )
                session.add(row)
            return row
        except IntegrityError:  # the unique (program, application): a second answer
            return None

    async def evaluation_response(
        self, program_id: str, application_id: str
    ) -> EvaluationResponse | None:
        async with self._sessions() as session:
            return await session.scalar(
                select(EvaluationResponse).where(
                    EvaluationResponse.program_id == program_id,
                    EvaluationResponse.application_id == application_id,
                )
            )

    async def evaluation_responses(self, program_id: str) -> list[EvaluationResponse]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(EvaluationResponse)
                .where(EvaluationResponse.program_id == program_id)
                .order_by(EvaluationResponse.id)
            )
            return list(rows)

    async def check_ins_of(self, program_id: str) -> list[CheckIn]:
        """Every check-in answer of every pair of a program."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(CheckIn)
                .join(Pair, Pair.id == CheckIn.pair_id)
                .where(Pair.program_id == program_id)
                .order_by(CheckIn.id)
            )
            return list(rows)

    async def approved_ids(self, program_id: str) -> set[str]:
        """Applications a manager (or HR, or a policy) approved at some point."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(ApprovalDecision.application_id)
                .join(Application, Application.id == ApprovalDecision.application_id)
                .where(
                    Application.program_id == program_id, ApprovalDecision.decision == "approved"
                )
            )
            return set(rows)

    # --- Reports and retention ---------------------------------------------------------------

    async def save_report(self, program_id: str, report: dict[str, Any], at: datetime) -> None:
        """Store (or replace, before a purge) a program's report."""
        values = {"program_id": program_id, "report": report, "generated_at": at}
        statement = self._insert(ProgramReport).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=[ProgramReport.program_id],
            set_={"report": statement.excluded.report, "generated_at": at},
            where=ProgramReport.purged_at.is_(None),
        )
        async with self._sessions.begin() as session:
            await session.execute(statement)

    async def report(self, program_id: str) -> ProgramReport | None:
        async with self._sessions() as session:
            return await session.get(ProgramReport, program_id)

    async def purge_personal_data(
        self, program_id: str, report: dict[str, Any], at: datetime
    ) -> dict[str, int]:
        """Remove everything about a program's people; keep ``report`` (figures only).

        Applications go with everything that hangs on them (decisions, proposals'
        pairs, pairs, check-ins, evaluation answers); the email ledger's addresses
        go; the program's event log keeps its shape but loses every value that
        names one of its people. One transaction: all of it or none.
        """
        async with self._sessions.begin() as session:
            people = list(
                await session.execute(
                    select(
                        Application.email,
                        Application.name,
                        Application.manager_email,
                        Application.manager_name,
                    ).where(Application.program_id == program_id)
                )
            )
            names = {value for row in people for value in row if value and len(value) > 2}
            counts = {
                "applications": len(people),
                "evaluation_responses": await session.scalar(
                    select(func.count())
                    .select_from(EvaluationResponse)
                    .where(EvaluationResponse.program_id == program_id)
                )
                or 0,
            }
            await session.execute(
                delete(EvaluationResponse).where(EvaluationResponse.program_id == program_id)
            )
            pair_ids = select(Pair.id).where(Pair.program_id == program_id)
            await session.execute(delete(CheckIn).where(CheckIn.pair_id.in_(pair_ids)))
            await session.execute(delete(Pair).where(Pair.program_id == program_id))
            proposals = select(MatchProposal.id).where(MatchProposal.program_id == program_id)
            await session.execute(delete(MatchPair).where(MatchPair.proposal_id.in_(proposals)))
            await session.execute(
                delete(MatchProposal).where(MatchProposal.program_id == program_id)
            )
            applications = select(Application.id).where(Application.program_id == program_id)
            await session.execute(
                delete(ApprovalDecision).where(ApprovalDecision.application_id.in_(applications))
            )
            await session.execute(delete(Application).where(Application.program_id == program_id))
            emails = await session.execute(
                delete(EmailLedgerEntry).where(EmailLedgerEntry.program_id == program_id)
            )
            counts["emails"] = int(emails.rowcount or 0)  # type: ignore[attr-defined]
            scrubbed = 0
            for event in await session.scalars(
                select(ProgramEvent).where(ProgramEvent.program_id == program_id)
            ):
                # A note is HR's free text about people (a reason, who asked): it goes whole.
                detail = {} if event.kind == "note" else _scrub(event.detail, names)
                if detail != event.detail:
                    event.detail = detail
                    scrubbed += 1
            counts["events_scrubbed"] = scrubbed
            values = {"program_id": program_id, "report": report, "generated_at": at}
            statement = self._insert(ProgramReport).values(**values, purged_at=at)
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=[ProgramReport.program_id],
                    set_={"report": report, "purged_at": at},
                )
            )
        return counts

    async def person(self, email: str) -> list[dict[str, Any]]:
        """Everything stored about one person, program by program (a data subject request)."""
        address = email.strip().lower()
        found: list[dict[str, Any]] = []
        async with self._sessions() as session:
            applications = list(
                await session.scalars(
                    select(Application)
                    .where(
                        (func.lower(Application.email) == address)
                        | (func.lower(Application.manager_email) == address)
                    )
                    .order_by(Application.created_at)
                )
            )
            for row in applications:
                as_manager = row.email.lower() != address
                entry: dict[str, Any] = {
                    "program_id": row.program_id,
                    "as": "manager" if as_manager else "applicant",
                    "application": _row(row),
                    "decisions": [
                        _row(d)
                        for d in await session.scalars(
                            select(ApprovalDecision).where(
                                ApprovalDecision.application_id == row.id
                            )
                        )
                    ],
                }
                if not as_manager:
                    pairs = list(
                        await session.scalars(
                            select(Pair).where(
                                (Pair.mentor_application_id == row.id)
                                | (Pair.adept_application_id == row.id)
                            )
                        )
                    )
                    entry["pairs"] = [_row(p) for p in pairs]
                    # Their own answers: their role in each of their pairs.
                    roles = [
                        (p.id, "mentor" if p.mentor_application_id == row.id else "adept")
                        for p in pairs
                    ]
                    entry["check_ins"] = (
                        [
                            _row(c)
                            for c in await session.scalars(
                                select(CheckIn)
                                .where(tuple_(CheckIn.pair_id, CheckIn.role).in_(roles))
                                .order_by(CheckIn.id)
                            )
                        ]
                        if roles
                        else []
                    )
                    response = await session.scalar(
                        select(EvaluationResponse).where(
                            EvaluationResponse.application_id == row.id
                        )
                    )
                    entry["evaluation"] = _row(response) if response else None
                found.append(entry)
            emails = await session.scalars(
                select(EmailLedgerEntry)
                .where(func.lower(EmailLedgerEntry.recipient) == address)
                .order_by(EmailLedgerEntry.created_at)
            )
            ledger = [
                {
                    k: v
                    for k, v in _row(e).items()
                    if k in ("program_id", "template", "subject", "status", "sent_at")
                }
                for e in emails
            ]
        return [*found, {"emails": ledger}] if ledger else found


def _row(row: Any) -> dict[str, Any]:
    """A table row as JSON-ready values."""
    values: dict[str, Any] = {}
    for column in row.__table__.columns:
        value = getattr(row, column.key)
        values[column.key] = value.isoformat() if isinstance(value, datetime) else value
    return values


def _scrub(value: Any, names: set[str]) -> Any:
    """``value`` with every string that contains one of ``names`` replaced."""
    if isinstance(value, dict):
        return {k: _scrub(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, names) for v in value]
    if isinstance(value, str) and any(name.lower() in value.lower() for name in names):
        return "[removed]"
    return value
