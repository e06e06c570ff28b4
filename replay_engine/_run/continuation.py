"""Hand a coroutine that already ran its first step over to an asyncio Task.

A branch is started eagerly (``parallel.refill``, ``race``): its coroutine's
first step runs synchronously, and only a branch that suspends on something
other than an effect's future needs a real Task, which must go on from the
value that first step yielded.
"""

from __future__ import annotations

from collections.abc import Coroutine, Generator
from typing import Any


class _Continue:
    """Hand a coroutine that already ran its first step over to an asyncio Task."""

    __slots__ = ("coro", "first")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self.coro = coro
        self.first = first

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, value = self.coro, self.first
        self.first = None
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # cancellation thrown in by the Task
                try:
                    value = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


async def _continue(coro: Coroutine[Any, Any, Any], first: Any) -> Any:
    return await _Continue(coro, first)
