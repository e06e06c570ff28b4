"""Dispatching effects: write-ahead group commits, bounded concurrency, batching.

The one rule that keeps a crashed run exact: **everything recorded so far is
committed before anything is dispatched**. Requests, completions, log lines and
recorded values accumulate in the journal's buffer; the pump, which runs once
per event-loop iteration that has work, commits them in one transaction (one
fsync) and only then starts the calls that became ready. A wide fan-out thus
costs one fsync per loop iteration, not one per effect, and no effect ever runs
before the completions it may depend on are durable.

Sync tasks go to a thread pool in chunks (one pool job runs several small
tasks), because one submission per tiny task costs more than the task.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
from collections import deque
from collections.abc import Callable, Sized
from typing import Any

import journal_format as jf

from ..errors import ExecutorUnavailable
from . import jobs
from .calls import Call, Slots, cancelled_inside, injected_outcome
from .executors import ExecutorSet, Wakes, start_eager
from .group_commit import shared_pump
from .hooks import Hooks
from .jobs import exception_names
from .journal import RunJournal
from .tasks import TaskContext, _task_context
from .typed import convert_args

_new_tuple = tuple.__new__

# ExecutorSet is defined next door; the API layer imports it from here.
__all__ = ["Call", "Dispatcher", "ExecutorSet", "Slots"]

_TIMEOUT_NAMES = exception_names(TimeoutError)
"""What a timed-out attempt fails as, for the retry policy."""

_MAX_CHUNK = 64
"""Most attempts in one pool job while a task's cost is unknown."""
_MAX_MEASURED_CHUNK = 2048
"""Most attempts in one pool job of tasks measured to be tiny. Above the
default ``max_in_flight`` (1024): a fan-out of tiny tasks goes to the pool as
one job per commit, not several, since a job costs a hand-back and two GIL
round trips whichever worker runs it, and tasks that hold the GIL gain
nothing from running beside each other. ``_CHUNK_SECONDS`` bounds a job."""
_CHUNK_SECONDS = 0.002
"""What a pool job of measured tasks should take: long enough to amortise the
job, short enough that one slow batch does not hold back the others."""


