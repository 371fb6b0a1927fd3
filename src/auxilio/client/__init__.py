"""The technician client: ``auxilio login``, ``logout`` and ``connect``.

Talks to the server over its REST API and ``/ws/technician`` only; never imports
``auxilio.server``, so it runs on a technician's laptop without the server's dependencies.
"""
