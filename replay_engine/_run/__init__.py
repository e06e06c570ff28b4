"""The run layer: executing one process against its journal.

Context, scopes and keys, parallel groups, the runtime, the run journal,
dispatch and executors. Imports the storage layer, never the API above it.
"""
