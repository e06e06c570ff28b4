"""``EngineStatistics``: what ``Engine.statistics()`` returns.

A module of its own so that an ``Engine`` opened to read a journal does not
make this dataclass (issue 16's start-up budget): :mod:`.statistics` imports
it when asked.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field


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
