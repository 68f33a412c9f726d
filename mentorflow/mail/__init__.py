"""Email: rendering in the program's language, and building MIME messages."""
