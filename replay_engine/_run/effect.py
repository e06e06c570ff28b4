"""A new ``ctx.task`` call of a plain task, as an object rather than a coroutine.

Most new calls are of tasks with no retries, no external result, in an
execution that is neither traced nor frozen; a ``parallel.map`` fans out
thousands of them, each its own branch. Driven as a coroutine
(``Runtime.run_effect``), each costs a coroutine frame, two sends, a future
iterator and a ``StopIteration``. The branch driver (``parallel``) instead
takes an ``Effect`` apart: ``begin`` records the request and submits the
attempt, returning its future; the branch waits on that future and calls
``end``, which records the outcome and returns the value (or raises), in the
same loop callback where the coroutine would have resumed. So the journal is
the same, event for event.

Anything else that awaits it (``await ctx.task(...)`` in a process, an
``async def`` branch, ``asyncio.create_task``/``gather``) gets the coroutine
``Runtime.run_effect`` itself: ``Effect`` is a ``collections.abc.Coroutine``
that creates it on first use. ``Runtime.outcome`` is the one place either
path turns an attempt's outcome into a recorded value or failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any, Protocol

from . import jobs
from .calls import Call
from .dispatch import Dispatcher
from .journal import RunJournal
from .stats import RunStats
from .tasks import TaskDef


class EffectRuntime(Protocol):
    """What an ``Effect`` needs of the execution (``Runtime``; no import cycle)."""

    unawaited: dict[bytes, Any]
    journal: RunJournal
    stopping: bool
    stats: RunStats
    loop: asyncio.AbstractEventLoop
    dispatcher: Dispatcher

    def check_live(self) -> None: ...
    def request(
        self,
        tdef: TaskDef[..., Any],
        key: bytes,
        scope_prefix: bytes,
        args_bytes: bytes,
        address: bytes,
        deadline_ns: int | None,
    ) -> int | None: ...
    def attempt_result(self, future: asyncio.Future[jobs.Outcome]) -> jobs.Outcome: ...
    def outcome(
        self,
        tdef: TaskDef[..., Any],
        key: bytes,
        key_text: str,
        attempt: int,
        status: int,
        payload: Any,
    ) -> tuple[Any, float | None]: ...
    def run_effect(
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
    ) -> Coroutine[Any, Any, Any]: ...


__all__ = ["Effect", "EffectRuntime"]


class Effect(Coroutine[Any, Any, Any]):
    """A new call of a task with no retries, not yet started (see module doc)."""

    __slots__ = (
        "address",
        "args_bytes",
        "done",
        "inner",
        "key",
        "key_text",
        "prefix",
        "rt",
        "tdef",
    )

    def __init__(
        self,
        rt: EffectRuntime,
        tdef: TaskDef[..., Any],
        key: bytes,
        key_text: str,
        prefix: bytes,
        args_bytes: bytes,
        address: bytes,
    ) -> None:
        self.rt = rt
        self.tdef = tdef
        self.key = key
        self.key_text = key_text
        self.prefix = prefix
        self.args_bytes = args_bytes
        self.address = address
        self.inner: Coroutine[Any, Any, Any] | None = None
        self.done = False
        """Started (by either path) or closed: it must not start again."""

    # -- the branch driver's path -------------------------------------------------

    def begin(self) -> asyncio.Future[Any]:
        """Record the request and submit the attempt: ``run_effect`` up to its await."""
        self._claim()
        rt = self.rt
        key = self.key
        rt.unawaited.pop(key, None)
        if rt.journal.diverged is not None or rt.stopping:
            rt.check_live()
        tdef = self.tdef
        rt.request(tdef, key, self.prefix, self.args_bytes, self.address, None)
        rt.stats.dispatched += 1
        future: asyncio.Future[Any] = rt.loop.create_future()
        rt.dispatcher.submit(Call(tdef, self.key_text, self.args_bytes, 1, future))
        return future

    def end(self, future: asyncio.Future[Any]) -> Any:
        """The attempt is over: record its outcome; the value, or raise the failure."""
        status, payload = self.rt.attempt_result(future)
        value, _delay = self.rt.outcome(
            self.tdef, self.key, self.key_text, 1, status, payload
        )
        return value  # no retries: an outcome that would retry cannot occur

    # -- everyone else: the coroutine ---------------------------------------------

    def _claim(self) -> None:
        if self.done:
            raise RuntimeError("cannot reuse already awaited coroutine")
        self.done = True

    def _coroutine(self) -> Coroutine[Any, Any, Any]:
        inner = self.inner
        if inner is None:
            self._claim()
            inner = self.inner = self.rt.run_effect(
                self.tdef,
                self.key,
                self.key_text,
                self.prefix,
                self.args_bytes,
                self.address,
                0,
                new=True,
            )
        return inner

    def __await__(self) -> Generator[Any, None, Any]:
        return self._coroutine().__await__()

    def send(self, value: Any) -> Any:
        return self._coroutine().send(value)

    def throw(self, *args: Any) -> Any:
        return self._coroutine().throw(*args)

    def close(self) -> None:
        self.done = True
        if self.inner is not None:
            self.inner.close()

    @property
    def cr_frame(self) -> object | None:
        """Not None until started or closed, as a coroutine's (``settle`` asks)."""
        return None if self.done else self
