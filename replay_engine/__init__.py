"""replay-engine: durable async Python processes on a deterministic LMDB journal.

A process function ``async def process(inputs, ctx)`` is re-executed from the
start on every resume; each effect goes through ``ctx.task`` and is answered
from the journal once it has completed. See README.md and docs/.

Public modules besides this one: ``replay_engine.errors`` (the exception
tree), ``replay_engine.testing`` (determinism tests), ``replay_engine.check``
(the static determinism checker).
"""

import typing as _typing

from .errors import (
    ChildRunFailed as ChildRunFailed,
    ExecutorUnavailable as ExecutorUnavailable,
    Expired as Expired,
    FormatVersionError as FormatVersionError,
    JournalBusyError as JournalBusyError,
    JournalCorruptError as JournalCorruptError,
    JournalWriteError as JournalWriteError,
    NonDeterminismError as NonDeterminismError,
    NotAJournalError as NotAJournalError,
    PatchError as PatchError,
    PayloadError as PayloadError,
    PostRejected as PostRejected,
    ProcessImportError as ProcessImportError,
    ReplayEngineError as ReplayEngineError,
    ReplayRangeError as ReplayRangeError,
    RunEndedError as RunEndedError,
    RunExistsError as RunExistsError,
    RunInterrupted as RunInterrupted,
    RunLockedError as RunLockedError,
    RunNotFoundError as RunNotFoundError,
    TaskFailed as TaskFailed,
    ThunkRequired as ThunkRequired,
)

# The real names for type checkers; at run time see __getattr__ below.
if _typing.TYPE_CHECKING:
    from ._api.compat_result import RunCompatibility as RunCompatibility
    from ._api.durable import DurableProcess as DurableProcess
    from ._api.engine import Engine as Engine
    from ._api.executing import load_process as load_process
    from ._api.results import (
        ExecutorInfo as ExecutorInfo,
        Run as Run,
        RunInfo as RunInfo,
    )
    from ._api.retention import compact_journal as compact_journal
    from ._api.snapshots import (
        CallState as CallState,
        CallStream as CallStream,
        LogEntry as LogEntry,
        Snapshot as Snapshot,
    )
    from ._api.statistics_result import EngineStatistics as EngineStatistics
    from ._api.waiting import SignalWait as SignalWait, Waiting as Waiting
    from ._api.worker import (
        QueueLimits as QueueLimits,
        Worker as Worker,
        WorkerEvent as WorkerEvent,
        WorkerSummary as WorkerSummary,
    )
    from ._run.context import Context as Context
    from ._run.stats import FrontierCall as FrontierCall, RunStats as RunStats
    from ._run.tasks import (
        NonRetryable as NonRetryable,
        TaskContext as TaskContext,
        TaskDef as TaskDef,
        external as external,
        task as task,
        task_context as task_context,
    )
    from ._serve.entry import serve as serve
    from ._store.compact import Compacted as Compacted
    from ._store.posts import PendingEffect as PendingEffect
    from ._store.retention import Removed as Removed
    from ._store.store import StoredEvent as StoredEvent
    from ._store.verify import (
        Problem as Problem,
        VerifyReport as VerifyReport,
        damaged_pages_report as verify_pages,
    )

# The rest of the public API is imported on first use (PEP 562), so that
# ``import replay_engine`` (and so ``replay-engine --help``, ``status`` and the
# pytest plugin) does not pay for asyncio, the run layer and the checker up
# front. ``from replay_engine import Engine`` works as before.
_LAZY: dict[str, tuple[str, str]] = {
    "RunCompatibility": ("._api.compat_result", "RunCompatibility"),
    "DurableProcess": ("._api.durable", "DurableProcess"),
    "Engine": ("._api.engine", "Engine"),
    "load_process": ("._api.executing", "load_process"),
    "ExecutorInfo": ("._api.results", "ExecutorInfo"),
    "Run": ("._api.results", "Run"),
    "RunInfo": ("._api.results", "RunInfo"),
    "compact_journal": ("._api.retention", "compact_journal"),
    "CallState": ("._api.snapshots", "CallState"),
    "CallStream": ("._api.snapshots", "CallStream"),
    "LogEntry": ("._api.snapshots", "LogEntry"),
    "Snapshot": ("._api.snapshots", "Snapshot"),
    "EngineStatistics": ("._api.statistics_result", "EngineStatistics"),
    "SignalWait": ("._api.waiting", "SignalWait"),
    "Waiting": ("._api.waiting", "Waiting"),
    "QueueLimits": ("._api.worker", "QueueLimits"),
    "Worker": ("._api.worker", "Worker"),
    "WorkerEvent": ("._api.worker", "WorkerEvent"),
    "WorkerSummary": ("._api.worker", "WorkerSummary"),
    "Context": ("._run.context", "Context"),
    "FrontierCall": ("._run.stats", "FrontierCall"),
    "RunStats": ("._run.stats", "RunStats"),
    "NonRetryable": ("._run.tasks", "NonRetryable"),
    "TaskContext": ("._run.tasks", "TaskContext"),
    "TaskDef": ("._run.tasks", "TaskDef"),
    "external": ("._run.tasks", "external"),
    "task": ("._run.tasks", "task"),
    "task_context": ("._run.tasks", "task_context"),
    "serve": ("._serve.entry", "serve"),
    "Compacted": ("._store.compact", "Compacted"),
    "PendingEffect": ("._store.posts", "PendingEffect"),
    "Removed": ("._store.retention", "Removed"),
    "StoredEvent": ("._store.store", "StoredEvent"),
    "Problem": ("._store.verify", "Problem"),
    "VerifyReport": ("._store.verify", "VerifyReport"),
    "verify_pages": ("._store.verify", "damaged_pages_report"),
}


def __getattr__(name: str) -> _typing.Any:
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    import importlib

    value = getattr(importlib.import_module(module_name, __name__), attr)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__version__ = "0.1.0"

__all__ = [
    "CallState",
    "CallStream",
    "ChildRunFailed",
    "Compacted",
    "Context",
    "DurableProcess",
    "Engine",
    "EngineStatistics",
    "ExecutorInfo",
    "ExecutorUnavailable",
    "Expired",
    "FormatVersionError",
    "FrontierCall",
    "JournalBusyError",
    "JournalCorruptError",
    "JournalWriteError",
    "LogEntry",
    "NonDeterminismError",
    "NonRetryable",
    "NotAJournalError",
    "PatchError",
    "PayloadError",
    "PendingEffect",
    "PostRejected",
    "Problem",
    "ProcessImportError",
    "QueueLimits",
    "Removed",
    "ReplayEngineError",
    "ReplayRangeError",
    "Run",
    "RunCompatibility",
    "RunEndedError",
    "RunExistsError",
    "RunInfo",
    "RunInterrupted",
    "RunLockedError",
    "RunNotFoundError",
    "RunStats",
    "SignalWait",
    "Snapshot",
    "StoredEvent",
    "TaskContext",
    "TaskDef",
    "TaskFailed",
    "ThunkRequired",
    "VerifyReport",
    "Waiting",
    "Worker",
    "WorkerEvent",
    "WorkerSummary",
    "compact_journal",
    "external",
    "load_process",
    "serve",
    "task",
    "task_context",
    "verify_pages",
]
