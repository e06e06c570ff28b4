"""``ctx.parallel.any`` (a race), and ``all``/``map`` with ``settled`` or ``fail_fast``.

A race runs its branches like ``parallel.all`` (scopes ``k.j``, driven eagerly)
until one *succeeds*; the others are then cancelled. The decision is journaled
(``race_won`` at the race's key, JF-140) in one transaction with an
``abandoned`` event for each open effect of the cancelled branches (so a late
post to one is refused), and a replay serves it from the journal: only the
winning branch is executed again, and the losers' recorded calls count as
reached. Without a recorded decision (the writer died between a branch's
completion and the decision) the race is decided again: branches start in
input order and the first to finish wins, so the lowest-index branch the
journal already completes wins. If every branch fails, the failure of the
lowest-index branch is raised, as ``parallel.all`` does.

Cancelling a branch: its coroutine is closed where it waits (nothing more is
recorded for it), its queued attempts never start, its async attempts are
cancelled, and attempts running in threads or processes are abandoned (their
outcomes are dropped), as a halted run's are.

``settled=True`` settles every branch and returns ``TaskFailed`` in place of
a failed branch's value; ``fail_fast=True`` cancels the siblings on the first
failure and raises it at once. Both keep ``parallel.all``'s keys.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, cast

import journal_format as jf

from .._store.outcomes import cancel_branches
from ..errors import ReplayEngineError, TaskFailed
from .backend import ContextBackend
from .decisions import divergence
from .feed import _continue
from .parallel import (
    _NO_ITEM,
    _PENDING,
    BranchAbandoned,
    _Failure,
    _first_step,
    _Group,
    run_group,
)
from .scope import Scope, current_scope
from .state import ExecutionState


def _take_key(state: ExecutionState) -> bytes:
    state.check_live()
    try:
        scope = current_scope.get()
    except LookupError:
        raise ReplayEngineError(
            "ctx was used outside its run: ctx methods may only be called while the"
            " engine executes the process (not from threads or after it returned)"
        ) from None
    return scope.next_key()


def _branch_scope(key: bytes, index: int) -> Scope:
    return Scope(
        key + jf.encode_component(index), jf.key_bytes_to_text(key) + ".", index
    )


def cancel_running(
    state: ExecutionState,
    group: _Group,
    reason: str,
    winner: int | None,
    failed: int | None = None,
) -> BaseException | None:
    """Stop ``group``: cancel its running branches and journal it (one commit).

    Every branch that has not finished is cancelled: the running ones here,
    and any an earlier execution started (their open effects are abandoned,
    their recorded calls count as reached). Called from a loop callback (a
    branch settling), so a failure to write is routed to the run
    (``state.fail``) and returned, to be raised by the group.
    """
    group.stopped = True
    for branch in group.branches.values():
        branch.abandon()
        group.running -= 1
    group.branches.clear()
    indices = [i for i, v in enumerate(group.results) if v is _PENDING and i != winner]
    prefixes = tuple(group.key + jf.encode_component(i) for i in indices)
    text = jf.key_bytes_to_text(group.key)
    journal = state.journal
    for index, prefix in zip(indices, prefixes, strict=True):
        state.dispatcher.cancel_under(f"{text}.{index}.")
        journal.visit_under(prefix)
    for waiting in [k for k in state.external if k.startswith(prefixes)]:
        state.external.pop(waiting).cancel()
        state.due.pop(waiting, None)
        state.parked_timers.discard(waiting)
    for stopped in [k for k in state.frontier if k.startswith(prefixes)]:
        del state.frontier[stopped]
    state.tick()
    if state.frozen or state.stopping:
        # Time travel writes nothing; an execution being stopped neither (a
        # resume decides again from what the journal holds).
        return None
    try:
        journal.flush()  # what the branches recorded, before it is cancelled
        if journal.crashed:
            return None  # a (simulated) dead process, maybe since that commit
        cancel_branches(
            journal.store,
            state.run_id,
            group.key,
            indices,
            reason,
            winner=winner,
            failed=failed,
            on_append=journal.note_append,
        )
    except BaseException as exc:
        state.fail(exc)
        return exc
    return None


class _Race(_Group):
    """The branches of one race: the first success decides."""

    def __init__(self, state: ExecutionState, key: bytes, count: int) -> None:
        super().__init__(key, count, None, state.tick)
        self.state = state
        self.winner: int | None = None
        self.error: BaseException | None = None

    def _settle(self, index: int, value: Any) -> None:
        if self.winner is not None:
            return
        if isinstance(value, _Failure):
            self.failures[index] = value.exc
            self.results[index] = None
            self.remaining -= 1
            if self.remaining == 0:
                self._wake()
            return
        self.winner = index
        self.results[index] = value
        text = jf.key_bytes_to_text(self.key)
        self.error = cancel_running(
            self.state, self, f"race {text} was won by branch {index}", index
        )
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def decided_failure(self) -> int | None:
        return None  # a failed branch never decides a race: another may win


async def run_any(
    backend: ContextBackend, makers: Sequence[Callable[[], Any]]
) -> tuple[int, Any]:
    """``ctx.parallel.any``: ``(index, value)`` of the first branch to succeed."""
    state = cast(ExecutionState, backend)  # the runtime: ctx's backend is one
    key = _take_key(state)
    if not makers:
        raise ValueError("ctx.parallel.any needs at least one thunk")
    state.tick()
    entry = state.journal.answer(key, jf.RACE)
    if entry is not None:
        return await _replay_winner(state, key, makers, entry)
    race = _Race(state, key, len(makers))
    for index, make in enumerate(makers):
        if race.winner is not None:
            break  # decided while starting: the rest never start
        race.start(index, _branch_scope(key, index), make, _NO_ITEM)
    if race.winner is None and race.remaining:
        race.waiter = state.loop.create_future()
        try:
            await race.waiter
        except BaseException:
            race.cancel()
            raise
    if race.error is not None:
        raise race.error
    if race.winner is None:
        real = [
            i for i, e in race.failures.items() if not isinstance(e, BranchAbandoned)
        ]
        raise race.failures[min(real or race.failures)]
    return race.winner, race.results[race.winner]


async def _replay_winner(
    state: ExecutionState,
    key: bytes,
    makers: Sequence[Callable[[], Any]],
    entry: jf.CallEntry,
) -> tuple[int, Any]:
    """A decided race: run the winning branch only; the losers count as reached."""
    winner = entry.value
    if not isinstance(winner, int) or not 0 <= winner < len(makers):
        raise state.journal.remember(
            divergence(
                state.run_id,
                key,
                entry.seq,
                recorded=f"a race won by branch {winner!r}",
                replayed=f"ctx.parallel.any of {len(makers)} branches",
            )
        )
    value = await _run_only(state, key, winner, len(makers), makers[winner], _NO_ITEM)
    if isinstance(value, _Failure):
        raise value.exc
    return winner, value


async def _run_only(
    state: ExecutionState,
    key: bytes,
    index: int,
    count: int,
    make: Callable[..., Any],
    item: Any,
) -> Any:
    """Run branch ``index`` of the group at ``key`` alone; the others count as reached.

    Returns its value, or a ``_Failure``.
    """
    for other in range(count):
        if other != index:
            state.journal.visit_under(key + jf.encode_component(other))
    context = contextvars.copy_context()
    done, value, pending = context.run(
        _first_step, _branch_scope(key, index), make, item
    )
    if not done:
        coro, first = pending
        value = await state.loop.create_task(_continue(coro, first), context=context)
    return value


class _SettleGroup(_Group):
    """``all``/``map`` with ``settled`` (failures returned) and/or ``fail_fast``."""

    def __init__(
        self,
        state: ExecutionState,
        settled: bool,
        fail_fast: bool,
        key: bytes,
        count: int,
        limit: int | None,
        on_activity: Callable[[], None],
    ) -> None:
        super().__init__(key, count, limit, on_activity)
        self.state = state
        self.settled = settled
        self.fail_fast = fail_fast
        self.first_failure: int | None = None
        self.error: BaseException | None = None

    def _settle(self, index: int, value: Any) -> None:
        if self.stopped:
            return
        super()._settle(index, value)
        if not (self.fail_fast and isinstance(value, _Failure)):
            return
        if isinstance(value.exc, BranchAbandoned):
            return  # cancelled earlier (replayed): not the failure that decides
        if self.state.stopping:
            return  # the execution stops (its waits are cancelled): no failure
        if self.settled and isinstance(value.exc, TaskFailed):
            return  # returned, not raised: nothing to fail fast for
        self.first_failure = index
        text = jf.key_bytes_to_text(self.key)
        self.error = cancel_running(
            self.state,
            self,
            f"parallel group {text} failed fast at branch {index}",
            None,
            index,
        )
        self.remaining = 0
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def decided_failure(self) -> int | None:
        return None if self.settled or self.fail_fast else super().decided_failure()

    def outcome(self) -> list[Any]:
        if self.error is not None:
            raise self.error
        if self.first_failure is not None:
            raise self.failures[self.first_failure]
        if not self.settled:
            return super().outcome()
        raised = {
            i: e
            for i, e in self.failures.items()
            if not isinstance(e, TaskFailed | BranchAbandoned)
        }
        if raised:
            raise raised[min(raised)]
        results = self.results
        for i, exc in self.failures.items():
            results[i] = exc
        return results


async def _replay_failure(
    state: ExecutionState,
    key: bytes,
    makers: Sequence[Callable[[], Any]] | Callable[[Any], Any],
    items: Sequence[Any] | None,
    entry: jf.CallEntry,
) -> list[Any]:
    """A group that failed fast: run the failing branch only, raise its failure.

    The siblings it cancelled are not started again (their recorded calls
    count as reached), so one that was cancelled on a timer records nothing.
    """
    count = len(items) if items is not None else len(makers)  # type: ignore[arg-type]
    index = entry.value
    if isinstance(index, int) and 0 <= index < count:
        if items is None:
            make, item = makers[index], _NO_ITEM  # type: ignore[index]
        else:
            make, item = makers, items[index]
        value = await _run_only(state, key, index, count, make, item)
        if isinstance(value, _Failure):
            raise value.exc
        replayed = f"branch {index} of {count} succeeded"
    else:
        replayed = f"a fail-fast group of {count} branches"
    raise state.journal.remember(
        divergence(
            state.run_id,
            key,
            entry.seq,
            recorded=f"a fail-fast group that failed at branch {index!r}",
            replayed=replayed,
        )
    )


def run_settling(
    backend: ContextBackend,
    key: bytes,
    makers: Sequence[Callable[[], Any]] | Callable[[Any], Any],
    items: Sequence[Any] | None,
    limit: int | None,
    *,
    settled: bool,
    fail_fast: bool,
) -> Coroutine[Any, Any, list[Any]]:
    """``parallel.all``/``map`` with ``settled`` and/or ``fail_fast``."""
    if settled and fail_fast:
        raise ValueError(
            "settled=True returns failures and fail_fast=True raises the first one:"
            " ask for one of them"
        )
    state = cast(ExecutionState, backend)
    if fail_fast:
        # The group's key holds its decision once it failed fast (JF-144); the
        # caller took the key without asking (``group_key(..., decided=True)``).
        state.tick()
        entry = state.journal.answer(key, jf.FAIL_FAST)
        if entry is not None:
            return _replay_failure(state, key, makers, items, entry)

    def make(
        key: bytes, count: int, limit: int | None, tick: Callable[[], None]
    ) -> _Group:
        return _SettleGroup(state, settled, fail_fast, key, count, limit, tick)

    return run_group(
        key, makers, items, limit, state.tick, state.groups, make, feed=state.feed
    )
