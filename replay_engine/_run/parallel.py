"""``ctx.parallel.all`` and ``ctx.parallel.map``: branches with stable keys.

Each branch runs in its own scope (``k.j``) and its own copy of the context,
so its calls get keys from its place in the program, never from timing. Every
branch's context is a copy of the one the group was called in, whichever
sibling's completion starts it. A branch whose function returns one fresh
``ctx.task`` call reads neither again (the call took its key and carries it),
so such branches share one scope and context, set again for each (``refill``);
a branch that goes on in its own (any other coroutine or awaitable) or changed
a context variable keeps it, and the next branches get a new one.

Branches are driven *eagerly*: a branch's coroutine is started synchronously
and becomes an asyncio Task only if it actually suspends. On replay nearly
every branch completes without suspending (its results come from the
journal), so replaying a 100k-branch map creates no Tasks at all; creating one
Task per branch costs several times the journal lookup it wraps.

Branches start *lazily*, in input order: a group starts its next branch
only while the run's dispatcher has room (``Feed``: fewer than ``window``
attempts queued or executing). A 500k-branch map therefore holds a window of
suspended branches, not 500k of them; a branch that has not started is only
its index. Room is counted in dispatched attempts alone, never in started
branches: a branch waiting on an external effect, a timer or a sub-run holds
no room, so every branch still reaches its first effect before the run can
count as waiting, and the same branches start as when all started at once.

Outcome rules, the same whatever the completion order: every branch is
settled; results come back in input order; if any branch failed, the failure
of the lowest-index branch is raised (its siblings' completions stay recorded).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import (
    Awaitable,
    Callable,
    Coroutine,
    Generator,
    Iterable,
    Sequence,
)
from types import CoroutineType
from typing import Any, TypeVar

from journal_format import encode_component, key_bytes_to_text
from journal_format._keys import COMPONENTS

from ..errors import ThunkRequired
from .feed import Feed, _continue
from .replay_batch import NO_BRANCH, replay_run
from .scope import Scope, current_scope

T = TypeVar("T")
U = TypeVar("U")

_PENDING = object()
_Future = asyncio.Future
_NO_ITEM = object()


class Resolved:
    """An awaitable that already has its value: a replayed ``ctx.task``.

    ``await`` on it returns the value at once; the branch driver recognises it
    and takes the value without driving a coroutine at all (the common
    ``lambda item: ctx.task(...)`` branch, replayed, costs no send and no
    StopIteration).
    """

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, Any, Any]:
        return self.value
        yield  # type: ignore[unreachable]  # a generator that never suspends


class BranchAbandoned(BaseException):
    """Internal: this branch waits on an effect that was abandoned.

    Raised only when a lower-index sibling has failed, so the group's outcome
    (that failure) no longer depends on this branch.
    """


async def _await_any(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


class _Branch:
    """A suspended branch, driven straight from the futures it awaits.

    A branch waiting on an effect yields the asyncio Future of that effect;
    instead of wrapping the branch in a Task (whose creation, first step and
    completion each cost a scheduling hop), the branch resumes from that
    future's done-callback, in its own context. Anything else it yields (a
    bare ``yield``, a foreign awaitable) hands it over to a real Task.
    """

    __slots__ = ("context", "coro", "group", "index", "task", "waiting")

    def __init__(
        self,
        group: _Group,
        index: int,
        coro: Coroutine[Any, Any, Any],
        context: contextvars.Context,
    ) -> None:
        self.group = group
        self.index = index
        self.coro: Coroutine[Any, Any, Any] | None = coro
        self.context = context
        self.waiting: asyncio.Future[Any] | None = None
        self.task: asyncio.Task[Any] | None = None

    def wait_on(self, yielded: Any) -> None:
        if isinstance(yielded, asyncio.Future) and yielded._asyncio_future_blocking:
            yielded._asyncio_future_blocking = False  # as asyncio's Task does
            self.waiting = yielded
            # The branch itself is the callback (``__call__``): no bound
            # method per suspended branch.
            yielded.add_done_callback(self, context=self.context)
            return
        assert self.coro is not None
        task = asyncio.get_running_loop().create_task(
            _continue(self.coro, yielded), context=self.context
        )
        self.task = task
        task.add_done_callback(self._task_done)

    def _wake(self, _future: asyncio.Future[Any]) -> None:
        self.waiting = None
        coro = self.coro
        if coro is None:  # abandoned meanwhile
            return
        try:
            yielded = coro.send(None)
        except StopIteration as stop:
            group = self.group
            if group.plain and group.remaining > 1:
                # branch_done's common case, inline: once per fan-out branch.
                group.running -= 1
                del group.branches[self.index]
                group.results[self.index] = stop.value
                group.remaining -= 1
                group.on_activity()
                if group.refill is not None:
                    group.refill()
            else:
                group.branch_done(self.index, stop.value)
        except BaseException as exc:  # the branch's failure, whatever it is
            self.group.branch_done(self.index, _Failure(exc))
        else:
            self.wait_on(yielded)

    __call__ = _wake  # the done-callback of the future it waits on

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            value: Any = _Failure(asyncio.CancelledError())
        else:
            exc = task.exception()
            value = _Failure(exc) if exc is not None else task.result()
        self.group.branch_done(self.index, value)

    def cancel(self) -> None:
        """Cancel it: the awaited future raises CancelledError inside the branch."""
        if self.task is not None:
            self.task.cancel()
        elif self.waiting is not None:
            self.waiting.cancel()

    def abandon(self) -> None:
        """Drop it without settling through the group (the group settles it)."""
        if self.task is not None:
            self.task.remove_done_callback(self._task_done)
            self.task.cancel()
        else:
            if self.waiting is not None:
                self.waiting.remove_done_callback(self)
            if self.coro is not None:
                self.coro.close()
        self.coro = None


class _Group:
    """The branches of one parallel call, settling into one result list."""

    def __init__(
        self, key: bytes, count: int, limit: int | None, on_activity: Callable[[], None]
    ) -> None:
        self.key = key
        self.results: list[Any] = [_PENDING] * count
        self.failures: dict[int, BaseException] = {}
        self.remaining = count
        self.limit = limit
        self.running = 0
        self.branches: dict[int, _Branch] = {}
        self.waiter: asyncio.Future[None] | None = None
        self.on_activity = on_activity
        self.refill: Callable[[], None] | None = None
        self.stopped = False
        """The outcome is decided (a race won, a fail-fast failure): start no more."""
        self.plain = type(self) is _Group
        """Settles by ``_Group``'s own rules (subclasses override ``_settle``)."""

    def start(
        self,
        index: int,
        scope: Scope,
        make: Callable[..., Any],
        item: Any,
        context: contextvars.Context | None = None,
    ) -> None:
        """Start branch ``index``: run it until it first suspends, or to its end.

        ``context``: the branch's own context (a copy of the group's parent's);
        by default a copy of the current one.
        """
        if context is None:
            context = contextvars.copy_context()
        done, value, pending = context.run(_first_step, scope, make, item)
        self.started(index, context, done, value, pending)

    def started(
        self,
        index: int,
        context: contextvars.Context,
        done: bool,
        value: Any,
        pending: Any,
    ) -> None:
        """Branch ``index`` ran its first step (``_first_step``'s answer)."""
        if done:
            self._settle(index, value)
            return
        coro, first = pending
        self.running += 1
        branch = _Branch(self, index, coro, context)
        self.branches[index] = branch
        branch.wait_on(first)

    def branch_done(self, index: int, value: Any) -> None:
        """A suspended branch finished (``value`` may be a ``_Failure``)."""
        self.running -= 1
        del self.branches[index]
        if self.plain and self.remaining > 1 and type(value) is not _Failure:
            self.results[index] = value  # _settle's common case (fan-out)
            self.remaining -= 1
        else:
            self._settle(index, value)
        self.on_activity()
        # Only here, never from _settle: an eager branch settles inside refill's
        # own loop, and re-entering it would recurse once per branch.
        if self.refill is not None and self.remaining:
            self.refill()

    def _settle(self, index: int, value: Any) -> None:
        if isinstance(value, _Failure):
            self.failures[index] = value.exc
            self.results[index] = None
        else:
            self.results[index] = value
        self.remaining -= 1
        if self.remaining == 0 and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def outcome(self) -> list[Any]:
        real = [
            i for i, e in self.failures.items() if not isinstance(e, BranchAbandoned)
        ]
        if real:
            raise self.failures[min(real)]
        if self.failures:
            raise self.failures[min(self.failures)]
        return self.results

    def decided_failure(self) -> int | None:
        """The failing branch that decides the outcome whatever the rest return.

        That is the lowest-index failure, if every unsettled branch has a
        higher index (so none of them can change which failure is raised).
        """
        real = [
            i for i, e in self.failures.items() if not isinstance(e, BranchAbandoned)
        ]
        if not real or not self.branches:
            return None
        lowest = min(real)
        return lowest if lowest < min(self.branches) else None

    def unsettled_prefixes(self) -> list[bytes]:
        """Key prefixes of the branches still running."""
        return [self.key + encode_component(i) for i in sorted(self.branches)]

    def abandon_rest(self) -> None:
        """Settle every unsettled branch as abandoned (their work is dropped)."""
        for index, branch in sorted(self.branches.items()):
            branch.abandon()
            self.running -= 1
            self._settle(index, _Failure(BranchAbandoned()))
        self.branches.clear()

    def cancel(self) -> None:
        for branch in list(self.branches.values()):
            branch.cancel()


