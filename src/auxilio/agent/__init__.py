"""The agent: the program on the end user's device (``auxilio agent join CODE``).

It imports ``auxilio.protocol``, ``auxilio.crypto`` and ``auxilio.policy``, never
``auxilio.server``: the device is the last line of defence and must not trust server code to
enforce anything.
"""
