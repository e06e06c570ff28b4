"""Views of a run's journal for assertions: tags, keys, contents, snapshots.

Every test directory reads journals through these (``engine.events`` plus
``journal_format``), so "what the journal holds" means the same everywhere.
Views that leave out what legitimately varies (times, tracebacks, claim
order) say so in their docstring.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

import journal_format as jf
from replay_engine import Engine
from replay_engine._store.store import Store


def tags(engine: Engine, run_id: str) -> list[str]:
    """The run's event tags in journal order (``["run_started", ...]``)."""
    return [jf.event_tag(s.event) for s in engine.events(run_id)]


def key_of(event: Any) -> str:
    key = getattr(event, "key", None)
    return "" if key is None else jf.key_bytes_to_text(key)


def keys_of(engine: Engine, run_id: str, tag: str = "requested") -> list[str]:
    """Keys of the run's events of one type, in journal order."""
    return [
        key_of(s.event) for s in engine.events(run_id) if jf.event_tag(s.event) == tag
    ]


def requested_tasks(engine: Engine, run_id: str) -> dict[str, str]:
    """Key -> task name of every effect requested."""
    return {
        key_of(s.event): s.event.task
        for s in engine.events(run_id)
        if isinstance(s.event, jf.EffectRequested)
    }


def describe(event: Any) -> tuple[Any, ...]:
    """An event's content, without what legitimately varies (times, tracebacks)."""
    tag = jf.event_tag(event)
    key = key_of(event)
    if isinstance(event, jf.RunStarted):
        return ("", tag, event.process, event.inputs.hex())
    if isinstance(event, jf.EffectRequested):
        return (key, tag, event.task, event.kind, event.args.hex())
    if isinstance(event, jf.EffectCompleted):
        return (key, tag, event.result.hex())
    if isinstance(event, jf.EffectFailed):
        return (key, tag, event.error.type, event.error.message, event.attempts)
    if isinstance(event, jf.AttemptFailed):
        return (key, tag, event.attempt, event.error.type, event.error.message)
    if isinstance(event, jf.LogLine):
        return (key, tag, event.ordinal, event.message, json.dumps(event.fields))
    if isinstance(event, jf.ValueRecorded):
        value = None if event.kind == "now" else repr(event.value)
        return (key, tag, event.kind, value)
    if isinstance(event, jf.TimerStarted | jf.TimerFired):
        return (key, tag)
    if isinstance(event, jf.RunCompleted):
        return ("", tag, event.result.hex())
    if isinstance(event, jf.RunFailed):
        return ("", tag, event.error.type, event.error.message)
    if isinstance(event, jf.RunWaiting):
        return ("", tag, tuple(jf.key_bytes_to_text(k) for k in event.pending))
    return ("", tag, repr(event))


def content(engine: Engine, run_id: str) -> list[tuple[Any, ...]]:
    """The journal as a sorted multiset of event contents (order-free).

    Without ``execution`` events: how many executions a run took varies.
    """
    return sorted(
        (
            describe(s.event)
            for s in engine.events(run_id)
            if not isinstance(s.event, jf.ExecutionStarted)
        ),
        key=repr,
    )


def per_key(engine: Engine, run_id: str) -> dict[str, Counter[tuple[Any, ...]]]:
    """Event contents per key (``execution`` events left out, as in ``content``)."""
    out: dict[str, Counter[tuple[Any, ...]]] = {}
    for s in engine.events(run_id):
        if isinstance(s.event, jf.ExecutionStarted):
            continue
        item = describe(s.event)
        out.setdefault(item[0], Counter())[item] += 1
    return out


def settled_keys(events: list[Any]) -> set[str]:
    """Keys whose effect completed or failed for good among ``events``."""
    return {
        key_of(s.event)
        for s in events
        if isinstance(s.event, jf.EffectCompleted | jf.EffectFailed)
    }


def requested_keys(events: list[Any]) -> set[str]:
    return {key_of(s.event) for s in events if isinstance(s.event, jf.EffectRequested)}


# -- outcomes and refused writes ------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """Everything a refused write must leave as it was."""

    events: int
    head: bytes
    status: str
    digests: tuple[bytes, ...]
    blobs: int


def stored_record(engine: Engine, run_id: str) -> jf.RunRecord:
    """The run's record as stored (read through a ``Store`` of its own)."""
    store = Store(engine.path)
    try:
        return store.require_run(run_id)
    finally:
        store.close()


def snapshot(engine: Engine, run_id: str) -> Snapshot:
    store = Store(engine.path)
    try:
        record = store.require_run(run_id)
        blobs = len(store.raw_items(jf.DB_BLOBS))
    finally:
        store.close()
    return Snapshot(
        events=record.events,
        head=record.head,
        status=record.status,
        digests=tuple(s.digest for s in engine.events(run_id)),
        blobs=blobs,
    )


def outcomes_per_key(engine: Engine, run_id: str) -> Counter[str]:
    """How many outcome events (completed/failed) each key has."""
    out: Counter[str] = Counter()
    for stored in engine.events(run_id):
        event = stored.event
        if isinstance(event, jf.EffectCompleted | jf.EffectFailed):
            out[jf.key_bytes_to_text(event.key)] += 1
    return out


def journal_content(engine: Engine, run_id: str) -> Counter[tuple[Any, ...]]:
    """The journal as a multiset of (key, task, args address, result address).

    One item per effect (its request and its outcome joined), plus the run's
    own start and end; times, seqs, claims and waiting markers are left out:
    they legitimately differ between post orders.
    """
    requests: dict[str, tuple[str, str]] = {}
    outcomes: dict[str, str] = {}
    items: Counter[tuple[Any, ...]] = Counter()
    for stored in engine.events(run_id):
        event = stored.event
        if isinstance(event, jf.EffectRequested):
            requests[jf.key_bytes_to_text(event.key)] = (event.task, event.args.hex())
        elif isinstance(event, jf.EffectCompleted):
            outcomes[jf.key_bytes_to_text(event.key)] = "ok:" + event.result.hex()
        elif isinstance(event, jf.EffectFailed):
            outcomes[jf.key_bytes_to_text(event.key)] = (
                f"err:{event.error.type}:{event.error.message}"
            )
        elif isinstance(event, jf.RunStarted):
            items[("", "run_started", event.process, event.inputs.hex())] += 1
        elif isinstance(event, jf.RunCompleted):
            items[("", "run_completed", "", event.result.hex())] += 1
        elif isinstance(event, jf.RunFailed):
            items[("", "run_failed", event.error.type, event.error.message)] += 1
    for key, (task, args) in requests.items():
        items[(key, task, args, outcomes.get(key))] += 1
    return items