class _Failure:
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


# The code of the runtime's coroutine for one fresh ``ctx.task`` (the
# runtime registers it: this module cannot import the runtime). A branch whose
# function returned such a coroutine holds no scope and no context variable
# that anything reads again: the call took its key, and the coroutine carries
# it. So such branches share one scope and one context (see ``refill``).
one_effect_codes: list[Any] = []


def _first_step(
    scope: Scope, make: Callable[..., Any], item: Any
) -> tuple[bool, Any, Any]:
    """Run in the branch's own context: set its scope, call it, drive one step."""
    current_scope.set(scope)
    try:
        value = make() if item is _NO_ITEM else make(item)
    except BaseException as exc:
        return True, _Failure(exc), None
    return _next_step(value)


def _next_step(value: Any) -> tuple[bool, Any, Any]:
    """The rest of :func:`_first_step`, on what the branch's function returned."""
    coro: Coroutine[Any, Any, Any]
    kind = type(value)
    if kind is Resolved:
        return True, value.value, None
    if kind is CoroutineType or inspect.iscoroutine(value):
        coro = value
    elif inspect.isawaitable(value):
        coro = _await_any(value)
    else:
        return True, value, None
    try:
        first = coro.send(None)
    except StopIteration as stop:
        return True, stop.value, None
    except BaseException as exc:
        return True, _Failure(exc), None
    return False, None, (coro, first)


