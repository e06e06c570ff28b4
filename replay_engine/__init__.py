"""replay-engine: durable async Python processes on a deterministic LMDB journal."""

from .errors import (
    JournalCorruptError as JournalCorruptError,
    NonDeterminismError as NonDeterminismError,
    ReplayEngineError as ReplayEngineError,
    RunLockedError as RunLockedError,
    TaskFailed as TaskFailed,
)
