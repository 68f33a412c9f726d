"""The codec endpoint: the Temporal UI and CLI decrypt payloads here, for authorised people.

It follows Temporal's remote codec protocol: ``POST /codec/decode`` and
``/codec/encode`` take and return ``{"payloads": [...]}`` in protobuf JSON. A
caller is authorised by ``Authorization: Bearer <token>`` (the CLI's
``--codec-auth``), or by the cookie set at ``/codec/login`` (the Temporal UI,
configured with ``TEMPORAL_CODEC_INCLUDE_CREDENTIALS``), where the token is one
of ``MENTORFLOW_CODEC_TOKENS``. Removing a token from the list revokes its
cookies too. Without a payload key the endpoint does not exist.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated
from urllib.parse import urlparse

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from google.protobuf import json_format
from itsdangerous import BadSignature, TimestampSigner
from temporalio.api.common.v1 import Payloads

from mentorflow.codec import EncryptionCodec, PayloadKeyError
from mentorflow.settings import Settings

COOKIE = "mentorflow_codec"
SIGNED_IN_FOR_HOURS = 8


def _fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def _origin(url: str) -> str:
    parts = urlparse(url)
    return f"{parts.scheme}://{parts.netloc}"


def codec_router(settings: Settings, codec: EncryptionCodec) -> APIRouter:
    # Imported here: mentorflow.web.app includes this router, so a module-level
    # import would be circular.
    from mentorflow.web.app import TEMPLATES

    router = APIRouter(prefix="/codec")
    tokens = [token.get_secret_value() for token in settings.codec_tokens]
    signer = TimestampSigner(settings.secret_key.get_secret_value(), salt="codec-cookie")
    ui_origin = _origin(settings.temporal_ui_url)
    secure = settings.public_base_url.startswith("https://")

    def known(token: str) -> bool:
        return any(hmac.compare_digest(token.encode(), t.encode()) for t in tokens)

    def authorised(request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            return known(header[7:].strip())
        cookie = request.cookies.get(COOKIE)
        if not cookie:
            return False
        try:
            fingerprint = signer.unsign(cookie, max_age=SIGNED_IN_FOR_HOURS * 3600).decode()
        except BadSignature:
            return False
        return any(hmac.compare_digest(fingerprint, _fingerprint(t)) for t in tokens)

    def cors(request: Request, response: Response) -> Response:
        # Only the configured Temporal UI may call from a browser, with its cookie.
        if request.headers.get("origin") == ui_origin:
            response.headers["Access-Control-Allow-Origin"] = ui_origin
            response.headers["Access-Control-Allow-Credentials"] = "true"
            response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = (
                "Content-Type, X-Namespace, Authorization"
            )
            response.headers["Vary"] = "Origin"
        return response

    async def transcode(request: Request, decode: bool) -> Response:
        if not authorised(request):
            return cors(
                request,
                JSONResponse(
                    {"message": "not authorised: sign in at /codec/login or send a codec token"},
                    status_code=401,
                ),
            )
        payloads = Payloads()
        try:
            json_format.Parse(await request.body(), payloads)
        except json_format.ParseError as error:
            return cors(request, JSONResponse({"message": str(error)}, status_code=400))
        try:
            result = await (codec.decode if decode else codec.encode)(payloads.payloads)
        except PayloadKeyError as error:
            return cors(request, JSONResponse({"message": str(error)}, status_code=422))
        body = json_format.MessageToJson(Payloads(payloads=result))
        return cors(request, Response(body, media_type="application/json"))

    @router.post("/decode")
    async def decode(request: Request) -> Response:
        return await transcode(request, decode=True)

    @router.post("/encode")
    async def encode(request: Request) -> Response:
        return await transcode(request, decode=False)

    @router.options("/{path:path}")
    async def preflight(request: Request, path: str) -> Response:
        return cors(request, Response(status_code=204))

    @router.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request) -> HTMLResponse:
        return TEMPLATES.TemplateResponse(
            request, "codec_login.html", {"signed_in": authorised(request)}
        )

    @router.post("/login", response_class=HTMLResponse)
    async def login(request: Request, token: Annotated[str, Form()]) -> HTMLResponse:
        if not known(token.strip()):
            return TEMPLATES.TemplateResponse(
                request,
                "codec_login.html",
                {"signed_in": False, "error": "That token is not valid."},
                status_code=403,
            )
        response = TEMPLATES.TemplateResponse(
            request,
            "codec_login.html",
            {
                "signed_in": True,
                "hours": SIGNED_IN_FOR_HOURS,
                "temporal_ui": settings.temporal_ui_url,
            },
        )
        response.set_cookie(
            COOKIE,
            signer.sign(_fingerprint(token.strip())).decode(),
            max_age=SIGNED_IN_FOR_HOURS * 3600,
            path="/codec",
            httponly=True,
            secure=secure,
            # The UI is another origin: with HTTPS the cookie may cross sites.
            samesite="none" if secure else "lax",
        )
        return response

    return router
