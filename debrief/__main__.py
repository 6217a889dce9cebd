"""``python -m debrief``: the ``debrief`` command."""

from debrief.server.cli.main import main

main()
