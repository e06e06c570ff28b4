"""What a run waits for: the values ``Engine.waiting`` returns, and how it finds them.

A waiting run's last ``run_waiting`` event names the keys it waits on.
Posts, claims and signals after it only settle or annotate those keys, so
reading the events at just those keys (through the invocation-key index)
describes what the run needs at a cost of a few reads per key, whatever the
length of its journal. A run that is not waiting, or has no such event, is
described from a fold of its whole journal instead.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import journal_format as jf

from .._store.posts import PendingEffect, pending_effects
from .._store.store import Store, StoredEvent
from .results import utc


@dataclass(frozen=True)
class SignalWait:
    """A ``ctx.wait_for_event(name)`` call that no signal has answered yet."""

    key: str
    name: str
    """The event name to post (``Engine.post_event(run_id, name, payload)``)."""
    requested_at: _dt.datetime
    deadline: _dt.datetime | None
    """When the wait expires, if it has a timeout."""
    seq: int
    """The seq of the wait's request event."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (times as ISO 8601)."""
        return {
            "key": self.key,
            "name": self.name,
            "requested_at": self.requested_at.isoformat(),
            "deadline": None if self.deadline is None else self.deadline.isoformat(),
            "seq": self.seq,
        }


@dataclass(frozen=True)
class Waiting:
    """What a run waits for: see :meth:`Engine.waiting`."""

    run_id: str
    status: str
    """The run's status. A run that is not ``"waiting"`` is described from its
    whole journal: what an interrupted or failed run left outstanding."""
    externals: tuple[PendingEffect, ...] = ()
    """External effects (breakpoints included) without a result, in key order;
    abandoned ones are left out (their result can no longer matter)."""
    signals: tuple[SignalWait, ...] = ()
    """Events the run waits for (``ctx.wait_for_event``), in key order."""
    next_due: _dt.datetime | None = None
    """For a waiting run: when its earliest timer (``ctx.sleep``) or deadline
    falls due; ``iterate`` after that time moves it on."""

    @property
    def breakpoints(self) -> tuple[PendingEffect, ...]:
        """The ``ctx.breakpoint`` calls among :attr:`externals`."""
        return tuple(e for e in self.externals if e.kind == "breakpoint")

    @property
    def keys(self) -> tuple[str, ...]:
        """Keys of every external effect and signal wait, in key order."""
        keys = [e.key for e in self.externals] + [s.key for s in self.signals]
        return tuple(sorted(keys, key=jf.parse_key))


def read_waiting(
    store: Store, record: jf.RunRecord, payload: Callable[[bytes], Any]
) -> Waiting:
    """What the run of ``record`` waits for (see the module docstring)."""
    run_id = record.run_id
    last: jf.RunWaiting | None = None
    events: list[StoredEvent] = []
    if record.status == "waiting":
        last, events = _last_waiting(store, record)
    if last is not None:
        keys = [jf.key_bytes_to_text(k) for k in last.pending]
        events = _events_at(store, run_id, keys)
    elif record.status != "waiting":
        events = store.read_events(run_id)
    effects = pending_effects(events, payload)
    return Waiting(
        run_id=run_id,
        status=record.status,
        externals=tuple(e for e in effects if not e.abandoned),
        signals=tuple(signal_waits(events)),
        next_due=None
        if last is None or last.next_due_ns is None
        else utc(last.next_due_ns),
    )


def signal_waits(events: Sequence[StoredEvent]) -> list[SignalWait]:
    """``ctx.wait_for_event`` calls among ``events`` that have no outcome yet."""
    waits: dict[bytes, StoredEvent] = {}
    for stored in events:
        event = stored.event
        if isinstance(event, jf.EffectRequested) and event.kind == "signal":
            waits[event.key] = stored
        elif isinstance(
            event, jf.EffectCompleted | jf.EffectFailed | jf.EffectAbandoned
        ):
            waits.pop(event.key, None)
    out = []
    for key in sorted(waits):
        stored = waits[key]
        request = stored.event
        assert isinstance(request, jf.EffectRequested)
        out.append(
            SignalWait(
                key=jf.key_bytes_to_text(key),
                name=request.task,
                requested_at=utc(stored.envelope.at),
                deadline=None
                if request.deadline_ns is None
                else utc(request.deadline_ns),
                seq=stored.seq,
            )
        )
    return out


def _events_at(store: Store, run_id: str, keys: Sequence[str]) -> list[StoredEvent]:
    """The events at ``keys`` through the invocation-key index, in seq order."""
    seqs: set[int] = set()
    for key in keys:
        seqs.update(store.seqs_for_key(run_id, jf.encode_key(jf.parse_key(key))))
    out: list[StoredEvent] = []
    for seq in sorted(seqs):
        out.extend(store.read_events(run_id, seq, seq + 1))
    return out


def _last_waiting(
    store: Store, record: jf.RunRecord, chunk: int = 8
) -> tuple[jf.RunWaiting | None, list[StoredEvent]]:
    """The run's last ``run_waiting`` event, read backwards in doubling chunks.

    It is usually the last event, or a few posts before it. Without one,
    every event read is returned, for a full fold.
    """
    stop = record.events
    read: list[StoredEvent] = []
    while stop > 0:
        start = max(0, stop - chunk)
        part = store.read_events(record.run_id, start, stop)
        for stored in reversed(part):
            if isinstance(stored.event, jf.RunWaiting):
                return stored.event, []
        read = part + read
        stop = start
        chunk *= 2
    return None, read
