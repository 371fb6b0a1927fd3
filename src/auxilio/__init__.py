"""Auxilio: remote technical support under an enforced, provable policy."""

__version__ = "0.1.0"
