"""The state store: SQLAlchemy on SQLite by default, PostgreSQL in production."""

from mentorflow.store.migrate import migrate
from mentorflow.store.store import EmailClaim, Store, StoreUnavailable, async_url, sync_url

__all__ = ["EmailClaim", "Store", "StoreUnavailable", "async_url", "migrate", "sync_url"]
