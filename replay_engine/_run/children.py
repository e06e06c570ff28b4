"""``ctx.run_child``: a sub-run, executed by the same engine, awaited by its parent.

The parent's journal holds the child's start at the call's key (an
``EffectRequested`` of kind ``child`` whose args are the child's process,
inputs and explicit run id, JF-150) and then its outcome (JF-151), so the
parent replays the result from its own journal without reading the child.

Live, the call is decided in this order, each step safe to repeat after a
crash anywhere:

1. the child's run id (given, or derived from the parent's id and the key)
   is checked: a run of that id that is not this parent's child is refused
   before anything is recorded;
2. the request is recorded and committed before the child is created (and
   if a crash ever left a child without its parent's request, the child names
   this parent and key, so it is simply taken up again);
3. the engine (``ChildExecutor``, implemented by the API layer) creates the
   child, or resumes it when it exists and has not ended, and executes it in
   this event loop under its own run lock;
4. an ended child's outcome is journaled into the parent (``deliver``: one
   transaction, only if the key has none yet), and the process gets it;
   a child that waits (or that another process executes) makes this call
   wait: the parent stops ``waiting`` with the key pending.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import journal_format as jf
from journal_format import EFFECT

from .._store import children as _children
from .._store.payload import encode_or_refuse
from ..errors import ReplayEngineError, task_failure
from . import process_ref, waits
from .decisions import call_site
from .parallel import BranchAbandoned, Resolved
from .scope import Scope
from .state import ExecutionState


class ChildRunError(ReplayEngineError):
    """``ctx.run_child`` was given a run id it cannot use (nothing recorded)."""


class ChildExecutor(Protocol):
    """What the runtime needs from the engine to execute a child run."""

    async def execute_child(
        self,
        run_id: str,
        process: Callable[..., Any],
        inputs_bytes: bytes,
        link: tuple[str, str],
    ) -> str:
        """Create (or resume, if it exists) and execute the child; its status after.

        ``link`` is (parent run id, key text). ``"locked"`` when another
        process executes the child: the parent then waits for it.
        """


async def _raise(exc: BaseException) -> Any:
    raise exc


def run_child(
    state: ExecutionState,
    children: ChildExecutor | None,
    shared: dict[str, asyncio.Future[str]],
    key: bytes,
    scope: Scope,
    process: Any,
    inputs: Any,
    run_id: str | None,
) -> Awaitable[Any]:
    """``ctx.run_child`` at ``key``: replayed from the journal, or started live.

    ``shared`` maps the child run ids this execution is executing to their
    executions, so branches awaiting one child (by its run id) share it.
    """
    site = call_site(3)
    if not callable(process):
        raise TypeError(
            f"ctx.run_child at {site}: process must be an `async def process(inputs,"
            f" ctx)` function, not {type(process).__name__}"
        )
    name = process_ref.reference(process)
    process_ref.check_process(process, name)
    if run_id is not None:
        try:
            jf.check_run_id(run_id)
        except jf.FormatError as exc:
            raise ChildRunError(
                f"ctx.run_child({name}) at {site} in run {state.run_id!r}: {exc};"
                " nothing was recorded"
            ) from None
    inputs_bytes = encode_or_refuse(
        inputs,
        f"the inputs of ctx.run_child({name}) at {site}",
        "; nothing was recorded",
    )
    args_bytes = jf.encode_payload(
        {"process": name, "inputs": jf.decode_payload(inputs_bytes), "run_id": run_id}
    )
    address = jf.payload_ref(args_bytes)
    state.tick()
    entry = state.journal.answer(key, EFFECT, name, address, args_bytes)
    if entry is not None:
        if entry.result is not None:
            state.stats.replayed += 1
            value = state.recorded_value(state.journal.payload(entry.result), key)
            return Resolved(value)
        if entry.abandoned:
            return _raise(BranchAbandoned())
        if entry.error is not None:
            state.stats.replayed += 1
            error = entry.error
            return _raise(
                task_failure(
                    error.type,
                    error.message,
                    error.traceback,
                    key=jf.key_bytes_to_text(key),
                    task=name,
                )
            )
    child_id = run_id or _children.child_run_id(state.run_id, jf.key_bytes_to_text(key))
    return _live(
        state,
        children,
        shared,
        key,
        scope.prefix,  # now: a map's replayed branches reuse one Scope (parallel)
        name,
        process,
        (inputs_bytes, args_bytes, address),
        child_id,
        new=entry is None,
    )


async def _live(
    state: ExecutionState,
    children: ChildExecutor | None,
    shared: dict[str, asyncio.Future[str]],
    key: bytes,
    scope_prefix: bytes,
    name: str,
    process: Callable[..., Any],
    payloads: tuple[bytes, bytes, bytes],
    child_id: str,
    *,
    new: bool,
) -> Any:
    inputs_bytes, args_bytes, address = payloads
    key_text = jf.key_bytes_to_text(key)
    journal = state.journal
    state.check_live()
    if new:
        journal.check_new_key(key, scope_prefix, f"ctx.run_child({name})")
    if state.frozen:
        # Time travel: the child's outcome is not in this prefix.
        await waits.at_frontier(state, key, name, _children.CHILD_KIND, "child")
    if children is None:
        raise ChildRunError(
            f"ctx.run_child({name}) at key {key_text} of run {state.run_id!r}: this"
            " execution cannot start child runs (it is not executed by an Engine)"
        )
    store = journal.store
    record = store.get_run(child_id)
    if record is not None and record.child_of != state.run_id:
        owner = (
            f"a child of run {record.child_of!r}"
            if record.child_of
            else "a run of its own (not a child)"
        )
        raise ChildRunError(
            f"ctx.run_child({name}) at key {key_text} of run {state.run_id!r}: run"
            f" id {child_id!r} is taken by {owner}; give another run_id (or none:"
            " the default derives one from the parent and the key). Nothing was"
            " recorded for this call."
        )
    if new:
        state.record(
            jf.EffectRequested(
                key=key, task=name, kind=_children.CHILD_KIND, args=address
            ),
            jf.blobs_for(address, args_bytes),
        )
    # The request is committed before the child exists or its outcome is
    # journaled (the outcome must never precede it).
    journal.flush()
    running = shared.get(child_id)
    if running is None:
        running = state.loop.create_task(
            children.execute_child(
                child_id, process, inputs_bytes, (state.run_id, key_text)
            )
        )
        shared[child_id] = running
    # A child executing counts as a wait in progress, like a timer's sleep:
    # the parent is not quiet (waiting) while it runs.
    state.sleeping += 1
    try:
        status = await running
    except ReplayEngineError as exc:
        # Not the child's outcome (a divergence in it, a damaged journal, an
        # unknown process): the parent pauses with it, even if it catches it.
        state.fail(exc)
        raise
    finally:
        state.sleeping -= 1
        state.tick()
    outcome = _children.outcome_of(store, child_id, key) if status != "locked" else None
    if outcome is None:
        # The child waits (or another process executes it): so does the parent.
        await waits.wait_external(state, key)
        raise AssertionError("unreachable: a wait is ended only by stopping")
    held = _children.deliver(
        store, state.run_id, key, outcome, on_append=journal.note_append
    )
    held = held if held is not None else outcome
    if isinstance(held, jf.EffectCompleted):
        return state.recorded_value(journal.payload(held.result), key)
    assert isinstance(held, jf.EffectFailed)
    error = held.error
    raise task_failure(
        error.type, error.message, error.traceback, key=key_text, task=name
    )
