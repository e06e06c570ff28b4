"""Snapshots: a run as it stood after its first N events (what ``replay`` returns).

``Engine.replay(run_id, until=N)`` re-executes the process against only the
first N events of its journal in a *frozen* runtime: every call the prefix
answers is answered, every other call becomes a frontier call, and nothing is
dispatched or written. The snapshot pairs what the process did with the whole
journal, so each call is shown as done, failed, in flight or not reached as of
event N.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import journal_format as jf

from .._run.stats import FrontierCall
from .._store.store import Store, StoredEvent
from ..errors import JournalCorruptError

_key_text = jf.key_bytes_to_text


@dataclass
class CallState:
    """One call of the run as of the snapshot point."""

    key: str
    task: str
    kind: str
    status: str
    """``"done"``, ``"failed"``, ``"in flight"`` or ``"not reached"``."""
    requested_seq: int
    finished_seq: int | None = None
    attempts_failed: int = 0
    args: Any = None
    result: Any = None
    error: jf.ErrorInfo | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form: an item of ``Snapshot.to_dict()["calls"]``."""
        out: dict[str, Any] = _jsonable(asdict(self))
        return out


@dataclass
class LogEntry:
    """A log line emitted before the snapshot point."""

    seq: int
    key: str
    message: str
    fields: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form: an item of ``Snapshot.to_dict()["logs"]``."""
        out: dict[str, Any] = _jsonable(asdict(self))
        return out


@dataclass
class Snapshot:
    """A run as it stood after its first ``until`` events."""

    run_id: str
    until: int
    events: int
    """Events in the whole journal."""
    process_status: str
    """``"completed"`` (the process returned using only the prefix), ``"failed"``,
    or ``"frontier"`` (it stopped at calls the prefix does not answer)."""
    result: Any = None
    error: jf.ErrorInfo | None = None
    calls: list[CallState] = field(default_factory=list)
    logs: list[LogEntry] = field(default_factory=list)
    frontier: list[FrontierCall] = field(default_factory=list)

    def completed_keys(self) -> list[str]:
        """Keys of the calls done as of the snapshot point."""
        return [c.key for c in self.calls if c.status == "done"]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (errors as dicts, payloads as decoded)."""
        out: dict[str, Any] = _jsonable(asdict(self))
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, jf.ErrorInfo):
        return {"type": value.type, "message": value.message}
    if isinstance(value, bytes):
        return value.hex()
    return value


class CallStream(Iterator["CallState | LogEntry"]):
    """What ``Engine.replay_calls`` returns: a run's calls and log lines, streamed.

    An iterator of :class:`CallState` (each call, with its status as of event
    ``until``) and :class:`LogEntry` (each ``ctx.log`` line before it), read
    from the journal in batches as it is iterated, in constant memory, in
    journal order rather than key order (see :meth:`Engine.replay_calls`).
    A damaged event raises ``JournalCorruptError`` while iterating.

    Attributes:
        until: the snapshot point, in events (a ``key:KEY`` resolved), known
            before the first item.
        events: how many events the run had when the stream was made.
    """

    def __init__(
        self, items: Iterator[CallState | LogEntry], until: int, events: int
    ) -> None:
        self._items = items
        self.until = until
        self.events = events

    def __next__(self) -> CallState | LogEntry:
        return next(self._items)


def build_calls(
    events: Iterable[StoredEvent], until: int, payload: Callable[[bytes], Any]
) -> tuple[list[CallState], list[LogEntry]]:
    """Every call of the journal, its status as of event ``until``, in key order."""
    calls: dict[tuple[int, ...], CallState] = {}
    logs: list[LogEntry] = []
    for item in stream_calls(events, until, payload):
        if isinstance(item, LogEntry):
            logs.append(item)
        else:
            calls[jf.parse_key(item.key)] = item  # a key requested again: the last
    return [calls[k] for k in sorted(calls)], logs


