"""The ``mentorflow`` command where it meets a program that cannot take its work just now.

The rest of the command is exercised end to end in ``test_dev_stack.py`` against the
real stack; here the Temporal client is a fake that aborts every update, as an
overloaded server does, so the import's answer to it can be checked row by row.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from mentorflow import cli
from mentorflow import temporal as temporal_module
from mentorflow.definition import load_definition
from mentorflow.store import Store
from tests.programs import DEMO, record_program
from tests.test_web import AbortingTemporal


async def test_an_import_the_busy_program_cannot_take_is_saved_and_reported_per_row(
    tmp_path: Path, database_url: str, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    definition = load_definition(DEMO)
    await record_program(store, definition)
    temporal = AbortingTemporal()

    async def connect(*args: object, **kwargs: object) -> AbortingTemporal:
        return temporal

    monkeypatch.setattr(cli, "connect", connect)
    monkeypatch.setattr(temporal_module, "UPDATE_PATIENCE_SECONDS", 0.3)
    csv_file = tmp_path / "collected.csv"
    csv_file.write_text(
        "name,email,organisation,department,profile,manager_name,manager_email,q_motivation\n"
        "Sam,sam@example.org,demo-company,IT,adept,Robin,robin@example.org,Curious\n",
        encoding="utf-8",
    )
    command = ["applications", "import", str(csv_file), "--program", definition.id]
    env = {"MENTORFLOW_DATABASE_URL": database_url}

    def run() -> Result:
        return CliRunner().invoke(cli.app, command, env=env)

    # The command runs its own event loop, so it gets a thread of its own.
    busy = await asyncio.to_thread(run)
    saved = await store.applications(definition.id)
    temporal.busy = False
    again = await asyncio.to_thread(run)

    assert busy.exit_code == 1, busy.output
    assert busy.exception is None or isinstance(busy.exception, SystemExit)
    assert (
        f"{csv_file}:2: saved, but the program is too busy to take it now;"
        " import the file again in a minute (nothing is doubled)"
    ) in busy.stderr
    assert busy.stderr.splitlines()[-1] == (
        f"{csv_file}: 0 imported, 0 updated, 1 refused;"
        " fix the refused rows and import the file again."
    )
    assert [(a.email, a.status) for a in saved] == [("sam@example.org", "submitted")]
    # Importing again hands the same saved application over; nothing doubles.
    assert again.exit_code == 0, again.output
    assert f"{csv_file}:2: updated" in again.stdout
    assert again.stdout.splitlines()[-1] == f"{csv_file}: 0 imported, 1 updated, 0 refused"
    assert [a.id for a in await store.applications(definition.id)] == [saved[0].id]
