"""``Engine``: the embedding API.

A journal directory, the runs in it, and the calls that start, resume and
inspect them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import dataclasses
import datetime as _dt
import logging
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import journal_format as jf

from .._run import process_ref as _process_ref
from .._run.context import Context
from .._run.dispatch import ExecutorSet, Slots
from .._run.hooks import Hooks
from .._run.journal import RunJournal
from .._run.runtime import Outcome, RunStats, Runtime
from .._store import posts as _external
from .._store.env import DEFAULT_MAP_SIZE
from .._store.lock import RunLock
from .._store.payload import encode_or_refuse
from .._store.posts import PendingEffect, pending_effects
from .._store.store import Durability, Store, StoredEvent
from .._store.verify import VerifyReport, verify
from ..errors import JournalCorruptError, ReplayEngineError, ReplayRangeError
from .durable import DurableProcess
from .time_travel import Snapshot, build_calls

ProcessFn = Callable[[Any, Context], Coroutine[Any, Any, Any]]

_log = logging.getLogger("replay_engine")

_MISSING: Any = object()

DEFAULT_MAX_IN_FLIGHT = 1024
"""Effects executing at once, engine-wide, unless ``max_in_flight`` says otherwise."""


@dataclass
class Run:
    """What a ``run`` or ``resume`` call ended with."""

    run_id: str
    status: str
    """``"completed"``, ``"failed"``, ``"waiting"`` or ``"running"``."""
    result: Any = None
    """The process's return value, when completed."""
    error: jf.ErrorInfo | None = None
    """Type, message and traceback of the failure, when failed."""
    pending: list[str] = field(default_factory=list)
    """Keys of the external effects a waiting run needs."""
    stats: RunStats = field(default_factory=RunStats)
    warnings: list[str] = field(default_factory=list)
    """Things worth knowing, such as a process whose code changed."""
    next_due: _dt.datetime | None = None
    """For a waiting run: when its earliest timer or deadline falls due."""


@dataclass(frozen=True)
class RunInfo:
    """A run as stored: its state without executing anything."""

    run_id: str
    status: str
    process: str
    events: int
    created: _dt.datetime
    updated: _dt.datetime
    dispatched: int
    replayed: int
    parent: str | None = None
    fork_at: int | None = None
    error: jf.ErrorInfo | None = None
    """For a failed run: what it failed with (filled by ``Engine.status``)."""
    pending: tuple[str, ...] = ()
    """For a waiting run: the keys it waits on (filled by ``Engine.status``)."""
    abandoned: tuple[str, ...] = ()
    """External effects abandoned because their group failed (``Engine.status``)."""

    @classmethod
    def _from_record(cls, record: jf.RunRecord) -> RunInfo:
        def ts(ns: int) -> _dt.datetime:
            return _dt.datetime.fromtimestamp(ns / 1e9, _dt.UTC)

        return cls(
            run_id=record.run_id,
            status=record.status,
            process=record.process,
            events=record.events,
            created=ts(record.created_ns),
            updated=ts(record.updated_ns),
            dispatched=record.dispatched,
            replayed=record.replayed,
            parent=record.parent,
            fork_at=record.fork_at,
        )


