"""The pytest plugin of replay-engine (registered by entry point ``pytest11``).

Filled in by the testing work; kept importable so the entry point never breaks.
"""
