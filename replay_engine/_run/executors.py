"""Where attempts run: pools or the engine's executor; eager Tasks; batched wakes.

Sync tasks run in the engine's executor, a thread pool or a process pool; async
ones as eager asyncio Tasks on the run's loop; the branches their outcomes wake
resume in batches. Pools are created on first use
and shut down with the engine; an executor the user passed in is used as given
and never shut down by the engine.

Eager Tasks (``start_eager``, at the end of this module): a task's first step
runs now, as the current task. An async task attempt used to be a
``loop.create_task``: the Task's first step waited for the next loop iteration,
so a task that never suspends (most small async tasks, and every one the
fan-out bench runs) cost a scheduling hop and completed one iteration after its
dispatch, its completion then committed in a group of its own. Python 3.12 has
eager tasks (``eager_start=True``): the Task object is created first and its
first step runs at once, with the Task current (``asyncio.current_task()`` is
that Task, so ``asyncio.timeout`` and ``task_context()`` inside it work), and
only a task that suspends is ever scheduled.

Python 3.11 has no such option, and a Task schedules its first step from its
constructor, through ``loop.call_soon`` looked up on the loop object. So
``start_eager`` shadows ``call_soon`` on the loop instance for the length of
the constructor, keeps the step it was handed instead of scheduling it, and
runs that step at once in the Task's own context. The step is asyncio's own
(it enters the Task as current, sends into the coroutine, and schedules the
next step or settles the Task), so the Task is exactly what ``create_task``
would have made, one loop iteration sooner.

It must be called outside any running Task (asyncio refuses to enter a Task
while another is current): the dispatcher calls it from its pump, a plain loop
callback.

Batched wake-ups (:class:`Wakes`, at the end of this module): branches resume
after a batch of outcomes, not one per turn. A parallel branch waiting on an
effect resumes from its future's done-callback (the ``parallel._Branch``
itself, whose call is its ``_wake``). Setting the future's result schedules
that callback through ``loop.call_soon``: a ``Handle`` per branch, one more
pass of the event loop per branch, and three Python frames of asyncio's to
queue it. In a fan-out the dispatcher hands out hundreds of outcomes in one go
(a batch of inline or eager async attempts, a pool job's chunk), so those
wake-ups are a large share of what a branch costs.

While the dispatcher hands a batch of outcomes over, :class:`Wakes` stands in
for ``call_soon`` on the loop instance (asyncio's C ``Future`` looks
``call_soon`` up on the loop object each time, as ``start_eager`` relies on
too): it keeps the branches' wake-ups, in the order they were asked for, and
passes every other callback on to the loop unchanged. After the batch, the kept
wake-ups run one after another, each in the context it was given, exactly as
the loop would have run them one iteration later. Nothing is recorded or
dispatched differently: a woken branch records its completion and starts its
next branches into the journal's buffer, which the next pump commits before it
dispatches anything (the write-ahead rule is the pump's, not the wake's).

A loop without an instance dict (uvloop) cannot be shadowed: there the wake-ups
go through ``call_soon`` as before.

Eager Tasks and batched wakes both shadow ``loop.call_soon`` on the loop
instance for a moment. (One module, not three: each module is an import a first
resume pays, issue 17.)
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextvars
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from . import jobs
from .parallel import _Branch
from .tasks import TaskDef


class ExecutorSet:
    """Where sync tasks run: the engine's executor, a thread pool, a process pool."""

    def __init__(
        self, executor: Any | None, *, owned: bool = False, processes: bool = False
    ) -> None:
        self._given = executor
        # Every sync task goes to the engine's own process pool.
        self._all_in_processes = processes
        # The engine built it (from a distributed.Client or an address).
        self._owned = owned
        # ``cf.ThreadPoolExecutor`` is imported on first access (about 1 ms:
        # concurrent.futures.thread, queue): not for a resume without a
        # thread task, so only when an executor was given.
        self._threads: cf.ThreadPoolExecutor | None = (
            executor
            if executor is not None and isinstance(executor, cf.ThreadPoolExecutor)
            else None
        )
        self._own_threads = False
        self._processes: cf.ProcessPoolExecutor | None = None
        self.task_cost: dict[str, float] = {}
        """Seconds per attempt of each thread-pool task, a running average.

        Kept here, engine-wide, not per run: a run that started without it
        sent its first fan-out to the pool in small chunks (the cost unknown),
        a pool job, a hand-back and a GIL round trip per 64 tiny tasks. Plain
        dict operations: runs in other threads of a worker only ever lose an
        update of a heuristic.
        """

    def threads(self) -> cf.ThreadPoolExecutor:
        if self._threads is None:
            self._threads = cf.ThreadPoolExecutor(thread_name_prefix="replay-engine")
            self._own_threads = True
        return self._threads

    def processes(self) -> cf.ProcessPoolExecutor:
        if self._processes is None:
            import multiprocessing

            # forkserver/spawn: a fork of this process would inherit the LMDB
            # handle and the run locks, which must never happen.
            method = (
                "forkserver"
                if "forkserver" in multiprocessing.get_all_start_methods()
                else "spawn"
            )
            # Workers die with this process and leave its stdio alone, so
            # killing the engine leaves nothing behind holding a caller's pipe.
            self._processes = cf.ProcessPoolExecutor(
                mp_context=multiprocessing.get_context(method),
                initializer=jobs.worker_init,
                initargs=(os.getpid(),),
            )
        return self._processes

    def for_task(self, tdef: TaskDef[..., Any]) -> tuple[cf.Executor, bool]:
        """The executor for a sync task, and whether it takes tasks by reference."""
        if tdef.executor == "process" or (
            self._all_in_processes and tdef.executor != "thread"
        ):
            return self.processes(), True
        if tdef.executor == "thread" or self._given is None:
            return self.threads(), False
        if isinstance(self._given, cf.ThreadPoolExecutor):
            return self._given, False
        return self._given, True

    def shutdown(self) -> None:
        """Shut down the pools this set created (never one the user passed in)."""
        if self._own_threads and self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
            self._threads = None
        if self._processes is not None:
            _stop_pool(self._processes)
            self._processes = None
        if self._owned and self._given is not None:
            self._given.shutdown(wait=False, cancel_futures=True)
            self._owned = False


