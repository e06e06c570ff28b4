"""What one ``Engine`` object did since it opened, for ``Engine.statistics()``.

Added to once per ``run``/``resume``/``iterate`` call (not per event, so the
hot paths pay nothing), under a lock: a worker executes runs in several
threads of one engine.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from .._run.stats import RunStats


@dataclass
class Counters:
    """Sums of the ``RunStats`` of this engine's executions."""

    executions: int = 0
    dispatched: int = 0
    redispatched: int = 0
    replayed: int = 0
    commits: int = 0
    events_written: int = 0
    opened_ns: int = field(default_factory=time.time_ns)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, stats: RunStats) -> None:
        """Count one ``run``/``resume`` call (all of its passes)."""
        with self._lock:
            self.executions += 1
            self.dispatched += stats.dispatched
            self.redispatched += stats.redispatched
            self.replayed += stats.replayed
            self.commits += stats.commits
            self.events_written += stats.events_written
