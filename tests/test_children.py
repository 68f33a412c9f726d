"""``mentorflow dev``'s children: recognised by pid, start time and command line, stopped
by the next start when an earlier run left them behind, and never confused with a
process that merely got the same pid. The end-to-end kill is in ``test_dev_stack.py``."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mentorflow.children import PIDFILE, Children, ProcessRecord, StillRunning, identify, is_same

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


@pytest.fixture
def sleepers() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        process.kill()
        process.wait()


def sleeper(sleepers: list[subprocess.Popen[bytes]], role: str) -> ProcessRecord:
    process = subprocess.Popen(["sleep", "60"])
    sleepers.append(process)
    record = identify(process.pid, role)
    assert record is not None and record.command == ["sleep", "60"]
    return record


def write_pidfile(folder: Path, *records: ProcessRecord) -> None:
    processes = [dataclasses.asdict(record) for record in records]
    (folder / PIDFILE).write_text(json.dumps({"processes": processes}))


def test_the_next_start_stops_what_an_earlier_run_left_behind(
    tmp_path: Path, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    gone = subprocess.Popen(["true"])
    earlier_run = identify(gone.pid, "parent")
    gone.wait()
    assert earlier_run is None or not is_same(earlier_run)
    left = sleeper(sleepers, "Temporal dev server")
    # The same pid with another start time: a process the system gave that pid since.
    other = sleeper(sleepers, "workflows worker")
    reused = dataclasses.replace(other, started=str(int(other.started) - 1))
    write_pidfile(
        tmp_path,
        ProcessRecord("parent", gone.pid, "0", ["python", "-m", "mentorflow", "dev"]),
        left,
        reused,
    )
    said: list[str] = []
    children = Children(tmp_path)
    children.reclaim(said.append)
    assert said == [
        f"stopping the Temporal dev server (pid {left.pid}) that an earlier run left running"
    ]
    assert sleepers[0].wait(5) == -signal.SIGTERM
    assert is_same(other)  # never signalled
    written = json.loads((tmp_path / PIDFILE).read_text())["processes"]
    assert [entry["role"] for entry in written] == ["parent"]

    # This run's own children are recorded, and forgotten once stopped.
    child = children.start("activities worker", ["sleep", "60"])
    written = json.loads((tmp_path / PIDFILE).read_text())["processes"]
    assert [entry["role"] for entry in written] == ["parent", "activities worker"]
    assert children.stop("activities worker", within=5) == -signal.SIGTERM
    assert child.returncode == -signal.SIGTERM
    children.forget()
    assert not (tmp_path / PIDFILE).exists()


def test_a_run_that_still_runs_is_not_touched(
    tmp_path: Path, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    running = sleeper(sleepers, "parent")
    its_child = sleeper(sleepers, "Temporal dev server")
    write_pidfile(tmp_path, running, its_child)
    with pytest.raises(StillRunning) as refused:
        Children(tmp_path).reclaim(print)
    assert refused.value.record.pid == running.pid
    assert is_same(running) and is_same(its_child)


def test_a_torn_pidfile_is_ignored(tmp_path: Path) -> None:
    (tmp_path / PIDFILE).write_text('{"processes": [{"role": "Temp')
    Children(tmp_path).reclaim(print)
    written = json.loads((tmp_path / PIDFILE).read_text())["processes"]
    assert [entry["role"] for entry in written] == ["parent"]
