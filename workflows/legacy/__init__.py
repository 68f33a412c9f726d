"""Workflow types kept only so the runs started before their successors finish.

Temporal chooses a workflow's code by its type name, so a change that would alter
the commands of running programs goes into a new type, and the old one stays
here, frozen, until ``mentorflow program list`` shows none of its runs open
(docs/upgrades.md). Nothing new is started with these.
"""
