"""Runtime settings, read from ``MENTORFLOW_*`` environment variables.

The defaults are the embedded stack's (``mentorflow dev``): a local Temporal dev
server, SQLite in ``.mentorflow/`` and the built-in mail catcher.
"""

from __future__ import annotations

import os
import secrets
from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEVELOPMENT_SECRET_KEY = "dev-only-insecure-secret-change-me"
"""The signing key in the source: whoever reads it can sign a manager's approval."""
SECRET_KEY_MIN_BYTES = 32
MAKE_A_KEY = 'python -c "import secrets; print(secrets.token_urlsafe(48))"'
LOCAL_KEY_FILE = "signing-key"


class Settings(BaseSettings):
    """Everything the CLI, the worker and the web app read from the environment."""

    # An empty variable counts as unset: compose passes `${X:-}` for every optional one.
    model_config = SettingsConfigDict(
        env_prefix="MENTORFLOW_", env_file=".env", extra="ignore", env_ignore_empty=True
    )

    data_dir: Path = Field(
        Path(".mentorflow"),
        description="Folder for the embedded stack's files (Temporal db, SQLite db, mail).",
    )

    temporal_address: str = Field("127.0.0.1:7233", description="Temporal frontend host:port.")
    temporal_namespace: str = Field("default", description="Temporal namespace.")
    temporal_task_queue: str = Field("mentorflow", description="Task queue of the worker.")
    temporal_ui_url: str = Field("http://127.0.0.1:8233", description="Temporal UI, for links.")
    temporal_tls: bool = Field(False, description="Connect to Temporal over TLS.")
    temporal_api_key: SecretStr | None = Field(None, description="API key for Temporal Cloud.")

    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL; SQLite in data_dir by default, postgresql://… in production.",
    )

    smtp_host: str = Field("127.0.0.1", description="SMTP server host.")
    smtp_port: int = Field(1025, description="SMTP server port.")
    smtp_tls: bool = Field(False, description="Implicit TLS (SMTPS, usually port 465).")
    smtp_starttls: bool = Field(False, description="Upgrade with STARTTLS (usually port 587).")
    smtp_username: str | None = Field(None, description="SMTP user name, if the server wants one.")
    smtp_password: SecretStr | None = Field(None, description="SMTP password.")
    smtp_timeout_seconds: float = Field(30.0, description="Timeout of one SMTP conversation.")
    mail_from: str = Field(
        "mentorflow <noreply@mentorflow.localhost>", description="Sender of every email."
    )

    public_base_url: str = Field(
        "http://127.0.0.1:8000", description="Base URL of the web app, used in email links."
    )
    web_host: str = Field("127.0.0.1", description="Address the web app binds to.")
    web_port: int = Field(8000, description="Port the web app binds to.")
    secret_key: SecretStr = Field(
        SecretStr(DEVELOPMENT_SECRET_KEY),
        description="Key that signs email links: at least 32 random bytes outside the local"
        " stack (the worker and the web app refuse to start without one).",
    )

    previous_secret_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Earlier secret keys (JSON list): links signed with them still work.",
    )

    worker_cached_workflows: int = Field(
        10_000,
        ge=1,
        description="Workflow runs the worker keeps in memory (about 0.3 MB each); keep it"
        " above the applications and pairs running at once.",
    )

    worker_workflow_tasks: int = Field(
        8,
        ge=2,  # the SDK's minimum with a workflow cache
        description="Workflow tasks a worker process runs at once on each task queue."
        " Activations share one interpreter lock: more at once only stretch each of them"
        " (past the SDK's 2 s deadlock limit when hundreds wait); the rest wait on the server.",
    )

    worker_sandbox: bool = Field(
        False,
        description="Run workflow code in Temporal's sandbox, which refuses non-deterministic"
        " calls as they happen. Its isolation costs a workflows worker about a quarter of"
        " its CPU (it re-imports the workflow modules for every new run and runs a code"
        " string for every payload). Off, as shipped: the tests run every workflow in the"
        " sandbox and replay the recorded histories in it; turn it on while changing"
        " workflow code.",
    )

    metrics_address: str | None = Field(
        None,
        description="host:port where the worker serves Temporal SDK metrics for Prometheus.",
    )

    payload_key_id: str = Field(
        "default", description="Name of the payload key, stored beside each encrypted payload."
    )
    payload_key: SecretStr | None = Field(
        None,
        description="Base64 of a 32-byte AES key: when set, workflow payloads are encrypted.",
    )
    previous_payload_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Earlier payload keys by id (JSON object): older histories still decrypt.",
    )
    codec_tokens: list[SecretStr] = Field(
        default_factory=list,
        description="Tokens (JSON list) that open the codec endpoint for authorised people.",
    )

    @property
    def secret_keys(self) -> list[str]:
        """The signing key first, then the earlier ones that still verify."""
        return [k.get_secret_value() for k in (self.secret_key, *self.previous_secret_keys)]

    def signing_key_problem(self) -> str | None:
        """Why the link keys must not sign or verify anything outside the local stack
        (one line, with how to make a key), or None when they may."""
        keys = [("MENTORFLOW_SECRET_KEY", self.secret_key)] + [
            ("MENTORFLOW_PREVIOUS_SECRET_KEYS", key) for key in self.previous_secret_keys
        ]
        for name, key in keys:
            value = key.get_secret_value()
            if value == DEVELOPMENT_SECRET_KEY:
                why = "is the development key written in mentorflow's source"
            elif len(value.encode()) < SECRET_KEY_MIN_BYTES:
                why = f"is {len(value.encode())} bytes long, shorter than {SECRET_KEY_MIN_BYTES}"
            else:
                continue
            return (
                f"{name} {why}: anyone could sign email links (a manager's approval) with it."
                f" Set a random key of at least {SECRET_KEY_MIN_BYTES} bytes, made with: "
                + MAKE_A_KEY
            )
        return None

    @cached_property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to SQLite inside ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'mentorflow.db').resolve()}"


def with_local_signing_key(settings: Settings) -> Settings:
    """The local stack's settings, signing with a random key of its own instead of the
    development key in the source.

    The key is kept in ``data_dir`` (readable by its owner only), so links in the
    stack's inbox keep working after a restart; the workers the stack starts get it
    with the rest of its settings and pass the check of :meth:`signing_key_problem`.
    A key set in the environment is used as it is.
    """
    if settings.secret_key.get_secret_value() != DEVELOPMENT_SECRET_KEY:
        return settings
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = settings.data_dir / LOCAL_KEY_FILE
    key = path.read_text(encoding="utf-8").strip() if path.is_file() else ""
    if len(key.encode()) < SECRET_KEY_MIN_BYTES:  # none yet, or cut short: a new one
        key = secrets.token_urlsafe(48)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(key + "\n")
    return settings.model_copy(update={"secret_key": SecretStr(key)})
