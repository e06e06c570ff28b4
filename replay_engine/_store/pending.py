"""What a run's external effects wait for: the read side of posts.

A module of its own because it only reads: it folds a run's events into the
state of each external effect (requested, claimed, abandoned, answered) and
lists those still without a result. ``posts`` builds its checks on the same
fold inside its write transactions; the engine and the CLI use the list.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import journal_format as jf

from .chain import StoredEvent

NOT_POSTABLE = ("task", "signal")
"""Effect kinds no agent posts to: the engine runs tasks, signals are posted by name."""


def utc_datetime(ns: int | None) -> _dt.datetime | None:
    """A journal time (ns since the epoch) as an aware UTC datetime."""
    return None if ns is None else _dt.datetime.fromtimestamp(ns / 1e9, _dt.UTC)


@dataclass
class PendingEffect:
    """An external effect waiting for its result."""

    key: str
    task: str
    kind: str
    args: Any
    requested_at: _dt.datetime
    seq: int
    deadline: _dt.datetime | None = None
    claimed_by: str | None = None
    lease_expires: _dt.datetime | None = None
    stale: bool = False
    """True when a claim's lease expired without a result: offered again."""
    abandoned: bool = False
    """True when its parallel group failed: its result can no longer matter."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (times as ISO 8601)."""

        def iso(t: _dt.datetime | None) -> str | None:
            return None if t is None else t.isoformat()

        return {
            "key": self.key,
            "task": self.task,
            "kind": self.kind,
            "args": self.args,
            "requested_at": iso(self.requested_at),
            "seq": self.seq,
            "deadline": iso(self.deadline),
            "claimed_by": self.claimed_by,
            "lease_expires": iso(self.lease_expires),
            "stale": self.stale,
            "abandoned": self.abandoned,
        }


class EffectState:
    """One requested effect and what the events after its request say of it."""

    # A plain class, not a dataclass: made at every CLI start, where a
    # dataclass costs about 0.4 ms to create (issue 16's start-up budget).

    __slots__ = ("abandoned", "claim", "outcome", "request")

    def __init__(self, request: StoredEvent) -> None:
        self.request = request
        self.outcome: StoredEvent | None = None
        self.claim: jf.EffectClaimed | None = None
        self.abandoned = False

    def note(self, stored: StoredEvent) -> None:
        """Take in one later event at this effect's key (others change nothing)."""
        event = stored.event
        if isinstance(event, jf.EffectCompleted | jf.EffectFailed):
            self.outcome = stored
        elif isinstance(event, jf.EffectClaimed):
            self.claim = event
        elif isinstance(event, jf.EffectAbandoned):
            self.abandoned = True


def external_states(events: Iterable[StoredEvent]) -> dict[bytes, EffectState]:
    """The state of every postable effect of a run, by key bytes."""
    states: dict[bytes, EffectState] = {}
    for stored in events:
        event = stored.event
        if isinstance(event, jf.EffectRequested):
            if event.kind not in NOT_POSTABLE:
                states[event.key] = EffectState(request=stored)
            continue
        key = getattr(event, "key", None)
        state = states.get(key) if key is not None else None
        if state is not None:
            state.note(stored)
    return states


def pending_effects(
    events: Iterable[StoredEvent], payload: Callable[[bytes], Any]
) -> list[PendingEffect]:
    """External effects without an outcome, in key order.

    ``payload`` decodes a payload reference (the arguments shown).
    """
    now_ns = time.time_ns()
    out: list[PendingEffect] = []
    for key, state in sorted(external_states(events).items()):
        if state.outcome is not None:
            continue
        request = state.request.event
        assert isinstance(request, jf.EffectRequested)
        claim = state.claim
        out.append(
            PendingEffect(
                key=jf.key_bytes_to_text(key),
                task=request.task,
                kind=request.kind,
                args=payload(request.args),
                requested_at=utc_datetime(state.request.envelope.at)
                or _dt.datetime.now(_dt.UTC),
                seq=state.request.seq,
                deadline=utc_datetime(request.deadline_ns),
                claimed_by=claim.worker if claim else None,
                lease_expires=utc_datetime(claim.lease_until_ns) if claim else None,
                stale=claim is not None and claim.lease_until_ns <= now_ns,
                abandoned=state.abandoned,
            )
        )
    return out
