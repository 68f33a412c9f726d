"""Sending business emails exactly once per business key, through the email ledger."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parseaddr

import aiosmtplib
import sqlalchemy.exc
from aiosmtplib.email import flatten_message, parse_address
from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import Pulse
from mentorflow import people
from mentorflow.definition import Contact, ProgramDefinition, stored_definition
from mentorflow.invitations import Method, invitation
from mentorflow.links import LinkSigner, Purpose
from mentorflow.mail.message import (
    MessageTemplate,
    address_is_valid,
    build_message,
    email_key,
    message_id,
)
from mentorflow.mail.render import RenderedEmail, render
from mentorflow.models import (
    CalendarEmailInput,
    DeliveryCounts,
    EmailBatch,
    EmailBatches,
    EmailBatchesResult,
    EmailBatchResult,
    EmailFacts,
    EmailTemplate,
    EvaluationEmailInput,
    EvaluationEmailResult,
    LinkRequest,
    OutcomeNoticesInput,
    PairEmailInput,
    PairEmailResult,
    RejectedEmail,
)
from mentorflow.settings import Settings
from mentorflow.store import Store
from mentorflow.store.store import LedgerEmail

TEMPORARY_SMTP_FAILURE = "TemporarySmtpFailure"
EVALUATION_LINK_GRACE = timedelta(days=90)
EMAIL_IN_FLIGHT = "EmailInFlight"
TEMPORARY_LEDGER_DELAY = "TemporaryLedgerDelay"
# Emails claimed in the ledger at once: one transaction per chunk, not per email.
# The first chunk is small, so the first emails leave soon; later ones grow while
# the server keeps up, and shrink to what it sends within a lease when it does not.
CLAIM_CHUNK = 100
LARGEST_CLAIM = 1000
# A claim's lease: one SMTP conversation and this. An email starts only while its
# lease still holds one conversation and START_MARGIN, so claims of a chunk stay
# usable for LEASE_MARGIN - START_MARGIN (10 s) after they are taken.
LEASE_MARGIN = timedelta(seconds=15)
START_MARGIN = timedelta(seconds=5)


@dataclass(frozen=True)
class _Outgoing:
    """One rendered email and its business key parts."""

    step: str
    revision: str
    recipient: str  # the real address
    template: EmailTemplate
    rendered: RenderedEmail
    # How the workflow named the recipient (mentorflow.people): what a result may
    # say of them, since results go into the workflow's history.
    reference: str = "a participant"


class _Permanent(Exception):
    """The server refused this recipient for good (5xx): retrying cannot help."""


# An SMTP connection left open between deliveries is used again for this long: well
# inside the idle timeouts of mail servers (Postfix and aiosmtpd: five minutes).
IDLE_CONNECTION = 10.0
IDLE_CONNECTIONS = 4


class _Connections:
    """SMTP connections kept open between deliveries of one worker process.

    Most deliveries send an application's one or two emails: opening a connection
    for each (TCP, the greeting, EHLO, and QUIT after) cost more than the emails
    did, on this side and the server's. A delivery that ended cleanly (no
    transaction open) gives its connection back; the next one takes it if it is
    still open and has been idle less than :data:`IDLE_CONNECTION`, else a new one
    is opened. A delivery that failed closes its connection.
    """

    def __init__(self, client: Callable[[], aiosmtplib.SMTP]) -> None:
        self._client = client
        self._idle: list[tuple[aiosmtplib.SMTP, float]] = []

    async def take(self) -> aiosmtplib.SMTP:
        while self._idle:
            smtp, since = self._idle.pop()  # the most recent: the likeliest still open
            if smtp.is_connected and time.monotonic() - since < IDLE_CONNECTION:
                return smtp
            await _quit(smtp)
        smtp = self._client()
        await smtp.connect()
        return smtp

    async def give(self, smtp: aiosmtplib.SMTP, *, clean: bool) -> None:
        if clean and smtp.is_connected and len(self._idle) < IDLE_CONNECTIONS:
            self._idle.append((smtp, time.monotonic()))
        elif clean:
            await _quit(smtp)
        else:
            smtp.close()


class EmailActivities:
    """Holds the SMTP settings and the store that the email activities use."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self._store = store
        self._settings = settings
        self._signer = LinkSigner(settings.secret_keys)
        # Longer than one SMTP conversation can take, shorter than the heartbeat
        # timeout after which Temporal retries a dead attempt.
        self._lease = timedelta(seconds=settings.smtp_timeout_seconds) + LEASE_MARGIN
        self._connections = _Connections(self._client)

    def _client(self) -> aiosmtplib.SMTP:
        s = self._settings
        return aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            use_tls=s.smtp_tls,
            start_tls=s.smtp_starttls,
            username=s.smtp_username,
            password=s.smtp_password.get_secret_value() if s.smtp_password else None,
            timeout=s.smtp_timeout_seconds,
        )

    @activity.defn
    async def send_email_batch(self, batch: EmailBatch) -> EmailBatchResult:
        """Send one email to each recipient that has not had it yet.

        The ledger is claimed before each send and marked after the server
        accepts it, so a retry (after a crash, a timeout or an SMTP outage)
        skips the recipients already served. A permanent refusal is recorded
        and not retried; a temporary one fails the attempt so Temporal retries
        it with backoff.
        """
        return await self._send_batch(
            batch, await people.Resolver.load(self._store, batch.program_id)
        )

    async def _send_batch(self, batch: EmailBatch, resolver: people.Resolver) -> EmailBatchResult:
        facts = await self._facts(resolver, batch.program_id, batch.facts)
        if batch.application_id is not None:
            row = await resolver.application(batch.application_id)
            if row is not None:
                facts = facts.model_copy(
                    update={
                        "applicant_name": row.name,
                        "manager_name": row.manager_name if batch.name_manager else None,
                    }
                )
        # HR's own words to the announcement's recipients: read here, from the stored
        # definition, like the people (the workflow's copy need not carry them).
        extra: dict[str, str] = {}
        if batch.template == "announcement":
            extra["announcement_message"] = await self._announcement_message(batch.program_id)
        shared = None if batch.links else render(batch.template, facts, **extra)
        result = EmailBatchResult(sent=0, already_sent=0)
        outgoing = []
        recipients = list(batch.recipients)
        if batch.applicants:
            rows = await self._store.applications(batch.program_id)
            named = set(batch.recipients)
            added = [people.applicant(r.id) for r in rows if r.status in batch.applicants]
            recipients += [r for r in added if r not in named]
        for reference in recipients:
            try:
                address = await resolver.email(reference)
            except people.Unknown:
                result.rejected.append(RejectedEmail(recipient=reference, reason="unknown person"))
                continue
            result.fingerprints[reference] = self._signer.fingerprint(address)
            links = self._links(batch.program_id, batch.links, address)
            rendered = shared or render(batch.template, facts, links=links, **extra)
            outgoing.append(
                _Outgoing(batch.step, batch.revision, address, batch.template, rendered, reference)
            )
        await self._deliver(batch.program_id, batch.facts.language, outgoing, result)
        return result

    @activity.defn
    async def send_email_batches(self, request: EmailBatches) -> EmailBatchesResult:
        """Each batch as :meth:`send_email_batch` sends it, one after the other.

        A retry sends each batch again through the ledger, so what one attempt
        sent is not sent twice.
        """
        # One resolver per program: the batches share its definition and the application
        # rows it has read (an application's two first emails: one read of each).
        resolvers: dict[str, people.Resolver] = {}
        results = []
        for batch in request.batches:
            if batch.program_id not in resolvers:
                resolvers[batch.program_id] = await people.Resolver.load(
                    self._store, batch.program_id
                )
            results.append(await self._send_batch(batch, resolvers[batch.program_id]))
        return EmailBatchesResult(results=results)

    async def _facts(
        self, resolver: people.Resolver, program_id: str, facts: EmailFacts
    ) -> EmailFacts:
        """The workflow's facts with what it may not carry: the contacts, HR's note.

        The contacts go into the footer and the first into Reply-To: a reference
        the database no longer knows goes nowhere, never into a header.
        """
        contacts = [
            c for c in resolver.contacts(facts.contacts) if people.parse(str(c.email)) is None
        ]
        return facts.model_copy(
            update={
                "apply_url": self._apply_url(program_id),
                "contacts": contacts,
                "reason": await resolver.text(facts.reason),
            }
        )

    async def _announcement_message(self, program_id: str) -> str:
        """The definition's ``announcement.message``, as stored with the program ("" if none)."""
        program = await self._store.program(program_id)
        definition = program.definition if program is not None else None
        announcement = definition.get("announcement") if isinstance(definition, dict) else None
        message = announcement.get("message") if isinstance(announcement, dict) else None
        return message if isinstance(message, str) else ""

    @activity.defn
    async def send_outcome_notices(self, notices: OutcomeNoticesInput) -> DeliveryCounts:
        """Tell each approved applicant, and their manager, how HR's decision and matching ended.

        Matched participants get their pair introduction, the others a kind
        word (wait-listed, not selected, or no pair found); each email once.
        """
        stored = await self._store.proposal(notices.program_id, notices.proposal)
        pairs = stored[1] if stored is not None else []
        rows = {row.id: row for row in await self._store.applications(notices.program_id)}
        partners: dict[str, str] = {}
        for pair in pairs:
            partners[pair.mentor_application_id] = pair.adept_application_id
            partners[pair.adept_application_id] = pair.mentor_application_id
        resolver = await people.Resolver.load(self._store, notices.program_id)
        base = await self._facts(resolver, notices.program_id, notices.facts)
        outgoing = []
        for row in sorted(rows.values(), key=lambda r: r.id):
            if row.status != "approved" or row.selection is None:
                continue
            if notices.organisation_id not in (None, row.organisation_id):
                continue
            partner = rows.get(partners.get(row.id, ""))
            selection = row.selection
            if selection == "accepted":
                selection = "matched" if partner is not None else "unmatched"
            facts = base.model_copy(
                update={
                    "applicant_name": row.name,
                    "manager_name": row.manager_name,
                    "profile_title": notices.profile_titles.get(row.profile_id, row.profile_id),
                    "organisation_name": notices.organisation_names.get(row.organisation_id),
                    "selection": selection,
                }
            )
            if partner is not None:
                facts = facts.model_copy(
                    update={
                        "partner_name": partner.name,
                        "partner_email": partner.email,
                        "partner_title": notices.profile_titles.get(partner.profile_id),
                        "partner_organisation": notices.organisation_names.get(
                            partner.organisation_id
                        ),
                    }
                )
            template: EmailTemplate = (
                "pair_introduction" if partner is not None else "selection_outcome"
            )
            outgoing.append(
                _Outgoing(f"{row.id}/outcome", "1", row.email, template, render(template, facts))
            )
            outgoing.append(
                _Outgoing(
                    f"{row.id}/manager-outcome",
                    "1",
                    row.manager_email,
                    "manager_outcome",
                    render("manager_outcome", facts),
                )
            )
        return await self._deliver_counted(notices.program_id, notices.facts.language, outgoing)

    @activity.defn
    async def send_calendar_emails(self, request: CalendarEmailInput) -> DeliveryCounts:
        """An invitation (or its update or cancellation), or a reminder, for one joint event.

        Every participant of an active pair gets it once per version of the
        event: the ledger key holds the event's SEQUENCE, so a moved event
        reaches each person exactly once more, and a participant who joined
        later (a re-match) gets the current version.
        """
        entry, source = request.entry, request.entry.event
        program = await self._store.program(request.program_id)
        try:
            definition = stored_definition(program.definition) if program else None
        except ValidationError:  # none saved (a run registered by itself)
            definition = None
        resolver = people.Resolver(self._store, request.program_id, definition)
        domain = parseaddr(self._settings.mail_from)[1].rpartition("@")[2] or "mentorflow.localhost"
        base = await self._facts(resolver, request.program_id, request.facts)
        organizer = await self._organizer(resolver, definition, request.organizer, base.contacts)
        # The start before the last move, for the update email: only when it moved.
        previous = entry.previous_starts
        if entry.sequence == 0 or previous == source.starts:
            previous = None
        facts = base.model_copy(
            update={
                "event_title": source.title,
                "event_starts": source.starts,
                "event_ends": source.starts + source.duration,
                "event_place": source.place,
                "event_online_url": source.online_url,
                "event_description": source.description,
                "event_update": entry.sequence > 0,
                "event_previous_starts": previous,
                "time_left": request.time_left,
            }
        )
        outgoing = []
        for row, _role in await self._store.participants(request.program_id):
            personal = facts.model_copy(update={"applicant_name": row.name})
            if request.kind == "reminder":
                outgoing.append(
                    _Outgoing(
                        f"event-reminder/{source.id}/{request.reminder_key}",
                        source.starts.isoformat(),
                        row.email,
                        "event_reminder",
                        render("event_reminder", personal),
                    )
                )
                continue
            method: Method = "CANCEL" if entry.cancelled else "REQUEST"
            template: EmailTemplate = "event_cancelled" if entry.cancelled else "event_invitation"
            calendar = invitation(
                entry,
                method=method,
                program_id=request.program_id,
                program_name=request.facts.program_name,
                timezone=request.facts.timezone,
                organizer=organizer,
                attendee=row.email,
                attendee_name=row.name,
                domain=domain,
                stamp=request.at,
            )
            rendered = replace(
                render(template, personal), calendar=calendar, calendar_method=method
            )
            outgoing.append(
                _Outgoing(f"event/{source.id}", str(entry.sequence), row.email, template, rendered)
            )
        return await self._deliver_counted(request.program_id, request.facts.language, outgoing)

    async def _organizer(
        self,
        resolver: people.Resolver,
        definition: ProgramDefinition | None,
        given: Contact,
        contacts: list[Contact],
    ) -> Contact:
        """Who a joint event's invitations come from (ORGANIZER): a real contact of the program.

        The workflow names one of the program's coordinators by reference (a run from
        before the references, by the real address): it becomes that contact of the
        stored definition, with the name the definition gives them. One the definition
        does not have gives way to its first coordinator (with no definition stored, to
        the program's first contact); with none of them the invitations come from the
        sender. Never a reference: it would stand in participants' calendars.
        """
        known = [*contacts]
        if definition is not None:
            known = [
                *definition.coordinators(),
                *definition.contacts,
                *(c for o in definition.organisations for c in o.hr_contacts),
                *known,
            ]
        try:
            address = (await resolver.email(str(given.email))).lower()
        except people.Unknown:
            address = ""
        for contact in known:
            if str(contact.email).lower() == address:
                return contact
        if known:
            return known[0]
        if address and people.parse(str(given.email)) is None:
            return given
        name, sender = parseaddr(self._settings.mail_from)
        return Contact.model_construct(name=name or sender, email=sender)

    @activity.defn
    async def send_pair_email(self, request: PairEmailInput) -> PairEmailResult:
        """One email of a running pair, to its participants or to HR, each once.

        Names and addresses are read here, from the database, so that they
        never enter the pair workflow's history.
        """
        pair = await self._store.pair(request.pair_id)
        if pair is None:
            raise ApplicationError(f"unknown pair {request.pair_id}", non_retryable=True)
        mentor = await self._store.application(pair.mentor_application_id)
        adept = await self._store.application(pair.adept_application_id)
        if mentor is None or adept is None:
            raise ApplicationError(f"pair {request.pair_id} lost a participant", non_retryable=True)
        program = await self._store.program(request.program_id)
        definition = program.definition if program is not None else {}
        titles = {p["id"]: p["title"] for p in definition.get("profiles", [])}
        organisations = {o["id"]: o["name"] for o in definition.get("organisations", [])}
        resolver = await people.Resolver.load(self._store, request.program_id)
        base = (await self._facts(resolver, request.program_id, request.facts)).model_copy(
            update={"pair_label": f"{mentor.name} ({mentor.email}) & {adept.name} ({adept.email})"}
        )
        result = PairEmailResult(sent=0, already_sent=0)
        outgoing = []
        if request.to == "hr":
            shared = render(request.template, base)
            for reference in request.hr:
                try:
                    address = await resolver.email(reference)
                except people.Unknown:
                    continue
                outgoing.append(
                    _Outgoing(
                        request.step, request.revision, address, request.template, shared, reference
                    )
                )
        else:
            for person, role, partner in ((mentor, "mentor", adept), (adept, "adept", mentor)):
                if request.only is not None and person.id != request.only:
                    continue
                facts: EmailFacts = base.model_copy(
                    update={
                        "applicant_name": person.name,
                        "partner_name": partner.name,
                        "partner_email": partner.email,
                        "profile_title": titles.get(person.profile_id),
                        "partner_title": titles.get(partner.profile_id),
                        "partner_organisation": organisations.get(partner.organisation_id),
                        "selection": "matched",
                    }
                )
                links = self._links(request.program_id, request.links, person.email)
                result.fingerprints[self._signer.fingerprint(person.email)] = role
                outgoing.append(
                    _Outgoing(
                        request.step,
                        request.revision,
                        person.email,
                        request.template,
                        render(request.template, facts, links=links),
                    )
                )
        batch = EmailBatchResult(sent=0, already_sent=0)
        await self._deliver(request.program_id, request.facts.language, outgoing, batch)
        result.sent, result.already_sent = batch.sent, batch.already_sent
        return result

    @activity.defn
    async def send_evaluation_emails(self, request: EvaluationEmailInput) -> EvaluationEmailResult:
        """The closing evaluation to every participant; a reminder to those who have not answered.

        Everyone who is or was in a pair that was not broken off is asked.
        """
        invited = await self._store.participants(request.program_id, ("active", "ended"))
        answered = {
            r.application_id for r in await self._store.evaluation_responses(request.program_id)
        }
        resolver = await people.Resolver.load(self._store, request.program_id)
        facts = (await self._facts(resolver, request.program_id, request.facts)).model_copy(
            update={"evaluation_closes": request.closes, "time_left": request.time_left}
        )
        # Valid well after the close, so a late click is told "closed", not "expired".
        link = LinkRequest(
            name="evaluation_url",
            purpose="evaluation",
            application_id="",
            expires_at=request.closes + EVALUATION_LINK_GRACE,
            path="/e/",
        )
        template: EmailTemplate = (
            "evaluation" if request.kind == "invitation" else "evaluation_reminder"
        )
        step = f"evaluation/{request.kind}" + (
            f"/{request.reminder_key}" if request.reminder_key else ""
        )
        outgoing = []
        for row, _role in invited:
            if request.kind == "reminder" and row.id in answered:
                continue
            links = self._links(
                request.program_id, [link.model_copy(update={"application_id": row.id})], row.email
            )
            personal = facts.model_copy(update={"applicant_name": row.name})
            outgoing.append(
                _Outgoing(
                    step,
                    request.closes.isoformat(),
                    row.email,
                    template,
                    render(template, personal, links=links),
                )
            )
        counts = await self._deliver_counted(request.program_id, request.facts.language, outgoing)
        return EvaluationEmailResult(
            invited=len(invited),
            sent=counts.sent,
            already_sent=counts.already_sent,
            already_answered=len(answered),
        )

    async def _deliver_counted(
        self, program_id: str, language: str, outgoing: list[_Outgoing]
    ) -> DeliveryCounts:
        result = EmailBatchResult(sent=0, already_sent=0)
        await self._deliver(program_id, language, outgoing, result)
        return DeliveryCounts(
            sent=result.sent, already_sent=result.already_sent, rejected=len(result.rejected)
        )

    async def _deliver(
        self,
        program_id: str,
        language: str,
        outgoing: list[_Outgoing],
        result: EmailBatchResult,
    ) -> None:
        """Send each email once through the ledger, on one SMTP connection."""
        delivery = _Delivery(
            self._store,
            self._settings,
            self._lease,
            self._connections,
            program_id=program_id,
            language=language,
            result=result,
        )
        await delivery.run(outgoing)

    def _apply_url(self, program_id: str) -> str:
        return f"{self._settings.public_base_url.rstrip('/')}/programs/{program_id}/apply"

    def _links(self, program_id: str, links: list[LinkRequest], recipient: str) -> dict[str, str]:
        """Each requested link, signed for this recipient."""
        base = self._settings.public_base_url.rstrip("/")
        return {
            link.name: base
            + link.path
            + self._signer.make(
                program_id=program_id,
                application_id=link.application_id,
                purpose=Purpose(link.purpose),
                email=recipient,
                expires_at=link.expires_at,
            )
            for link in links
        }


