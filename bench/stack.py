"""What the benchmarks share: the project's stack as processes, and the bare worker."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.testing import WorkflowEnvironment

from mentorflow import search_attributes
from mentorflow.codec import compact_data_converter
from mentorflow.store import Store, migrate
from mentorflow.temporal import DEV_SERVER_TUNING, binary
from worker.metrics import WORKFLOW_ACTIVATION_LATENCY

ROOT = Path(__file__).resolve().parent.parent
ORGANISATIONS = 10
THEMES = ["climate", "digital tools", "leadership", "social media", "AI", "diversity", "agile"]
TASK_QUEUE = "bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_for(check: Callable[[], Awaitable[bool]], what: str, within: float) -> None:
    end = time.monotonic() + within
    while not await check():
        if time.monotonic() > end:
            raise SystemExit(f"gave up waiting for {what} after {within:.0f} s")
        await asyncio.sleep(0.2)


def wait_port(port: int, what: str, process: subprocess.Popen[bytes], within: float = 60) -> None:
    end = time.monotonic() + within
    while time.monotonic() < end:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode}; see its log")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not listen on port {port} within {within:.0f} s")


def spawn(
    command: list[str], log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=ROOT,
    )


def progress(side: str, what: str, began: float) -> None:
    print(f"  {side}: {what} after {time.perf_counter() - began:.1f} s", file=sys.stderr)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# Each dev server's Prometheus page, by the environment that started it.
_SERVER_METRICS: dict[int, str] = {}


async def dev_server(folder: Path, converter: DataConverter) -> WorkflowEnvironment:
    metrics_port = free_port()
    env = await WorkflowEnvironment.start_local(
        data_converter=converter,
        dev_server_existing_path=str(binary("temporal")),
        dev_server_database_filename=str(folder / "temporal.db"),
        search_attributes=list(search_attributes.ALL),
        # Both sides' server, as `mentorflow dev` starts it (mentorflow.temporal).
        dev_server_extra_args=[*DEV_SERVER_TUNING, "--metrics-port", str(metrics_port)],
    )
    _SERVER_METRICS[id(env)] = f"http://127.0.0.1:{metrics_port}/metrics"
    return env


def server_persistence(env: WorkflowEnvironment, wall: float) -> str:
    """What the dev server's database did so far: operations, their rate and mean latency
    (its ``persistence_requests`` and ``persistence_latency``). Every workflow task,
    activity and timer is a few of them; both sides should make about as many."""
    with urllib.request.urlopen(_SERVER_METRICS[id(env)], timeout=10) as response:
        page = response.read().decode()

    def total(name: str) -> float:
        return sum(float(v) for v in re.findall(rf"^{name}\{{[^}}]*\}} ([0-9.e+]+)$", page, re.M))

    operations, seconds = total("persistence_requests"), total("persistence_latency_sum")
    return (
        f"{operations:.0f} database operations ({operations / wall:.0f} a second),"
        f" {1000 * seconds / max(operations, 1):.1f} ms each on average"
    )


def definition_file(folder: Path, applicants: int) -> Path:
    """The demo definition at an hour's scale, ten organisations, caps no program reaches."""
    data: dict[str, Any] = yaml.safe_load((ROOT / "definitions" / "demo.yaml").read_text())
    data["id"] = f"bench-{applicants}-{uuid.uuid4().hex[:6]}"
    data["organisations"] = [
        {
            "id": f"org-{k:02d}",
            "name": f"Organisation {k}",
            "hr_contacts": [{"name": f"HR {k}", "email": f"hr@org-{k:02d}.example.org"}],
        }
        for k in range(ORGANISATIONS)
    ]
    data["organisers"] = ["Organisation 0"]
    data["application"].update(opens="+PT2S", deadline="+PT6H", reminders_before_deadline=[])
    data["announcement"]["recipients"] = ["everyone@bench.example.org"]
    data["approval"].update(answer_by="+PT7H", reminders_before_answer_by=["PT30M"])
    data["capacity"].update(decision_by="+PT8H", reminders_before_decision=["PT30M"])
    data["capacity"]["rules"] = [
        {"profile": "mentor", "max_participants": applicants},
        {"profile": "adept", "max_participants": applicants},
    ]
    data["schedule"].update(start="+PT9H", end="+PT20H")
    data["schedule"]["kickoff"].update(starts="+PT9H30M", duration="PT1H")
    data["meetings"] = {"cadence": [{"every": "PT2H"}], "length": "PT30M", "stalled_after": "PT5H"}
    data["evaluation"].update(opens="+PT18H", closes="+PT19H30M", reminders_before_close=["PT30M"])
    path = folder / f"{data['id']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def application_form(i: int, rng: random.Random) -> tuple[str, dict[str, str]]:
    organisation = f"org-{i % ORGANISATIONS:02d}"
    profile = "mentor" if i % 2 == 0 else "adept"
    return profile, {
        "name": f"Applicant {i}",
        "email": f"applicant{i}@{organisation}.example.org",
        "organisation": organisation,
        "department": "Bench",
        "manager_name": f"Manager {i // 5}",
        "manager_email": f"manager{i // (5 * ORGANISATIONS)}@{organisation}.example.org",
        "eligible_0": "yes",
        "q_motivation": " and ".join(rng.sample(THEMES, 2)),
    }


