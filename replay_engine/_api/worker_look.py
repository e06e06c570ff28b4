"""One look of a worker at the active runs: what to recover, wake and start.

Pure decisions over the records the ``active`` index returned, plus one
non-blocking try of the run lock for a ``running`` run that looks abandoned
(nobody else can tell whether its executor is alive: the kernel can).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import journal_format as jf

from .._store.active import ActiveRun
from .._store.lock import RunLock
from ..errors import ReplayEngineError, RunLockedError

_FAR = 1 << 62


@dataclass(frozen=True, slots=True)
class Action:
    """Execute ``run_id`` with ``process``: why (``recovery``, ``wake``, ``start``)."""

    run_id: str
    process: Callable[..., Any]
    why: str
    events: int


@dataclass
class Look:
    """What one look found."""

    actions: list[Action] = field(default_factory=list)
    """Recoveries and wakes, oldest run first."""
    queued: dict[str | None, list[jf.RunRecord]] = field(default_factory=dict)
    """Each queue's queued runs of allowed processes, oldest first (FIFO)."""
    refused: list[tuple[str, str]] = field(default_factory=list)
    """``(run id, process)`` of active runs of processes not allowed here."""
    due_ns: int = _FAR
    """When to look again even if nothing changes: a timer, a recovery grace."""


def plan(
    runs: Iterable[ActiveRun],
    *,
    allowed: Mapping[str, Callable[..., Any]],
    executing: Collection[str],
    tried: Mapping[str, tuple[int, float, int]],
    now_ns: int,
    now_mono: float,
    grace_ns: int,
    retry_after: float,
    path: str,
) -> Look:
    """Decide, for each active run, whether this worker acts on it now."""
    look = Look()
    for run in runs:
        record = run.record
        if record is None or run.run_id in executing:
            continue
        if record.status not in jf.ACTIVE_STATUSES:
            continue  # a stale index entry: the record rules
        fn = allowed.get(record.process)
        if fn is None:
            look.refused.append((record.run_id, record.process))
            continue
        last = tried.get(record.run_id)
        # An execution of ours left the run as it is now: wait before the
        # next try, so a run whose wake changes nothing is not spun on.
        # (Unless a time it waits for has come since that execution.)
        recent = (
            last is not None
            and last[0] == record.events
            and now_mono - last[1] < retry_after
        )
        if record.status == "queued":
            look.queued.setdefault(record.queue, []).append(record)
        elif record.status == "waiting":
            due = _wake_due(record)
            if recent and due and last is not None and last[2] < due:
                recent = False
            if due is not None and due <= now_ns and not recent:
                look.actions.append(Action(record.run_id, fn, "wake", record.events))
            elif due is not None:
                look.due_ns = min(look.due_ns, max(due, now_ns + 1_000_000))
        else:  # running
            quiet_until = record.updated_ns + grace_ns
            if quiet_until > now_ns:
                look.due_ns = min(look.due_ns, quiet_until)
            elif not recent and unheld(path, record.run_id):
                look.actions.append(
                    Action(record.run_id, fn, "recovery", record.events)
                )
    for heads in look.queued.values():
        heads.sort(key=lambda r: (r.created_ns, r.run_id))
    return look


def _wake_due(record: jf.RunRecord) -> int | None:
    """When a waiting run should be iterated (0: now), or None (nothing to do).

    Something appended after its ``run_waiting`` (a post, a signal, an
    approval, a claim) means now; else its earliest timer or deadline.
    """
    seq = record.waiting_seq
    if seq is None or record.events > seq + 1:
        # None: written before waiting_seq existed; look once (then `tried`).
        return 0
    candidates = [
        t
        for t in (record.next_due_ns, getattr(record, "deadline_ns", None))
        if isinstance(t, int)
    ]
    return min(candidates) if candidates else None


def unheld(path: str, run_id: str) -> bool:
    """Whether nobody holds the run's lock (tried without waiting, then let go)."""
    try:
        lock = RunLock(path, run_id)
    except RunLockedError:
        return False
    except ReplayEngineError:
        return False  # unsafe lock files: never execute on a guess
    lock.release()
    return True
