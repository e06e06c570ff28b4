"""The storage layer: the LMDB journal, run locks, posts, verification.

Imports only ``journal_format`` and ``replay_engine.errors``.
"""
