"""Executing one run: drive the process, record, dispatch, settle the outcome.

A run is a pure function of (process code, inputs, journal prefix). The
runtime re-executes the process from the start; every ctx call either agrees
with the journal and is answered from it, or lies past the journal's frontier
and is recorded and performed. It ends in one of four ways:

* the process returns: ``RunCompleted`` is recorded (the run is terminal);
* the process raises: ``RunFailed`` is recorded (a later resume re-executes);
* the process diverges from its journal: ``NonDeterminismError`` is raised and
  nothing is recorded for the divergence, so the run can be resumed once the
  code is fixed (the run pauses rather than fails);
* nothing can progress but external effects: ``RunWaiting`` is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import journal_format as jf

from .._store.posts import abandon, expire
from ..errors import (
    ExecutorUnavailable,
    NonDeterminismError,
    PayloadError,
    ReplayEngineError,
    TaskFailed,
    task_failure,
)
from . import gc_relax as _gc, jobs as _worker
from .context import Context
from .dispatch import Call, Dispatcher, ExecutorSet, Slots
from .hooks import Hooks
from .journal import RunJournal, call_site, describe_args, describe_entry, divergence
from .scope import Scope, current_scope
from .tasks import TaskDef

_log = logging.getLogger("replay_engine.process")
_key_text = jf.key_bytes_to_text

# Consecutive idle loop iterations before a run counts as waiting; every hop of
# a wake-up (future -> task -> group callback -> parent) ticks the activity
# counter, so three quiet checks in a row mean nothing is still in motion.
_QUIET_CHECKS = 3


@dataclass
class RunStats:
    """Counters of one ``run``/``resume`` call."""

    dispatched: int = 0
    """Effects dispatched (executed) by this call."""
    replayed: int = 0
    """Effects answered from the journal without dispatch."""
    events_written: int = 0
    """Events this call appended to the journal."""
    commits: int = 0
    """Group commits (transactions) this call made."""
    in_flight: int = 0
    """Effects executing right now (live progress)."""
    elapsed: float = 0.0
    """Seconds the call took."""


@dataclass
class Outcome:
    """How an execution ended."""

    status: str
    result: Any = None
    error: jf.ErrorInfo | None = None
    pending: list[str] = field(default_factory=list)
    next_due_ns: int | None = None


@dataclass(frozen=True)
class FrontierCall:
    """A call a time-travel replay stopped at: it needs an event past the prefix."""

    key: str
    task: str
    kind: str
    reason: str
    """``"new call"``, ``"in flight"``, ``"external"`` or ``"timer"``."""
    site: str
    """``file:line`` of the call in the process's source."""


class _Stopped(BaseException):
    """Internal: the run is being stopped; ctx calls made while it unwinds end here.

    A ``BaseException`` so that ``except Exception`` in user code cannot
    swallow it.
    """


