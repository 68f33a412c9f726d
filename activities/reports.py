"""Making a finished program's report, and purging its personal data after retention."""

from __future__ import annotations

from temporalio import activity

from mentorflow.models import PurgeInput, PurgeResult, ReportInput, ReportSummary
from mentorflow.report import ProgramReport, build_report, purge
from mentorflow.store import Store


class ReportActivities:
    """Holds the store the report is computed from and kept in."""

    def __init__(self, store: Store) -> None:
        self._store = store

    @activity.defn
    async def make_report(self, request: ReportInput) -> ReportSummary:
        """Compute the report from the database and keep it; the headline figures back.

        Made again on a retry (the same figures), and never after a purge.
        """
        stored = await self._store.report(request.program_id)
        if stored is not None and stored.purged_at is not None:  # nothing left to count
            return ProgramReport.model_validate(stored.report).summary()
        report = await build_report(self._store, request.program_id, request.at)
        await self._store.save_report(
            request.program_id, report.model_dump(mode="json"), request.at
        )
        return report.summary()

    @activity.defn
    async def purge_personal_data(self, request: PurgeInput) -> PurgeResult:
        """Remove the program's personal data; keep the report's figures.

        Safe to repeat: a second purge finds nothing left to remove.
        """
        counts = await purge(self._store, request.program_id, request.at)
        activity.logger.info("purged program %s: %s", request.program_id, counts)
        return PurgeResult(**counts)
