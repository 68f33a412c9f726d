"""Which PostgreSQL server the tests use, as a pure function of what was found.

``tests/conftest.py`` looks (is a URL configured, does its server or the local default
answer, does a Docker engine answer, is this CI) and acts on the choice;
``tests/test_postgres.py`` checks every branch:

- ``MENTORFLOW_TEST_POSTGRES_URL`` set: that server, and only it. When it does not
  answer the tests are skipped locally and fail in CI: a configured server is never
  replaced by another without a word.
- Not set: the local default, ``127.0.0.1:5432``, when it answers; otherwise a
  throwaway PostgreSQL in a container (testcontainers) when a Docker engine answers;
  otherwise skipped locally and failed in CI.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
"""The local default: user ``postgres`` with trust authentication, database ``test``."""

CONTAINER_IMAGE = "postgres:16.4-alpine"
"""The container's image: docker-compose.yml's PostgreSQL."""


class Use(StrEnum):
    CONFIGURED = "configured"  # the server at MENTORFLOW_TEST_POSTGRES_URL
    LOCAL = "local"  # the local default
    CONTAINER = "container"  # a PostgreSQL started with testcontainers
    SKIP = "skip"  # no PostgreSQL, outside CI: the tests that need it are skipped
    FAIL = "fail"  # no PostgreSQL, in CI: the tests that need it fail


@dataclass(frozen=True)
class Choice:
    use: Use
    url: str | None = None
    """The server's URL (CONFIGURED, LOCAL); a container's is known once it runs."""
    reason: str = ""
    """Why there is no PostgreSQL (SKIP, FAIL)."""


def choose_postgres(
    env_url: str | None, reachable: bool, docker_available: bool, ci: bool
) -> Choice:
    """The PostgreSQL for this test session.

    ``env_url``: ``MENTORFLOW_TEST_POSTGRES_URL`` (None or empty when not set);
    ``reachable``: whether the server at ``env_url``, or else at :data:`DEFAULT_URL`,
    answers; ``docker_available``: whether a Docker engine answers (only asked when
    it matters); ``ci``: whether ``CI`` is set.
    """
    if env_url:
        if reachable:
            return Choice(Use.CONFIGURED, env_url)
        return _none(
            f"PostgreSQL unreachable at MENTORFLOW_TEST_POSTGRES_URL ({shown(env_url)})", ci
        )
    if reachable:
        return Choice(Use.LOCAL, DEFAULT_URL)
    if docker_available:
        return Choice(Use.CONTAINER)
    return _none(
        f"PostgreSQL unreachable at {DEFAULT_URL}, no MENTORFLOW_TEST_POSTGRES_URL set and"
        " no Docker engine answers for a container",
        ci,
    )


def shown(url: str) -> str:
    """The URL with its password masked, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "not a database URL"


def _none(reason: str, ci: bool) -> Choice:
    if ci:
        return Choice(Use.FAIL, reason=f"PostgreSQL is required in CI; {reason}")
    return Choice(Use.SKIP, reason=reason)