class Runtime:
    """State of one execution of one run."""

    def __init__(
        self,
        journal: RunJournal,
        run_id: str,
        *,
        executors: ExecutorSet,
        max_in_flight: int | Slots,
        on_progress: Callable[[RunStats], None] | None = None,
        on_log: Callable[[str, str, dict[str, Any]], None] | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
        frozen: bool = False,
        park_timers: bool = False,
        hooks: Hooks | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        # Time travel: answer only from the loaded prefix; dispatch, write nothing.
        self.frozen = frozen
        self.frontier: dict[bytes, FrontierCall] = {}
        # iterate: a timer not yet due makes the run wait instead of sleeping.
        self.park_timers = park_timers
        self.parked_timers: set[bytes] = set()
        self.due: dict[bytes, int] = {}
        """Deadlines and parked timers of blocked calls (UTC ns)."""
        self.groups: set[Any] = set()
        self.journal = journal
        self.run_id = run_id
        self.stats = RunStats()
        self.hooks = hooks
        self.clock_ns = hooks.clock_ns if hooks is not None else clock_ns
        self.crashed = False
        if hooks is not None and hooks.crash_after_events is not None:
            journal.crash_after_events = hooks.crash_after_events
            journal.on_crash = self._crash
        self._on_progress = on_progress
        self._on_log = on_log
        self.dispatcher = Dispatcher(
            self.loop,
            journal,
            run_id,
            executors=executors,
            max_in_flight=max_in_flight,
            on_progress=self._progress if on_progress else None,
            hooks=hooks,
        )
        self.ctx = Context(self)
        started = journal.started
        self.seed = (started.seed if started is not None else None) or run_id
        self.activity = 0
        self.sleeping = 0
        self.external: dict[bytes, asyncio.Future[None]] = {}
        self.diverged: NonDeterminismError | None = None
        self.executor_lost: ExecutorUnavailable | None = None
        self.stopping = False
        self._quiet: asyncio.Future[None] | None = None
        self._quiet_seen = -1
        self._quiet_count = 0
        self._quiet_scheduled = False

    # -- hooks used by ctx -------------------------------------------------------

    def tick(self) -> None:
        self.activity += 1

    def _crash(self) -> None:
        """The hooks' simulated crash: stop now, as a killed process would."""
        self.crashed = True
        self.stopping = True
        if self.hooks is not None:
            self.hooks.crashed = True
        if self._quiet is not None and not self._quiet.done():
            self._quiet.set_result(None)

    def check_live(self) -> None:
        if self.diverged is not None:
            raise self.diverged
        if self.stopping:
            raise _Stopped

    def diverge(self, error: NonDeterminismError) -> None:
        """Remember the first divergence and raise it; every later ctx call re-raises.

        User code catching it cannot make the run go on recording.
        """
        if self.diverged is None:
            self.diverged = error
        raise self.diverged

    def record(self, event: jf.Event, blobs: dict[bytes, bytes] | None = None) -> None:
        if self.frozen:  # a bug if reached: every recording path checks first
            raise ReplayEngineError(
                "internal error: a time-travel replay tried to write"
            )
        self.journal.record(event, blobs)
        self.dispatcher.schedule_pump()

    def check_new(
        self,
        key: bytes,
        scope_prefix: bytes,
        replayed: str | Callable[[], str] = "a new call",
    ) -> None:
        try:
            self.journal.check_new_key(key, scope_prefix, replayed)
        except NonDeterminismError as exc:
            self.diverge(exc)

    def group_key(self) -> bytes:
        self.check_live()
        scope = current_scope.get()
        key = scope.next_key()
        self.tick()
        entry = self.journal.entries.get(key)
        if entry is not None:
            self.diverge(
                divergence(
                    self.run_id,
                    key,
                    entry.seq,
                    recorded=describe_entry(entry),
                    replayed="a parallel group (ctx.parallel.all/map)",
                )
            )
        return key

    def emit_log(self, key: str, message: str, fields: dict[str, Any]) -> None:
        _log.info(
            "%s", message, extra={"run_id": self.run_id, "key": key, "fields": fields}
        )
        if self._on_log is not None:
            self._on_log(key, message, fields)

    # -- effects -----------------------------------------------------------------

    async def run_effect(
        self,
        tdef: TaskDef,
        key: bytes,
        key_text: str,
        scope_prefix: bytes,
        args_bytes: bytes,
        address: bytes,
        attempts_done: int,
        *,
        new: bool,
        deadline_ns: int | None = None,
    ) -> Any:
        if self.diverged is not None or self.stopping:
            self.check_live()
        if self.frozen:
            if new:
                self.check_new(key, scope_prefix, lambda: _describe_call(tdef, address))
            reason = (
                "external" if tdef.external else ("new call" if new else "in flight")
            )
            await self._at_frontier(key, tdef.name, tdef.kind, reason)
        if new:
            self.check_new(key, scope_prefix, lambda: _describe_call(tdef, address))
            if tdef.external and tdef.timeout is not None:
                deadline_ns = self.clock_ns() + int(tdef.timeout * 1e9)
            self.record(
                jf.EffectRequested(
                    key=key,
                    task=tdef.name,
                    kind=tdef.kind,
                    args=address,
                    deadline_ns=deadline_ns,
                ),
                jf.blobs_for(address, args_bytes),
            )
        if tdef.external:
            return await self._external(tdef, key, deadline_ns)
        attempt = attempts_done + 1
        self.stats.dispatched += 1
        while True:
            future: asyncio.Future[_worker.Outcome] = self.loop.create_future()
            self.dispatcher.submit(Call(tdef, key_text, args_bytes, attempt, future))
            try:
                status, payload = await future
            except ExecutorUnavailable as exc:
                # Not the task's failure: remember it, so the run ends with it
                # even if the process catches it, and nothing is recorded.
                self.executor_lost = self.executor_lost or exc
                raise
            self.tick()
            if status == _worker.OK:
                result_ref = jf.payload_ref(payload)
                self.record(
                    jf.EffectCompleted(key=key, result=result_ref),
                    jf.blobs_for(result_ref, payload),
                )
                return jf.decode_payload(payload)
            if status == _worker.PAYLOAD_ERROR:
                raise PayloadError(
                    f"task {tdef.name!r} at key {key_text} of run {self.run_id!r}:"
                    f" {payload}. Nothing was recorded for it; fix the task to return"
                    " an encodable value and resume the run."
                )
            error = jf.ErrorInfo(
                type=payload[0], message=payload[1], traceback=payload[2]
            )
            if attempt <= tdef.retries:
                delay = tdef.backoff * (2 ** (attempt - 1))
                self.record(
                    jf.AttemptFailed(
                        key=key, attempt=attempt, error=error, retry_in=delay
                    )
                )
                if delay > 0:
                    await self._sleep_for(delay)
                attempt += 1
                continue
            self.record(jf.EffectFailed(key=key, error=error, attempts=attempt))
            raise TaskFailed(
                error.type, error.message, error.traceback, key=key_text, task=tdef.name
            )

    async def _external(
        self, tdef: TaskDef, key: bytes, deadline_ns: int | None
    ) -> Any:
        """Wait for an external effect's result; it arrives in a later execution."""
        if tdef.kind == "signal":
            payload = self._take_signal(tdef.name, key)
            if payload is not None:
                return jf.decode_payload(payload)
        if deadline_ns is not None and self.clock_ns() >= deadline_ns:
            # Commit the request first: its outcome must never precede it.
            self.journal.flush()
            outcome = expire(
                self.journal.store,
                self.run_id,
                key,
                f"no result within {tdef.timeout}s (deadline {deadline_ns} ns)",
            )
            self.tick()
            if isinstance(outcome, jf.EffectCompleted):
                return jf.decode_payload(self.journal.store.get_payload(outcome.result))
            assert isinstance(outcome, jf.EffectFailed)
            error = outcome.error
            raise task_failure(
                error.type,
                error.message,
                error.traceback,
                key=_key_text(key),
                task=tdef.name,
            )
        if deadline_ns is not None:
            self.due[key] = deadline_ns
        await self._wait_external(key)

    def _take_signal(self, name: str, key: bytes) -> bytes | None:
        """Bind the oldest unconsumed signal ``name`` to the wait at ``key``."""
        journal = self.journal
        for seq, signal_name, address in journal.signals:
            if signal_name == name and seq not in journal.consumed_signals:
                journal.consumed_signals.add(seq)
                payload = journal.store.get_payload(address)
                self.record(
                    jf.EffectCompleted(key=key, result=address, signal_seq=seq),
                    jf.blobs_for(address, payload),
                )
                return payload
        return None

    async def run_timer(
        self, key: bytes, scope_prefix: bytes, due_ns: int | None, seconds: float
    ) -> None:
        self.check_live()
        if self.frozen:
            await self._at_frontier(key, "ctx.sleep", "timer", "timer")
        if due_ns is None:
            self.check_new(key, scope_prefix, "ctx.sleep()")
            due_ns = self.clock_ns() + int(seconds * 1e9)
            self.record(jf.TimerStarted(key=key, due_ns=due_ns))
        remaining = (due_ns - self.clock_ns()) / 1e9
        if remaining > 0 and self.park_timers:
            self.parked_timers.add(key)
            self.due[key] = due_ns
            await self._wait_external(key)
        if remaining > 0:
            if self.hooks is not None and self.hooks.sleep is not None:
                remaining = self.hooks.sleep(_key_text(key), remaining)
            await self._sleep_for(remaining)
        self.record(jf.TimerFired(key=key))

    async def _sleep_for(self, seconds: float) -> None:
        self.sleeping += 1
        try:
            await asyncio.sleep(seconds)
        finally:
            self.sleeping -= 1
            self.tick()

    async def _at_frontier(self, key: bytes, task: str, kind: str, reason: str) -> None:
        self.frontier[key] = FrontierCall(
            key=_key_text(key), task=task, kind=kind, reason=reason, site=call_site(3)
        )
        await self._wait_external(key)

    def stop_at_frontier(self, key: bytes, task: str, kind: str) -> None:
        """A synchronous call (``ctx.now()`` …) past the prefix: end this branch."""
        self.frontier[key] = FrontierCall(
            key=_key_text(key),
            task=task,
            kind=kind,
            reason="new call",
            site=call_site(3),
        )
        self._schedule_quiet_check()
        raise _Stopped

    async def _wait_external(self, key: bytes) -> None:
        future: asyncio.Future[None] = self.loop.create_future()
        self.external[key] = future
        self.tick()
        self._schedule_quiet_check()
        await future  # resolved only when the run is stopped as waiting

    # -- quiescence: is the run waiting? ------------------------------------------

    def _schedule_quiet_check(self) -> None:
        if not self._quiet_scheduled:
            self._quiet_scheduled = True
            self.loop.call_soon(self._quiet_check)

    def _quiet_check(self) -> None:
        self._quiet_scheduled = False
        quiet = self._quiet
        if quiet is None or quiet.done() or not (self.external or self.frontier):
            return
        if self.dispatcher.busy or self.sleeping or self.journal.has_pending:
            self._quiet_count = 0
            self._schedule_quiet_check()
            return
        if self.activity != self._quiet_seen:
            self._quiet_seen = self.activity
            self._quiet_count = 0
        self._quiet_count += 1
        if self._quiet_count < _QUIET_CHECKS:
            self._schedule_quiet_check()
        elif not self.frozen and self._abandon_decided_groups():
            self._quiet_count = 0
            self._schedule_quiet_check()
        else:
            quiet.set_result(None)

    def _abandon_decided_groups(self) -> bool:
        """Settle a waiting group whose outcome a failed branch already decides.

        Its still-pending external effects (in higher-index branches) are
        recorded as abandoned, so nobody waits on, or posts to, work whose
        result can no longer matter.
        """
        for group in list(self.groups):
            index = group.decided_failure()
            if index is None:
                continue
            prefixes = tuple(group.unsettled_prefixes())
            keys = [
                k
                for k in self.external
                if k.startswith(prefixes) and k not in self.parked_timers
            ]
            if keys:
                self.journal.flush()
                reason = (
                    f"parallel group {_key_text(group.key)} failed at branch {index}"
                )
                marked = abandon(self.journal.store, self.run_id, keys, reason)
                if len(marked) != len(keys):
                    continue  # a result arrived meanwhile: the next execution sees it
            for key in keys:
                self.external.pop(key, None)
                self.due.pop(key, None)
            group.abandon_rest()
            self.tick()
            return True
        return False

    def _progress(self) -> None:
        if self._on_progress is not None:
            self.stats.in_flight = self.dispatcher.in_flight
            self._on_progress(self.stats)

    # -- the whole execution -----------------------------------------------------

    async def execute(
        self,
        process: Callable[[Any, Context], Coroutine[Any, Any, Any]],
        inputs: Any,
    ) -> Outcome:
        started = time.perf_counter()
        context = contextvars.copy_context()
        context.run(current_scope.set, Scope(b""))
        coro = context.run(process, inputs, self.ctx)
        if not asyncio.iscoroutine(coro):
            raise ReplayEngineError(
                f"the process must be an `async def` function taking (inputs, ctx);"
                f" calling it returned {type(coro).__name__}"
            )
        main = self.loop.create_task(coro, context=context)
        self._process = process
        self._quiet = self.loop.create_future()
        try:
            with _gc.relaxed():
                await asyncio.wait(
                    {main, self._quiet}, return_when=asyncio.FIRST_COMPLETED
                )
        except BaseException:
            # Cancelled from outside: stop cleanly, keep what completed.
            await self._stop(main)
            self.journal.flush()
            raise
        finally:
            self.stats.elapsed = time.perf_counter() - started
        if not self.crashed:
            if not main.done():
                outcome = await self._settle_waiting(main)
            else:
                outcome = self._settle_finished(main)
            if not self.crashed:
                return outcome
        # A simulated crash (testing hooks), possibly in the final commit.
        await self._stop(main)
        return Outcome(status="running")

    async def _stop(self, main: asyncio.Task[Any]) -> None:
        self.stopping = True
        self.dispatcher.close()
        for future in self.external.values():
            if not future.done():
                future.cancel()
        if main.done():
            if not main.cancelled():
                main.exception()  # retrieved: the outcome is being settled elsewhere
        else:
            main.cancel()
            # Unwinding a cancelled process: whatever it raises now is moot.
            with contextlib.suppress(BaseException):
                await main
        # Give cancelled async tasks one iteration to unwind.
        await asyncio.sleep(0)

    async def _settle_waiting(self, main: asyncio.Task[Any]) -> Outcome:
        pending = sorted(k for k in self.external if k not in self.parked_timers)
        next_due = min(self.due.values()) if self.due else None
        await self._stop(main)
        if self.frozen:
            return Outcome(status="frontier", pending=[_key_text(k) for k in pending])
        waiting = jf.RunWaiting(pending=pending, next_due_ns=next_due)
        # An iterate that changed nothing leaves the journal as it was.
        if (
            waiting != self.journal.last_event
            or self.journal.has_pending
            or (self.journal.events_written)
        ):
            self.journal.record(waiting)
        self._finish_stats(status="waiting")
        return Outcome(
            status="waiting",
            pending=[_key_text(k) for k in pending],
            next_due_ns=next_due,
        )

    def _settle_finished(self, main: asyncio.Task[Any]) -> Outcome:
        self.dispatcher.close()
        exc = main.exception() if not main.cancelled() else asyncio.CancelledError()
        if self.frozen:
            return self._settle_frozen(main, exc)
        if self.diverged is not None:
            self._finish_stats(status=None)
            raise self.diverged
        if isinstance(exc, NonDeterminismError):
            self._finish_stats(status=None)
            raise exc
        if self.executor_lost is not None:
            # The executor went away: a pause, not a failure. The interrupted
            # effects have requests and no outcome; a resume re-dispatches them.
            self._finish_stats(status=None)
            raise self.executor_lost
        unvisited = self.journal.unvisited()
        if unvisited:
            key, entry = unvisited[0]
            self._finish_stats(status=None)
            raise divergence(
                self.run_id,
                key,
                entry.seq,
                recorded=f"{describe_entry(entry)} and {len(unvisited) - 1} more"
                " recorded calls",
                replayed="the process finished without making these calls",
                headline="the journal has calls this execution never made"
                " (fewer calls)",
                site=_end_of(getattr(self, "_process", None)),
            )
        if exc is None:
            result = main.result()
            try:
                data = jf.encode_payload(result)
            except jf.FormatError as err:
                exc = PayloadError(f"the process's result cannot be encoded: {err}")
            else:
                ref = jf.payload_ref(data)
                self.journal.record(
                    jf.RunCompleted(result=ref), jf.blobs_for(ref, data)
                )
                self._finish_stats(status="completed")
                return Outcome(status="completed", result=jf.decode_payload(data))
        if isinstance(exc, _Stopped | asyncio.CancelledError) or not isinstance(
            exc, Exception
        ):
            self._finish_stats(status=None)
            raise exc
        error = error_info(exc)
        last = self.journal.last_event
        already = (
            isinstance(last, jf.RunFailed)
            and last.error.type == error.type
            and (last.error.message == error.message)
            and not self.journal.has_pending
        )
        if not already:
            self.journal.record(jf.RunFailed(error=error))
        self._finish_stats(status="failed")
        return Outcome(status="failed", error=error)

    def _settle_frozen(
        self, main: asyncio.Task[Any], exc: BaseException | None
    ) -> Outcome:
        if self.diverged is not None:
            raise self.diverged
        if isinstance(exc, NonDeterminismError):
            raise exc
        if exc is None:
            return Outcome(status="completed", result=main.result())
        if isinstance(exc, _Stopped):
            return Outcome(status="frontier")
        if not isinstance(exc, Exception):
            raise exc
        return Outcome(status="failed", error=error_info(exc))

    def _finish_stats(self, status: str | None) -> None:
        self.journal.flush(
            status=status,
            counters=(self.stats.dispatched, self.stats.replayed),
            # A waiting run will be resumed: spare the next resume (an
            # iterate, typically) reading every event again.
            checkpoint=status == "waiting",
        )
        self.stats.events_written = self.journal.events_written
        self.stats.commits = self.journal.commits
        self.stats.in_flight = 0


def error_info(exc: BaseException) -> jf.ErrorInfo:
    """The recorded form of an exception."""
    _, (name, message, tb) = _worker.error_outcome(exc)
    return jf.ErrorInfo(type=name, message=message, traceback=tb)


def _describe_call(tdef: TaskDef, address: bytes) -> str:
    return f"task {tdef.name!r} args {describe_args(address)}"


def _end_of(process: object) -> str:
    """Where the process that stopped short is defined: ``file:line (end of f)``."""
    code = getattr(process, "__code__", None)
    if code is None:
        return "<end of process>"
    name = getattr(process, "__qualname__", "process")
    return f"{code.co_filename}:{code.co_firstlineno} (the end of {name})"
