"""The static determinism checker and its rules (``replay-engine check``)."""
