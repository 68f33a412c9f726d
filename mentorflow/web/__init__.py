"""The web app: the pages that emails link to, a health check, and the dev inbox."""
