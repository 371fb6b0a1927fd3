"""``python -m auxilio``: the same as the ``auxilio`` command."""

from auxilio.cli import main

main()
