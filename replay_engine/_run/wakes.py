"""Batched wake-ups: branches resume after a batch of outcomes, not one per turn.

A parallel branch waiting on an effect resumes from its future's done-callback
(the ``parallel._Branch`` itself, whose call is its ``_wake``). Setting the
future's result schedules that callback through ``loop.call_soon``: a
``Handle`` per branch, one more pass of
the event loop per branch, and three Python frames of asyncio's to queue it.
In a fan-out the dispatcher hands out hundreds of outcomes in one go (a batch
of inline or eager async attempts, a pool job's chunk), so those wake-ups are
a large share of what a branch costs.

While the dispatcher hands a batch of outcomes over, :class:`Wakes` stands in
for ``call_soon`` on the loop instance (asyncio's C ``Future`` looks
``call_soon`` up on the loop object each time, as ``eager`` relies on too): it
keeps the branches' wake-ups, in the order they were asked for, and passes
every other callback on to the loop unchanged. After the batch, the kept
wake-ups run one after another, each in the context it was given, exactly as
the loop would have run them one iteration later. Nothing is recorded or
dispatched differently: a woken branch records its completion and starts its
next branches into the journal's buffer, which the next pump commits before it
dispatches anything (the write-ahead rule is the pump's, not the wake's).

A loop without an instance dict (uvloop) cannot be shadowed: there the
wake-ups go through ``call_soon`` as before.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from typing import Any

from .parallel import _Branch

__all__ = ["Wakes"]

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
