"""What ``Engine`` calls return about runs: ``Run`` and ``RunInfo``."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

import journal_format as jf

from .._run.runtime import RunStats


def utc(ns: int) -> _dt.datetime:
    """A journal timestamp (UTC nanoseconds since the epoch) as an aware datetime."""
    return _dt.datetime.fromtimestamp(ns / 1e9, _dt.UTC)


@dataclass
class Run:
    """What a ``run`` or ``resume`` call ended with."""

    run_id: str
    status: str
    """``"completed"``, ``"failed"``, ``"waiting"`` or ``"running"``."""
    result: Any = None
    """The process's return value, when completed."""
    error: jf.ErrorInfo | None = None
    """Type, message and traceback of the failure, when failed."""
    pending: list[str] = field(default_factory=list)
    """Keys of the external effects a waiting run needs."""
    stats: RunStats = field(default_factory=RunStats)
    warnings: list[str] = field(default_factory=list)
    """Things worth knowing, such as a process whose code changed."""
    next_due: _dt.datetime | None = None
    """For a waiting run: when its earliest timer or deadline falls due."""


@dataclass(frozen=True)
class ExecutorInfo:
    """Who executes a ``running`` run, from its lock (nothing is taken or written)."""

    holds_lock: bool | None
    """A live process holds the run lock (None: cannot tell on this platform)."""
    pid: int | None
    host: str | None
    since: str | None
    """When it took the lock (ISO 8601, UTC)."""
    alive: bool | None
    """Whether ``pid`` is a live process (None: another host, or unknown)."""


@dataclass(frozen=True)
class RunInfo:
    """A run as stored: its state without executing anything."""

    run_id: str
    status: str
    process: str
    events: int
    created: _dt.datetime
    updated: _dt.datetime
    dispatched: int
    replayed: int
    parent: str | None = None
    fork_at: int | None = None
    error: jf.ErrorInfo | None = None
    """For a failed run: what it failed with (filled by ``Engine.status``)."""
    pending: tuple[str, ...] = ()
    """For a waiting run: the keys it waits on (filled by ``Engine.status``)."""
    abandoned: tuple[str, ...] = ()
    """External effects abandoned because their group failed (``Engine.status``)."""
    stored_status: str = ""
    """The status in the run record; ``status`` is what to show: the same,
    except ``interrupted`` for a stored ``running`` run no live executor holds."""
    executor: ExecutorInfo | None = None
    """For a stored ``running`` run: its executor (or the last one, for an
    interrupted run), from the run lock."""

    @classmethod
    def _from_record(cls, record: jf.RunRecord) -> RunInfo:
        return cls(
            run_id=record.run_id,
            status=record.status,
            stored_status=record.status,
            process=record.process,
            events=record.events,
            created=utc(record.created_ns),
            updated=utc(record.updated_ns),
            dispatched=record.dispatched,
            replayed=record.replayed,
            parent=record.parent,
            fork_at=record.fork_at,
        )
