"""``python -m mentorflow`` is the ``mentorflow`` command."""

from mentorflow.cli import main

main()