def stream_calls(
    events: Iterable[StoredEvent], until: int, payload: Callable[[bytes], Any]
) -> Iterator[CallState | LogEntry]:
    """The snapshot's calls and log lines, each yielded once its state is known.

    One pass over ``events`` in journal order, holding only the calls still
    open (requested, no outcome yet): a call is yielded at its outcome, the
    calls still open at event ``until`` are yielded there (in flight, in key
    order), and a call requested at or after ``until`` at its request (not
    reached). A log line is yielded at its event. So memory is bounded by the
    calls in flight at once, not by the run's length.
    """
    open_calls: dict[bytes, CallState] = {}
    for stored in events:
        seq, event = stored.seq, stored.event
        if seq >= until and open_calls:
            yield from _in_flight(open_calls)
        if isinstance(event, jf.EffectRequested):
            call = CallState(
                key=_key_text(event.key),
                task=event.task,
                kind=event.kind,
                status="in flight" if seq < until else "not reached",
                requested_seq=seq,
                args=payload(event.args),
            )
            if seq < until:
                open_calls[event.key] = call
            else:
                yield call
        elif isinstance(event, jf.ValueRecorded):
            yield CallState(
                key=_key_text(event.key),
                task=f"ctx.{event.kind}",
                kind="value",
                status="done" if seq < until else "not reached",
                requested_seq=seq,
                finished_seq=seq,
                result=event.value,
            )
        elif isinstance(event, jf.TimerStarted):
            call = CallState(
                key=_key_text(event.key),
                task="ctx.sleep",
                kind="timer",
                status="in flight" if seq < until else "not reached",
                requested_seq=seq,
                result=event.due_ns,
            )
            if seq < until:
                open_calls[event.key] = call
            else:
                yield call
        elif isinstance(event, jf.PatchMarker):
            yield CallState(
                key=_key_text(event.key),
                task=f"ctx.patched({event.patch!r})",
                kind="value",
                status="done" if seq < until else "not reached",
                requested_seq=seq,
                finished_seq=seq,
                result=True,
            )
        elif seq >= until:
            continue  # outcomes, attempts and logs after the snapshot point
        elif isinstance(event, jf.EffectCompleted | jf.EffectFailed | jf.TimerFired):
            found = open_calls.pop(event.key, None)
            if found is None:
                continue
            found.finished_seq = seq
            if isinstance(event, jf.EffectCompleted):
                found.status, found.result = "done", payload(event.result)
            elif isinstance(event, jf.EffectFailed):
                found.status, found.error = "failed", event.error
            else:
                found.status = "done"
            yield found
        elif isinstance(event, jf.AttemptFailed):
            found = open_calls.get(event.key)
            if found is not None:
                found.attempts_failed = event.attempt
        elif isinstance(event, jf.LogLine):
            yield LogEntry(seq, _key_text(event.key), event.message, event.fields)
    yield from _in_flight(open_calls)  # ``until`` is the journal's end


def _in_flight(open_calls: dict[bytes, CallState]) -> Iterator[CallState]:
    for key in sorted(open_calls):
        yield open_calls[key]
    open_calls.clear()


def read_in_batches(
    store: Store, run_id: str, stop: int, batch: int = 1000
) -> Iterator[StoredEvent]:
    """Events 0 up to ``stop``, ``batch`` per short read transaction.

    A read transaction held for the whole stream would pin the pages writers
    free while the consumer is slow; the chain link between two batches is
    checked here (the store checks it within a batch).

    Raises:
        JournalCorruptError: a damaged event or a broken link between batches.
    """
    prev: bytes | None = None
    for start in range(0, stop, batch):
        chunk = store.read_events(run_id, start, min(start + batch, stop))
        if not chunk:
            return
        if prev is not None and chunk[0].envelope.prev != prev:
            raise JournalCorruptError(
                f"run {run_id!r}: event {chunk[0].seq} does not follow event"
                f" {chunk[0].seq - 1} (its prev digest differs): the chain is"
                " broken. Run `replay-engine verify` to see the damage.",
                run_id=run_id,
                seq=chunk[0].seq,
            )
        yield from chunk
        prev = chunk[-1].digest
