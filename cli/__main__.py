"""``python -m cli`` is the ``proctor`` command."""

from cli import main

main()