async def run_group(  # noqa: PLR0915 (the replay loop of a map is unrolled: see refill)
    key: bytes,
    makers: Sequence[Callable[[], Any]] | Callable[[Any], Any],
    items: Sequence[Any] | None,
    limit: int | None,
    on_activity: Callable[[], None],
    active: set[_Group],
    make_group: Callable[[bytes, int, int | None, Callable[[], None]], _Group]
    | None = None,
    feed: Feed | None = None,
) -> list[Any]:
    """Run branches as the group at ``key``; see the module doc.

    While it waits, the group is in ``active``, so the runtime can settle it
    early when its outcome is already decided (see ``decided_failure``).
    ``make_group`` builds a group with other outcome rules (``settle_group``).
    ``feed``: start branches only while the dispatcher has room (lazy start).
    """
    # parallel.all: one thunk per branch; parallel.map: one function, one item
    # per branch (no per-item closure).
    count = len(items) if items is not None else len(makers)  # type: ignore[arg-type]
    group = (make_group or _Group)(key, count, limit, on_activity)
    if not count:
        return []
    text = key_bytes_to_text(key) + "."
    next_index = 0
    if feed is not None:
        dispatcher, window, hungry = feed.dispatcher, feed.window, feed.hungry
        queued = dispatcher.ready
    # A plain group's branch answered without suspending (a replayed branch:
    # the whole replay of a map) is settled right here, without the group's
    # two method calls per branch; other groups settle by their own rules.
    plain, results, branches = group.plain, group.results, group.branches
    copy_context, set_scope = contextvars.copy_context, current_scope.set
    new = object.__new__
    # A plain group's branches run their function in a shared context whose
    # scope is set again for each branch (a field write, not a context copy
    # and a ContextVar.set: 3% of a fresh effect). A branch that goes on in its
    # context afterwards (any coroutine but one fresh ctx.task, a foreign
    # awaitable) or changed a context variable keeps the pair as its own, and
    # the next branch gets a new one: every branch still runs in a context and
    # scope no sibling touches, as if each had had its own from the start.
    # Each pair is a copy of the context the group was called in (``base``),
    # whichever branch's wake-up starts the next branches.
    one_effect = one_effect_codes[0] if one_effect_codes else None
    base = copy_context()
    shared: contextvars.Context | None = None
    shared_scope: Scope | None = None
    pristine: contextvars.Context | None = None

    def refill() -> None:  # noqa: PLR0915 (unrolled: the per-branch hot loop)
        nonlocal next_index, shared, shared_scope, pristine
        # After a branch answered from the journal (a Resolved: one ctx call,
        # replayed) nothing was dispatched, so the room is as it was.
        roomy = False
        while (
            next_index < count
            and (limit is None or group.running < limit)
            and not group.stopped
        ):
            # Inline Feed.room(): this loop is the replay path of a map, too.
            if (
                not roomy
                and feed is not None
                and len(queued) + dispatcher.in_flight >= window
            ):
                hungry[group] = None  # the next pump starts more
                return
            index = next_index
            next_index += 1
            if not plain:
                # Scope(key + encode_component(index), text, index), inlined.
                scope = new(Scope)
                part = COMPONENTS[index] if index < 65536 else None
                scope.prefix = key + (part or encode_component(index))
                scope._text, scope._branch = text, index
                scope.next_index, scope.logs_at = 0, None
                if items is None:
                    make, item = makers[index], _NO_ITEM  # type: ignore[index]
                else:
                    make, item = makers, items[index]
                group.start(index, scope, make, item, base.copy())
                continue
            # _first_step, unrolled: the shared context (made when none is
            # free) has its scope set for the branch and runs its call.
            if shared is None:
                shared = base.copy()
                shared_scope = new(Scope)
                shared.run(set_scope, shared_scope)
                pristine = shared.copy()  # the same variables: == is identity
            assert shared_scope is not None and pristine is not None
            context, scope = shared, shared_scope
            error: BaseException | None = None
            if (roomy or index == 0) and items is not None and group.remaining > 1:
                # A map's replayed branches, in one loop (replay_batch); the
                # first other one comes back called, for the path below.
                index, value, error = shared.run(
                    replay_run,
                    group,
                    scope,
                    shared,
                    pristine,
                    key,
                    text,
                    makers,  # type: ignore[arg-type]  # a map: one function
                    items,
                    index,
                    Resolved,
                )
                next_index = index + 1
                if value is NO_BRANCH:  # settled them all: the loop checks on
                    next_index, roomy = index, True
                    continue
            else:
                # Scope(key + encode_component(index), text, index), inlined.
                part = COMPONENTS[index] if index < 65536 else None
                scope.prefix = key + (part or encode_component(index))
                scope._text, scope._branch = text, index
                scope.next_index, scope.logs_at = 0, None
                try:
                    if items is None:
                        value = context.run(makers[index])  # type: ignore[index]
                    else:
                        value = context.run(makers, items[index])  # type: ignore[arg-type]
                except BaseException as exc:
                    error = exc
            if error is not None:
                shared = None  # kept by the settled branch (nothing reads it)
                group.started(index, context, True, _Failure(error), None)
                continue
            if not (
                scope.next_index <= 1
                and (
                    type(value) is Resolved
                    or (type(value) is CoroutineType and value.cr_code is one_effect)
                    or not inspect.isawaitable(value)
                )
                and context == pristine
            ):
                shared = None  # this branch's own from now on (module doc)
            if type(value) is Resolved and group.remaining > 1:
                results[index] = value.value  # a replayed call: _settle's common case
                group.remaining -= 1
                roomy = True
                continue
            roomy = False
            pending: Any
            if shared is not None and type(value) is CoroutineType:
                # One fresh ctx.task (kept the pair above): _next_step's
                # send, without its Python frame.
                try:
                    done, pending = False, (value, context.run(value.send, None))
                except StopIteration as stop:
                    done, value, pending = True, stop.value, None
                except BaseException as exc:  # the branch's failure
                    done, value, pending = True, _Failure(exc), None
            else:
                done, value, pending = context.run(_next_step, value)
            if done and type(value) is not _Failure and group.remaining > 1:
                results[index] = value
                group.remaining -= 1
            elif done:
                group._settle(index, value)
            else:
                # group.started's suspended case, inline (a fresh fan-out's
                # every branch).
                coro, first = pending
                group.running += 1
                if shared is not None:
                    # A fresh ctx.task's coroutine goes on in a copy of the
                    # shared context: its wake-up may start the next branches
                    # in the shared one, which cannot be entered twice.
                    context = pristine
                branch = _Branch(group, index, coro, context)
                branches[index] = branch
                if type(first) is _Future and first._asyncio_future_blocking:
                    # wait_on's common case, inline (an effect's future)
                    first._asyncio_future_blocking = False
                    branch.waiting = first
                    first.add_done_callback(branch, context=context)
                else:
                    branch.wait_on(first)

    group.refill = refill
    refill()
    if group.remaining:
        await _settled(group, active, feed)
    return group.outcome()


