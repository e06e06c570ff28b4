"""Lazy branch start: room in the run's dispatcher, and the groups waiting for it.

A parallel group starts its next branch only while the dispatcher holds fewer
than ``window`` attempts (queued or executing); otherwise it waits here, and
the dispatcher's pump starts more as attempts complete (see ``parallel``).
"""

from __future__ import annotations

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