_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(<[^>\r\n]+>)", re.MULTILINE | re.IGNORECASE)
_SOFT_BREAK = re.compile(rb"=\r?\n")
_APPROVAL_LINK = re.compile(rb"http://127\.0\.0\.1:\d+(/a/[\w.\-]+)")


class Inbox:
    """Reads the catcher's Maildir as it fills: approval links, and every Message-ID."""

    def __init__(self, maildir: Path) -> None:
        self._new = maildir / "new"
        self._seen: set[str] = set()
        self.message_ids: Counter[str] = Counter()

    def approval_links(self) -> list[str]:
        links: list[str] = []
        for name in sorted(os.listdir(self._new)) if self._new.exists() else []:
            if name in self._seen:
                continue
            self._seen.add(name)
            raw = (self._new / name).read_bytes()
            # Read: to cur/, as a mail reader does, so new/ stays short (listing 20,000
            # files five times a second took the project's CPU at 5,000 applicants).
            with contextlib.suppress(OSError):
                (self._new.parent / "cur").mkdir(exist_ok=True)
                os.replace(self._new / name, self._new.parent / "cur" / name)
            # Read with two patterns, not parsed: this harness stands for people's mail
            # clients, which do not run on the project's machine, and parsing 20,000
            # messages took it three times the bare client's CPU at 5,000 applicants.
            head = _BLANK_LINE.split(raw, maxsplit=1)[0]
            found = _MESSAGE_ID.search(head)
            self.message_ids[found.group(1).decode() if found else ""] += 1
            # Quoted-printable lines joined again; a link is in the text and the HTML part.
            unfolded = _SOFT_BREAK.sub(b"", raw)
            links += dict.fromkeys(m.decode() for m in _APPROVAL_LINK.findall(unfolded))
        return links


@contextlib.contextmanager
def kept_on_failure() -> Iterator[Path]:
    """A scratch folder for one run's databases and logs, kept (and named) if the run fails."""
    folder = Path(tempfile.mkdtemp(prefix="mentorflow-bench-"))
    try:
        yield folder
    except BaseException:
        print(f"the logs of the failed run are in {folder}", file=sys.stderr)
        raise
    shutil.rmtree(folder, ignore_errors=True)


@dataclass
class ProjectStack:
    """A dev server, the mail catcher, the two worker kinds and ``mentorflow web``."""

    env: WorkflowEnvironment
    store: Store
    inbox: Inbox
    web_url: str
    processes: list[subprocess.Popen[bytes]]
    metrics_url: str  # the workflows worker's Prometheus endpoint
    folder: Path  # the processes' logs

    def workflow_task_times(self) -> str:
        """How long the workflows worker's activations took, and its workflow tasks (local
        activities included), from its metrics."""
        with urllib.request.urlopen(self.metrics_url, timeout=10) as response:
            page = response.read().decode()
        activations = activation_summary(page, WORKFLOW_ACTIVATION_LATENCY, "activations")
        tasks = activation_summary(page, "temporal_workflow_task_execution_latency", "tasks")
        return f"{activations}; workflow {tasks} (local activities included)"

    def log_findings(self) -> str:
        """Deadlocks (TMPRL1101) and long garbage collections the workers logged."""
        deadlocks, pauses = 0, []
        for log in self.folder.glob("worker-*.log"):
            text = log.read_text(errors="replace")
            deadlocks += text.count("TMPRL1101")
            pauses += [int(ms) for ms in re.findall(r"held the worker for (\d+) ms", text)]
        longest = f", longest {max(pauses)} ms" if pauses else ""
        return f"TMPRL1101 {deadlocks}; garbage collections over 100 ms {len(pauses)}{longest}"

    async def stop(self) -> None:
        await self.store.close()
        for process in reversed(self.processes):
            stop(process)
        await self.env.shutdown()