async def _settled(group: _Group, active: set[_Group], feed: Feed | None) -> None:
    """Wait until every branch of ``group`` has settled."""
    loop = asyncio.get_running_loop()
    group.waiter = loop.create_future()
    active.add(group)
    try:
        await group.waiter
    except BaseException:
        group.stopped = True  # cancelled: start no more branches
        group.cancel()
        raise
    finally:
        active.discard(group)
        if feed is not None:
            feed.hungry.pop(group, None)


def check_thunks(thunks: Iterable[Any]) -> list[Callable[[], Any]]:
    """Refuse awaitables where thunks are expected (seed Pitfall 1)."""
    items = list(thunks)
    bad = [i for i, t in enumerate(items) if not callable(t)]
    if bad:
        for item in items:
            if inspect.iscoroutine(item):
                item.close()  # never awaited, never recorded
        first = items[bad[0]]
        raise ThunkRequired(
            f"ctx.parallel.all expects thunks (functions that start a call), but item"
            f" {bad[0]} is {type(first).__name__}. Calls passed directly start at"
            " once, one after another, outside the parallel group. Wrap each in a"
            " lambda:\n"
            "    await ctx.parallel.all([\n"
            "        lambda: ctx.task(task_a, {...}),\n"
            "        lambda: ctx.task(task_b, {...}),\n"
            "    ])"
        )
    return items


def check_map_fn(fn: Callable[[T], Any]) -> Callable[[T], Any]:
    """Refuse a map function that is not callable."""
    if not callable(fn):
        raise TypeError(
            f"ctx.parallel.map expects a function of one item, got {type(fn).__name__}"
        )
    return fn
