"""The runbook catalogue: drafts, approval (a signature by the server's key), retirement."""
