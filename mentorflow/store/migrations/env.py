"""Alembic environment: runs migrations online against the configured URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text

from mentorflow.store.tables import Base

# Any constant works; it keeps two processes that start together (worker and
# web app) from migrating PostgreSQL at the same time.
_PG_MIGRATION_LOCK = 7_340_911


def run() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text(f"SELECT pg_advisory_lock({_PG_MIGRATION_LOCK})"))
            connection.commit()
        try:
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                render_as_batch=connection.dialect.name == "sqlite",
            )
            with context.begin_transaction():
                context.run_migrations()
        finally:
            if connection.dialect.name == "postgresql":
                connection.execute(text(f"SELECT pg_advisory_unlock({_PG_MIGRATION_LOCK})"))
                connection.commit()
    engine.dispose()


run()
