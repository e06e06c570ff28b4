"""Hostile journals: inspection runs no code and writes nothing outside (issue 12)."""