async def start_project(folder: Path, database_url: str | None) -> ProjectStack:
    """The production topology as processes on free ports, each with its log in ``folder``."""
    env = await dev_server(folder, compact_data_converter)
    smtp_port, web_port = free_port(), free_port()
    url = database_url or f"sqlite:///{folder / 'mentorflow.db'}"
    migrate(url)
    variables = {
        "MENTORFLOW_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
        "MENTORFLOW_TEMPORAL_TASK_QUEUE": TASK_QUEUE,
        "MENTORFLOW_DATABASE_URL": url,
        "MENTORFLOW_SMTP_PORT": str(smtp_port),
        "MENTORFLOW_WEB_PORT": str(web_port),
        "MENTORFLOW_PUBLIC_BASE_URL": f"http://127.0.0.1:{web_port}",
        "MENTORFLOW_LOG_LEVEL": "WARNING",
        # The worker and the web app refuse the development key (mentorflow.settings).
        "MENTORFLOW_SECRET_KEY": secrets.token_urlsafe(48),
    }
    maildir = folder / "mail"
    catcher_code = (
        "import sys, threading; from pathlib import Path;"
        "from mentorflow.mail.catcher import MailCatcher;"
        "MailCatcher(Path(sys.argv[1]), port=int(sys.argv[2])).start(); threading.Event().wait()"
    )
    command = [sys.executable, "-c", catcher_code, str(maildir), str(smtp_port)]
    processes = [spawn(command, folder / "catcher.log")]
    wait_port(smtp_port, "the mail catcher", processes[0])
    mentorflow = [sys.executable, "-m", "mentorflow"]
    # As in production: workflow activations never share a process with the activities.
    metrics_port = free_port()
    workflows = variables | {"MENTORFLOW_METRICS_ADDRESS": f"127.0.0.1:{metrics_port}"}
    processes.append(
        spawn([*mentorflow, "worker", "--only", "workflows"], folder / "worker-w.log", workflows)
    )
    processes.append(
        spawn([*mentorflow, "worker", "--only", "activities"], folder / "worker-a.log", variables)
    )
    web = spawn([*mentorflow, "web"], folder / "web.log", variables)
    processes.append(web)
    wait_port(web_port, "mentorflow web", web)
    return ProjectStack(
        env,
        Store(url),
        Inbox(maildir),
        f"http://127.0.0.1:{web_port}",
        processes,
        f"http://127.0.0.1:{metrics_port}/metrics",
        folder,
    )


def _descendants(root: int) -> list[int]:
    """Every live process below ``root`` (by parent id, read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                parent = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _label(pid: int) -> str:
    words = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    words = [w for w in words if w]
    name = Path(words[0]).name if words else "?"
    if name == "temporal" or "temporal" in name:
        return "temporal server"
    if "-c" in words:
        return "mail catcher"
    if "mentorflow" in words:
        return " ".join(words[words.index("mentorflow") + 1 :][:3])
    return " ".join(Path(w).name for w in words[1:3]) or name  # a script, and its kind


def cpu_seconds() -> dict[str, float]:
    """CPU time (user + system) used so far by this process and each process it started,
    by what it is: where a run's two cores went."""
    ticks = os.sysconf("SC_CLK_TCK")
    used: dict[str, float] = {}
    for pid in [os.getpid(), *_descendants(os.getpid())]:
        with contextlib.suppress(OSError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            label = "benchmark client" if pid == os.getpid() else _label(pid)
            used[label] = used.get(label, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return used


def describe_cpu(used: dict[str, float], wall: float) -> str:
    parts = sorted(used.items(), key=lambda item: -item[1])
    total = sum(used.values())
    shown = ", ".join(f"{label} {seconds:.0f}" for label, seconds in parts)
    return f"CPU s: {total:.0f} in all ({total / wall:.2f} cores busy on average): {shown}"


def activation_summary(metrics: str, name: str, what: str) -> str:
    """p50, p99 and max of the histogram ``name`` (of ``what``) in a Prometheus text page.

    The histogram gives bucket bounds, not exact values: each figure is the upper bound
    of the bucket it falls in (mentorflow.temporal.WORKFLOW_TASK_BUCKETS_MS has 50 and
    500 ms among them, the limits the benchmark is held to).
    """
    counts: dict[float, float] = {}
    pattern = re.compile(rf"^{name}_bucket\{{([^}}]*)\}} ([0-9.e+]+)$", re.M)
    for labels, value in pattern.findall(metrics):
        bound = re.search(r'le="([^"]+)"', labels)
        if bound is None:
            continue
        le = float("inf") if bound.group(1) == "+Inf" else float(bound.group(1))
        counts[le] = counts.get(le, 0.0) + float(value)  # summed over workflow types
    if not counts or counts.get(float("inf"), 0.0) == 0:
        return f"no {what} measured"
    bounds = sorted(counts)
    total = counts[float("inf")]

    def at(fraction: float) -> float:
        return next(b for b in bounds if counts[b] >= fraction * total)

    highest = next(b for b in bounds if counts[b] >= total)
    return (
        f"{int(total)} {what}: p50 <= {at(0.5):g} ms, p99 <= {at(0.99):g} ms, max <= {highest:g} ms"
    )


async def start_bare(
    folder: Path, *, split: bool = False
) -> tuple[WorkflowEnvironment, list[subprocess.Popen[bytes]]]:
    """A dev server and the bare worker (``bench/bare_program.py``) polling ``bare``; its
    applications' requests for approval go to ``<folder>/requests``.

    ``split``: its workflows and its activities in two processes, as the project runs
    them (``mentorflow worker --only``); otherwise one process hosts both, and each
    activity goes to the worker with the workflow task that scheduled it (eagerly),
    which the project's split leaves to the task queue."""
    # The SDK's pydantic converter, as a bare worker has it.
    env = await dev_server(folder, pydantic_data_converter)
    address = env.client.service_client.config.target_host
    workers = [
        spawn(
            [
                sys.executable,
                str(ROOT / "bench" / "bare_program.py"),
                kind,
                address,
                "bare",
                str(folder / "requests"),
            ],
            folder / f"bare-worker-{kind}.log",
        )
        for kind in (("workflows", "activities") if split else ("both",))
    ]
    return env, workers