@dataclass(frozen=True)
class _Wire:
    """One email as the SMTP client sends it."""

    raw: bytes
    options: list[str]  # of the MAIL command
    encoding: str  # of the addresses in MAIL and RCPT


class _Delivery:
    """One run of :meth:`EmailActivities._deliver`.

    The costs that do not depend on the recipient are paid once: the message is
    built once per rendering (:class:`MessageTemplate`), the SMTP connection is
    taken once (and kept open for the next delivery, :class:`_Connections`), and the
    ledger claims a chunk of emails in one
    transaction. What stays per email is what exactly-once needs: the record
    that the server accepted it, written at once. That write overlaps the next
    email's envelope (MAIL, RCPT), and the next email's content (DATA, the
    moment the server accepts it) waits for it: so at most one email is ever
    accepted and not on record, the one a crash would send again.
    """

    def __init__(
        self,
        store: Store,
        settings: Settings,
        lease: timedelta,
        connections: _Connections,
        *,
        program_id: str,
        language: str,
        result: EmailBatchResult,
    ) -> None:
        self._store = store
        self._settings = settings
        self._lease = lease
        self._connections = connections
        self._recorder = store.email_recorder()
        self._program_id = program_id
        self._language = language
        self._result = result
        self._sender = parse_address(self._settings.mail_from)
        self._smtp: aiosmtplib.SMTP | None = None
        self._templates: dict[tuple[int, str], MessageTemplate] = {}
        self._recording: asyncio.Task[None] | None = None
        self._busy = 0
        self._handled: set[str] = set()
        self._pulse = Pulse()
        # A claimed email is started only while its lease still covers one SMTP
        # conversation and a margin: for this long after the claim.
        self._window = (
            lease - timedelta(seconds=settings.smtp_timeout_seconds) - START_MARGIN
        ).total_seconds()
        # Beside the SDK's own metrics: what ops alert on (refusals, SMTP failures).
        self._emails = activity.metric_meter().create_counter(
            "mentorflow_emails", description="Emails handled, by outcome and template."
        )

    async def run(self, outgoing: list[_Outgoing]) -> None:
        clean = False  # every email handled, no SMTP transaction open: the connection is reusable
        try:
            start, size = 0, CLAIM_CHUNK
            while start < len(outgoing):
                chunk = outgoing[start : start + size]
                began = time.monotonic()
                handled = await self._chunk(start, chunk)
                if handled == 0:
                    raise ApplicationError(
                        "the email ledger took longer to claim emails than their lease"
                        " allows; will retry",
                        type=TEMPORARY_LEDGER_DELAY,
                    )
                if handled < len(chunk):  # the lease ran short: a slow server, claim fewer
                    size = handled
                elif time.monotonic() - began < self._window / 2:  # a fast one: claim more
                    size = min(size * 2, LARGEST_CLAIM)
                start += handled
            await self._settle()
            if self._busy:
                raise ApplicationError(
                    f"another attempt is sending {self._busy} of these emails right now;"
                    " will retry after its lease",
                    type=EMAIL_IN_FLIGHT,
                )
            activity.logger.info(
                "emails: %d sent, %d sent before, %d refused",
                self._result.sent,
                self._result.already_sent,
                len(self._result.rejected),
            )
            clean = True
        finally:
            try:
                await self._settle()
            finally:
                await self._recorder.close()
                smtp, self._smtp = self._smtp, None
                if smtp is not None:
                    await self._connections.give(smtp, clean=clean)

    async def _chunk(self, start: int, chunk: list[_Outgoing]) -> int:
        """Claim the chunk, then send what it claimed; how many emails were handled."""
        from_ = self._settings.mail_from
        entries = []
        for email in chunk:
            key = email_key(self._program_id, email.step, email.recipient, email.revision)
            entries.append(
                LedgerEmail(
                    key=key,
                    program_id=self._program_id,
                    step=email.step,
                    revision=email.revision,
                    recipient=email.recipient,
                    template=email.template,
                    message_id=message_id(key, from_),
                    subject=email.rendered.subject,
                )
            )
        # Before the claim: its lease runs from when the ledger took it, not from its answer.
        claimed_at = time.monotonic()
        claims = await self._store.claim_emails(entries, lease=self._lease)
        # Claimed and certainly not sent: given back to the ledger on the way out.
        unsent = {key for key, claim in claims.items() if claim.status == "claimed"}
        try:
            for offset, (email, entry) in enumerate(zip(chunk, entries, strict=True)):
                done = start + offset
                self._pulse(done)
                claim = claims[entry.key]
                if entry.key in self._handled:  # the same email twice in one batch
                    self._result.already_sent += 1
                    self._count("already_sent", email)
                    continue
                if claim.status != "claimed" or not address_is_valid(email.recipient):
                    self._handled.add(entry.key)
                if claim.status == "busy":
                    self._busy += 1
                    continue
                if claim.status != "claimed":
                    self._result.already_sent += 1
                    self._count("already_sent", email)
                    continue
                if not address_is_valid(email.recipient):
                    unsent.discard(entry.key)
                    await self._store.mark_email(entry.key, "rejected", error="invalid address")
                    self._count("rejected", email)
                    self._result.rejected.append(
                        RejectedEmail(recipient=email.reference, reason="invalid address")
                    )
                    continue
                if time.monotonic() - claimed_at > self._window:
                    return offset
                try:
                    sent = await self._send(
                        done, email, entry, claim.message_id, claimed_at, unsent
                    )
                except (aiosmtplib.SMTPException, OSError) as error:
                    reason = f"{error.__class__.__name__}: {error}"
                    await self._settle()
                    # The email whose DATA failed may have reached the server: it goes
                    # back too, as before: the one email a retry may send twice.
                    await self._store.release_emails(sorted(unsent | {entry.key}), reason)
                    unsent.clear()
                    self._count("smtp_failed", email)
                    # The failure goes into the workflow's history: no address in it.
                    reason = reason.replace(email.recipient, email.reference)
                    raise ApplicationError(
                        f"SMTP at {self._settings.smtp_host}:{self._settings.smtp_port}"
                        f" failed temporarily ({reason}); will retry",
                        type=TEMPORARY_SMTP_FAILURE,
                    ) from error
                if not sent:
                    return offset
                self._handled.add(entry.key)
            return len(chunk)
        finally:
            if unsent:
                await self._give_back(sorted(unsent))

    async def _send(
        self,
        done: int,
        email: _Outgoing,
        entry: LedgerEmail,
        message_id: str,
        claimed_at: float,
        unsent: set[str],
    ) -> bool:
        """Send one claimed email; False if its claim ran short before it could go."""
        smtp = await self._connection()
        wire = self._wire(smtp, email, entry.key, message_id)
        try:
            await _envelope(smtp, self._sender, email.recipient, wire)
            # The previous email's record goes in before this one can be accepted.
            await self._settle()
            if time.monotonic() - claimed_at > self._window:
                await _reset(smtp)
                return False
            unsent.discard(entry.key)
            await _data(smtp, wire.raw)
        except _Permanent as refusal:
            unsent.discard(entry.key)
            await self._settle()
            await self._record(done, entry.key, "rejected", error=str(refusal))
            self._result.rejected.append(
                RejectedEmail(
                    recipient=email.reference,
                    reason=str(refusal).replace(email.recipient, email.reference),
                )
            )
            activity.logger.warning("email refused for good: %s", refusal)
            self._count("rejected", email)
            return True
        self._recording = asyncio.create_task(self._record(done, entry.key, "sent"))
        self._result.sent += 1
        self._count("sent", email)
        return True

    async def _settle(self) -> None:
        """Wait for the record of the last accepted email."""
        recording, self._recording = self._recording, None
        if recording is not None:
            await recording

    async def _record(self, done: int, key: str, status: str, *, error: str | None = None) -> None:
        """Record what the SMTP server answered, however long the database takes to return.

        The server has already answered: were this attempt to fail now, the ledger
        row would stay ``sending`` and a retry after its lease would send the email
        a second time. So keep trying for as long as the attempt lives, heartbeating
        (from :data:`activities.heartbeat.QUIET` on) so that Temporal does not start
        another one meanwhile.
        """
        delay = 0.5
        while True:
            try:
                await self._recorder.mark(key, status, error=error)
                return
            except (sqlalchemy.exc.DBAPIError, sqlalchemy.exc.TimeoutError, OSError) as problem:
                activity.logger.warning(
                    "the SMTP server answered but the ledger cannot record it yet (%s);"
                    " trying again in %.1f s",
                    problem.__class__.__name__,
                    delay,
                )
            self._pulse(done)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _give_back(self, keys: list[str]) -> None:
        """Release emails claimed but never sent, so a retry need not wait for their lease.

        Best effort: if the database cannot say so now, the lease runs out instead.
        """
        try:
            await self._store.release_emails(keys, None)
        except (sqlalchemy.exc.DBAPIError, sqlalchemy.exc.TimeoutError, OSError) as problem:
            activity.logger.warning(
                "could not release %d claimed emails (%s); they wait for their lease",
                len(keys),
                problem.__class__.__name__,
            )

    async def _connection(self) -> aiosmtplib.SMTP:
        smtp = self._smtp
        if smtp is None or not smtp.is_connected:
            if smtp is not None:
                smtp.close()
            smtp = self._smtp = await self._connections.take()
        if smtp.is_ehlo_or_helo_needed:
            try:
                await smtp.ehlo()
            except aiosmtplib.SMTPHeloError:
                if not smtp.is_connected:
                    raise
                await smtp.helo()
        return smtp

    def _wire(self, smtp: aiosmtplib.SMTP, email: _Outgoing, key: str, message_id: str) -> _Wire:
        """The email's bytes and MAIL options, as ``send_message`` would make them."""
        eight_bit = smtp.supports_extension("8BITMIME")
        cte_type = "8bit" if eight_bit else "7bit"
        template = self._templates.get((id(email.rendered), cte_type))
        if template is None:
            template = MessageTemplate(
                sender=self._settings.mail_from,
                rendered=email.rendered,
                language=self._language,
                cte_type=cte_type,
            )
            self._templates[(id(email.rendered), cte_type)] = template
        date = format_datetime(datetime.now(UTC))
        raw = template.fill(recipient=email.recipient, message_id=message_id, key=key, date=date)
        utf8 = False
        if raw is None:  # an address or key the email package must encode
            message = build_message(
                sender=self._settings.mail_from,
                recipient=email.recipient,
                rendered=email.rendered,
                message_id=message_id,
                language=self._language,
                key=key,
            )
            utf8 = not (self._sender + email.recipient).isascii()
            if utf8 and not smtp.supports_extension("smtputf8"):
                raise aiosmtplib.SMTPNotSupported(
                    "an address has non-ASCII characters and the server lacks SMTPUTF8"
                )
            raw = flatten_message(message, utf8=utf8, cte_type=cte_type)
        options = [f"size={len(raw)}"] if smtp.supports_extension("size") else []
        if utf8:
            options.append("SMTPUTF8")
        if eight_bit:
            options.append("BODY=8BITMIME")
        return _Wire(raw, options, "utf-8" if utf8 else "ascii")

    def _count(self, outcome: str, email: _Outgoing) -> None:
        self._emails.add(1, {"outcome": outcome, "template": email.template})


