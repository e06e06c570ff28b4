"""Every error replay-engine raises, under one root.

::

    ReplayEngineError
     ├── TaskFailed              an effect failed (live and on replay alike)
     │    └── Expired            an external effect's deadline passed
     ├── NonDeterminismError     the process diverged from its journal
     ├── JournalCorruptError     stored bytes are damaged or unreadable
     │    └── FormatVersionError a journal written by a newer format
     ├── NotAJournalError        no journal at a path, or one unsafe to open
     ├── JournalWriteError       a commit failed (disk full, I/O error, read-only)
 ├── JournalBusyError        compact refused while a writer holds the journal
     ├── RunLockedError          another process is executing the run
     ├── RunNotFoundError        (also KeyError) no run with that id
     ├── RunExistsError          a new run was asked for under a used id
     ├── RunEndedError           cancel of a run that already ended; nothing written
     ├── ProcessImportError      a run's process function cannot be imported
     ├── ReplayRangeError        (also ValueError) replay/fork point out of range
     ├── PostRejected            a post/claim/heartbeat refused; nothing written
     ├── PayloadError            (also TypeError) a value msgspec cannot encode
     ├── ExecutorUnavailable     the executor effects run on is gone (a Dask scheduler)
     ├── ThunkRequired           (also TypeError) parallel.all got awaitables
     └── ProcessError            the process broke a rule of the engine
          ├── TaskCalledDirectly a @task called directly inside a running process
          └── TaskNotAwaited     a ctx.task(...) created and never awaited

Every error carries what it is about as attributes (``run_id``, ``key``,
``seq`` …) as well as in its message, and its message says what to do.
"""

from __future__ import annotations

import builtins


class ReplayEngineError(Exception):
    """Base class of every error raised by replay-engine."""


def qualified_error_type(name: str) -> str:
    """``name`` as ``module.qualname``: ``"ValueError"`` → ``"builtins.ValueError"``.

    Journals record a builtin exception by its bare name (they always have);
    every other class is recorded module-qualified already, and the engine's
    own failures (``Expired``, ``ExternalError``) keep their bare names.
    """
    if "." not in name:
        cls = getattr(builtins, name, None)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            return f"builtins.{name}"
    return name


class TaskFailed(ReplayEngineError):
    """An effect failed after all its attempts.

    Raised at the ``await ctx.task(...)`` of the failed call, identically when
    the failure happens live and when it is replayed from the journal, so the
    process takes the same path either way. Catch a failure by its type with
    ``error_type``::

        try:
            await ctx.task(charge, {"card": card})
        except TaskFailed as e:
            if e.error_type == "myapp.errors.CardDeclined":
                ...

    Attributes:
        error_type: the module-qualified name of the exception the task raised
            (``"builtins.ValueError"``, ``"myapp.errors.RateLimited"``); the
            engine's own failures have bare names (``"Expired"``,
            ``"ExternalError"``).
        message: its message.
        traceback: the formatted traceback, as recorded.
        key: the invocation key of the call (``"3.1.0"``).
        task: the task's name.
    """

    def __init__(
        self,
        error_type: str,
        message: str,
        traceback: str = "",
        *,
        key: str = "",
        task: str = "",
    ) -> None:
        self.error_type = qualified_error_type(error_type)
        self.message = message
        self.traceback = traceback
        self.key = key
        self.task = task
        where = f" (task {task!r} at key {key})" if task else ""
        super().__init__(f"{error_type}: {message}{where}")

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _rebuild_task_failed,
            (self.error_type, self.message, self.traceback, self.key, self.task),
        )


class Expired(TaskFailed):
    """An external effect, breakpoint or event wait reached its timeout unanswered.

    The expiry is recorded, so a replay raises it again at the same call.
    """


class ChildRunFailed(TaskFailed):
    """A child run (``ctx.run_child``) failed, was cancelled or timed out.

    Raised at the ``await ctx.run_child(...)`` in the parent, live and on
    replay alike; ``error_type`` is ``"ChildRunFailed"`` and ``message``
    names the child run and what it failed with (its traceback is kept).
    """


_FAILURE_TYPES: dict[str, type[TaskFailed]] = {
    "Expired": Expired,
    "ChildRunFailed": ChildRunFailed,
}


def task_failure(
    error_type: str, message: str, traceback: str = "", *, key: str = "", task: str = ""
) -> TaskFailed:
    """The exception for a recorded failure (``Expired``, ``ChildRunFailed`` …)."""
    cls = _FAILURE_TYPES.get(error_type, TaskFailed)
    return cls(error_type, message, traceback, key=key, task=task)


def _rebuild_task_failed(
    error_type: str, message: str, traceback: str, key: str, task: str
) -> TaskFailed:
    return task_failure(error_type, message, traceback, key=key, task=task)


