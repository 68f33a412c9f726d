"""Sending business emails exactly once per business key, through the email ledger."""

from __future__ import annotations

from datetime import timedelta

import aiosmtplib
from temporalio import activity
from temporalio.exceptions import ApplicationError

from mentorflow.links import LinkSigner, Purpose
from mentorflow.mail.message import address_is_valid, build_message, email_key, message_id
from mentorflow.mail.render import render
from mentorflow.models import EmailBatch, EmailBatchResult, RejectedEmail
from mentorflow.settings import Settings
from mentorflow.store import Store

TEMPORARY_SMTP_FAILURE = "TemporarySmtpFailure"
EMAIL_IN_FLIGHT = "EmailInFlight"


class _Permanent(Exception):
    """The server refused this recipient for good (5xx): retrying cannot help."""


class EmailActivities:
    """Holds the SMTP settings and the store that the email activities use."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self._store = store
        self._settings = settings
        self._signer = LinkSigner(settings.secret_keys)
        # Longer than one SMTP conversation can take, shorter than the heartbeat
        # timeout after which Temporal retries a dead attempt.
        self._lease = timedelta(seconds=settings.smtp_timeout_seconds + 15)

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
        base = self._settings.public_base_url.rstrip("/")
        facts = batch.facts.model_copy(
            update={"apply_url": f"{base}/programs/{batch.program_id}/apply"}
        )
        shared = None if batch.links else render(batch.template, facts)
        result = EmailBatchResult(sent=0, already_sent=0)
        smtp: aiosmtplib.SMTP | None = None
        try:
            for done, recipient in enumerate(batch.recipients):
                activity.heartbeat(done)
                result.fingerprints[recipient] = self._signer.fingerprint(recipient)
                rendered = shared or render(
                    batch.template, facts, links=self._links(batch, recipient)
                )
                key = email_key(batch.program_id, batch.step, recipient, batch.revision)
                claim = await self._store.claim_email(
                    key=key,
                    program_id=batch.program_id,
                    step=batch.step,
                    revision=batch.revision,
                    recipient=recipient,
                    template=batch.template,
                    message_id=message_id(key, self._settings.mail_from),
                    subject=rendered.subject,
                    lease=self._lease,
                )
                if claim.status == "busy":
                    raise ApplicationError(
                        f"another attempt is sending {batch.step} to a recipient right now;"
                        " will retry after its lease",
                        type=EMAIL_IN_FLIGHT,
                    )
                if claim.status != "claimed":
                    result.already_sent += 1
                    continue
                if not address_is_valid(recipient):
                    await self._store.mark_email(key, "rejected", error="invalid address")
                    result.rejected.append(
                        RejectedEmail(recipient=recipient, reason="invalid address")
                    )
                    continue
                message = build_message(
                    sender=self._settings.mail_from,
                    recipient=recipient,
                    rendered=rendered,
                    message_id=claim.message_id,
                    language=batch.facts.language,
                    key=key,
                )
                try:
                    if smtp is None or not smtp.is_connected:
                        smtp = self._client()
                        await smtp.connect()
                    await _send(smtp, message)
                except _Permanent as refusal:
                    await self._store.mark_email(key, "rejected", error=str(refusal))
                    result.rejected.append(RejectedEmail(recipient=recipient, reason=str(refusal)))
                    activity.logger.warning("email refused for good: %s", refusal)
                    continue
                except (aiosmtplib.SMTPException, OSError) as error:
                    reason = f"{error.__class__.__name__}: {error}"
                    await self._store.release_email(key, reason)
                    raise ApplicationError(
                        f"SMTP at {self._settings.smtp_host}:{self._settings.smtp_port}"
                        f" failed temporarily ({reason}); will retry",
                        type=TEMPORARY_SMTP_FAILURE,
                    ) from error
                await self._store.mark_email(key, "sent")
                result.sent += 1
        finally:
            if smtp is not None and smtp.is_connected:
                try:
                    await smtp.quit()
                except (aiosmtplib.SMTPException, OSError):
                    smtp.close()
        return result

    def _links(self, batch: EmailBatch, recipient: str) -> dict[str, str]:
        """Each requested link, signed for this recipient."""
        base = self._settings.public_base_url.rstrip("/")
        return {
            link.name: base
            + link.path
            + self._signer.make(
                program_id=batch.program_id,
                application_id=link.application_id,
                purpose=Purpose(link.purpose),
                email=recipient,
                expires_at=link.expires_at,
            )
            for link in batch.links
        }


async def _send(smtp: aiosmtplib.SMTP, message: object) -> None:
    """Send one message; turn the server's permanent refusals into :class:`_Permanent`."""
    try:
        await smtp.send_message(message)  # type: ignore[arg-type]
    except aiosmtplib.SMTPRecipientsRefused as error:
        codes = [refusal.code for refusal in error.recipients]
        if all(code >= 500 for code in codes):
            await _reset(smtp)
            raise _Permanent(
                "; ".join(f"{r.code} {r.message}" for r in error.recipients)
            ) from error
        raise
    except (aiosmtplib.SMTPSenderRefused, aiosmtplib.SMTPDataError) as error:
        if error.code >= 500:
            await _reset(smtp)
            raise _Permanent(f"{error.code} {error.message}") from error
        raise


async def _reset(smtp: aiosmtplib.SMTP) -> None:
    try:
        await smtp.rset()
    except (aiosmtplib.SMTPException, OSError):
        smtp.close()
