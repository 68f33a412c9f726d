"""The production stack: docker-compose.yml, the Dockerfile and .env.example, checked statically.

No Docker engine runs here, so these tests read the files as Compose and Docker
would: the services and their order, pinned images, healthchecks behind every
``service_healthy``, every setting the app reads, every ``${VAR}`` documented,
a Dockerfile that installs and runs the project the way README says, and the
monitoring: Prometheus scraping every worker at its metrics port, Grafana
provisioned with it and a dashboard that reads only metrics the workers serve.
The same topology runs as local processes in ``test_production_processes.py``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import temporalio.bridge
import yaml

from mentorflow.settings import Settings

ROOT = Path(__file__).parent.parent
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
APP_SERVICES = ("mentorflow-setup", "workflow-worker", "activity-worker", "web")
# The two worker kinds, each its own service (docs/ops.md, "The two worker kinds").
WORKERS = {"workflow-worker": "workflows", "activity-worker": "activities"}
ONE_SHOT = {"temporal-schema", "mentorflow-setup"}
README = (ROOT / "README.md").read_text()
DOCKERFILE = (ROOT / "Dockerfile").read_text()

_VARIABLE = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?::?(?P<op>[-?])(?P<arg>[^}]*))?\}")


def env_example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's ``${X}``, ``${X:-default}`` and ``${X:?error}``, as ``docker compose`` does."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        given = variables.get(name, "")
        if given:
            return given
        if op == "?":
            raise LookupError(f"{name}: {arg}")
        return arg if op == "-" else ""

    return _VARIABLE.sub(one, value)


def app_environment(variables: dict[str, str]) -> dict[str, str]:
    environment = SERVICES["activity-worker"]["environment"]
    return {key: interpolate(str(value), variables) for key, value in environment.items()}


def test_the_stack_has_every_part_in_order() -> None:
    assert set(SERVICES) == {
        "postgres",
        "temporal-schema",
        "temporal",
        "temporal-ui",
        "mentorflow-setup",
        "workflow-worker",
        "activity-worker",
        "web",
        "mailpit",
        "prometheus",
        "grafana",
    }
    images = {name: service.get("image", "") for name, service in SERVICES.items()}
    assert images["temporal"].startswith("temporalio/server:")
    assert "auto-setup" not in " ".join(images.values())
    assert images["temporal-schema"].startswith("temporalio/admin-tools:")
    assert images["temporal-ui"].startswith("temporalio/ui:")
    assert images["mailpit"].startswith("axllent/mailpit:")
    assert images["prometheus"].startswith("prom/prometheus:")
    assert images["grafana"].startswith("grafana/grafana:")
    # One image built from the repo, used by setup, worker and web.
    assert SERVICES["mentorflow-setup"]["build"] == "."
    assert {images[name] for name in APP_SERVICES} == {images["mentorflow-setup"]}
    assert [SERVICES[name]["command"][0] for name in APP_SERVICES] == [
        "setup",
        "worker",
        "worker",
        "web",
    ]
    for name, kind in WORKERS.items():
        assert SERVICES[name]["command"] == ["worker", "--only", kind]

    # Who waits for whom, and on what.
    def needs(name: str) -> dict[str, str]:
        return {dep: spec["condition"] for dep, spec in SERVICES[name]["depends_on"].items()}

    assert needs("temporal-schema") == {"postgres": "service_healthy"}
    assert needs("temporal") == {"temporal-schema": "service_completed_successfully"}
    assert needs("temporal-ui") == {"temporal": "service_healthy"}
    assert needs("mentorflow-setup") == {
        "temporal": "service_healthy",
        "postgres": "service_healthy",
    }
    # Only activities send email; workflows need nothing but Temporal.
    assert needs("activity-worker") == {
        "mentorflow-setup": "service_completed_successfully",
        "mailpit": "service_healthy",
    }
    assert needs("workflow-worker") == {"mentorflow-setup": "service_completed_successfully"}
    assert needs("web")["mentorflow-setup"] == "service_completed_successfully"
    # Prometheus waits for nobody: it scrapes whichever worker replicas there are.
    assert "depends_on" not in SERVICES["prometheus"]
    assert needs("grafana") == {"prometheus": "service_healthy"}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_images_are_pinned_and_health_is_checked(name: str) -> None:
    service = SERVICES[name]
    image = service["image"]
    if not image.startswith("mentorflow:"):  # the project's own image is built, not pulled
        repository, _, tag = image.rpartition(":")
        assert repository and re.fullmatch(r"v?\d+\.\d+(\.\d+)?(-[a-z0-9.]+)?", tag), (
            f"{name}: pin {image} to a version"
        )
    if name in ONE_SHOT:
        assert service["restart"].startswith("on-failure"), f"{name} must run once, retried"
        assert "healthcheck" not in service
    else:
        assert service["restart"] == "unless-stopped"
        check = service["healthcheck"]
        assert check["test"][0] in ("CMD", "CMD-SHELL") and check["retries"] >= 5
    for dependency, spec in service.get("depends_on", {}).items():
        if spec["condition"] == "service_healthy":
            assert "healthcheck" in SERVICES[dependency], f"{dependency} has no healthcheck"
        else:
            assert spec["condition"] == "service_completed_successfully"
            assert dependency in ONE_SHOT


def test_the_schema_job_sets_up_both_temporal_databases() -> None:
    (mount,) = SERVICES["temporal-schema"]["volumes"]
    script = ROOT / mount.split(":")[0]
    text = script.read_text()
    for database, folder in (("temporal", "temporal"), ("temporal_visibility", "visibility")):
        assert f"--db {database} setup-schema -v 0.0" in text
        assert f"postgresql/v12/{folder}/versioned" in text
    assert SERVICES["temporal"]["environment"]["DB"] == "postgres12"
    (config,) = SERVICES["temporal"]["volumes"]
    folder = ROOT / config.split(":")[0]
    wanted = SERVICES["temporal"]["environment"]["DYNAMIC_CONFIG_FILE_PATH"].split("/")[-1]
    assert yaml.safe_load((folder / wanted).read_text())


def test_every_setting_the_app_reads_is_provided() -> None:
    provided = app_environment(env_example() | {"POSTGRES_PASSWORD": "x", "SECRET_KEY": "y"})
    fields = {f"MENTORFLOW_{name.upper()}" for name in Settings.model_fields}
    read_from_environment = fields | {"MENTORFLOW_LOG_FORMAT", "MENTORFLOW_LOG_LEVEL"}
    # Settings whose defaults are right inside a container, each with its reason.
    defaults_fit = {
        "MENTORFLOW_DATA_DIR": "the image sets it; only the local stack uses it",
        "MENTORFLOW_TEMPORAL_TLS": "the compose Temporal is on the private network",
        "MENTORFLOW_TEMPORAL_API_KEY": "Temporal Cloud only",
        "MENTORFLOW_SMTP_TIMEOUT_SECONDS": "30 s suits a relay",
        "MENTORFLOW_WORKER_CACHED_WORKFLOWS": "10,000 suits programs of thousands",
        "MENTORFLOW_WORKER_WORKFLOW_TASKS": "bounded by the interpreter lock, not the host",
        "MENTORFLOW_WORKER_SANDBOX": "the tests run the sandbox; released workers skip it",
    }
    assert set(provided) <= read_from_environment, "a MENTORFLOW_ name the app does not read"
    assert read_from_environment - set(provided) == set(defaults_fit)
    for name in APP_SERVICES:
        assert SERVICES[name]["environment"] == SERVICES["activity-worker"]["environment"]

    # The values parse as the app parses them (empty optional values count as unset).
    settings = Settings.model_validate(
        {key.removeprefix("MENTORFLOW_").lower(): value for key, value in provided.items()}
        | {"previous_secret_keys": [], "previous_payload_keys": {}, "codec_tokens": []}
    )
    assert settings.effective_database_url.startswith("postgresql://mentorflow:x@postgres:5432/")
    assert settings.temporal_address == "temporal:7233"
    assert settings.smtp_host == "mailpit"


def test_settings_read_from_the_environment_treat_empty_as_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provided = app_environment(env_example() | {"POSTGRES_PASSWORD": "x", "SECRET_KEY": "y"})
    for key, value in provided.items():
        monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)
    assert settings.previous_secret_keys == [] and settings.codec_tokens == []
    assert settings.payload_key is None and settings.smtp_username is None
    assert settings.metrics_address == "0.0.0.0:9464"
    assert settings.secret_key.get_secret_value() == "y"


def test_every_variable_is_documented_and_secrets_are_required() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    used = {m["name"]: m["op"] for m in _VARIABLE.finditer(text)}
    example = env_example()
    assert set(used) == set(example), "docker-compose.yml and .env.example disagree"
    required = {name for name, op in used.items() if op == "?"}
    assert required == {"POSTGRES_PASSWORD", "SECRET_KEY"}
    assert all(example[name] == "" for name in required), "no default secret in .env.example"
    with pytest.raises(LookupError, match="SECRET_KEY"):
        app_environment(example | {"POSTGRES_PASSWORD": "x"})


def test_ports_match_the_settings() -> None:
    environment = SERVICES["activity-worker"]["environment"]
    assert SERVICES["web"]["ports"] == [f"127.0.0.1:{environment['MENTORFLOW_WEB_PORT']}:8000"]
    assert environment["MENTORFLOW_WEB_PORT"] == 8000
    metrics_port = environment["MENTORFLOW_METRICS_ADDRESS"].rsplit(":", 1)[1]
    for name in WORKERS:
        assert SERVICES[name]["expose"] == [metrics_port]
        assert f"127.0.0.1:{metrics_port}/metrics" in " ".join(
            SERVICES[name]["healthcheck"]["test"]
        )
    assert "127.0.0.1:8000/health" in " ".join(SERVICES["web"]["healthcheck"]["test"])
    assert environment["MENTORFLOW_TEMPORAL_ADDRESS"] == "temporal:7233"
    assert "127.0.0.1:7233:7233" in SERVICES["temporal"]["ports"]
    # Workers scale with --scale: no fixed name, no host port.
    for name in WORKERS:
        assert "container_name" not in SERVICES[name] and "ports" not in SERVICES[name]
    assert all("container_name" not in service for service in SERVICES.values())


def _dockerfile_instructions() -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    instructions = []
    for line in joined.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_the_dockerfile_installs_and_runs_as_the_readme_says() -> None:
    instructions = _dockerfile_instructions()
    (base,) = [rest for keyword, rest in instructions if keyword == "FROM"]
    match = re.fullmatch(r"python:(\d+)\.(\d+)\.\d+-slim-\w+", base)
    assert match, f"pin the base image: {base}"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11" and (int(match[1]), int(match[2])) >= (3, 11)

    copied = [rest.split()[0] for keyword, rest in instructions if keyword == "COPY"]
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    for pattern in packages["packages"]["find"]["include"]:
        assert pattern.rstrip("*") in copied, f"the image misses the {pattern} package"
    for path in copied:
        assert (ROOT / path).exists(), f"COPY {path}: no such file in the repo"
    runs = [rest for keyword, rest in instructions if keyword == "RUN"]
    assert "pip install ." in runs
    # The installed workflow modules' bytecode, which the worker cannot write at run time.
    assert any(r.startswith("cd / && ") and "compile_workflow_modules" in r for r in runs)
    assert [rest for keyword, rest in instructions if keyword == "ENTRYPOINT"] == ['["mentorflow"]']
    assert [rest for keyword, rest in instructions if keyword == "USER"] == ["mentorflow"]
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".env", ".mentorflow", ".git"} <= set(ignored)

    # README's production section installs the same way and runs the same commands.
    production = README[README.index("## Production") :]
    production = production[: production.index("\n## ", 4)]
    assert "pip install ." in production
    for command in (
        "mentorflow setup",
        "mentorflow worker --only workflows",
        "mentorflow worker --only activities",
        "mentorflow web",
    ):
        assert command in production
    assert "docker compose up" in production and "--scale activity-worker=" in production


@pytest.mark.parametrize("command", ["setup", "worker", "web"])
def test_the_commands_compose_runs_exist(command: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mentorflow", command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Usage:" in done.stdout
    flags = SERVICES["mentorflow-setup"]["command"][1:]
    if command == "setup":
        assert flags[0] in done.stdout
    if command == "worker":
        for name in WORKERS:
            only, kind = SERVICES[name]["command"][1:]
            assert only in done.stdout and kind in done.stdout


# --- Monitoring: Prometheus and Grafana ------------------------------------------------------

PROMETHEUS_PORT = 9090
GRAFANA_PORT = 3000

# What a worker on temporalio 1.35 serves at /metrics, and each metric's type: scraped
# from a worker on a PrometheusConfig runtime (as mentorflow.temporal.runtime_for makes)
# that ran a workflow, an activity that failed and a workflow task that failed. The names
# are sdk-core's (core/src/telemetry/metrics.rs in temporalio/sdk-core; Temporal's "SDK
# metrics" reference) with the default temporal_ prefix; counters have no _total suffix.
SDK_METRICS = {
    "temporal_activity_execution_failed": "counter",
    "temporal_activity_execution_latency": "histogram",
    "temporal_activity_schedule_to_start_latency": "histogram",
    "temporal_activity_succeed_endtoend_latency": "histogram",
    "temporal_activity_task_received": "counter",
    "temporal_long_request": "counter",
    "temporal_long_request_latency": "histogram",
    "temporal_num_pollers": "gauge",
    "temporal_request": "counter",
    "temporal_request_latency": "histogram",
    "temporal_sticky_cache_hit": "counter",
    "temporal_sticky_cache_size": "gauge",
    "temporal_sticky_cache_total_forced_eviction": "counter",
    "temporal_worker_start": "counter",
    "temporal_worker_task_slots_available": "gauge",
    "temporal_worker_task_slots_used": "gauge",
    "temporal_workflow_completed": "counter",
    "temporal_workflow_endtoend_latency": "histogram",
    "temporal_workflow_task_execution_failed": "counter",
    "temporal_workflow_task_execution_latency": "histogram",
    "temporal_workflow_task_queue_poll_succeed": "counter",
    "temporal_workflow_task_replay_latency": "histogram",
    "temporal_workflow_task_schedule_to_start_latency": "histogram",
}
# mentorflow's own: the emails counter (the activity's metric meter, activities/email.py)
MENTORFLOW_METRICS = {
    "mentorflow_emails": "counter",
    # The workflows worker's, on the client's runtime (worker/metrics.py).
    "mentorflow_workflow_activation_latency": "histogram",
}


def mounted(service: str, target: str) -> Path:
    """The repo path that compose binds at ``target`` (or at a folder holding it)."""
    for volume in SERVICES[service].get("volumes", []):
        source, inside = str(volume).split(":")[:2]
        if source.startswith("./") and (target == inside or target.startswith(inside + "/")):
            return ROOT / source / target.removeprefix(inside).lstrip("/")
    raise AssertionError(f"{service} mounts nothing at {target}")


def metric_names(expr: str) -> set[str]:
    """The metrics a PromQL expression reads: what is left once strings, label
    matchers, ranges, groupings, variables, functions and operators are taken out."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\$\w+", "", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\bgroup_(?:left|right)\b(?:\s*\([^)]*\))?", "", expr)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][\w:]*", expr):
        called = expr[match.end() :].lstrip().startswith("(")
        if not called and match[0] not in {"and", "or", "unless", "offset", "bool"}:
            names.add(match[0])
    return names


