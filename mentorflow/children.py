"""Child processes of ``mentorflow dev`` that never outlive it.

Two guards, because either alone leaves a gap:

- On Linux each child asks the kernel for SIGTERM when its parent dies
  (``PR_SET_PDEATHSIG``), so even a SIGKILLed ``mentorflow dev`` takes its Temporal
  dev server and workers with it.
- A pidfile in the data dir names every child (pid, start time, command line).
  The next ``mentorflow dev`` stops any of them still running (a child that was
  slow to die, or a platform without the kernel guard) before it binds its ports,
  and refuses to start while the recorded ``mentorflow dev`` itself still runs.

A process is recognised by its pid *and* its start time and command line, so a
pid the system has since given to another program is never signalled.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

PIDFILE = "dev.pids"

_PROC = Path("/proc")
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ProcessRecord:
    """Who a process is: enough to recognise it later, and to say what it was."""

    role: str
    pid: int
    started: str
    command: list[str]


def identify(pid: int, role: str = "") -> ProcessRecord | None:
    """The running process ``pid`` (None if it is gone or a zombie)."""
    if _PROC.is_dir():
        # A process in the middle of exec shows an empty command line for a moment.
        for _ in range(20):
            try:
                stat = (_PROC / str(pid) / "stat").read_text()
                raw = (_PROC / str(pid) / "cmdline").read_bytes()
            except OSError:
                return None
            # Fields after the command name, which is in parentheses and may hold spaces.
            fields = stat[stat.rindex(")") + 2 :].split()
            if fields[0] in ("Z", "X"):
                return None
            if raw:
                break
            time.sleep(0.01)
        command = [part.decode(errors="replace") for part in raw.split(b"\0")[:-1]]
        return ProcessRecord(role, pid, started=fields[19], command=command)
    # Elsewhere (macOS) ps knows the start time and the command line, as text.
    done = subprocess.run(
        ["ps", "-o", "lstart=", "-o", "command=", "-p", str(pid)],
        capture_output=True,
        text=True,
        check=False,
    )
    line = done.stdout.strip()
    if done.returncode != 0 or not line:
        return None
    parts = line.split()
    return ProcessRecord(role, pid, started=" ".join(parts[:5]), command=parts[5:])


def is_same(record: ProcessRecord) -> bool:
    """Whether the process ``record`` describes still runs (same pid, start and command)."""
    now = identify(record.pid)
    if now is None:
        return False
    same_command = now.command == record.command or " ".join(now.command) == " ".join(
        record.command
    )
    return now.started == record.started and same_command


def _load_prctl() -> Callable[[int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl: Callable[[int, int], int] = libc.prctl
    except (OSError, AttributeError):
        return None
    return prctl


# Resolved at import, in the parent: between fork and exec the child makes the call only.
_prctl = _load_prctl()


def _die_with(parent: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGTERM when ``parent`` dies (Linux)."""
    if _prctl is None:
        return None
    prctl = _prctl

    def die_with_parent() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        # The parent may have died between fork and prctl: then no signal would come.
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)

    return die_with_parent


class Children:
    """The children of this process, each dying with it, recorded in ``<folder>/dev.pids``.

    Start children from the main thread: the kernel's parent-death signal follows
    the thread that forked the child, not the process.
    """

    def __init__(self, folder: Path) -> None:
        self.pidfile = folder / PIDFILE
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._records: list[ProcessRecord] = []
        # Children are stopped side by side, from threads; each rewrites the pidfile.
        self._lock = threading.Lock()

    def reclaim(self, say: Callable[[str], None]) -> None:
        """Stop what an earlier run left behind; refuse while that run still runs.

        Raises :class:`StillRunning` when the recorded parent is alive.
        """
        try:
            data = json.loads(self.pidfile.read_text())
            records = [ProcessRecord(**entry) for entry in data["processes"]]
        except FileNotFoundError:
            records = []
        except (ValueError, KeyError, TypeError):
            records = []  # a torn or foreign file: nothing in it can be trusted
        owner = next((r for r in records if r.role == "parent"), None)
        if owner is not None and owner.pid != os.getpid() and is_same(owner):
            raise StillRunning(owner)
        for record in records:
            if record.role != "parent" and is_same(record):
                say(
                    f"stopping the {record.role} (pid {record.pid}) that an earlier run"
                    " left running"
                )
                _terminate(record, within=10.0)
        me = identify(os.getpid(), "parent")
        with self._lock:
            self._records = [me] if me is not None else []
            self._write()

    def start(
        self,
        role: str,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdout: IO[bytes] | int | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``command`` in its own session (Ctrl-C in the terminal reaches only us, and
        we stop the children in order), dying with this process, and record it."""
        process = subprocess.Popen(
            list(command),
            env=dict(env) if env is not None else None,
            stdout=stdout,
            stderr=subprocess.STDOUT if stdout is not None else None,
            start_new_session=True,
            # Runs between fork and exec while the SDK's threads exist: it makes only
            # system calls, through a function resolved beforehand, and takes no lock.
            preexec_fn=_die_with(os.getpid()),
        )
        self.processes[role] = process
        started = identify(process.pid, role)
        if started is not None:
            # The argv we gave is what /proc will show, even while exec is still under way.
            record = ProcessRecord(role, process.pid, started.started, list(command))
            with self._lock:
                self._records.append(record)
                self._write()
        return process

    def stop(self, role: str, *, sig: int = signal.SIGTERM, within: float = 5.0) -> int | None:
        """Signal one child, wait up to ``within`` seconds, then kill it; its exit status."""
        process = self.processes.get(role)
        if process is None:
            return None
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(sig)
            try:
                process.wait(within)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        with self._lock:
            self._records = [r for r in self._records if r.role != role]
            self._write()
        return process.returncode

    def forget(self) -> None:
        """Remove the pidfile: every child has been stopped."""
        with self._lock, contextlib.suppress(FileNotFoundError):
            self.pidfile.unlink()

    def _write(self) -> None:
        temporary = self.pidfile.with_suffix(".tmp")
        temporary.write_text(json.dumps({"processes": [asdict(r) for r in self._records]}))
        os.replace(temporary, self.pidfile)


class StillRunning(Exception):
    """The run that wrote the pidfile is still running."""

    def __init__(self, record: ProcessRecord) -> None:
        super().__init__(record.pid)
        self.record = record


def _terminate(record: ProcessRecord, within: float) -> None:
    """SIGTERM a recognised process that is not our child; SIGKILL it after ``within``."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not is_same(record):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(record.pid, signal.SIGKILL)
    while is_same(record):
        time.sleep(0.05)