async def _envelope(smtp: aiosmtplib.SMTP, sender: str, recipient: str, wire: _Wire) -> None:
    """MAIL and RCPT; the server's permanent refusals become :class:`_Permanent`."""
    try:
        await smtp.mail(sender, options=wire.options, encoding=wire.encoding)
        await smtp.rcpt(recipient, encoding=wire.encoding)
    except (aiosmtplib.SMTPSenderRefused, aiosmtplib.SMTPRecipientRefused) as error:
        if error.code >= 500:
            await _reset(smtp)
            raise _Permanent(f"{error.code} {error.message}") from error
        raise


async def _data(smtp: aiosmtplib.SMTP, raw: bytes) -> None:
    """DATA: the server accepts the email, or refuses it (for good: :class:`_Permanent`)."""
    try:
        await smtp.data(raw)
    except aiosmtplib.SMTPDataError as error:
        if error.code >= 500:
            await _reset(smtp)
            raise _Permanent(f"{error.code} {error.message}") from error
        raise


async def _quit(smtp: aiosmtplib.SMTP) -> None:
    """QUIT, politely; a connection that cannot say it is closed."""
    if not smtp.is_connected:
        return
    try:
        await smtp.quit()
    except (aiosmtplib.SMTPException, OSError):
        smtp.close()


async def _reset(smtp: aiosmtplib.SMTP) -> None:
    try:
        await smtp.rset()
    except (aiosmtplib.SMTPException, OSError):
        smtp.close()
