"""Snapshots: a run as it stood after its first N events (what ``replay`` returns).

``Engine.replay(run_id, until=N)`` re-executes the process against only the
first N events of its journal in a *frozen* runtime: every call the prefix
answers is answered, every other call becomes a frontier call, and nothing is
dispatched or written. The snapshot pairs what the process did with the whole
journal, so each call is shown as done, failed, in flight or not reached as of
event N.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import journal_format as jf

from .._run.stats import FrontierCall
from .._store.store import StoredEvent

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


@dataclass
class LogEntry:
    """A log line emitted before the snapshot point."""

    seq: int
    key: str
    message: str
    fields: dict[str, Any]


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


def build_calls(
    events: list[StoredEvent], until: int, payload: Any
) -> tuple[list[CallState], list[LogEntry]]:
    """Every call of the journal, with its status as of event ``until``."""
    calls: dict[bytes, CallState] = {}
    logs: list[LogEntry] = []
    for stored in events:
        seq, event = stored.seq, stored.event
        before = seq < until
        if isinstance(event, jf.EffectRequested):
            calls[event.key] = CallState(
                key=_key_text(event.key),
                task=event.task,
                kind=event.kind,
                status="in flight" if before else "not reached",
                requested_seq=seq,
                args=payload(event.args),
            )
        elif isinstance(event, jf.ValueRecorded | jf.TimerStarted):
            calls[event.key] = CallState(
                key=_key_text(event.key),
                task=f"ctx.{event.kind}"
                if isinstance(event, jf.ValueRecorded)
                else "ctx.sleep",
                kind="value" if isinstance(event, jf.ValueRecorded) else "timer",
                status=("done" if isinstance(event, jf.ValueRecorded) else "in flight")
                if before
                else "not reached",
                requested_seq=seq,
                finished_seq=seq if isinstance(event, jf.ValueRecorded) else None,
                result=event.value
                if isinstance(event, jf.ValueRecorded)
                else event.due_ns,
            )
        elif isinstance(event, jf.PatchMarker):
            calls[event.key] = CallState(
                key=_key_text(event.key),
                task=f"ctx.patched({event.patch!r})",
                kind="value",
                status="done" if before else "not reached",
                requested_seq=seq,
                finished_seq=seq,
                result=True,
            )
        elif isinstance(event, jf.EffectCompleted | jf.EffectFailed | jf.TimerFired):
            call = calls.get(event.key)
            if call is None or not before:
                continue
            call.finished_seq = seq
            if isinstance(event, jf.EffectCompleted):
                call.status, call.result = "done", payload(event.result)
            elif isinstance(event, jf.EffectFailed):
                call.status, call.error = "failed", event.error
            else:
                call.status = "done"
        elif isinstance(event, jf.AttemptFailed):
            call = calls.get(event.key)
            if call is not None and before:
                call.attempts_failed = event.attempt
        elif isinstance(event, jf.LogLine) and before:
            logs.append(
                LogEntry(seq, _key_text(event.key), event.message, event.fields)
            )
    ordered = [calls[k] for k in sorted(calls)]
    return ordered, logs
