"""``python -m auxilio.agent``: the agent without the rest of the ``auxilio`` command line."""

from auxilio.agent.cli import app

app(prog_name="auxilio-agent")
