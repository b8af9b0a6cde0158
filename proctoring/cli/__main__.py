"""``python -m proctoring.cli`` is the ``proctor`` command."""

from proctoring.cli import main

main()