class Engine:
    """A journal directory and the runs in it.

    Args:
        path: the LMDB environment directory; created if missing.
        durability: ``"fsync"`` (every group commit survives power loss; the
            default) or ``"process"`` (no fsync: survives a crash of this
            process, not of the machine).
        executor: where sync tasks run: ``None`` for a thread pool, any
            ``concurrent.futures.Executor``, a ``distributed.Client`` or a Dask
            scheduler address (``"dask://host:8786"``; needs
            ``replay-engine[dask]``, see docs/dask.md). A thread pool gets
            functions; any other executor gets tasks by reference
            (``module:qualname``) with args and results as msgspec bytes.
        max_in_flight: effects executing at once across the engine.
        create: make the journal when ``path`` holds none (the default). With
            ``False``, a missing or empty journal raises ``NotAJournalError``
            instead of starting an empty history.
        read_only: open for inspection: nothing is ever written (not even
            a new journal); every write raises ``JournalWriteError``.
        file_mode: the mode of the journal's files when they are created
            (owner-only by default: journals hold inputs and results). A new
            journal directory is made owner-only (0700).

    Example::

        engine = Engine(".replay")
        run = engine.run(process, {"feature": "x"}, run_id="r1")
        run = engine.resume("r1")   # completed effects come from the journal
    """

    def __init__(
        self,
        path: str = ".replay",
        *,
        durability: Durability = "fsync",
        executor: Any | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        map_size: int | None = None,
        hooks: Hooks | None = None,
        create: bool = True,
        read_only: bool = False,
        file_mode: int = 0o600,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, not {max_in_flight}")
        owned = False
        if executor is not None and (
            not isinstance(executor, cf.Executor)
            or type(executor).__module__.startswith("distributed.")
        ):
            # A distributed.Client (or its executor) or a scheduler address
            # ("dask://host:8786"): _dask imports distributed only now.
            from .._run.dask_executor import as_dask_executor

            executor, owned = as_dask_executor(executor), True
        self.store = Store(
            path,
            durability=durability,
            map_size=DEFAULT_MAP_SIZE if map_size is None else map_size,
            access="read" if read_only else "create" if create else "write",
            file_mode=file_mode,
        )
        self.path = self.store.real_path
        self.max_in_flight = max_in_flight
        self._slots = Slots(max_in_flight)
        self._executors = ExecutorSet(executor, owned=owned)
        # Only replay_engine.testing passes hooks (completion order, crashes).
        self._hooks = hooks

    # -- lifecycle ---------------------------------------------------------------

    def close(self) -> None:
        """Shut down pools this engine created and release the journal."""
        self._executors.shutdown()
        self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running -----------------------------------------------------------------

    def run(
        self,
        process: ProcessFn | str,
        inputs: Any = None,
        *,
        run_id: str | None = None,
        on_progress: Callable[[RunStats], None] | None = None,
        on_log: Callable[[str, str, dict[str, Any]], None] | None = None,
    ) -> Run:
        """Start a new run of ``process`` and execute it until it ends or waits.

        Args:
            process: ``async def process(inputs, ctx)``, or its
                ``"module:qualname"``.
            inputs: any msgspec-encodable value; the process gets it decoded.
            run_id: the run's id; a fresh one when omitted.
            on_progress: called with live counters while the run works.
            on_log: called with ``(key, message, fields)`` for each new log line.

        Raises:
            RunExistsError: ``run_id`` is taken.
            PayloadError: ``inputs`` cannot be encoded (nothing is recorded).
        """
        return _sync(
            self.run_async(
                process, inputs, run_id=run_id, on_progress=on_progress, on_log=on_log
            )
        )

    async def run_async(
        self,
        process: ProcessFn | str,
        inputs: Any = None,
        *,
        run_id: str | None = None,
        on_progress: Callable[[RunStats], None] | None = None,
        on_log: Callable[[str, str, dict[str, Any]], None] | None = None,
    ) -> Run:
        """The same as :meth:`run`, for asyncio callers."""
        run_id = run_id or _new_run_id()
        _check_run_id(run_id)
        if isinstance(process, str):
            process = _process_ref.load(process)
        inputs_bytes = encode_or_refuse(
            inputs, f"the inputs of run {run_id!r}", "; nothing was recorded"
        )
        address = jf.payload_ref(inputs_bytes)
        started = jf.RunStarted(
            process=_process_ref.reference(process),
            fingerprint=_process_ref.fingerprint(process),
            inputs=address,
        )
        with RunLock(self.path, run_id):
            self.store.create_run(run_id, started, jf.blobs_for(address, inputs_bytes))
            journal = RunJournal(self.store, run_id)
            journal.recorded_events = 1
            journal.started = started
            decoded = jf.decode_payload(inputs_bytes)
            return await self._execute(
                journal, process, decoded, [], on_progress=on_progress, on_log=on_log
            )

    def resume(
        self,
        run_id: str,
        *,
        process: ProcessFn | str | None = None,
        on_progress: Callable[[RunStats], None] | None = None,
        on_log: Callable[[str, str, dict[str, Any]], None] | None = None,
    ) -> Run:
        """Re-execute a run from the start, serving completed effects from its journal.

        A completed run is terminal: its recorded result is returned and
        nothing runs. A failed, waiting or interrupted run re-executes with the
        current code.

        Args:
            run_id: the run.
            process: the process function (or a ``module:qualname`` string),
                when the recorded reference cannot be imported here, or to run
                new code under the run.
            on_progress: as for :meth:`run`.
            on_log: as for :meth:`run`.

        Raises:
            RunNotFoundError: no such run.
            RunLockedError: another process is executing it.
            NonDeterminismError: the process diverged from the journal; nothing
                is recorded for the divergence and the run can be resumed once
                the code is fixed.
        """
        return _sync(
            self.resume_async(
                run_id, process=process, on_progress=on_progress, on_log=on_log
            )
        )

    async def resume_async(
        self,
        run_id: str,
        *,
        process: ProcessFn | str | None = None,
        on_progress: Callable[[RunStats], None] | None = None,
        on_log: Callable[[str, str, dict[str, Any]], None] | None = None,
        park_timers: bool = False,
    ) -> Run:
        """The same as :meth:`resume`, for asyncio callers."""
        record = self.store.require_run(run_id)
        if record.status == "completed":
            return Run(
                run_id=run_id, status="completed", result=self._recorded_result(record)
            )
        with RunLock(self.path, run_id):
            journal = RunJournal(self.store, run_id)
            journal.load()
            started = journal.started
            if started is None:
                raise JournalCorruptError(
                    f"run {run_id!r} has no run_started event at seq 0",
                    run_id=run_id,
                    seq=0,
                )
            if journal.last_event is not None and isinstance(
                journal.last_event, jf.RunCompleted
            ):
                return Run(
                    run_id=run_id,
                    status="completed",
                    result=self._recorded_result(record),
                )
            warnings: list[str] = []
            fn = (
                _process_ref.load(process or started.process)
                if not callable(process)
                else process
            )
            now_fingerprint = _process_ref.fingerprint(fn)
            if now_fingerprint != started.fingerprint:
                message = (
                    f"the code of process {started.process} changed since run"
                    f" {run_id!r} started; replay will stop with NonDeterminismError"
                    " if the change alters the calls already recorded"
                )
                warnings.append(message)
                _log.warning("%s", message)
            inputs = jf.decode_payload(self.store.get_payload(started.inputs))
            journal.loaded_status = record.status
            journal.mark_running = True
            return await self._execute(
                journal,
                fn,
                inputs,
                warnings,
                on_progress=on_progress,
                on_log=on_log,
                park_timers=park_timers,
            )

    async def _execute(
        self,
        journal: RunJournal,
        process: ProcessFn,
        inputs: Any,
        warnings: list[str],
        *,
        on_progress: Callable[[RunStats], None] | None,
        on_log: Callable[[str, str, dict[str, Any]], None] | None,
        park_timers: bool = False,
    ) -> Run:
        runtime = Runtime(
            journal,
            journal.run_id,
            executors=self._executors,
            max_in_flight=self._slots,
            on_progress=on_progress,
            on_log=on_log,
            park_timers=park_timers,
            hooks=self._hooks,
        )
        outcome: Outcome = await runtime.execute(process, inputs)
        due = outcome.next_due_ns
        return Run(
            run_id=journal.run_id,
            status=outcome.status,
            result=outcome.result,
            error=outcome.error,
            pending=outcome.pending,
            stats=runtime.stats,
            warnings=warnings,
            next_due=None
            if due is None
            else _dt.datetime.fromtimestamp(due / 1e9, _dt.UTC),
        )

    def _recorded_result(self, record: jf.RunRecord) -> Any:
        for stored in reversed(
            self.store.read_events(record.run_id, max(0, record.events - 4))
        ):
            if isinstance(stored.event, jf.RunCompleted):
                return jf.decode_payload(self.store.get_payload(stored.event.result))
        raise JournalCorruptError(
            f"run {record.run_id!r} is marked completed but its last events hold no"
            " run_completed record",
            run_id=record.run_id,
        )

    def durable(self, fn: ProcessFn) -> DurableProcess:
        """Make an async function a durable process of this engine, in one line.

        Example::

            @engine.durable
            async def pipeline(inputs, ctx): ...

            run = pipeline.start({"feature": "x"}, run_id="r1")  # or resumes r1
        """
        return DurableProcess(self, fn)

    # -- external effects --------------------------------------------------------

    def iterate(self, run_id: str, *, process: ProcessFn | None = None) -> Run:
        """One turn of the orchestration loop: replay, run what can run, stop.

        Re-executes the run from the start, executes every in-process task that
        can now run, and returns when the run completes, fails, or can progress
        no further without external results. Timers not yet due do not block:
        the run is left waiting with ``next_due`` set, and an ``iterate`` after
        that time fires them. A completed run changes nothing.
        """
        return _sync(self.resume_async(run_id, process=process, park_timers=True))

    def pending(self, run_id: str) -> list[PendingEffect]:
        """External effects waiting for a result (including abandoned ones, flagged)."""
        self.store.require_run(run_id)
        return pending_effects(self.store.read_events(run_id), self.payload)

    def post(
        self,
        run_id: str,
        key: str,
        *,
        result: Any = _MISSING,
        error: str | None = None,
        by: str | None = None,
    ) -> int:
        """Record the result (or error) of a pending external effect.

        Validated and atomic: an unknown key, a key that already has a result
        (of two racing posters exactly one wins), an abandoned key, a finished
        run or a payload that cannot be encoded each raise and write nothing.
        Resume or ``iterate`` the run afterwards to go on.

        Args:
            run_id: the run.
            key: the effect's invocation key (``"3.1"``).
            result: the effect's result (any msgspec-encodable value).
            error: instead of a result, a failure message; the process sees
                :class:`TaskFailed` with ``error_type == "ExternalError"``.
            by: the posting worker; when the effect is claimed by another
                worker whose lease has not expired, the post is refused.

        Returns:
            The seq of the recorded event.

        Raises:
            PostRejected: the post was refused (``.reason`` says why).
            PayloadError: the result cannot be encoded.
        """
        if (result is _MISSING) == (error is None):
            raise ValueError("post needs exactly one of result=... or error=...")
        self.store.require_run(run_id)
        return _external.post(
            self.store,
            run_id,
            key,
            result=None if result is _MISSING else result,
            error=error,
            by=by,
        )

    def post_event(self, run_id: str, name: str, payload: Any = None) -> int:
        """Send a named signal to a run (for ``ctx.wait_for_event``); its seq."""
        self.store.require_run(run_id)
        return _external.post_signal(self.store, run_id, name, payload)

    def claim(
        self,
        run_id: str,
        worker: str,
        *,
        lease: float,
        limit: int | None = 1,
        kind: str | None = None,
    ) -> list[PendingEffect]:
        """Atomically hand ``worker`` up to ``limit`` unclaimed or stale effects.

        Each claim is recorded with its lease expiry; an effect whose lease
        expires without a result is offered again (and shows as stale).
        """
        self.store.require_run(run_id)
        return _external.claim(
            self.store,
            run_id,
            worker,
            lease,
            limit=limit,
            kind=kind,
            payload=self.payload,
        )

    def heartbeat(
        self, run_id: str, key: str, worker: str, *, lease: float
    ) -> _dt.datetime:
        """Extend ``worker``'s lease on a claimed effect; returns the new expiry."""
        self.store.require_run(run_id)
        return _external.heartbeat(self.store, run_id, key, worker, lease)

    # -- time travel -------------------------------------------------------------

    def replay(
        self,
        run_id: str,
        until: int | str | None = None,
        *,
        process: ProcessFn | str | None = None,
    ) -> Snapshot:
        """The run as it stood after its first ``until`` events; nothing is dispatched.

        The process is re-executed against the journal prefix only: calls the
        prefix answers are answered, and the process stops at the first calls
        that would need a later event (the frontier).

        Args:
            run_id: the run.
            until: how many events to use (0..events; None for all), or
                ``"key:3.1.0"`` to stop when the call at that key is reached.
            process: the process, if its recorded reference cannot be imported.

        Raises:
            RunNotFoundError: no such run.
            ReplayRangeError: ``until`` is out of range or names an unknown key.
            NonDeterminismError: the process no longer agrees with its journal.
        """
        return _sync_any(self.replay_async(run_id, until, process=process))

    async def replay_async(
        self,
        run_id: str,
        until: int | str | None = None,
        *,
        process: ProcessFn | str | None = None,
    ) -> Snapshot:
        """The same as :meth:`replay`, for asyncio callers."""
        record = self.store.require_run(run_id)
        limit = self._resolve_until(run_id, record.events, until)
        all_events = self.store.read_events(run_id)
        journal = RunJournal(self.store, run_id, read_only=True)
        journal.load(stop=max(limit, 1))
        started = journal.started
        if started is None:
            raise JournalCorruptError(
                f"run {run_id!r} has no run_started event", run_id=run_id, seq=0
            )
        fn = (
            _process_ref.load(process or started.process)
            if not callable(process)
            else process
        )
        inputs = jf.decode_payload(self.store.get_payload(started.inputs))
        runtime = Runtime(
            journal,
            run_id,
            executors=self._executors,
            max_in_flight=self._slots,
            frozen=True,
            hooks=self._hooks,
        )
        outcome = await runtime.execute(fn, inputs)
        payload_cache: dict[bytes, Any] = {}

        def payload(address: bytes) -> Any:
            if address not in payload_cache:
                payload_cache[address] = self.payload(address)
            return payload_cache[address]

        calls, logs = build_calls(all_events, limit, payload)
        return Snapshot(
            run_id=run_id,
            until=limit,
            events=record.events,
            process_status=outcome.status,
            result=outcome.result,
            error=outcome.error,
            calls=calls,
            logs=logs,
            frontier=sorted(
                runtime.frontier.values(), key=lambda f: jf.parse_key(f.key)
            ),
        )

    def _resolve_until(self, run_id: str, events: int, until: int | str | None) -> int:
        if until is None:
            return events
        if isinstance(until, str):
            text = until.strip()
            if text.startswith("key:"):
                key = jf.encode_key(jf.parse_key(text[4:]))
                seqs = self.store.seqs_for_key(run_id, key)
                if not seqs:
                    raise ReplayRangeError(
                        f"run {run_id!r} has no call at key {text[4:]}; see"
                        f" `replay-engine log {run_id}` for its keys"
                    )
                return min(seqs)
            until = int(text)
        if not 0 <= until <= events:
            raise ReplayRangeError(
                f"until={until} is outside 0..{events} for run {run_id!r}"
            )
        return until

    def fork(self, run_id: str, at: int, new_run_id: str | None = None) -> RunInfo:
        """A new run sharing the first ``at`` events of ``run_id``; resume it to go on.

        The fork records its parent and fork point. Its journal's blobs are
        shared with the parent's, not copied. Resuming it re-executes the
        process (with the current code) against the shared prefix and goes on
        live from there: the "fix the code, rerun from step N" workflow.

        Raises:
            RunNotFoundError: no such run.
            RunExistsError: ``new_run_id`` is taken.
            ReplayRangeError: ``at`` is outside 1..events.
        """
        new_run_id = new_run_id or f"{run_id}-fork-{secrets.token_hex(2)}"
        record = self.store.require_run(run_id)
        kept = self.store.read_events(run_id, max(0, at - 1), at) if at >= 1 else []
        last = kept[-1].event if kept else None
        status = "completed" if isinstance(last, jf.RunCompleted) else "running"
        self.store.fork_run(record.run_id, at, new_run_id, status)
        return self.status(new_run_id)

    # -- inspecting --------------------------------------------------------------

    def status(self, run_id: str) -> RunInfo:
        """The stored state of a run.

        Raises:
            RunNotFoundError: no such run (close matches are suggested).
        """
        record = self.store.require_run(run_id)
        info = RunInfo._from_record(record)
        if record.status == "failed" and record.events:
            for stored in reversed(self.store.read_events(run_id)):
                if isinstance(stored.event, jf.RunFailed):
                    info = dataclasses.replace(info, error=stored.event.error)
                    break
        if record.status != "running":
            # From the whole journal: claims, posts and signals follow run_waiting.
            pending = self.pending(run_id)
            info = dataclasses.replace(
                info,
                pending=tuple(p.key for p in pending if not p.abandoned)
                if record.status == "waiting"
                else (),
                abandoned=tuple(p.key for p in pending if p.abandoned),
            )
        return info

    def result(self, run_id: str) -> Any:
        """The recorded result of a completed run (None otherwise)."""
        record = self.store.require_run(run_id)
        return self._recorded_result(record) if record.status == "completed" else None

    def runs(self, status: str | None = None) -> list[RunInfo]:
        """Every run in the journal, newest first (only those with ``status``)."""
        infos = [RunInfo._from_record(r) for r in self.store.list_runs()]
        if status is not None:
            infos = [i for i in infos if i.status == status]
        return sorted(infos, key=lambda i: i.created, reverse=True)

    def events(
        self, run_id: str, start: int = 0, stop: int | None = None
    ) -> list[StoredEvent]:
        """A run's events ``start`` up to ``stop``, each checked as it is read."""
        self.store.require_run(run_id)
        return self.store.read_events(run_id, start, stop)

    def payload(self, address: bytes) -> Any:
        """Decode the payload stored under a content address (checked)."""
        return jf.decode_payload(self.store.get_payload(address))

    def verify(self, run_id: str | None = None) -> VerifyReport:
        """Recompute every digest and chain link of one run (or every run and blob)."""
        if run_id is not None:
            self.store.require_run(run_id)
        return verify(self.store, run_id)


def _sync(coro: Coroutine[Any, Any, Run]) -> Run:
    return _sync_any(coro)


T = TypeVar("T")


def _sync_any(coro: Coroutine[Any, Any, T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass  # the normal case; run outside `except` so tracebacks stay clean
    else:
        coro.close()
        raise ReplayEngineError(
            "Engine.run/resume were called inside a running event loop; await"
            " run_async/resume_async instead"
        )
    return asyncio.run(coro)


def _new_run_id() -> str:
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%d-%H%M%S")
    return f"run-{stamp}-{secrets.token_hex(3)}"


def _check_run_id(run_id: str) -> None:
    try:
        jf.check_run_id(run_id)
    except jf.FormatError as exc:
        raise ReplayEngineError(str(exc)) from None
