"""Bytecode for the modules every new workflow run's sandbox executes again.

Temporal's sandbox runs a workflow's modules afresh for each workflow run it
creates. Python takes them from their cached bytecode (``__pycache__``) when it
is there; with ``PYTHONDONTWRITEBYTECODE`` set (as on this machine, and in many
container images) it is never written, and every new run compiled
``workflows/*.py`` from source: a fifth of the workflows worker's CPU during a
burst of approval clicks (py-spy, ``bench/link_clicks.py``). Compiling once at
start writes it whatever that setting says; where the install is read-only the
worker goes on as before.
"""

from __future__ import annotations

import compileall
import importlib
from pathlib import Path

# The project's packages a workflow's sandbox loads (the rest is passed through).
PACKAGES = ("workflows", "activities", "mentorflow")


def compile_workflow_modules() -> bool:
    """Write the bytecode of the project's packages where missing or stale; True if all of
    it is there now."""
    written = True
    for name in PACKAGES:
        file = importlib.import_module(name).__file__
        assert file is not None
        written &= bool(compileall.compile_dir(Path(file).parent, quiet=2, workers=1))
    return written
