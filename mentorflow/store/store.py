"""Reads and writes of program state, shared by activities, the CLI and the web app:
one class made of one part per aggregate (``mentorflow/store/*.py``)."""

from __future__ import annotations

from mentorflow.store.applications import Applications
from mentorflow.store.base import StoreUnavailable, async_url, safe_url, sync_url
from mentorflow.store.closing import Closing
from mentorflow.store.ledger import EmailClaim, EmailLedger, LedgerEmail
from mentorflow.store.matching import Matching
from mentorflow.store.pairs import Pairs
from mentorflow.store.programs import Programs

__all__ = [
    "EmailClaim",
    "LedgerEmail",
    "Store",
    "StoreUnavailable",
    "async_url",
    "safe_url",
    "sync_url",
]


class Store(Programs, EmailLedger, Applications, Matching, Pairs, Closing):
    """Program state in a SQL database, through one async engine."""
