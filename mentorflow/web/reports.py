"""The program report page coordinators reach from the "report ready" email, and its CSV."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from mentorflow.links import Link, Purpose
from mentorflow.report import current_report, report_csv, report_html
from mentorflow.store import Store
from mentorflow.web import notices
from mentorflow.web.links import LinkRefused, checked_link
from mentorflow.web.pages import render_notice

# The report's link names its program as what it opens; the report is the program's
# numbers, not a page in its language, so its definition is not needed.
ReportLink = Annotated[Link, Depends(checked_link(Purpose.REPORT))]


def report_router(store: Store) -> APIRouter:
    router = APIRouter()

    async def program_of(request: Request, link: Link) -> str:
        """The program whose report a checked link opens (or LinkRefused: not here)."""
        if await store.program(link.application_id) is None:
            raise LinkRefused(render_notice(request, None, notices.INVALID, 400))
        return link.application_id

    @router.api_route("/report/{token}", methods=["GET", "HEAD"])
    async def report_page(request: Request, token: str, link: ReportLink) -> Response:
        program_id = await program_of(request, link)
        report = await current_report(store, program_id, datetime.now(UTC))
        return HTMLResponse(report_html(report, csv_url=f"/report/{token}/report.csv"))

    @router.get("/report/{token}/report.csv")
    async def report_file(request: Request, link: ReportLink) -> Response:
        program_id = await program_of(request, link)
        report = await current_report(store, program_id, datetime.now(UTC))
        return PlainTextResponse(
            report_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{program_id}-report.csv"'},
        )

    return router
