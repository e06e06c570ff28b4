"""``Engine.statistics()``: what the journal holds, and what this engine did."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field

from .._store.lock import probe
from .._store.usage import journal_usage
from .base import EngineBase

INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class EngineStatistics:
    """Counts of a journal and of one ``Engine`` object (``Engine.statistics()``).

    Journal-wide (read from the store, whoever wrote it): ``runs``,
    ``runs_by_status``, ``events``, ``payloads``, ``used_bytes``,
    ``map_size``. Since this ``Engine`` object opened (counters of this
    process, summed over its ``run``/``resume``/``iterate`` calls and its
    worker's executions): ``executions``, ``dispatched``, ``redispatched``,
    ``replayed``, ``commits``, ``events_written``.
    """

    runs: int
    """Runs in the journal."""
    runs_by_status: dict[str, int] = field(default_factory=dict)
    """Runs per status; a run stored ``running`` that no live process
    executes counts as ``interrupted``, as ``status`` shows it."""
    events: int = 0
    """Events of every run."""
    payloads: int = 0
    """Stored payloads (args, results, inputs), each once by content address."""
    used_bytes: int = 0
    """Bytes of the journal in use (LMDB pages up to the last one written)."""
    map_size: int = 0
    """Bytes LMDB maps for the journal (the file may be sparse up to it)."""
    executions: int = 0
    """``run``/``resume``/``iterate`` calls (and worker executions) of this engine."""
    dispatched: int = 0
    """Effects this engine executed, new and re-dispatched."""
    redispatched: int = 0
    """Of ``dispatched``: effects an earlier execution had left in flight."""
    replayed: int = 0
    """Effects this engine answered from the journal without dispatch."""
    commits: int = 0
    """Group commits (write transactions) of this engine's executions."""
    events_written: int = 0
    """Events this engine's executions appended."""
    since: _dt.datetime | None = None
    """When this ``Engine`` object opened (UTC): the start of its counters."""


class Statistics(EngineBase):
    """``Engine.statistics``."""

    def statistics(self) -> EngineStatistics:
        """Runs by status, sizes, and what this engine dispatched and replayed.

        One read transaction (every run record, LMDB's page counts; no event
        is read), plus a lock probe per run stored ``running``. Writes nothing.
        """
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
