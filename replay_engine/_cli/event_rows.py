"""Events as JSON-ready documents: shared by ``log`` and ``export``."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

import journal_format as jf

from .common import TASKLESS_TAGS, key_text, plain


def event_fields(event: Any) -> dict[str, Any]:
    """The event's own fields in readable form (key and task handled apart)."""
    out: dict[str, Any] = {}
    for name in event.__struct_fields__:
        if name in ("key", "task"):
            continue
        value = getattr(event, name)
        if isinstance(event, jf.RunWaiting | jf.RunCancelled) and name in (
            "pending",
            "abandoned",
        ):
            value = [key_text(k) for k in value]
        elif isinstance(event, jf.ValueRecorded) and name == "value":
            value = value.hex() if isinstance(value, bytes) else value
        out[name] = plain(value)
    if isinstance(event, jf.TimerStarted):
        out["due"] = _dt.datetime.fromtimestamp(event.due_ns / 1e9, _dt.UTC).isoformat()
    elif isinstance(event, jf.RunTimedOut):
        out["deadline"] = _dt.datetime.fromtimestamp(
            event.deadline_ns / 1e9, _dt.UTC
        ).isoformat()
    return out


def event_document(stored: Any, tasks: Mapping[str, str]) -> dict[str, Any]:
    event = stored.event
    tag = jf.event_tag(event)
    key = key_text(getattr(event, "key", None))
    task = None
    if isinstance(event, jf.EffectRequested):
        task = event.task
    elif tag not in TASKLESS_TAGS and key is not None:
        task = tasks.get(key)
    envelope = stored.envelope
    return {
        "seq": stored.seq,
        "type": tag,
        "key": key,
        "task": task,
        "digest": stored.digest.hex(),
        "prev": envelope.prev.hex(),
        "at": _dt.datetime.fromtimestamp(envelope.at / 1e9, _dt.UTC).isoformat(),
        "v": envelope.v,
        "fields": event_fields(event),
    }


def detail(doc: Mapping[str, Any]) -> str:
    f = doc["fields"]
    kind = doc["type"]
    if kind == "run_started":
        return str(f.get("process", ""))
    if kind in ("failed", "attempt_failed", "run_failed"):
        error = f.get("error") or {}
        return f"{error.get('type')}: {error.get('message')}"
    if kind == "log":
        extra = " ".join(f"{k}={json.dumps(v)}" for k, v in f.get("fields", {}).items())
        return f"{f.get('message', '')} {extra}".rstrip()
    if kind == "value":
        return f"{f.get('kind')} = {f.get('value')}"
    if kind == "patched":
        return f"patch {f.get('patch')}: new path"
    if kind == "run_waiting":
        return "pending " + ", ".join(str(k) for k in f.get("pending", []))
    if kind == "timer_started":
        return f"due {f.get('due')}"
    if kind == "signal":
        return str(f.get("name", ""))
    if kind == "execution":
        return f"{f.get('why')}: pid {f.get('pid')} on {f.get('host')}"
    if kind in ("cancel_requested", "run_cancelled"):
        reason = f.get("reason")
        text = "" if reason is None else f"reason {json.dumps(reason)}"
        if f.get("abandoned"):
            text += " abandoned " + ", ".join(str(k) for k in f["abandoned"])
        return text.strip()
    if kind == "run_timed_out":
        return f"deadline {f.get('deadline')}"
    again = doc.get("redispatched")
    if kind == "requested" and again:
        return f"dispatched again by {again} later execution{'s' * (again > 1)}"
    return ""


def redispatched(events: Sequence[Any]) -> dict[int, int]:
    """Which in-process effects ran more than once: request seq -> re-dispatches.

    An effect whose request precedes an ``execution`` event and whose outcome
    follows it (or has none yet) was in flight when an earlier execution
    ended (a crash, a kill, an interrupt), and each later execution until its
    outcome dispatched it again, with the same idempotency key. External
    effects are never dispatched by the engine and are not counted.
    """
    open_requests: dict[bytes, int] = {}
    counts: dict[int, int] = {}
    for stored in events:
        event = stored.event
        if isinstance(event, jf.EffectRequested):
            if event.kind == "task":
                open_requests[event.key] = stored.seq
        elif isinstance(event, jf.EffectCompleted | jf.EffectFailed):
            open_requests.pop(event.key, None)
        elif isinstance(event, jf.ExecutionStarted):
            for seq in open_requests.values():
                counts[seq] = counts.get(seq, 0) + 1
    return counts
