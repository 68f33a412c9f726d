"""mentorflow: a durable engine for mentorship programs, on Temporal."""

__version__ = "0.1.0"
