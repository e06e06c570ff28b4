"""``Engine.statistics()``: what the journal holds, and what this engine did."""

from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING

from .base import EngineBase

if TYPE_CHECKING:
    from .statistics_result import EngineStatistics

# ``EngineStatistics`` and ``_store.usage`` (dataclasses both) are imported
# when statistics are asked for, not by every Engine (issue 16's start-up).

INTERRUPTED = "interrupted"


class Statistics(EngineBase):
    """``Engine.statistics``."""

    def statistics(self) -> EngineStatistics:
        """Runs by status, sizes, and what this engine dispatched and replayed.

        One read transaction (every run record, LMDB's page counts; no event
        is read), plus a lock probe per run stored ``running``. Writes nothing.
        """
        from .._store.lock import probe
        from .._store.usage import journal_usage
        from .statistics_result import EngineStatistics

        usage = journal_usage(self._store)
        by_status = dict(usage.runs_by_status)
        for run_id in usage.running:
            if probe(self.path, run_id).held is False:
                by_status["running"] -= 1
                by_status[INTERRUPTED] = by_status.get(INTERRUPTED, 0) + 1
        if by_status.get("running") == 0:
            del by_status["running"]
        counters = self._counters
        with counters._lock:
            return EngineStatistics(
                runs=sum(by_status.values()),
                runs_by_status=dict(sorted(by_status.items())),
                events=usage.entries.get("events", 0),
                payloads=usage.entries.get("blobs", 0),
                used_bytes=usage.used_bytes,
                map_size=usage.map_size,
                executions=counters.executions,
                dispatched=counters.dispatched,
                redispatched=counters.redispatched,
                replayed=counters.replayed,
                commits=counters.commits,
                events_written=counters.events_written,
                since=_dt.datetime.fromtimestamp(counters.opened_ns / 1e9, _dt.UTC),
            )
