"""The service's KPIs (R14) and their slices by policy version (R21): read-only, its SQL in
``queries.py``, every figure named with the versioned definition it used (docs/kpis.md)."""
