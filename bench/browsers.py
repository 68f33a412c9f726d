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
until the server closes it.
"""

from __future__ import annotations

import asyncio
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


class Browsers:
    """Connections to one web server, each used by one request at a time."""

    def __init__(self, base_url: str, timeout: float) -> None:
        parts = urlsplit(base_url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._timeout = timeout
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post(
        self, path: str, *, data: dict[str, str], params: dict[str, str] | None = None
    ) -> Answer:
        """POST a form; a connection the server had closed meanwhile is replaced once."""
        target = f"{path}?{urlencode(params)}" if params else path
        body = urlencode(data).encode()
        request = (
            f"POST {target} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        for attempt in (1, 2):
            reused = bool(self._idle)
            reader, writer = self._idle.pop() if reused else await self._open()
            try:
                writer.write(request)
                answer, keep = await asyncio.wait_for(self._read(reader), self._timeout)
            except (ConnectionError, asyncio.IncompleteReadError) as error:
                writer.close()
                unanswered = not isinstance(error, asyncio.IncompleteReadError) or not error.partial
                if reused and attempt == 1 and unanswered:
                    continue  # closed by the server while idle: a browser opens another
                raise
            if keep:
                self._idle.append((reader, writer))
            else:
                writer.close()
            return answer
        raise AssertionError("unreachable")

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
            _, writer = self._idle.pop()
            writer.close()