def _stop_pool(pool: cf.ProcessPoolExecutor) -> None:
    """Shut down a pool the engine owns, ending its workers now.

    Whatever still runs there was abandoned (a stopped run) and has nobody to
    deliver its result to; waiting for it would keep this process, and the
    caller's pipes, alive until it ends.
    """
    # A private attribute, but the only handle on the workers (3.14 adds
    # terminate_workers()).
    workers = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for worker in workers:
        if worker.is_alive():
            worker.terminate()
    for worker in workers:
        worker.join(timeout=2.0)


class _Capture:
    """Stands in for ``loop.call_soon`` while a Task is constructed."""

    __slots__ = ("args", "callback", "context")
    # No __init__ (one Python call less per async attempt): the slots stay
    # unset until asyncio calls it, and an unset ``callback`` reads as None.
    callback: Callable[..., Any] | None
    args: tuple[Any, ...]
    context: contextvars.Context | None

    def __call__(
        self,
        callback: Callable[..., Any],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> None:
        self.callback, self.args, self.context = callback, args, context


def _start_eager_311(
    loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any]
) -> asyncio.Task[Any]:
    capture = _Capture()
    # An instance attribute shadows the method for this constructor only; the
    # Task looks ``call_soon`` up on the loop object each time it schedules.
    try:
        namespace = loop.__dict__
    except AttributeError:  # a loop without an instance dict: not eager
        return loop.create_task(coro)
    # What shadowed it already (the dispatcher's batched wakes) comes back
    # after the constructor: the Task's first step runs under it.
    previous = namespace.get("call_soon")
    # The bound method (vectorcall), not the instance: the Task passes
    # ``context=`` by keyword, which an instance's ``__call__`` receives
    # through a kwargs dict made per call.
    namespace["call_soon"] = capture.__call__
    try:
        task: asyncio.Task[Any] = asyncio.Task(coro, loop=loop)
    finally:
        if previous is None:
            del namespace["call_soon"]
        else:
            namespace["call_soon"] = previous
    step = getattr(capture, "callback", None)
    if step is None:  # not the constructor we know: let the loop run it
        return task  # pragma: no cover - only on an unknown asyncio
    context = capture.context
    if context is None:  # pragma: no cover - asyncio always passes it
        step(*capture.args)
    else:
        context.run(step, *capture.args)
    return task


def _start_eager_312(
    loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any]
) -> asyncio.Task[Any]:
    return asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg,unused-ignore]


start_eager: Callable[
    [asyncio.AbstractEventLoop, Coroutine[Any, Any, Any]], asyncio.Task[Any]
] = _start_eager_312 if sys.version_info >= (3, 12) else _start_eager_311
"""Create a Task for ``coro`` and run its first step now, as the current task."""

_BRANCH = _Branch
"""The done-callbacks kept for later: suspended branches (``_Branch.__call__``)."""


class Wakes:
    """Keeps branch wake-ups asked for while open; :meth:`run` runs them."""

    __slots__ = ("_items", "_loop", "_previous", "_real", "_shadow")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._real: Callable[..., Any] = type(loop).call_soon.__get__(loop)
        self._items: list[tuple[Callable[..., Any], tuple[Any, ...], Any]] = []
        self._previous: Any = None
        self._shadow = hasattr(loop, "__dict__")

    def __call__(
        self,
        callback: Callable[..., Any],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> Any:
        if type(callback) is _BRANCH and context is not None:
            self._items.append((callback, args, context))
            return None  # asyncio's Future ignores what call_soon returns
        return self._real(callback, *args, context=context)

    def open(self) -> bool:
        """Start keeping wake-ups; False if this loop cannot be shadowed."""
        if not self._shadow:
            return False
        namespace = self._loop.__dict__
        self._previous = namespace.get("call_soon")
        # The bound method, not the instance: asyncio's C Future calls it
        # with a keyword (``context=``), and an instance's ``__call__`` takes
        # that through a kwargs dict and an args tuple made per call, a
        # method through vectorcall (about 1% of a fan-out's effect).
        namespace["call_soon"] = self.__call__
        return True

    def close(self) -> None:
        """Stop keeping them (whatever shadowed ``call_soon`` before is back)."""
        namespace = self._loop.__dict__
        if self._previous is None:
            namespace.pop("call_soon", None)
        else:
            namespace["call_soon"] = self._previous
            self._previous = None

    def run(self, fault: Callable[[BaseException], None]) -> None:
        """Run the kept wake-ups in order; a failing one goes to ``fault``.

        A branch's own failure is settled inside its wake-up; what reaches
        here is the engine's, and it must end the run rather than vanish
        into asyncio's default handler (a callback's exception is logged and
        forgotten there, and the run would wait forever).
        """
        while self._items:
            items, self._items = self._items, []
            for callback, args, context in items:
                try:
                    context.run(callback, *args)
                except Exception as exc:
                    fault(exc)