def served_series() -> dict[str, str]:
    """Every series name a worker serves: a histogram as its _bucket, _sum and _count."""
    series: dict[str, str] = {}
    for name, kind in (SDK_METRICS | MENTORFLOW_METRICS).items():
        parts = ("_bucket", "_sum", "_count") if kind == "histogram" else ("",)
        series |= {name + part: name for part in parts}
    return series


def test_metric_names_reads_promql() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, workflow_type) (rate(a_bucket{job="x"}[5m])))'
        " / on (job) group_left sum without (le) (increase(b[$__rate_interval])) > bool 1"
    )
    assert metric_names(expr) == {"a_bucket", "b"}


def test_prometheus_scrapes_every_worker_replica_at_its_metrics_port() -> None:
    config = yaml.safe_load(mounted("prometheus", "/etc/prometheus/prometheus.yml").read_text())
    environment = SERVICES["activity-worker"]["environment"]
    metrics_port = int(environment["MENTORFLOW_METRICS_ADDRESS"].rsplit(":", 1)[1])
    scraped: dict[str, tuple[str, int]] = {}
    for job in config["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics"
        assert job.get("scheme", "http") == "http"
        # A fixed target would reach one replica of a scaled service; DNS finds them all.
        assert "static_configs" not in job, job["job_name"]
        for found in job["dns_sd_configs"]:
            assert found["type"] == "A"
            for name in found["names"]:
                scraped[name] = (job["job_name"], found["port"])
    assert scraped == {name: (name, metrics_port) for name in WORKERS}
    for name in WORKERS:
        assert SERVICES[name]["expose"] == [str(metrics_port)]
    # The healthcheck and the host port are Prometheus' own port.
    prometheus = SERVICES["prometheus"]
    assert f"127.0.0.1:{PROMETHEUS_PORT}/-/ready" in " ".join(prometheus["healthcheck"]["test"])
    assert prometheus["ports"] == [f"127.0.0.1:{PROMETHEUS_PORT}:{PROMETHEUS_PORT}"]


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard() -> None:
    grafana = SERVICES["grafana"]
    assert grafana["ports"] == [f"127.0.0.1:{GRAFANA_PORT}:{GRAFANA_PORT}"]
    assert f"127.0.0.1:{GRAFANA_PORT}/api/health" in " ".join(grafana["healthcheck"]["test"])
    datasources = mounted("grafana", "/etc/grafana/provisioning/datasources")
    (source,) = [
        entry
        for file in sorted(datasources.glob("*.yml"))
        for entry in yaml.safe_load(file.read_text())["datasources"]
    ]
    assert source["type"] == "prometheus" and source["isDefault"] is True
    assert source["url"] == f"http://prometheus:{PROMETHEUS_PORT}"

    providers = mounted("grafana", "/etc/grafana/provisioning/dashboards")
    (provider,) = [
        entry
        for file in sorted(providers.glob("*.yml"))
        for entry in yaml.safe_load(file.read_text())["providers"]
    ]
    assert provider["type"] == "file"
    dashboards = sorted(mounted("grafana", provider["options"]["path"]).glob("*.json"))
    assert [file.name for file in dashboards] == ["mentorflow.json"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert mounted("grafana", home) == dashboards[0]
    # Viewing needs no account; nobody signs up.
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert grafana["environment"]["GF_USERS_ALLOW_SIGN_UP"] == "false"

    for file in dashboards:
        dashboard = json.loads(file.read_text())
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] == source["uid"], panel["title"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == source["uid"], panel["title"]


def test_the_dashboard_reads_only_metrics_the_workers_serve() -> None:
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/mentorflow.json").read_text())
    panels = {
        panel["title"]: [target["expr"] for target in panel["targets"]]
        for panel in dashboard["panels"]
    }
    assert len(panels) == len(dashboard["panels"]), "two panels share a title"
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(panels)
    series = served_series()
    for title, exprs in panels.items():
        for expr in exprs:
            unknown = metric_names(expr) - set(series)
            assert not unknown, f"{title}: no worker serves {unknown}"

    def reads(title: str) -> set[str]:
        return {series[name] for expr in panels[title] for name in metric_names(expr)}

    # What ops watch (docs/ops.md, "Logs and metrics").
    assert reads("Workflow task latency") == {
        "temporal_workflow_task_execution_latency",
        "mentorflow_workflow_activation_latency",
    }
    assert reads("Activity failures") == {"temporal_activity_execution_failed"}
    assert reads("Emails by outcome") == {"mentorflow_emails"}
    assert all("by (outcome)" in expr for expr in panels["Emails by outcome"])
    # The latency panel marks the SDK's two-second deadline (ms).
    (latency,) = [p for p in dashboard["panels"] if p["title"] == "Workflow task latency"]
    assert latency["fieldConfig"]["defaults"]["unit"] == "ms"
    assert latency["fieldConfig"]["defaults"]["thresholds"]["steps"][-1]["value"] == 2000


def test_the_metric_list_is_the_code_s() -> None:
    # mentorflow's counter is made under this name; the SDK's names are in its native
    # library (a new SDK that renames one fails here, not on a blank panel).
    assert '"mentorflow_emails"' in (ROOT / "activities/email.py").read_text()
    assert '"mentorflow_workflow_activation_latency"' in (ROOT / "worker/metrics.py").read_text()
    (bridge,) = Path(temporalio.bridge.__file__).parent.glob("temporal_sdk_bridge*")
    native = bridge.read_bytes()
    for name in SDK_METRICS:
        assert name.removeprefix("temporal_").encode() in native, name
