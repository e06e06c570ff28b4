"""Attempts of effects, and the bound on how many execute at once.

``Call`` is one attempt; ``Slots`` the engine-wide bound on attempts executing
at once; ``injected_outcome`` what the testing hooks impose on an attempt. The
dispatcher (``dispatch``) starts attempts; these are the pieces it hands around.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import TYPE_CHECKING, Any

import journal_format as jf

from ..errors import ReplayEngineError
from . import jobs
from .hooks import Hooks
from .tasks import TaskDef

# For the type checker only: building a Protocol costs a first resume ~20 µs.
if TYPE_CHECKING:
    from typing import Protocol

    class Waiter(Protocol):
        """What ``Slots`` wakes when a slot frees up: a run's dispatcher."""

        loop: asyncio.AbstractEventLoop

        def schedule_pump(self) -> None: ...


__all__ = ["Call", "Slots", "cancelled_inside", "injected_outcome"]


class Call:
    """One attempt of one effect, waiting for or undergoing execution."""

    __slots__ = ("args_bytes", "attempt", "future", "key_text", "task", "tdef", "timer")

    def __init__(
        self,
        tdef: TaskDef[..., Any],
        key_text: str,
        args_bytes: bytes,
        attempt: int,
        future: asyncio.Future[jobs.Outcome],
    ) -> None:
        self.tdef = tdef
        self.key_text = key_text
        self.args_bytes = args_bytes
        self.attempt = attempt
        self.future = future
        self.task: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None


class Slots:
    """The engine-wide bound on effects executing at once, shared by every run."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.used = 0
        self._lock = threading.Lock()
        self._waiting: dict[int, Waiter] = {}

    def take(self, dispatcher: Waiter, wanted: int) -> int:
        """Take up to ``wanted`` slots; if short, remember that ``dispatcher`` waits."""
        with self._lock:
            granted = min(wanted, self.limit - self.used)
            if granted < wanted:
                self._waiting[id(dispatcher)] = dispatcher
            if granted <= 0:
                return 0
            self.used += granted
            return granted

    def give(self, count: int = 1) -> None:
        """Return slots and wake every dispatcher that waited for one."""
        with self._lock:
            self.used -= count
            if not self._waiting:
                return
            waiting = list(self._waiting.values())
            self._waiting.clear()
        here = asyncio._get_running_loop()
        for dispatcher in waiting:
            loop = dispatcher.loop
            if loop is here:
                # On its own loop (a pool job's outcomes handed back): no
                # self-pipe write, read and extra wake-up of the loop per job.
                loop.call_soon(dispatcher.schedule_pump)
                continue
            with contextlib.suppress(RuntimeError):  # its loop has closed
                loop.call_soon_threadsafe(dispatcher.schedule_pump)


def injected_outcome(hooks: Hooks | None, call: Call) -> jobs.Outcome | None:
    """An outcome the testing hooks impose instead of running the task."""
    if hooks is None:
        return None
    if hooks.fail is not None:
        exc = hooks.fail(call.key_text, call.tdef.name, call.attempt)
        if exc is not None:
            return jobs.error_outcome(exc)
    if hooks.fake is not None:
        args = jf.decode_payload(call.args_bytes)
        try:
            value = hooks.fake(call.key_text, call.tdef.name, call.attempt, args)
        except Exception as exc:
            return jobs.error_outcome(exc)
        if value is not hooks.REAL:
            try:
                return (jobs.OK, jf.encode_payload(value))
            except jf.FormatError as exc:
                return (
                    jobs.PAYLOAD_ERROR,
                    f"the fake result cannot be encoded: {exc}",
                )
    return None


def cancelled_inside(call: Call, run_id: str) -> ReplayEngineError:
    """The error for an async task that raised CancelledError on its own."""
    return ReplayEngineError(
        f"task {call.tdef.name!r} at key {call.key_text} of run {run_id!r} raised"
        " asyncio.CancelledError without being cancelled. That is not a task"
        " failure: nothing was recorded for this attempt, and resuming the run"
        " dispatches it again; catch the cancellation inside the task, or raise"
        " another exception to fail it."
    )
