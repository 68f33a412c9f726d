"""The tests' link key, in a module of its own (no imports, so no import cycle).

A worker started as its own process refuses the development key
(mentorflow.settings), and the web app a test serves must check what that
worker signs.
"""

TEST_SECRET_KEY = "mentorflow-tests-only-link-signing-key-0123456789"
