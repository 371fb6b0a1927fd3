"""One module per capability the agent can open for a technician, each only once granted."""