class NonDeterminismError(ReplayEngineError):
    """On replay, the process made a call its journal does not agree with.

    Raised when the task or args at a key differ from what was recorded, when
    a recorded call is missing on replay, or when the process asks for a key
    whose place the journal holds for something else.

    Attributes:
        run_id: the run.
        key: the invocation key where the divergence was found.
        seq: the journal event recorded there, if any.
        recorded: what the journal holds at the key.
        replayed: what the process did this time.
    """

    def __init__(
        self,
        message: str,
        *,
        run_id: str = "",
        key: str = "",
        seq: int | None = None,
        recorded: str = "",
        replayed: str = "",
        replayed_args: bytes | None = None,
    ) -> None:
        self.run_id = run_id
        self.key = key
        self.seq = seq
        self.recorded = recorded
        self.replayed = replayed
        self.replayed_args = replayed_args
        # The canonical msgpack bytes of the args the process passed (task calls).
        super().__init__(message)


class JournalCorruptError(ReplayEngineError):
    """Stored bytes are damaged: a digest, a chain link or a record does not check.

    Nothing is ever returned from a damaged record.

    Attributes:
        run_id: the run, when the damage is in a run's records.
        seq: the event, when known.
        key: the invocation key, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        run_id: str | None = None,
        seq: int | None = None,
        key: str | None = None,
    ) -> None:
        self.run_id = run_id
        self.seq = seq
        self.key = key
        super().__init__(message)


class FormatVersionError(JournalCorruptError):
    """The journal was written by a newer format than this version can read."""


class NotAJournalError(ReplayEngineError):
    """There is no journal at the path, or its files are not safe to open.

    Only ``Engine(path)`` with ``create=True`` (and ``replay-engine run``)
    creates a journal; every other way of opening one refuses an empty or
    missing directory instead of silently starting a new, empty history. A
    journal whose ``data.mdb`` or ``lock.mdb`` is a symbolic link or not a
    regular file is refused too: opening it would write through the link.

    Attributes:
        path: the journal directory.
    """

    def __init__(self, message: str, *, path: str) -> None:
        self.path = path
        super().__init__(message)


class JournalWriteError(ReplayEngineError):
    """A write to the journal failed: nothing of that commit was recorded.

    Raised when LMDB cannot commit (disk full, an I/O error, a read-only file
    system) and when a journal opened for inspection is asked to write. What
    was committed before stays intact, so a run can be resumed once the
    cause is fixed.

    Attributes:
        path: the journal directory.
    """

    def __init__(self, message: str, *, path: str) -> None:
        self.path = path
        super().__init__(message)


class JournalBusyError(ReplayEngineError):
    """The journal is held by someone the operation cannot run beside.

    ``compact`` is refused while any process has the journal open for
    writing; an open waits for a running compaction, bounded, then raises
    this. Nothing was changed.

    Attributes:
        path: the journal directory.
        pids: the processes holding it, when they could be found.
    """

    def __init__(
        self, message: str, *, path: str, pids: list[int] | None = None
    ) -> None:
        self.path = path
        self.pids = list(pids or [])
        super().__init__(message)


class RunLockedError(ReplayEngineError):
    """Another process (or another engine in this one) is executing the run.

    Attributes:
        run_id: the run.
        pid: the holder's process id (-1 when unknown).
        host: the holder's host name.
        since: when the holder took the lock (ISO 8601).
        alive: whether that pid is running (``None`` when it cannot be told:
            another host, or no pid recorded).
    """

    def __init__(
        self, run_id: str, pid: int, host: str, since: str, *, alive: bool | None = None
    ) -> None:
        self.run_id = run_id
        self.pid = pid
        self.host = host
        self.since = since
        self.alive = alive
        if alive is False:
            hint = (
                f" pid {pid} is no longer running, yet the lock is held: a process it"
                " started (a task that forked?) still has it. Stop that process,"
                " and the run can be resumed."
            )
        else:
            hint = (
                " Only one process may execute a run at a time: wait for it to"
                " finish (a lock held by a process that died is recovered"
                " automatically)."
            )
        super().__init__(
            f"run {run_id!r} is being executed by pid {pid} on {host} since"
            f" {since}.{hint}"
        )


class RunNotFoundError(ReplayEngineError, KeyError):
    """No run with the given id exists in the journal."""

    def __init__(self, run_id: str, message: str) -> None:
        self.run_id = run_id
        super().__init__(message)

    def __str__(self) -> str:
        # KeyError would quote the message; this is a sentence.
        return str(self.args[0])


class RunExistsError(ReplayEngineError):
    """A new run was started under a run id that is already taken."""


class RunEndedError(ReplayEngineError):
    """Cancel of a run that already ended; nothing was written.

    A ``completed``, ``cancelled`` or ``timed_out`` run is terminal.

    Attributes:
        run_id: the run.
        status: the status it ended with.
    """

    def __init__(self, message: str, *, run_id: str, status: str) -> None:
        self.run_id = run_id
        self.status = status
        super().__init__(message)


class PostRejected(ReplayEngineError):
    """A post, claim or heartbeat was refused; nothing was written.

    Attributes:
        reason: ``"run_finished"``, ``"unknown_key"``, ``"not_external"``,
            ``"already_completed"``, ``"abandoned"``, ``"claimed"``,
            ``"not_claimed"``, ``"invalid_result"`` or ``"invalid_lease"``.
        run_id: the run.
        key: the invocation key, when the post named one.
    """

    def __init__(
        self, message: str, *, reason: str, run_id: str, key: str | None = None
    ) -> None:
        self.reason = reason
        self.run_id = run_id
        self.key = key
        super().__init__(message)


class ReplayRangeError(ReplayEngineError, ValueError):
    """``until``/``at`` is outside the run's events, or names a key it lacks."""


