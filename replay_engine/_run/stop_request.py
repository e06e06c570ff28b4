"""An engine's stop request (``Engine.request_stop``), without the runtime.

Every ``Engine`` holds a :class:`Stopper` from the start, because a request
made before an execution starts must stop it, and the CLI's signal handlers
may call ``request_stop`` at any moment: so this module imports nothing that
executes runs (no asyncio at import), and opening a journal to read it stays
cheap (issue 16). :class:`StopWatch` is how one execution watches for it (it
only uses the execution's loop); ``stopping`` ends the execution.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

    from .state import ExecutionState


class Stopper:
    """An engine's stop request, shared by every execution it runs.

    :meth:`request` may be called from a signal handler or any thread: it only
    sets fields and wakes each execution's event loop (``call_soon_threadsafe``).
    """

    def __init__(self) -> None:
        self.reason: str | None = None
        self.grace = 0.0
        self.immediate = False
        self._wakers: dict[int, tuple[asyncio.AbstractEventLoop, Callable[[], None]]]
        self._wakers = {}
        self._lock = threading.Lock()

    def request(self, reason: str, grace: float) -> None:
        """Stop gracefully (the first request) or at once (any later one)."""
        if not math.isfinite(grace) or grace < 0:
            raise ValueError(f"grace must be a finite number >= 0, not {grace!r}")
        if self.reason is None:
            self.reason, self.grace = reason, grace
        else:
            self.immediate = True
        # No lock here: a signal handler interrupting ``watch`` (same thread)
        # would deadlock on it. Copying the dict is atomic under the GIL.
        for loop, wake in list(self._wakers.values()):
            with contextlib.suppress(RuntimeError):  # that loop has closed
                loop.call_soon_threadsafe(wake)

    def reset(self) -> None:
        """Forget the request: later executions run normally.

        A worker that drained its runs and stopped leaves its engine usable.
        """
        self.reason, self.grace, self.immediate = None, 0.0, False

    def watch(self, state: ExecutionState) -> StopWatch:
        """Watch for requests while ``state`` executes (close the watch after)."""
        return StopWatch(self, state)

    def _add(self, watch: StopWatch) -> None:
        with self._lock:
            self._wakers[id(watch)] = (watch.state.loop, watch.wake)

    def _remove(self, watch: StopWatch) -> None:
        with self._lock:
            self._wakers.pop(id(watch), None)


_POLL = 0.05
"""Seconds between looks at the effects in flight while stopping: bounded
waiting without a hook in the dispatcher's completion path."""


class StopWatch:
    """One execution's view of its engine's stop request.

    ``done`` resolves when the execution must stop: after the grace period,
    once nothing is in flight, or at once on a second request.
    """

    def __init__(self, stopper: Stopper, state: ExecutionState) -> None:
        self.stopper = stopper
        self.state = state
        self.done: asyncio.Future[None] = state.loop.create_future()
        self.abandoned = 0
        self._deadline: float | None = None
        self._seen = -1
        self._timer: asyncio.TimerHandle | None = None
        stopper._add(self)
        if stopper.reason is not None:  # asked before this execution started
            state.loop.call_soon(self.wake)

    def wake(self) -> None:
        """A request arrived (runs on the execution's loop)."""
        if self.done.done():
            return
        if self.stopper.immediate:
            self._finish()
            return
        if self._deadline is None:
            self._deadline = self.state.loop.time() + self.stopper.grace
            self.state.dispatcher.holding = True
            self._poll()

    def _poll(self) -> None:
        if self.done.done():
            return
        state = self.state
        loop = state.loop
        assert self._deadline is not None
        # Done when nothing is in flight and the process made no progress
        # since the last look: the effect that completed last has had its
        # completion recorded, which cancelling the process would prevent.
        idle = state.dispatcher.in_flight == 0 and state.activity == self._seen
        if idle or loop.time() >= self._deadline:
            self._finish()
            return
        self._seen = state.activity
        self._timer = loop.call_later(_POLL, self._poll)

    def _finish(self) -> None:
        self.abandoned = self.state.dispatcher.in_flight
        if not self.done.done():
            self.done.set_result(None)

    def close(self) -> None:
        """Stop watching (the execution ended)."""
        self.stopper._remove(self)
        if self._timer is not None:
            self._timer.cancel()
        if not self.done.done():
            self.done.cancel()

    def stopped(self, main: asyncio.Task[Any]) -> bool:
        """Whether the execution must end by the request (it did not end itself)."""
        quiet = self.state.quiet
        ended = main.done() or (quiet is not None and quiet.done())
        return not ended and self.done.done() and not self.done.cancelled()
