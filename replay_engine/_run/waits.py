"""Waiting: external effects, signals, durable timers, backoff, frontier stops.

A call that cannot be answered in this execution (an external effect nobody
posted yet, a parked timer, a time-travel replay's call past its prefix)
parks on a future in ``state.external`` that only stopping the execution
resolves; the quiet check then finds the run waiting. Time waits (timers and
retry backoff) go through the testing hooks' ``sleep`` when there is one, so a
test decides how long they really take.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import journal_format as jf

from .._store.outcomes import bind_signal
from .._store.posts import expire
from ..errors import JournalCorruptError, JournalWriteError, task_failure
from . import history
from .decisions import call_site
from .parallel import BranchAbandoned
from .quiet import schedule_quiet_check
from .state import ExecutionState, Stopped
from .stats import FrontierCall
from .tasks import TaskDef


async def external_result(
    state: ExecutionState, tdef: TaskDef[..., Any], key: bytes, deadline_ns: int | None
) -> Any:
    """Wait for an external effect's result; it arrives in a later execution."""
    journal = state.journal
    if tdef.kind == "signal":
        bound = _take_signal(state, tdef.name, key)
        if bound is not None:
            return _outcome_value(state, tdef, key, bound)
    if deadline_ns is not None and state.clock_ns() >= deadline_ns:
        # Commit the request first: its outcome must never precede it.
        journal.flush()
        try:
            outcome = expire(
                journal.store,
                state.run_id,
                key,
                f"no result within {tdef.timeout}s (deadline {deadline_ns} ns)",
                on_append=journal.note_append,
            )
        except (JournalCorruptError, JournalWriteError) as exc:
            # The run ends with it, even if the process catches it.
            state.fail(exc)
            raise
        state.tick()
        assert outcome is not None
        return _outcome_value(state, tdef, key, outcome)
    if deadline_ns is not None:
        state.due[key] = deadline_ns
    await wait_external(state, key)


def _outcome_value(
    state: ExecutionState, tdef: TaskDef[..., Any], key: bytes, outcome: jf.Event
) -> Any:
    """The value of a wait's recorded outcome, or its failure raised."""
    if isinstance(outcome, jf.EffectCompleted):
        return state.recorded_value(
            state.journal.store.get_payload(outcome.result), key
        )
    if isinstance(outcome, jf.EffectAbandoned):
        raise BranchAbandoned()
    assert isinstance(outcome, jf.EffectFailed)
    error = outcome.error
    raise task_failure(
        error.type,
        error.message,
        error.traceback,
        key=jf.key_bytes_to_text(key),
        task=tdef.name,
    )


def _take_signal(state: ExecutionState, name: str, key: bytes) -> jf.Event | None:
    """Bind the oldest unconsumed signal ``name`` to the wait at ``key``.

    In one transaction with a check (``bind_signal``): an error posted to the
    wait's key meanwhile (JF-142) wins, and the signal is left for another wait.
    """
    journal = state.journal
    for seq, signal_name, _address in journal.signals:
        if signal_name == name and seq not in journal.consumed_signals:
            journal.flush()  # the wait's request first: its outcome must follow it
            try:
                outcome = bind_signal(
                    journal.store, state.run_id, key, seq, on_append=journal.note_append
                )
            except (JournalCorruptError, JournalWriteError) as exc:
                state.fail(exc)
                raise
            if getattr(outcome, "signal_seq", None) == seq:
                journal.consumed_signals.add(seq)
            state.tick()
            return outcome
    return None


async def run_timer(
    state: ExecutionState,
    key: bytes,
    scope_prefix: bytes,
    due_ns: int | None,
    seconds: float,
) -> None:
    """A durable timer: record its due time (when new), sleep what is left, fire."""
    state.check_live()
    if state.frozen:
        await at_frontier(
            state, key, "ctx.sleep", "timer", "timer", lambda: "ctx.sleep()"
        )
    if due_ns is None:
        state.journal.check_new_key(key, scope_prefix, "ctx.sleep()")
        due_ns = state.clock_ns() + int(seconds * 1e9)
        state.record(jf.TimerStarted(key=key, due_ns=due_ns))
    remaining = (due_ns - state.clock_ns()) / 1e9
    if remaining > 0 and state.park_timers:
        state.parked_timers.add(key)
        state.due[key] = due_ns
        await wait_external(state, key)
    if remaining > 0:
        await hooked_sleep(state, key, remaining)
    state.record(jf.TimerFired(key=key))


async def hooked_sleep(state: ExecutionState, key: bytes, seconds: float) -> None:
    """Sleep ``seconds`` for the call at ``key``, or what the hooks' ``sleep`` says.

    Timers and retry backoff both wait here, so a test given hooks controls
    every wait of the engine (a deterministic test sleeps for 0 s).
    """
    hooks = state.hooks
    if hooks is not None and hooks.sleep is not None:
        seconds = hooks.sleep(jf.key_bytes_to_text(key), seconds)
    state.sleeping += 1
    try:
        await asyncio.sleep(seconds)
    finally:
        state.sleeping -= 1
        state.tick()


async def rest_of_backoff(state: ExecutionState, key: bytes, failed: int) -> None:
    """Wait what is left of the backoff after attempt ``failed`` of ``key``.

    Only a resume gets here (the call was in flight when an execution ended):
    if that execution died during the wait between two attempts, the next
    attempt still waits until the recorded wait is over (from the recorded
    ``attempt_failed``'s time and ``retry_in``), so a crash does not turn a
    backoff, say for a rate limit, into an immediate retry. An index lookup
    and one event read, on a path a run takes once per crash, never on replay.
    """
    store = state.journal.store
    for seq in reversed(store.seqs_for_key(state.run_id, key)):
        (stored,) = store.read_events(state.run_id, seq, seq + 1)
        event = stored.event
        if isinstance(event, jf.AttemptFailed) and event.attempt == failed:
            if event.retry_in > 0:
                due_ns = stored.envelope.at + int(event.retry_in * 1e9)
                left = min(event.retry_in, (due_ns - time.time_ns()) / 1e9)
                if left > 0:
                    await hooked_sleep(state, key, left)
            return


async def at_frontier(
    state: ExecutionState,
    key: bytes,
    task: str,
    kind: str,
    reason: str,
    describe: Callable[[], str] | None = None,
) -> None:
    """A time-travel replay reached a call it cannot answer: block this branch.

    Against a complete history that is a divergence instead (``history``);
    ``describe`` says what the call is, for its message.
    """
    site = call_site(3)
    history.past_the_end(
        state.journal, key, reason, describe() if describe else task, site
    )
    state.frontier[key] = FrontierCall(
        key=jf.key_bytes_to_text(key), task=task, kind=kind, reason=reason, site=site
    )
    await wait_external(state, key)


def stop_at_frontier(state: ExecutionState, key: bytes, task: str, kind: str) -> None:
    """A synchronous call (``ctx.now()`` …) past the prefix: end this branch."""
    site = call_site(3)
    history.past_the_end(state.journal, key, "new call", f"{task}()", site)
    state.frontier[key] = FrontierCall(
        key=jf.key_bytes_to_text(key),
        task=task,
        kind=kind,
        reason="new call",
        site=site,
    )
    schedule_quiet_check(state)
    raise Stopped


async def wait_external(state: ExecutionState, key: bytes) -> None:
    """Block until the execution stops (the run is then waiting on ``key``)."""
    future: asyncio.Future[None] = state.loop.create_future()
    state.external[key] = future
    state.tick()
    schedule_quiet_check(state)
    await future  # resolved only when the run is stopped as waiting
