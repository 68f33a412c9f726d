"""The workflows worker writes its modules' bytecode once, whatever PYTHONDONTWRITEBYTECODE says."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

import workflows.timers
from worker.bytecode import compile_workflow_modules


def test_the_bytecode_of_a_workflow_module_is_written_even_where_python_would_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    source = workflows.timers.__file__
    assert source is not None
    cached = Path(importlib.util.cache_from_source(source))
    cached.unlink(missing_ok=True)

    assert compile_workflow_modules()

    # What the sandbox's loader reads instead of compiling the source for every run.
    assert cached.exists()
    assert cached.read_bytes()[:4] == importlib.util.MAGIC_NUMBER