class Dispatcher:
    """Runs effect attempts for one executing run."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        journal: RunJournal,
        run_id: str,
        *,
        executors: ExecutorSet,
        max_in_flight: int | Slots,
        on_progress: Callable[[], None] | None = None,
        on_fault: Callable[[BaseException], None] | None = None,
        hooks: Hooks | None = None,
    ) -> None:
        self.loop = loop
        self.hooks = hooks
        self.journal = journal
        self.run_id = run_id
        self.executors = executors
        self.slots = (
            max_in_flight if isinstance(max_in_flight, Slots) else Slots(max_in_flight)
        )
        self._async_calls: set[Call] = set()
        self._jobs: set[cf.Future[Any]] = set()
        """Pool jobs submitted and not yet reported back."""
        self._task_cost = executors.task_cost
        """Seconds per attempt of each thread-pool task (engine-wide)."""
        self.ready: deque[Call] = deque()
        self.in_flight = 0
        self.dispatched = 0
        self._pump_scheduled = False
        self._deferred = False
        """The pump stepped back once behind the loop's queued callbacks."""
        self._loop_ready: Sized = getattr(loop, "_ready", ())
        """The loop's queue of ready callbacks (asyncio's own event loops)."""
        self._on_progress = on_progress
        self._on_fault = on_fault
        self.closed = False
        self.holding = False
        """Stopping (see ``stopping``): commit, but start nothing new."""
        self.traced = False
        """OpenTelemetry is on: tasks sent by reference carry their attempt
        span's context (``jobs.run_traced_chunk``). Read once per pool job."""
        self.feed: Callable[[], None] | None = None
        """Starts parallel branches that waited for room (``parallel.Feed``)."""
        self.shared = shared_pump(loop, journal.store)
        """The commit pump this run shares with the loop's other runs."""
        self.shared.executing += 1
        self._wakes = Wakes(loop)
        self._inline_token: Any = None
        """The task context's token from the first inline attempt of a batch:
        each inline attempt sets its own context, and ``_start_ready`` puts it
        back once, after the batch (a reset per attempt: 1.5% of an effect)."""
        self._owed = -1
        """Slots given back while ``_start_ready`` runs, returned once per batch
        (one lock round trip, not one per inline or eager attempt); -1: not
        batching, give at once."""
        """Branch wake-ups of a batch of outcomes, run after it (``Wakes``)."""

    # -- public ------------------------------------------------------------------

    def submit(self, call: Call) -> None:
        """Queue an attempt; it starts after the next group commit."""
        self.ready.append(call)
        self.schedule_pump()

    def schedule_pump(self) -> None:
        """Make sure buffered events are committed (and ready calls started) soon."""
        if not self._pump_scheduled and not self.closed:
            self._pump_scheduled = True
            # With the other runs of this loop: one commit for them all.
            self.shared.want(self)

    @property
    def busy(self) -> bool:
        """True while anything is queued, executing, or waiting to be committed."""
        return bool(self.ready) or self.in_flight > 0 or self._pump_scheduled

    def close(self) -> None:
        """Stop starting work; cancel pool jobs not yet started and async attempts.

        Pool jobs already running go on; their attempts report back as usual.
        """
        if not self.closed:
            self.shared.executing -= 1
        self.closed = True
        for call in self.ready:
            if not call.future.done():
                call.future.cancel()
        self.ready.clear()
        for job in list(self._jobs):
            job.cancel()  # only a job still queued in the pool is cancelled
        for call in list(self._async_calls):
            if call.task is not None and not call.task.done():
                call.task.cancel()

    def cancel_under(self, prefix: str) -> None:
        """Cancel the attempts under ``prefix`` (``"3.1."``): a cancelled branch.

        Queued ones never start and async ones are cancelled; one running in a
        thread or process goes on, and its outcome is dropped (nobody awaits it).
        """
        for call in self.ready:
            if call.key_text.startswith(prefix) and not call.future.done():
                call.future.cancel()
        for call in list(self._async_calls):
            task = call.task
            if (
                call.key_text.startswith(prefix)
                and task is not None
                and not task.done()
            ):
                task.cancel()

    async def drain(self, timeout: float) -> None:
        """Close, then wait (at most ``timeout`` seconds) for running attempts.

        An attempt that reports back in time hands its outcome to the effect
        waiting for it, which records it; one still running after that is
        abandoned: its request has no outcome, so a resume dispatches it again.
        """
        self.close()
        deadline = self.loop.time() + timeout
        while self.in_flight > 0 and self.loop.time() < deadline:
            # A fault path only: polling keeps the hot paths free of waiters.
            await asyncio.sleep(0.005)

    def _fault(self, exc: BaseException) -> None:
        """A loop callback failed: end the execution with ``exc``.

        Raised in a callback, it would reach asyncio's default handler, which
        logs it and carries on, and the run would wait forever.
        """
        self.close()
        if self._on_fault is None:
            raise exc
        self._on_fault(exc)

    # -- the pump ----------------------------------------------------------------

    def _pump(self) -> None:
        if self.closed:
            self._pump_scheduled = False
            return
        # Group commit: the first completion of a loop iteration schedules the
        # pump, and the wake-ups of the others, already queued, would land in
        # the next commit. So the pump steps back once behind the callbacks
        # queued now (asyncio's ready queue; a loop without one commits at
        # once): one commit, one fsync, for all of them. Once only, so a loop
        # that is never idle still commits every other iteration.
        if self._loop_ready and not self._deferred:
            self._deferred = True
            self.loop.call_soon(self._pump)
            return
        self._deferred = False
        self._pump_scheduled = False
        try:
            self._commit_and_start()
        except BaseException as exc:  # a failed commit (disk full …), above all
            self._fault(exc)

    def _commit_and_start(self) -> None:
        self._before_commit()
        # Write-ahead: commit before dispatching anything.
        self.journal.flush()
        self._after_commit()

    def _before_commit(self) -> None:
        feed = self.feed
        if feed is not None and not self.holding:
            # Before the commit: the requests of the branches it starts join
            # this commit and are dispatched in this turn.
            feed()

    def _after_commit(self) -> None:
        """Start what is ready: the journal's buffer has just been committed."""
        if self.journal.crashed or self.holding:
            return  # a (simulated) dead or a stopping process starts nothing
        wakes = self._wakes
        if wakes.open():
            try:
                self._start_ready()
            finally:
                wakes.close()
            wakes.run(self._fault)  # after the batch: see ``executors.Wakes``
        else:
            self._start_ready()

    def _start_ready(self) -> None:
        local: list[Call] = []
        remote: dict[int, tuple[cf.Executor, list[Call]]] = {}
        ready = self.ready
        # Slots are taken a batch at a time (one lock round trip per batch).
        # Inline tasks give theirs back at once, so the next batch may find
        # more; when none are left, Slots.give wakes this pump later.
        self._owed = 0
        try:
            while ready:
                slots = self.slots.take(self, len(ready))
                if not slots:
                    break
                while ready and slots:
                    call = ready.popleft()
                    if call.future.done():  # cancelled while queued
                        continue
                    slots -= 1
                    self._start(call, local, remote)
                # Unused (calls cancelled while queued) and given back.
                slots += self._owed
                self._owed = 0
                if slots:
                    self.slots.give(slots)
        finally:
            owed, self._owed = self._owed, -1
            if owed > 0:
                self.slots.give(owed)
            if self._inline_token is not None:
                _task_context.reset(self._inline_token)
                self._inline_token = None
        if self.closed:  # an inline task's interrupt closed it meanwhile
            for call in local:
                self._deliver(call, None)
            for _, calls in remote.values():
                for call in calls:
                    self._deliver(call, None)
            return
        if local:
            self._submit_chunks(self.executors.threads(), local, by_reference=False)
        for executor, calls in remote.values():
            self._submit_chunks(executor, calls, by_reference=True)
        if self._on_progress is not None:
            self._on_progress()

    def _start(
        self,
        call: Call,
        local: list[Call],
        remote: dict[int, tuple[cf.Executor, list[Call]]],
    ) -> None:
        """Start one attempt (it holds a slot); pool-bound ones are collected."""
        self.in_flight += 1
        self.dispatched += 1
        tdef = call.tdef
        if tdef.timeout is not None:
            call.timer = self.loop.call_later(tdef.timeout, self._timed_out, call)
        injected = None if self.hooks is None else injected_outcome(self.hooks, call)
        if injected is not None:
            self._finish(call, injected)
        elif tdef.is_async:
            # Eager: a task that never suspends completes here, like an inline
            # one (its completion joins the next commit); one that suspends
            # goes on as an ordinary Task. Added first: it may finish at once.
            self._async_calls.add(call)
            call.task = start_eager(self.loop, self._run_async(call))
        elif tdef.executor == "inline":
            converts = (tdef._plan or tdef.plan).converts
            if self.hooks is not None:  # testing: what runs in between may look
                try:
                    outcome = jobs.run_call(
                        tdef.fn,
                        call.args_bytes,
                        self.run_id,
                        call.key_text,
                        call.attempt,
                        tdef.retries + 1,  # max_attempts
                        converts,
                    )
                except BaseException as exc:  # run_call returns every Exception
                    outcome = (jobs.INTERRUPTED, exc)
                self._finish(call, outcome)
                return
            # run_call's task context, put back once after the batch (above):
            # nothing between two inline attempts reads it (no hooks here).
            context = _new_tuple(
                TaskContext,
                (self.run_id, call.key_text, call.attempt, tdef.retries + 1),
            )
            if self._inline_token is None:
                self._inline_token = _task_context.set(context)
            else:
                _task_context.set(context)
            try:
                outcome = jobs.run_attempt(tdef.fn, call.args_bytes, converts)
            except BaseException as exc:  # run_attempt returns every Exception
                outcome = (jobs.INTERRUPTED, exc)
            self._deliver(call, outcome)  # _finish's, without hooks
        else:
            executor, by_reference = self.executors.for_task(tdef)
            if by_reference:
                remote.setdefault(id(executor), (executor, []))[1].append(call)
            else:
                local.append(call)

    def _submit_chunks(
        self, executor: cf.Executor, calls: list[Call], *, by_reference: bool
    ) -> None:
        workers = getattr(executor, "_max_workers", 4) or 4
        # Spread over the workers: at least two chunks each.
        size = max(1, min(_MAX_CHUNK, len(calls) // (2 * workers)))
        slowest = 0.0 if not by_reference else None
        for call in calls:
            cost = self._task_cost.get(call.tdef.name)
            if cost is None or slowest is None:
                slowest = None
                break
            slowest = max(slowest, cost)
        if slowest is not None:
            # Every task here has been timed: make each chunk take about
            # _CHUNK_SECONDS. Tiny tasks then go hundreds to a job (each job
            # and its completion cost more than such a task), slow ones alone.
            size = max(
                1, min(_MAX_MEASURED_CHUNK, int(_CHUNK_SECONDS / max(slowest, 1e-9)))
            )
        for start in range(0, len(calls), size):
            chunk = calls[start : start + size]
            if any(c.tdef.timeout is not None for c in chunk) and len(chunk) > 1:
                # A timeout is per attempt: never queue one behind another.
                for call in chunk:
                    self._submit_chunk(executor, [call], by_reference)
            else:
                self._submit_chunk(executor, chunk, by_reference)

    def _submit_chunk(
        self, executor: cf.Executor, chunk: list[Call], by_reference: bool
    ) -> None:
        future: cf.Future[Any]
        if by_reference:
            items_r = [
                (c.tdef.ref, c.args_bytes, c.key_text, c.attempt, c.tdef.max_attempts)
                for c in chunk
            ]
            if self.traced:  # carry each attempt span's context (tracing.py)
                carriers = [getattr(c.tdef, "trace_carrier", None) for c in chunk]
                future = executor.submit(
                    jobs.run_traced_chunk, items_r, self.run_id, carriers
                )
            else:
                future = executor.submit(jobs.run_remote_chunk, items_r, self.run_id)
        else:
            items_l = [
                (
                    c.tdef.fn,
                    c.args_bytes,
                    c.key_text,
                    c.attempt,
                    c.tdef.retries + 1,  # max_attempts
                    (c.tdef._plan or c.tdef.plan).converts,
                )
                for c in chunk
            ]
            future = executor.submit(jobs.run_local_chunk, items_l, self.run_id)
        loop = self.loop
        slots = self.slots
        self._jobs.add(future)

        def done(f: cf.Future[Any]) -> None:
            try:
                loop.call_soon_threadsafe(self._chunk_done, chunk, f, not by_reference)
            except RuntimeError:
                # The loop has closed: the run was abandoned and nothing waits
                # for these attempts, but the engine-wide slots they hold must
                # come back, or later runs would starve.
                slots.give(len(chunk))

        future.add_done_callback(done)

    def _chunk_done(
        self, chunk: list[Call], future: cf.Future[Any], timed: bool
    ) -> None:
        """A pool job ended; ``timed`` jobs (local ones) also report their seconds."""
        wakes = self._wakes
        opened = wakes.open()
        try:
            self._job_done(chunk, future, timed)
        except BaseException as exc:
            self._fault(exc)
        finally:
            if opened:
                wakes.close()
        if opened:
            wakes.run(self._fault)

    def _job_done(self, chunk: list[Call], future: cf.Future[Any], timed: bool) -> None:
        self._jobs.discard(future)
        try:
            outcomes = future.result()
            if timed:
                outcomes, seconds = outcomes
                self._note_cost(chunk, seconds)
        except ExecutorUnavailable as exc:
            # Not the tasks' failure: record nothing for them; the run stops
            # with this error and a resume dispatches them again.
            for call in chunk:
                if not call.future.done():
                    call.future.set_exception(exc)
                self._deliver(call, None)
            return
        except cf.CancelledError:  # cancelled before it started (close)
            outcomes = [(jobs.NOT_RUN, None)] * len(chunk)
        except Exception as exc:  # the executor itself failed (a worker died)
            outcomes = [jobs.error_outcome(exc)] * len(chunk)
        except BaseException as exc:  # an interrupt, not the tasks' failure
            outcomes = [(jobs.INTERRUPTED, exc)] * len(chunk)
        hooks = self.hooks
        if hooks is not None and hooks.delay is not None:
            for call, outcome in zip(chunk, outcomes, strict=True):
                self._finish(call, outcome)
            return
        # The whole chunk at once: one slot hand-back, one pump.
        release = self._release
        for call, outcome in zip(chunk, outcomes, strict=True):
            if outcome[0] <= jobs.PAYLOAD_ERROR and call.timer is None:
                waiting = call.future  # _release's common case, inline
                if not waiting.done():
                    waiting.set_result(outcome)
            else:
                release(call, outcome)
        self.in_flight -= len(chunk)
        self.slots.give(len(chunk))
        self.schedule_pump()

    async def _run_async(self, call: Call) -> None:
        context = (self.run_id, call.key_text, call.attempt, call.tdef.retries + 1)
        # As jobs.run_call, but never put back: the context is the Task's own
        # copy, and once this coroutine ends nothing runs in it (a reset per
        # attempt was 1% of an async fan-out's effect).
        _task_context.set(_new_tuple(TaskContext, context))
        try:
            args = jf.decode_payload(call.args_bytes)
            tdef = call.tdef
            converts = (tdef._plan or tdef.plan).converts
            if converts:
                args = convert_args(converts, args)
            result = await tdef.fn(**args)
        except asyncio.CancelledError:
            self._finish(call, None)
            task = asyncio.current_task()
            if task is not None and not task.cancelling() and not self.closed:
                # Raised by the task itself, not a cancellation of ours: not
                # its failure (nothing is recorded), and no outcome will come.
                self._fault(cancelled_inside(call, self.run_id))
            raise
        except Exception as exc:
            self._finish(call, jobs.error_outcome(exc))
            return
        except BaseException as exc:  # KeyboardInterrupt, SystemExit …
            self._finish(call, (jobs.INTERRUPTED, exc))
            return
        try:
            outcome: jobs.Outcome = (jobs.OK, jf.encode_payload(result))
        except jf.FormatError as exc:
            outcome = (
                jobs.PAYLOAD_ERROR,
                f"the task's result cannot be journaled: {exc}",
            )
        if self.hooks is None:
            self._deliver(call, outcome)  # _finish's, without hooks
        else:
            self._finish(call, outcome)

    def _note_cost(self, chunk: list[Call], seconds: float) -> None:
        """Fold a chunk's time per task into each of its tasks' running cost."""
        per_task = seconds / len(chunk)
        costs = self._task_cost
        for name in {c.tdef.name for c in chunk}:
            old = costs.get(name)
            costs[name] = per_task if old is None else 0.7 * old + 0.3 * per_task

    def _finish(self, call: Call, outcome: jobs.Outcome | None) -> None:
        hooks = self.hooks
        if hooks is not None and hooks.delay is not None and outcome is not None:
            seconds = hooks.delay(call.key_text, call.tdef.name, call.attempt)
            if seconds > 0:
                # Deliver later: this is how a test makes branches finish in
                # any order it likes.
                self.loop.call_later(seconds, self._deliver, call, outcome)
                return
        self._deliver(call, outcome)

    def _deliver(self, call: Call, outcome: jobs.Outcome | None) -> None:
        self.in_flight -= 1
        if self._owed < 0:
            self.slots.give()
        else:
            self._owed += 1  # given back after this batch (_start_ready)
        if (
            outcome is not None
            and outcome[0] <= jobs.PAYLOAD_ERROR
            and call.timer is None
            and not call.future.done()
        ):
            # _release's common case (an outcome of the task, no timer).
            self._async_calls.discard(call)
            call.future.set_result(outcome)
        else:
            self._release(call, outcome)
        # Commit the completion soon, and start what was waiting for a slot.
        if not self._pump_scheduled:
            self.schedule_pump()

    def _release(self, call: Call, outcome: jobs.Outcome | None) -> None:
        """Hand an attempt's outcome to the effect waiting for it."""
        self._async_calls.discard(call)
        if call.timer is not None:
            call.timer.cancel()
        if outcome is not None and not call.future.done():
            if outcome[0] > jobs.PAYLOAD_ERROR:
                # Interrupted or never run: not an outcome of the task. The
                # attempt is left without one (a resume dispatches it again)
                # and an interrupt ends the execution.
                if outcome[0] == jobs.INTERRUPTED:
                    self._fault(outcome[1])
                return
            call.future.set_result(outcome)

    def _timed_out(self, call: Call) -> None:
        if call.future.done():
            return
        timeout = call.tdef.timeout
        call.future.set_result(
            (
                jobs.ERROR,
                (
                    "TimeoutError",
                    f"attempt exceeded the task's timeout of {timeout}s",
                    "",
                    _TIMEOUT_NAMES,
                ),
            )
        )
        if call.task is not None:
            call.task.cancel()
