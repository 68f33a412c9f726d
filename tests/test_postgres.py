"""Which PostgreSQL the tests use (tests/postgres.py): every branch of the choice, and
the probes conftest feeds it."""

from __future__ import annotations

import time

import pytest
from testcontainers.core.config import testcontainers_config

from tests.conftest import _docker_answers, _unreachable, free_port
from tests.postgres import DEFAULT_URL, Choice, Use, choose_postgres, shown

CONFIGURED = "postgresql+psycopg://ci:s3cret@db.internal:5432/test"

# (env_url, reachable, docker_available, ci) -> what the session uses. Every combination.
CASES = [
    # A configured server is used when it answers, and never replaced when it does not.
    (CONFIGURED, True, False, False, Use.CONFIGURED),
    (CONFIGURED, True, True, False, Use.CONFIGURED),
    (CONFIGURED, True, False, True, Use.CONFIGURED),
    (CONFIGURED, True, True, True, Use.CONFIGURED),
    (CONFIGURED, False, False, False, Use.SKIP),
    (CONFIGURED, False, True, False, Use.SKIP),
    (CONFIGURED, False, False, True, Use.FAIL),
    (CONFIGURED, False, True, True, Use.FAIL),
    # Nothing configured: the local default first, then a container, then nothing.
    (None, True, False, False, Use.LOCAL),
    (None, True, True, False, Use.LOCAL),
    (None, True, False, True, Use.LOCAL),
    (None, True, True, True, Use.LOCAL),
    (None, False, True, False, Use.CONTAINER),
    (None, False, True, True, Use.CONTAINER),
    (None, False, False, False, Use.SKIP),
    (None, False, False, True, Use.FAIL),
]


@pytest.mark.parametrize(("env_url", "reachable", "docker", "ci", "use"), CASES)
def test_every_branch_of_the_choice(
    env_url: str | None, reachable: bool, docker: bool, ci: bool, use: Use
) -> None:
    choice = choose_postgres(env_url, reachable, docker, ci)
    assert choice.use is use
    if use is Use.CONFIGURED:
        assert choice == Choice(Use.CONFIGURED, CONFIGURED)
    elif use is Use.LOCAL:
        assert choice == Choice(Use.LOCAL, DEFAULT_URL)
    elif use is Use.CONTAINER:
        assert choice == Choice(Use.CONTAINER)  # its URL is known once it runs
    else:
        assert choice.url is None
        assert "MENTORFLOW_TEST_POSTGRES_URL" in choice.reason
        assert choice.reason.startswith("PostgreSQL is required in CI") is ci
        if env_url is None:
            assert DEFAULT_URL in choice.reason and "no Docker engine" in choice.reason


def test_the_cases_cover_every_combination() -> None:
    combinations = {(env is not None, r, d, c) for env, r, d, c, _ in CASES}
    assert len(CASES) == len(combinations) == 16


def test_an_empty_variable_counts_as_not_set() -> None:
    assert choose_postgres("", True, False, False) == Choice(Use.LOCAL, DEFAULT_URL)
    assert choose_postgres("", False, True, False).use is Use.CONTAINER


def test_messages_hide_the_password() -> None:
    reason = choose_postgres(CONFIGURED, False, False, True).reason
    assert "s3cret" not in reason and "ci:***@db.internal" in reason
    assert shown("not a url") == "not a database URL"


def test_the_probes_say_no_quickly_when_nothing_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    began = time.monotonic()
    # A closed port for Docker, whatever ~/.testcontainers.properties names.
    monkeypatch.setattr(testcontainers_config, "tc_properties_get_tc_host", lambda: None)
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{free_port()}")
    assert _docker_answers() is False
    problem = _unreachable(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test")
    assert problem is not None and problem.startswith("OperationalError: ")
    assert time.monotonic() - began < 15
