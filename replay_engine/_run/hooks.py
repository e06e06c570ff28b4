"""Hooks through which ``replay_engine.testing`` steers an execution.

They let a property test choose what the real world would choose: when each
effect completes (so branches finish in any order), which attempts fail, the
clock, and after how many journal events the process "dies". The engine
consults them only when an :class:`Engine` was given a ``Hooks`` object; a
production engine has none and pays nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar


class SimulatedCrash(BaseException):
    """Internal: the hooks ended the execution as a crash would (no more writes)."""


@dataclass
class Hooks:
    """What a test controls. Every field is optional."""

    delay: Callable[[str, str, int], float] | None = None
    """``(key, task, attempt) -> seconds``: hold an effect's completion this long."""
    fail: Callable[[str, str, int], BaseException | None] | None = None
    """``(key, task, attempt) -> exception or None``: fail this attempt instead."""
    fake: Callable[[str, str, int, Any], Any] | None = None
    """``(key, task, attempt, args) -> result``: answer an effect without running
    it; raise to fail the attempt; return ``Hooks.REAL`` to run the real task."""
    sleep: Callable[[str, float], float] | None = None
    """``(key, seconds) -> seconds``: how long a durable timer really waits."""
    crash_after_events: int | None = None
    """Stop writing and abandon the execution once the journal holds this many."""
    clock_ns: Callable[[], int] = field(default=time.time_ns)
    """The clock behind ``ctx.now()``, timers and deadlines."""
    crashed: bool = False
    """Set when ``crash_after_events`` ended an execution."""

    REAL: ClassVar[object] = object()
    """Returned by ``fake`` to let the real task run."""
