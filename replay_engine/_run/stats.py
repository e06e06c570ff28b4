"""What a run reports, without the machinery that runs it.

``RunStats`` and ``FrontierCall`` are returned by ``Engine`` calls and shown by
the CLI's reading commands, which must not import asyncio and the runtime
(``state``, which re-exports them) just to name these types (issue 16: start-up).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FrontierCall", "RunStats"]


@dataclass
class RunStats:
    """Counters of one ``run``/``resume`` call."""

    dispatched: int = 0
    """Effects dispatched (executed) by this call: new ones and re-dispatched ones."""
    redispatched: int = 0
    """Of ``dispatched``, the effects an earlier execution had requested (and
    perhaps run) without recording an outcome: in flight at a crash or a
    kill, and so possibly executed twice."""
    replayed: int = 0
    """Effects answered from the journal without dispatch."""
    events_written: int = 0
    """Events this call appended to the journal."""
    commits: int = 0
    """Group commits (transactions) this call made."""
    in_flight: int = 0
    """Effects executing right now (live progress)."""
    elapsed: float = 0.0
    """Seconds the call took."""


@dataclass(frozen=True)
class FrontierCall:
    """A call a time-travel replay stopped at: it needs an event past the prefix."""

    key: str
    task: str
    kind: str
    reason: str
    """``"new call"``, ``"in flight"``, ``"external"`` or ``"timer"``."""
    site: str
    """``file:line`` of the call in the process's source."""
