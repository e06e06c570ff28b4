"""Starting parallel branches: lazily, when the dispatcher has room; in a Task.

A parallel group starts its next branch only while the dispatcher holds fewer
than ``window`` attempts (queued or executing); otherwise it waits here
(:class:`Feed`), and the dispatcher's pump starts more as attempts complete
(see ``parallel``).

``_continue`` hands a coroutine that already ran its first step over to an
asyncio Task. A branch is started eagerly (``parallel.refill``, ``race``): its
coroutine's first step runs synchronously, and only a branch that suspends on
something other than an effect's future needs a real Task, which must go on
from the value that first step yielded. (One module for both: each module is an
import a first resume pays, issue 17.)
"""

from __future__ import annotations

from collections.abc import Coroutine, Generator
from typing import TYPE_CHECKING, Any

# The Protocols are for the type checker only: building them costs a first
# resume about 50 µs (issue 17).
if TYPE_CHECKING:
    from collections.abc import Callable, Sized
    from typing import Protocol

    class Hungry(Protocol):
        """A group with branches not started for want of room."""

        @property
        def refill(self) -> Callable[[], None] | None: ...
        @property
        def stopped(self) -> bool: ...

    class Load(Protocol):
        """What ``Feed`` reads of the run's dispatcher."""

        @property
        def ready(self) -> Sized: ...
        @property
        def in_flight(self) -> int: ...


class Feed:
    """Lazy branch start: room in the dispatcher, and the groups waiting for it.

    A group stops starting branches when the dispatcher holds ``window``
    attempts (queued or executing) and waits here; the dispatcher's pump,
    which runs after every completion, calls the feed before it commits, so
    the branches it starts are committed and dispatched in the same turn.
    A group waits here only while the dispatcher has work, so a pump always
    follows: no group waits for room that never comes.
    """

    __slots__ = ("dispatcher", "hungry", "window")

    def __init__(self, dispatcher: Load, window: int) -> None:
        self.dispatcher = dispatcher
        self.window = max(1, window)
        self.hungry: dict[Hungry, None] = {}
        """Groups with branches not started for want of room, oldest first."""

    def room(self) -> bool:
        """Whether another branch may start now."""
        dispatcher = self.dispatcher
        return len(dispatcher.ready) + dispatcher.in_flight < self.window

    def __call__(self) -> None:
        """Start waiting groups' branches while there is room."""
        hungry = self.hungry
        while hungry and self.room():
            group = next(iter(hungry))
            del hungry[group]
            if group.refill is not None and not group.stopped:
                group.refill()


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
