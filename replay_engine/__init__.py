"""replay-engine: durable async Python processes on a deterministic LMDB journal.

A process function ``async def process(inputs, ctx)`` is re-executed from the
start on every resume; each effect goes through ``ctx.task`` and is answered
from the journal once it has completed. See README.md and docs/.

Public modules besides this one: ``replay_engine.errors`` (the exception
tree), ``replay_engine.testing`` (determinism tests), ``replay_engine.check``
(the static determinism checker).
"""

from ._api.compat import RunCompatibility as RunCompatibility
from ._api.durable import DurableProcess as DurableProcess
from ._api.engine import Engine as Engine
from ._api.executing import load_process as load_process
from ._api.results import ExecutorInfo as ExecutorInfo, Run as Run, RunInfo as RunInfo
from ._api.retention import compact_journal as compact_journal
from ._api.snapshots import (
    CallState as CallState,
    LogEntry as LogEntry,
    Snapshot as Snapshot,
)
from ._api.statistics import EngineStatistics as EngineStatistics
from ._api.waiting import SignalWait as SignalWait, Waiting as Waiting
from ._api.worker import (
    QueueLimits as QueueLimits,
    Worker as Worker,
    WorkerEvent as WorkerEvent,
    WorkerSummary as WorkerSummary,
)
from ._run.context import Context as Context
from ._run.runtime import FrontierCall as FrontierCall, RunStats as RunStats
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

__version__ = "0.1.0"

__all__ = [
    "CallState",
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
