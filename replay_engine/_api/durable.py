"""``@engine.durable``: one line makes an async function a durable process."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from ..errors import RunExistsError
from .results import Run

ProcessFn = Callable[[Any, Any], Coroutine[Any, Any, Any]]


class _Runner(Protocol):
    """What a durable process needs of its engine (``Engine`` has it).

    A protocol rather than ``Engine`` itself, so that this module and the
    engine do not import each other.
    """

    def run(self, process: ProcessFn, inputs: Any = None, *, run_id: str) -> Run: ...

    async def run_async(
        self, process: ProcessFn, inputs: Any = None, *, run_id: str
    ) -> Run: ...

    def resume(self, run_id: str, *, process: ProcessFn) -> Run: ...

    async def resume_async(self, run_id: str, *, process: ProcessFn) -> Run: ...


class DurableProcess:
    """A process bound to an engine; see :meth:`Engine.durable`.

    ``start`` is idempotent per run id: it starts the run, or resumes it if
    it exists (a completed run just returns its recorded result). So the same
    call can be made again after any crash.
    """

    def __init__(self, engine: _Runner, fn: ProcessFn) -> None:
        self.engine = engine
        self.fn = fn
        functools.update_wrapper(self, fn)

    def start(self, inputs: Any = None, *, run_id: str) -> Run:
        """Start run ``run_id``, or resume it if it exists."""
        try:
            return self.engine.run(self.fn, inputs, run_id=run_id)
        except RunExistsError:
            return self.engine.resume(run_id, process=self.fn)

    async def start_async(self, inputs: Any = None, *, run_id: str) -> Run:
        """The same as :meth:`start`, for asyncio callers."""
        try:
            return await self.engine.run_async(self.fn, inputs, run_id=run_id)
        except RunExistsError:
            return await self.engine.resume_async(run_id, process=self.fn)

    def resume(self, run_id: str) -> Run:
        """Resume run ``run_id`` with this function's code."""
        return self.engine.resume(run_id, process=self.fn)

    async def __call__(self, inputs: Any, ctx: Any) -> Any:
        # Still usable as a plain process function (e.g. by Engine.run).
        return await self.fn(inputs, ctx)
