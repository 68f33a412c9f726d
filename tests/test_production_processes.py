"""The production topology as local processes, with docker-compose.yml's own environment.

What compose runs in containers runs here as processes on free ports:
``mentorflow setup`` on a fresh namespace, then ``mentorflow worker`` and
``mentorflow web``, against the Temporal dev server, PostgreSQL and aiosmtpd.
Only the host names differ from compose. One program runs long enough to show
the operations side: JSON logs carrying its ids, Prometheus metrics, payloads
encrypted in Temporal, and the codec endpoint decrypting them for the Temporal
CLI (and the UI's cookie) only with a valid token.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from mentorflow.mail.catcher import MailCatcher
from mentorflow.models import program_workflow_id
from mentorflow.temporal import binary
from tests.conftest import free_port, is_healthy, wait_for
from tests.programs import fast_definition, mentorflow, spawn_mentorflow
from tests.test_deploy import SERVICES, app_environment, env_example

pytestmark = pytest.mark.postgres

CODEC_TOKEN = "ops-" + uuid.uuid4().hex


@pytest.fixture
def production_env(
    dev_env: WorkflowEnvironment, database_url: str, mail_catcher: MailCatcher
) -> dict[str, str]:
    """Compose's environment for setup, worker and web, pointed at this machine's servers."""
    web_port, metrics_port = free_port(), free_port()
    environment = app_environment(
        env_example()
        | {
            "POSTGRES_PASSWORD": "unused",
            "SECRET_KEY": uuid.uuid4().hex * 2,
            "TEMPORAL_NAMESPACE": f"prod-{uuid.uuid4().hex[:8]}",
            "PAYLOAD_KEY_ID": "2026-11",
            "PAYLOAD_KEY": base64.b64encode(os.urandom(32)).decode(),
            "CODEC_TOKENS": json.dumps([CODEC_TOKEN]),
        }
    )
    # Only the addresses differ from compose: here every service is on 127.0.0.1.
    return environment | {
        "MENTORFLOW_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "MENTORFLOW_DATABASE_URL": database_url,
        "MENTORFLOW_SMTP_HOST": "127.0.0.1",
        "MENTORFLOW_SMTP_PORT": str(mail_catcher.port),
        "MENTORFLOW_WEB_HOST": "127.0.0.1",
        "MENTORFLOW_WEB_PORT": str(web_port),
        "MENTORFLOW_PUBLIC_BASE_URL": f"http://127.0.0.1:{web_port}",
        "MENTORFLOW_METRICS_ADDRESS": f"127.0.0.1:{metrics_port}",
    }


@dataclass(frozen=True)
class Service:
    """One compose service running as a local process: where it logs and serves metrics."""

    log: Path
    metrics: str


@pytest.fixture
def services(production_env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, Service]]:
    """``mentorflow setup`` (checked), then compose's two workers and web app with compose's
    own commands, stopped with SIGTERM."""
    first = mentorflow("setup", "--retention-days", "3", env=production_env)
    assert first.returncode == 0, first.stderr
    namespace = production_env["MENTORFLOW_TEMPORAL_NAMESPACE"]
    assert f"Namespace {namespace}: created (retention 3 days)" in first.stdout
    assert "Search attributes added: NextDeadline, ProgramId, ProgramPhase" in first.stdout
    again = mentorflow("setup", env=production_env)
    assert again.returncode == 0, again.stderr
    assert f"Namespace {namespace}: already there" in again.stdout
    assert "Search attributes added: none (all present)" in again.stdout

    running = {}
    processes = []
    for name in ("workflow-worker", "activity-worker", "web"):
        # Each is its own container in compose, so each gets its own metrics port here.
        service = Service(tmp_path / f"{name}.log", f"127.0.0.1:{free_port()}")
        env = production_env | {"MENTORFLOW_METRICS_ADDRESS": service.metrics}
        processes.append(spawn_mentorflow(*SERVICES[name]["command"], env=env, log=service.log))
        running[name] = service
    yield running
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        assert process.wait(30) == 0


def json_lines(log: Path) -> list[dict[str, object]]:
    lines = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_the_compose_topology_runs_as_processes_with_logs_metrics_and_encryption(
    production_env: dict[str, str],
    services: dict[str, Service],
    mail_catcher: MailCatcher,
    tmp_path: Path,
) -> None:
    env = production_env
    base = env["MENTORFLOW_PUBLIC_BASE_URL"]
    namespace = env["MENTORFLOW_TEMPORAL_NAMESPACE"]
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        await wait_for(lambda: is_healthy(http), within=60)
        assert (await http.get("/health")).json()["temporal"] == "ok"

        definition, program_id = fast_definition(tmp_path, opens=1, deadline=600)
        started = mentorflow("program", "start", str(definition), env=env)
        assert started.returncode == 0, started.stderr
        await wait_for(lambda: len(mail_catcher.messages()) >= 2, within=60)

        # Logs: JSON lines, the workflow's and the program's ids on what workflows log.
        workflow_id = program_workflow_id(program_id)
        worker_log = json_lines(services["workflow-worker"].log)
        assert worker_log, services["workflow-worker"].log.read_text()
        phase_lines = [
            line
            for line in worker_log
            if line.get("workflow_id") == workflow_id and "entered" in str(line["message"])
        ]
        assert phase_lines, worker_log
        assert phase_lines[0]["program_id"] == program_id
        assert phase_lines[0]["workflow_type"] == "ProgramWorkflowV2"
        assert phase_lines[0]["namespace"] == namespace

        def email_logged() -> bool:
            # The activity logs its summary once the ledger has the emails the catcher
            # already holds: a moment after they arrive.
            return any(
                line.get("activity_type") == "send_email_batch"
                and line.get("program_id") == program_id
                for line in json_lines(services["activity-worker"].log)
            )

        await wait_for(email_logged, within=30)

        # Metrics: the SDK's and mentorflow's own, in Prometheus' text format.
        # Each worker kind has its own: workflow task times from the workflows worker
        # (with buckets around the two-second deadline), the rest from the activities'.
        workflows = await http.get(f"http://{services['workflow-worker'].metrics}/metrics")
        assert "temporal_workflow_task_execution_latency" in workflows.text
        assert any(
            line.startswith("temporal_workflow_task_execution_latency_bucket{")
            and 'le="2000"' in line
            for line in workflows.text.splitlines()
        )
        # ...and each activation's, which the two seconds apply to (a task holds more
        # than one when it runs a local activity: an application's record).
        assert any(
            line.startswith("mentorflow_workflow_activation_latency_bucket{")
            and 'le="2000"' in line
            and float(line.rsplit(" ", 1)[1]) > 0
            for line in workflows.text.splitlines()
        )
        assert "temporal_activity_execution_latency" not in workflows.text
        metrics = (await http.get(f"http://{services['activity-worker'].metrics}/metrics")).text
        assert "temporal_activity_execution_latency" in metrics
        assert "temporal_workflow_task_execution_latency" not in metrics
        assert "mentorflow_workflow_activation_latency" not in metrics
        sent = [
            line
            for line in metrics.splitlines()
            if line.startswith("mentorflow_emails") and 'outcome="sent"' in line
        ]
        assert sent and sum(float(line.rsplit(" ", 1)[1]) for line in sent) >= 2

        # Temporal stores only ciphertext: a client without the key sees no definition.
        raw = await Client.connect(env["MENTORFLOW_TEMPORAL_ADDRESS"], namespace=namespace)
        history = await raw.get_workflow_handle(workflow_id).fetch_history()
        started_event = history.events[0].workflow_execution_started_event_attributes
        (payload,) = started_event.input.payloads
        assert payload.metadata["encoding"] == b"binary/encrypted"
        assert payload.metadata["encryption-key-id"] == b"2026-11"
        whole = b"".join(event.SerializeToString() for event in history.events)
        assert b"hr@demo.example.org" not in whole and program_id.encode() not in payload.data

        # The Temporal CLI reads it through the codec endpoint, with a token only.
        def show(*codec: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [
                    str(binary("temporal")),
                    "workflow",
                    "show",
                    "--workflow-id",
                    workflow_id,
                    "--address",
                    env["MENTORFLOW_TEMPORAL_ADDRESS"],
                    "--namespace",
                    namespace,
                    "--output",
                    "json",
                    *codec,
                ],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )

        def start_input(shown: subprocess.CompletedProcess[str]) -> tuple[bytes, bytes]:
            """(encoding, data) of the program's input, as the CLI printed them."""
            assert shown.returncode == 0, shown.stderr
            events = json.loads(shown.stdout)["events"]
            (given,) = events[0]["workflowExecutionStartedEventAttributes"]["input"]["payloads"]
            return (
                base64.b64decode(given["metadata"]["encoding"]),
                base64.b64decode(given["data"]),
            )

        codec = f"{base}/codec"
        encoding, data = start_input(
            show("--codec-endpoint", codec, "--codec-auth", f"Bearer {CODEC_TOKEN}")
        )
        # Decoded, the start input shows the program (its people are in the database only).
        assert encoding == b"json/plain" and b'"id":"' + program_id.encode() in data
        assert show("--codec-endpoint", codec, "--codec-auth", "Bearer wrong").returncode != 0
        encoding, data = start_input(show())
        assert encoding == b"binary/encrypted" and program_id.encode() not in data

        # The Temporal UI's way: a cookie from /codec/login, sent cross-origin.
        body = {"payloads": [json.loads(_payload_json(payload))]}
        ui = env["MENTORFLOW_TEMPORAL_UI_URL"]
        assert (await http.post("/codec/decode", json=body)).status_code == 401
        bearer = {"Authorization": f"Bearer {CODEC_TOKEN}"}
        garbled = await http.post("/codec/decode", content=b"not json", headers=bearer)
        assert garbled.status_code == 400 and garbled.json()["message"]
        preflight = await http.options("/codec/decode", headers={"Origin": ui})
        assert preflight.headers["access-control-allow-origin"] == ui
        assert preflight.headers["access-control-allow-credentials"] == "true"
        other = await http.options("/codec/decode", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        wrong = await http.post("/codec/login", data={"token": "guess"})
        assert wrong.status_code == 403 and "mentorflow_codec" not in wrong.cookies
        login = await http.post("/codec/login", data={"token": CODEC_TOKEN})
        assert login.status_code == 200 and "mentorflow_codec" in http.cookies
        opened = await http.post("/codec/decode", json=body, headers={"Origin": ui})
        assert opened.status_code == 200
        assert opened.headers["access-control-allow-origin"] == ui
        (plain,) = opened.json()["payloads"]
        assert plain["metadata"]["encoding"] == base64.b64encode(b"json/plain").decode()
        assert program_id in base64.b64decode(plain["data"]).decode()

        cancelled = mentorflow("program", "cancel", program_id, "--yes", env=env)
        assert cancelled.returncode == 0, cancelled.stderr


def _payload_json(payload: object) -> str:
    from google.protobuf import json_format
    from google.protobuf.message import Message

    assert isinstance(payload, Message)
    return json_format.MessageToJson(payload)
