"""Executing one run: answer ctx's calls, perform new effects, drive the process.

A run is a pure function of (process code, inputs, journal prefix). The
runtime re-executes the process from the start; every ctx call either agrees
with the journal and is answered from it, or lies past the journal's frontier
and is recorded and performed. The journal decides which
(``RunJournal.answer``); this module acts on its answer. How an execution ends
is in ``settle``; waiting (external effects, timers) in ``waits``; deciding
that a run is waiting in ``quiet``; the state they share in ``state``.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from types import FrameType
from typing import TYPE_CHECKING, Any, Unpack

import journal_format as jf

from .._store.payload import encode_or_refuse
from ..errors import (
    ExecutorUnavailable,
    PayloadError,
    ReplayEngineError,
    TaskFailed,
    task_failure,
)

# ``children``, ``patches`` and ``waits`` (which brings ``quiet`` and
# ``_store.outcomes``) are imported where a process first needs them (a
# sub-run, a patch, a timer, an external call, a retry's backoff): a plain
# resume never does, and each module is 0.1-0.3 ms of a process's first
# resume (bench/README.md, s19i; tests/engine/test_resume_imports.py).
from . import context as _context, gc_relax, jobs
from .context import Context
from .decisions import call_site, describe_args
from .dispatch import Call, ExecutorSet, Slots
from .journal import GROUP, RunJournal
from .parallel import BranchAbandoned, Resolved, one_effect_codes
from .scope import Scope, current_scope
from .settle import (
    HaltWatch,
    Outcome,
    error_info,
    settle_fault,
    settle_finished,
    settle_halted,
    settle_waiting,
    stop,
)
from .state import ExecutionState
from .stats import FrontierCall, RunStats
from .stop_request import Stopper
from .tasks import TaskDef, _running_process, _task_context
from .typed import convert_result

if TYPE_CHECKING:
    from .children import ChildExecutor
    from .state import ExecutionOptions

# The names the API layer imports from here (some are defined next door).
__all__ = ["FrontierCall", "Outcome", "RunStats", "Runtime", "error_info"]


_CONTEXT_GLOBALS = _context.__dict__


async def _raise(exc: BaseException) -> Any:
    raise exc


class Runtime(ExecutionState):
    """One execution of one run: the backend of its ``ctx``."""

    def __init__(
        self,
        journal: RunJournal,
        run_id: str,
        *,
        executors: ExecutorSet,
        max_in_flight: int | Slots,
        stopper: Stopper | None = None,
        children: ChildExecutor | None = None,
        **options: Unpack[ExecutionOptions],
    ) -> None:
        super().__init__(
            journal,
            run_id,
            executors=executors,
            max_in_flight=max_in_flight,
            **options,
        )
        self.ctx = Context(self)
        self._process: object = None
        # Stop requests (signals): none for time travel, which dispatches nothing.
        self._stopper = stopper if not self.frozen else None
        # Sub-runs (``ctx.run_child``): the engine executes them; by run id.
        self.children = children
        self.child_runs: dict[str, asyncio.Future[str]] = {}

    # -- the calls ctx makes ---------------------------------------------------
    #
    # ctx has asked the journal already (``RunJournal.answer``, which raises a
    # divergence and remembers it, so every later ctx call re-raises it): a
    # recorded entry is the same call made before, answered from the journal;
    # ``None`` means the call is new, and it is recorded, then performed.

    def task(
        self,
        tdef: TaskDef[..., Any],
        key: bytes,
        scope: Scope,
        args_bytes: bytes,
        address: bytes,
        entry: jf.CallEntry | None,
    ) -> Awaitable[Any]:
        """``ctx.task`` at ``key``, unless it completed before (ctx answers that)."""
        if entry is None:
            if tdef.kind == "task" and not self.frozen and self.tracing is None:
                # The fan-out's common case: see ``_fresh_effect``; and
                # ``_handle``, inline (its frame walk starts one frame nearer).
                coro = self._fresh_effect(
                    tdef, key, scope.last_text(), scope.prefix, args_bytes, address
                )
                frame: FrameType | None = sys._getframe(2)
                while frame is not None and frame.f_globals is _CONTEXT_GLOBALS:
                    frame = frame.f_back
                site = (frame.f_code, frame.f_lasti) if frame is not None else None
                self.unawaited[key] = (coro, tdef.name, site)
                return coro
            return self._handle(
                tdef,
                key,
                self.run_effect(
                    tdef,
                    key,
                    scope.last_text(),
                    scope.prefix,
                    args_bytes,
                    address,
                    0,
                    new=True,
                ),
            )
        if entry.abandoned:
            return _raise(BranchAbandoned())
        error = entry.error
        if error is not None:
            self.stats.replayed += 1
            if self.tracing is not None:
                self.tracing.replayed(self.run_id, key, tdef.name, "failed")
            return _raise(
                task_failure(
                    error.type,
                    error.message,
                    error.traceback,
                    key=jf.key_bytes_to_text(key),
                    task=tdef.name,
                )
            )
        # Requested but never completed: the crash window. Dispatch again
        # (same idempotency key), continuing its attempt count; an external
        # effect goes back to waiting for its result.
        return self._handle(
            tdef,
            key,
            self.run_effect(
                tdef,
                key,
                scope.last_text(),
                scope.prefix,
                args_bytes,
                address,
                entry.attempts,
                new=False,
                deadline_ns=entry.deadline_ns,
            ),
        )

    def _handle(
        self, tdef: TaskDef[..., Any], key: bytes, coro: Coroutine[Any, Any, Any]
    ) -> Coroutine[Any, Any, Any]:
        """Note a live call until its coroutine starts (``run_effect`` unnotes it).

        Only live calls are noted: one the journal answers was awaited when it
        was made, and a dropped live call is the one whose effect silently
        never happens. The call site is taken here, on the live path only,
        where a dispatch costs far more than the frame walk.
        """
        # The caller of ctx.task, past ctx's own frames (ctx.call's,
        # ctx.breakpoint's): an identity check per frame, not call_site()'s
        # name test (2 µs a call). Its code and instruction offset are kept;
        # the line is looked up only if the call is reported (f_lineno scans
        # the line table on every read).
        frame: FrameType | None = sys._getframe(3)
        while frame is not None and frame.f_globals is _CONTEXT_GLOBALS:
            frame = frame.f_back
        site = (frame.f_code, frame.f_lasti) if frame is not None else None
        self.unawaited[key] = (coro, tdef.name, site)
        return coro

    def sleep(self, key: bytes, prefix: bytes, seconds: float) -> Awaitable[None]:
        """``ctx.sleep`` at ``key``: a fired timer is done; another (re)starts."""
        from . import waits

        self.tick()
        entry = self.journal.answer(key, jf.TIMER)
        if entry is None:
            return waits.run_timer(self, key, prefix, None, float(seconds))
        if entry.fired:
            return Resolved(None)
        return waits.run_timer(self, key, prefix, entry.due_ns, float(seconds))

    def value(
        self, kind: str, key: bytes, prefix: bytes, make: Callable[[bytes], int | bytes]
    ) -> int | bytes:
        """``ctx.now/random/uuid`` at ``key``: the recorded value, or a new one."""
        self.tick()
        entry = self.journal.answer(key, jf.VALUE, kind)
        if entry is not None:
            assert entry.value is not None
            return entry.value
        self.journal.check_new_key(key, prefix, f"ctx.{kind}()")
        if self.frozen:
            from . import waits

            waits.stop_at_frontier(self, key, f"ctx.{kind}", "value")
        value = make(key)
        self.record(jf.ValueRecorded(key=key, kind=kind, value=value))
        return value

    def patched(self, scope: Scope, patch_id: str) -> bool:
        """``ctx.patched`` (the rule is in ``patches``)."""
        from . import patches

        return patches.patched(self, scope, patch_id)

    def deprecate_patch(self, scope: Scope, patch_id: str) -> None:
        """``ctx.deprecate_patch`` (the rule is in ``patches``)."""
        from . import patches

        patches.deprecate_patch(self, scope, patch_id)

    def group(self, key: bytes) -> None:
        """``ctx.parallel`` took ``key`` for a group, which records nothing there."""
        self.tick()
        self.journal.answer(key, GROUP)

    def run_child(
        self, key: bytes, scope: Scope, process: Any, inputs: Any, run_id: str | None
    ) -> Awaitable[Any]:
        """``ctx.run_child`` at ``key`` (see ``children``)."""
        from . import children as children_mod

        return children_mod.run_child(
            self, self.children, self.child_runs, key, scope, process, inputs, run_id
        )

    def log(
        self, key: bytes, ordinal: int, message: str, fields: dict[str, Any]
    ) -> None:
        """``ctx.log``: record and emit the line, unless a former execution did."""
        if (key, ordinal) in self.journal.logs or self.frozen:
            return
        encode_or_refuse(fields, f"ctx.log({message!r}) at {call_site()}: fields", "")
        text = str(message)
        self.record(jf.LogLine(key=key, ordinal=ordinal, message=text, fields=fields))
        self.emit_log(jf.key_bytes_to_text(key), text, fields)

    # -- performing an effect ----------------------------------------------------

    def _request(
        self,
        tdef: TaskDef[..., Any],
        key: bytes,
        scope_prefix: bytes,
        args_bytes: bytes,
        address: bytes,
        deadline_ns: int | None,
    ) -> int | None:
        """Record a new call's request; returns its deadline (external timeouts)."""
        journal = self.journal
        if journal.entries:  # a fresh run has none: no description to build
            journal.check_new_key(
                key, scope_prefix, lambda: _describe_call(tdef, address)
            )
        kind = tdef.kind
        if kind != "task" and tdef.timeout is not None:  # external, timed
            deadline_ns = self.clock_ns() + int(tdef.timeout * 1e9)
        self.record(
            jf.EffectRequested(
                key=key,
                task=tdef.name,
                kind=kind,
                args=address,
                deadline_ns=deadline_ns,
            ),
            # Small args are their own reference: no blob (and no empty dict).
            None if len(address) < jf.ADDRESS_SIZE else {address: args_bytes},
        )
        return deadline_ns

    async def _frozen_at(
        self,
        tdef: TaskDef[..., Any],
        key: bytes,
        scope_prefix: bytes,
        address: bytes,
        new: bool,
    ) -> None:
        """A frozen run (time travel) reached this effect: stop at the frontier."""
        if new:
            self.journal.check_new_key(
                key, scope_prefix, lambda: _describe_call(tdef, address)
            )
        reason = "external" if tdef.external else ("new call" if new else "in flight")
        from . import waits

        await waits.at_frontier(
            self,
            key,
            tdef.name,
            tdef.kind,
            reason,
            lambda: _describe_call(tdef, address),
        )

    async def run_effect(
        self,
        tdef: TaskDef[..., Any],
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
        """Record the request (when new), dispatch with retries, record the outcome."""
        self.unawaited.pop(key, None)
        if self.journal.diverged is not None or self.stopping:
            self.check_live()
        if self.frozen:
            await self._frozen_at(tdef, key, scope_prefix, address, new)
        if new:
            deadline_ns = self._request(
                tdef, key, scope_prefix, args_bytes, address, deadline_ns
            )
        if tdef.external:
            from . import waits

            value = await waits.external_result(self, tdef, key, deadline_ns)
            if tdef.result_type is not None:
                value = convert_result(tdef, value, self.run_id, key)
            return value
        attempt = attempts_done + 1
        self.stats.dispatched += 1
        if not new:
            self.stats.redispatched += 1
            if attempts_done:  # a crash may have cut a backoff short
                from . import waits

                await waits.rest_of_backoff(self, key, attempts_done)
        return await self._attempts(tdef, key, key_text, args_bytes, attempt, new)

    async def _fresh_effect(
        self,
        tdef: TaskDef[..., Any],
        key: bytes,
        key_text: str,
        scope_prefix: bytes,
        args_bytes: bytes,
        address: bytes,
    ) -> Any:
        """``run_effect`` of a new call of a task the engine executes, untraced.

        The same steps (record the request, dispatch, record the outcome) in
        one frame instead of three, for the call a fresh fan-out makes once
        per branch; a failed attempt goes on in ``_attempts`` (retries).
        """
        self.unawaited.pop(key, None)
        journal = self.journal
        if journal.diverged is not None or self.stopping:
            self.check_live()
        if journal.entries:  # a fresh run has none: no description to build
            # Not a lambda here: one would make two cells in every suspended
            # effect's frame, and a fan-out's window of live branches would
            # cross the young-GC threshold (gc_relax): 24 passes per 100k.
            self._check_new(tdef, key, scope_prefix, address)
        request = jf.EffectRequested(  # _request's, for a task (no deadline)
            key=key, task=tdef.name, kind="task", args=address, deadline_ns=None
        )
        blobs = None if len(address) < jf.ADDRESS_SIZE else {address: args_bytes}
        if journal.crashed or journal.read_only:
            self.record(request, blobs)  # refuses it
        else:  # record()'s common case, inline (twice per fresh effect)
            journal._pending.append(request)
            if blobs:
                journal._pending_blobs.update(blobs)
        self.stats.dispatched += 1
        future: asyncio.Future[jobs.Outcome] = asyncio.Future(loop=self.loop)
        dispatcher = self.dispatcher  # submit(), inline
        dispatcher.ready.append(Call(tdef, key_text, args_bytes, 1, future))
        if not dispatcher._pump_scheduled:
            dispatcher.schedule_pump()
        try:
            status, payload = await future
        except ExecutorUnavailable as exc:
            self.executor_lost = self.executor_lost or exc
            raise
        if status != jobs.OK:
            return await self._attempts(
                tdef, key, key_text, args_bytes, 1, True, (status, payload)
            )
        self.activity += 1  # tick()
        value = jf.decode_payload(payload)
        if tdef.result_type is not None:
            value = convert_result(tdef, value, self.run_id, key, live=True)
        result_ref = jf.payload_ref(payload)
        completed = jf.EffectCompleted(key=key, result=result_ref)
        if result_ref is not payload or journal.crashed or journal.read_only:
            self.record(
                completed, None if result_ref is payload else {result_ref: payload}
            )
        else:  # record()'s common case, inline: a small result, no blob
            journal._pending.append(completed)
            if not dispatcher._pump_scheduled:
                dispatcher.schedule_pump()
        return value

    def _check_new(
        self, tdef: TaskDef[..., Any], key: bytes, scope_prefix: bytes, address: bytes
    ) -> None:
        self.journal.check_new_key(
            key, scope_prefix, lambda: _describe_call(tdef, address)
        )

    async def _attempts(
        self,
        tdef: TaskDef[..., Any],
        key: bytes,
        key_text: str,
        args_bytes: bytes,
        attempt: int,
        new: bool,
        first: jobs.Outcome | None = None,
    ) -> Any:
        """Dispatch attempts from ``attempt`` on (retries); record the outcome.

        ``first``: the outcome of attempt ``attempt``, already dispatched.
        """
        while True:
            if first is not None:
                (status, payload), first = first, None
            else:
                future: asyncio.Future[jobs.Outcome] = self.loop.create_future()
                call = Call(tdef, key_text, args_bytes, attempt, future)
                try:
                    if self.tracing is None:
                        self.dispatcher.submit(call)
                        status, payload = await future
                    else:
                        source = "dispatched" if new else "redispatched"
                        status, payload = await self.tracing.attempt(
                            self.dispatcher.submit, call, self.run_id, source
                        )
                except ExecutorUnavailable as exc:
                    # Not the task's failure: remember it, so the run ends with
                    # it even if the process catches it, and nothing is recorded.
                    self.executor_lost = self.executor_lost or exc
                    raise
            self.tick()
            if status == jobs.OK:
                value = jf.decode_payload(payload)
                if tdef.result_type is not None:
                    # Before recording: a result that does not fit is not kept.
                    value = convert_result(tdef, value, self.run_id, key, live=True)
                result_ref = jf.payload_ref(payload)
                self.record(
                    jf.EffectCompleted(key=key, result=result_ref),
                    None if result_ref is payload else {result_ref: payload},
                )
                return value
            if status == jobs.PAYLOAD_ERROR:
                raise PayloadError(
                    f"task {tdef.name!r} at key {key_text} of run {self.run_id!r}:"
                    f" {payload}. Nothing was recorded for it; fix the task to return"
                    " an encodable value and resume the run."
                )
            error = jf.ErrorInfo(
                type=payload[0], message=payload[1], traceback=payload[2]
            )
            if attempt <= tdef.retries and jobs.retryable(tdef, payload[3]):
                delay = jobs.backoff_delay(tdef, self.run_id, key_text, attempt)
                self.record(
                    jf.AttemptFailed(
                        key=key, attempt=attempt, error=error, retry_in=delay
                    )
                )
                if delay > 0:
                    from . import waits

                    # Through the hooks' sleep, like a timer: a test decides.
                    await waits.hooked_sleep(self, key, delay)
                attempt += 1
                continue
            self.record(jf.EffectFailed(key=key, error=error, attempts=attempt))
            raise TaskFailed(
                error.type, error.message, error.traceback, key=key_text, task=tdef.name
            )

    # -- the whole execution -----------------------------------------------------

    async def execute(
        self,
        process: Callable[[Any, Context], Coroutine[Any, Any, Any]],
        inputs: Any,
    ) -> Outcome:
        """Run the process from the start until it ends or waits; settle the outcome."""
        started = time.perf_counter()
        context = contextvars.copy_context()
        context.run(current_scope.set, Scope(b""))
        # Direct calls of a @task are refused in the process's own code (and
        # its branches, which copy this context); a process run from inside a
        # task (a thread that copied its context) is no task itself.
        context.run(_running_process.set, self.run_id)
        context.run(_task_context.set, None)
        coro = context.run(process, inputs, self.ctx)
        if not asyncio.iscoroutine(coro):
            raise ReplayEngineError(
                f"the process must be an `async def` function taking (inputs, ctx);"
                f" calling it returned {type(coro).__name__}"
            )
        main = self.loop.create_task(coro, context=context)
        self._process = process
        self.quiet = self.loop.create_future()
        watch = self._stopper.watch(self) if self._stopper is not None else None
        # A cancel request or the run's deadline (none for time travel).
        halt = HaltWatch(self, self.journal.store) if not self.frozen else None
        try:
            ends = (
                {main, self.quiet} if watch is None else {main, self.quiet, watch.done}
            )
            if halt is not None:
                ends.add(halt.done)
            with gc_relax.relaxed():
                await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            # Cancelled from outside: stop cleanly, keep what completed.
            await stop(self, main)
            if self.journal.broken is None:
                self.journal.flush()
            raise
        finally:
            if watch is not None:
                watch.close()
            if halt is not None:
                halt.close()
            self.stats.elapsed = time.perf_counter() - started
            if self.carry is not None:
                self.stats.elapsed += self.carry.elapsed
        if self.fault is not None:
            await settle_fault(self, main)  # raises the fault
        if halt is not None and halt.halted(main) and not self.crashed:
            return await settle_halted(self, main, halt)
        if watch is not None and watch.stopped(main):
            from .stopping import settle_stopped  # a signal stopped it: rare

            await settle_stopped(self, main, watch)  # raises RunInterrupted
        if not self.crashed:
            if not main.done():
                outcome = await settle_waiting(self, main)
            else:
                outcome = await settle_finished(self, main, self._process)
            if not self.crashed:
                return outcome
        # A simulated crash (testing hooks), possibly in the final commit.
        await stop(self, main)
        return Outcome(status="running")


# parallel.refill lets the branches that are just this coroutine share a
# context (see there).
one_effect_codes.append(Runtime._fresh_effect.__code__)


def _describe_call(tdef: TaskDef[..., Any], address: bytes) -> str:
    return f"task {tdef.name!r} args {describe_args(address)}"
