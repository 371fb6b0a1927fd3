"""``python -m auxilio.agent``: the agent without the rest of the ``auxilio`` command line (the
same entry point as the single-file agent, ``auxilio.agent.onefile``)."""

from auxilio.agent.onefile import main

main()