class ProcessImportError(ReplayEngineError):
    """A run's process (``module:qualname``) cannot be imported."""


class PayloadError(ReplayEngineError, TypeError):
    """A value (inputs, args, a result) cannot be encoded with msgspec.

    Raised where the value was given; nothing is recorded.
    """


class ExecutorUnavailable(ReplayEngineError):
    """The executor that runs effects is unreachable or gone (a Dask scheduler).

    Not a failure of any task: nothing is recorded for the effects it
    interrupted, which keep their request and no completion, so a resume
    dispatches them again (same idempotency key) once the executor is back.

    Attributes:
        address: the executor's address (a scheduler address), when known.
    """

    def __init__(self, message: str, *, address: str | None = None) -> None:
        self.address = address
        super().__init__(message)


class RunInterrupted(ReplayEngineError):
    """The execution was stopped on request (``Engine.request_stop``, a signal).

    Not a failure: the run keeps the status ``running`` (``interrupted`` once
    no executor holds it), every effect that completed is committed, and the
    effects abandoned in flight have a request and no completion, so a resume
    dispatches them again (same idempotency key).

    Attributes:
        run_id: the run.
        reason: what asked for the stop (``"SIGTERM"``, ``"SIGINT"`` …).
        completed: effects this execution dispatched whose outcome was recorded.
        abandoned: effects still executing when it stopped (not recorded).
    """

    def __init__(
        self, run_id: str, reason: str, *, completed: int, abandoned: int
    ) -> None:
        self.run_id = run_id
        self.reason = reason
        self.completed = completed
        self.abandoned = abandoned
        super().__init__(
            f"run {run_id!r} stopped by {reason}: {completed} effects completed"
            f" were recorded, {abandoned} in flight were abandoned; resume it to"
            " go on (the abandoned effects are dispatched again)"
        )


class ThunkRequired(ReplayEngineError, TypeError):
    """``ctx.parallel.all`` was given awaitables instead of thunks."""


class PatchError(ReplayEngineError, ValueError):
    """``ctx.patched``/``ctx.deprecate_patch`` was misused.

    The id is not a non-empty string, or one id got different answers at two
    places of one run (one patch id guards one change: give each its own).
    Nothing was recorded for the call.
    """


class PatchConflictError(PatchError, NonDeterminismError):
    """One patch id would answer differently at two places of one run.

    The journal decides both places (a marker at one, the old path at the
    other): the code reused an id for a second change. Like any divergence it
    pauses the run (nothing is recorded, its status is kept); give the second
    change its own id and resume.
    """


class ProcessError(ReplayEngineError):
    """The process broke one of the engine's rules (its code must change)."""


class TaskCalledDirectly(ProcessError, RuntimeError):
    """A ``@task``/``@external`` was called directly inside a running process.

    The effect would run outside the journal, again on every resume. Raised
    at the call; the fix is ``await ctx.task(step, {...})``.

    Attributes:
        task: the task's name.
        site: ``file:line`` of the direct call.
    """

    def __init__(self, message: str, *, task: str = "", site: str = "") -> None:
        self.task = task
        self.site = site
        super().__init__(message)


class TaskNotAwaited(ProcessError):
    """The process returned while a ``ctx.task(...)`` it created was never awaited.

    Its effect never ran (nothing was recorded for it). The run fails with
    this error, naming where each such call was made.

    Attributes:
        run_id: the run.
        calls: ``(key, task, "file:line")`` of each call never awaited.
    """

    def __init__(
        self,
        message: str,
        *,
        run_id: str = "",
        calls: tuple[tuple[str, str, str], ...] = (),
    ) -> None:
        self.run_id = run_id
        self.calls = calls
        super().__init__(message)


__all__ = [
    "ExecutorUnavailable",
    "Expired",
    "FormatVersionError",
    "JournalBusyError",
    "JournalCorruptError",
    "NonDeterminismError",
    "PatchConflictError",
    "PatchError",
    "PayloadError",
    "PostRejected",
    "ProcessError",
    "ProcessImportError",
    "ReplayEngineError",
    "ReplayRangeError",
    "RunExistsError",
    "RunInterrupted",
    "RunLockedError",
    "RunNotFoundError",
    "TaskCalledDirectly",
    "TaskFailed",
    "TaskNotAwaited",
    "ThunkRequired",
]
