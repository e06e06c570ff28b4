"""The public surface of ``replay_engine`` is exactly the list written here.

A name added to or dropped from ``__all__`` fails ``test_all_is_pinned`` until
this list is updated on purpose, in the same change as the docs.
"""

from __future__ import annotations

import types

import replay_engine
import replay_engine.errors

EXPECTED_ALL = [
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

CONTRACT_NAMES = {
    "Engine",
    "task",
    "external",
    "ReplayEngineError",
    "TaskFailed",
    "NonDeterminismError",
    "JournalCorruptError",
    "RunLockedError",
}


def test_all_is_pinned() -> None:
    assert replay_engine.__all__ == EXPECTED_ALL


def test_the_pinned_list_is_sorted() -> None:
    assert sorted(EXPECTED_ALL) == EXPECTED_ALL


def test_every_exported_name_resolves_and_is_documented() -> None:
    for name in replay_engine.__all__:
        value = getattr(replay_engine, name)
        doc = (value.__doc__ or "").strip()
        # A dataclass without a docstring gets its signature as __doc__.
        assert doc and not doc.startswith(f"{name}("), f"{name} has no docstring"


def test_nothing_public_is_left_out_of_all() -> None:
    public = {
        name
        for name, value in vars(replay_engine).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(replay_engine.__all__)


def test_contract_names_are_exported() -> None:
    assert set(replay_engine.__all__) >= CONTRACT_NAMES


def test_every_error_derives_from_the_root() -> None:
    for name in replay_engine.errors.__all__:
        cls = getattr(replay_engine.errors, name)
        assert issubclass(cls, replay_engine.ReplayEngineError), name


def test_misuse_errors_are_also_type_errors() -> None:
    assert issubclass(replay_engine.ThunkRequired, TypeError)
    assert issubclass(replay_engine.PayloadError, TypeError)
