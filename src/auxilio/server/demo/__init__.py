"""Generated activity for demos, tests and benchmarks (never for a production database)."""
