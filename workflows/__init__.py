"""Workflows: each one is a business process, readable from top to bottom."""
