"""Satisfaction surveys after a session ends or a ticket is resolved (R13)."""
