"""Eager asyncio Tasks: a task's first step runs now, as the current task.

An async task attempt used to be a ``loop.create_task``: the Task's first step
waited for the next loop iteration, so a task that never suspends (most small
async tasks, and every one the fan-out bench runs) cost a scheduling hop and
completed one iteration after its dispatch, its completion then committed in
a group of its own. Python 3.12 has eager tasks (``eager_start=True``): the
Task object is created first and its first step runs at once, with the Task
current (``asyncio.current_task()`` is that Task, so ``asyncio.timeout`` and
``task_context()`` inside it work), and only a task that suspends is ever
scheduled.

Python 3.11 has no such option, and a Task schedules its first step from its
constructor, through ``loop.call_soon`` looked up on the loop object. So
``start_eager`` shadows ``call_soon`` on the loop instance for the length of
the constructor, keeps the step it was handed instead of scheduling it, and
runs that step at once in the Task's own context. The step is asyncio's own
(it enters the Task as current, sends into the coroutine, and schedules the
next step or settles the Task), so the Task is exactly what ``create_task``
would have made, one loop iteration sooner.

It must be called outside any running Task (asyncio refuses to enter a Task
while another is current): the dispatcher calls it from its pump, a plain
loop callback.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["start_eager"]


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
