"""People's browsers, as cheaply as HTTP/1.1 allows: form POSTs over kept-alive connections.

The benchmark's clients stand for people's browsers, which do not run on the
project's machine; whatever they cost is CPU the project's processes lose. httpx
took 10 CPU-seconds for the 2,000 requests of 1,000 applicants (py-spy: three
quarters of the clients' CPU in its connection pool and cancellation shields, a tenth
in httpcore looking for sniffio, which is not installed, on every request), three
times what the baseline's clients cost in all; these take 2. Here a request is a
write and a read on an open connection.

Only what the benchmark's POSTs need: a form body, a response whose length is given
by Content-Length (Starlette gives it for every page), and a connection used again
while it is recent (a request on one the server had closed meanwhile is sent again on
a new one, as browsers do).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit


@dataclass(frozen=True)
class Answer:
    """What came back: the status, the headers (names in lower case) and the body."""

    status_code: int
    headers: dict[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


# Idle connections are used again only this long: the web app closes its own after
# 65 s (mentorflow.web.app.KEEP_ALIVE_SECONDS), and a browser does not reuse one older.
IDLE_SECONDS = 30.0


class Browsers:
    """Connections to one web server, each used by one request at a time."""

    def __init__(self, base_url: str, timeout: float) -> None:
        parts = urlsplit(base_url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._timeout = timeout
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []

    async def post(
        self, path: str, *, data: dict[str, str], params: dict[str, str] | None = None
    ) -> Answer:
        """POST a form; on a kept connection the server closed meanwhile, once more on a
        new one."""
        target = f"{path}?{urlencode(params)}" if params else path
        body = urlencode(data).encode()
        request = (
            f"POST {target} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        kept = self._kept()
        reader, writer = kept if kept is not None else await self._open()
        try:
            writer.write(request)
            answer, keep = await asyncio.wait_for(self._read(reader), self._timeout)
        except (ConnectionError, asyncio.IncompleteReadError) as error:
            writer.close()
            unanswered = not isinstance(error, asyncio.IncompleteReadError) or not error.partial
            if kept is None or not unanswered:
                raise
            # Closed by the server while idle: a browser sends it again on a new one.
            reader, writer = await self._open()
            writer.write(request)
            answer, keep = await asyncio.wait_for(self._read(reader), self._timeout)
        if keep:
            self._idle.append((reader, writer, time.monotonic()))
        else:
            writer.close()
        return answer

    def _kept(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """The connection idle for the shortest time, if it is recent enough; older
        ones are closed."""
        while self._idle:
            reader, writer, since = self._idle.pop()
            if time.monotonic() - since < IDLE_SECONDS and not reader.at_eof():
                return reader, writer
            writer.close()
        return None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(self._host, self._port)

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> tuple[Answer, bool]:
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if "content-length" not in headers:
            raise ConnectionError(f"no Content-Length in the answer ({status_line})")
        content = await reader.readexactly(int(headers["content-length"]))
        keep = headers.get("connection", "").lower() != "close"
        return Answer(int(status_line.split()[1]), headers, content), keep

    async def aclose(self) -> None:
        while self._idle:
            _, writer, _ = self._idle.pop()
            writer.close()
