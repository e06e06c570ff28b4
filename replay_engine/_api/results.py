"""What ``Engine`` calls return about runs: ``Run`` and ``RunInfo``."""

from __future__ import annotations

import datetime as _dt
import math
import time
from dataclasses import dataclass, field
from typing import Any

import journal_format as jf

from .._run.stats import RunStats

Deadline = _dt.datetime | _dt.timedelta | float
"""When a run must be over: an aware datetime, or a timedelta or seconds from now."""


def deadline_to_ns(deadline: Deadline | None) -> int | None:
    """A deadline as UTC nanoseconds since the epoch (None: no deadline).

    Raises:
        ValueError: a naive datetime, or a number of seconds that is not finite.
        TypeError: anything else.
    """
    if deadline is None:
        return None
    if isinstance(deadline, _dt.datetime):
        if deadline.tzinfo is None or deadline.utcoffset() is None:
            raise ValueError(
                f"deadline {deadline.isoformat()} has no time zone: give an aware"
                " datetime (datetime.now(timezone.utc) + ...) or seconds from now"
            )
        return int(deadline.timestamp() * 1e9)
    if isinstance(deadline, _dt.timedelta):
        seconds = deadline.total_seconds()
    elif isinstance(deadline, int | float) and not isinstance(deadline, bool):
        seconds = float(deadline)
    else:
        raise TypeError(
            "deadline must be a datetime, a timedelta or a number of seconds,"
            f" not {type(deadline).__name__}"
        )
    if not math.isfinite(seconds):
        raise ValueError(f"deadline must be a finite number of seconds, not {seconds}")
    return time.time_ns() + int(seconds * 1e9)


def utc(ns: int) -> _dt.datetime:
    """A journal timestamp (UTC nanoseconds since the epoch) as an aware datetime."""
    return _dt.datetime.fromtimestamp(ns / 1e9, _dt.UTC)


@dataclass
class Run:
    """What a ``run`` or ``resume`` call ended with."""

    run_id: str
    status: str
    """``"completed"``, ``"failed"``, ``"waiting"``, ``"running"``, or (ended
    from outside, see ``Engine.cancel`` and ``deadline=``) ``"cancelled"`` or
    ``"timed_out"``."""
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
    """External effects abandoned because their group failed, or, for a
    cancelled run, every effect left without an outcome (``Engine.status``)."""
    deadline: _dt.datetime | None = None
    """The run's deadline, if it has one (``Engine.run(..., deadline=...)``)."""
    cancel_requested: bool = False
    """A cancel was requested while an executor held the run; it ends the run
    ``cancelled`` at its next check (within a second) or next resume."""
    cancel_reason: str | None = None
    """For a cancelled run: the reason given to ``Engine.cancel``, if any."""
    queue: str | None = None
    """The queue a submitted run was put on."""
    executions: int = 0
    """How many executions wrote to the run (each began with an event)."""
    last_execution_seq: int | None = None
    """The seq of the event the latest execution began with (``execution``,
    or ``run_started`` for the first execution of a run started by ``run``)."""
    stored_status: str = ""
    """The status in the run record; ``status`` is what to show: the same,
    except ``interrupted`` for a stored ``running`` run no live executor holds."""
    executor: ExecutorInfo | None = None
    """For a stored ``running`` run: its executor (or the last one, for an
    interrupted run), from the run lock."""
    child_of: str | None = None
    """For a child run (``ctx.run_child``): its parent run's id."""
    child_key: str | None = None
    """For a child run: the invocation key of the parent's call that started it."""
    waiting_on: tuple[str, ...] = ()
    """For a waiting run: the child runs it waits on (filled by ``Engine.status``)."""

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
            deadline=None if record.deadline_ns is None else utc(record.deadline_ns),
            cancel_requested=record.cancel_requested_ns is not None
            and record.status not in jf.ENDED_STATUSES,
            queue=record.queue,
            executions=record.executions,
            last_execution_seq=record.last_execution_seq,
            child_of=record.child_of,
            child_key=record.child_key,
        )
