"""The program report page coordinators reach from the "report ready" email, and its CSV."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from mentorflow.links import LinkError, LinkSigner, Purpose
from mentorflow.report import current_report, report_csv, report_html
from mentorflow.store import Store
from mentorflow.web import notices
from mentorflow.web.participants import load_definition_of, render_notice


def report_router(store: Store, signer: LinkSigner) -> APIRouter:
    router = APIRouter()

    async def program_of(request: Request, token: str) -> str | Response:
        try:
            link = signer.check(token, Purpose.REPORT)
        except LinkError as error:
            definition = (
                await load_definition_of(store, error.link.program_id) if error.link else None
            )
            return render_notice(request, definition, notices.INVALID, 400)
        if await store.program(link.application_id) is None:
            return render_notice(request, None, notices.INVALID, 400)
        return link.application_id

    @router.api_route("/report/{token}", methods=["GET", "HEAD"])
    async def report_page(request: Request, token: str) -> Response:
        program_id = await program_of(request, token)
        if isinstance(program_id, Response):
            return program_id
        report = await current_report(store, program_id, datetime.now(UTC))
        return HTMLResponse(report_html(report, csv_url=f"/report/{token}/report.csv"))

    @router.get("/report/{token}/report.csv")
    async def report_file(request: Request, token: str) -> Response:
        program_id = await program_of(request, token)
        if isinstance(program_id, Response):
            return program_id
        report = await current_report(store, program_id, datetime.now(UTC))
        return PlainTextResponse(
            report_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{program_id}-report.csv"'},
        )

    return router
