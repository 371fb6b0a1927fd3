"""Recordings of support sessions (ciphertext only) and the organisations' auditor keys."""
