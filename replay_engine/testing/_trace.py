"""What one execution of a process did, in a form two executions can be compared by.

A :class:`Trace` is read back from a finished journal. It keeps, per
invocation key, exactly what a deterministic process must reproduce — the
task name, the args and the outcome (as content addresses, with the decoded
values kept for messages) — plus the log lines and the final outcome. It
leaves out what legitimately differs between executions: event order, seqs,
envelope timestamps, ``ctx.now()`` values, timer due times and tracebacks.

A race's winner (``ctx.parallel.any``, the ``race_won`` event), and the
branch a fail-fast group failed at (``failed_fast``), is kept as a
*recorded choice*, like ``ctx.now()``: which branch finishes first depends on
the schedule. :attr:`Trace.decisions` lists the winners, and two traces are
only compared when they agree on them (see ``_check``); the losing branches
are then compared by their calls alone, since how far a cancelled branch got
depends on timing too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import journal_format as jf

_key_text = jf.key_bytes_to_text


@dataclass
class CallRecord:
    """What the journal holds at one invocation key."""

    key: str
    kind: str
    """``"task"`` (or an external kind such as ``"agent"``), ``"value"``,
    ``"timer"`` or ``"race"``."""
    name: str
    """The task's name, or ``ctx.random``, ``ctx.uuid``, ``ctx.now``, ``ctx.sleep``."""
    args: bytes = b""
    """Reference to the args as the journal stores it (effects only)."""
    args_value: Any = None
    outcome: str = "pending"
    """``"ok"``, ``"failed"``, ``"abandoned"``, ``"pending"``, ``"fired"``,
    ``"value"`` or ``"decided"``."""
    result: bytes = b""
    """Reference to the result as the journal stores it (completed effects)."""
    result_value: Any = None
    error: tuple[str, str] | None = None
    """``(type, message)`` of a failed effect."""
    failed_attempts: int = 0
    """Attempts that failed and were retried."""
    value: Any = None
    """A recorded ``ctx.random()``/``ctx.uuid()`` seed (``ctx.now()`` is left
    out), or a race's winning branch."""

    def signature(self) -> tuple[Any, ...]:
        """Everything two deterministic executions must agree on at this key."""
        return (
            self.kind,
            self.name,
            self.args,
            self.outcome,
            self.result,
            self.error,
            self.failed_attempts,
            self.value,
        )

    def describe(self, *, outcome: bool = True) -> str:
        """One line: the call and (with ``outcome``) its outcome, values shortened."""
        if self.kind == "value":
            return f"{self.name}()"
        if self.kind == "timer":
            return f"ctx.sleep() ({self.outcome})"
        if self.kind == "race" and self.name == "fail_fast":
            return f"a fail-fast group that failed at branch {self.value}"
        if self.kind == "race":
            return f"ctx.parallel.any() won by branch {self.value}"
        call = f"task {self.name!r} args {short(self.args_value)}"
        if not outcome:
            return call
        result = {
            "ok": f"-> {short(self.result_value)}",
            "failed": f"-> failed {self.error[0]}: {self.error[1]}"
            if self.error
            else "-> failed",
        }.get(self.outcome, f"({self.outcome})")
        retries = f" after {self.failed_attempts} failed attempts" * bool(
            self.failed_attempts
        )
        return f"{call} {result}{retries}"


@dataclass
class Trace:
    """One execution of a process, as its journal records it."""

    calls: dict[str, CallRecord] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    """Keys in the order the journal first mentions them (roughly causal order)."""
    logs: list[tuple[str, int, str, str]] = field(default_factory=list)
    """``(anchor key, ordinal, message, fields as JSON)``, sorted."""
    status: str = "running"
    result: bytes = b""
    result_value: Any = None
    error: tuple[str, str] | None = None
    pending: tuple[str, ...] = ()
    events: int = 0
    """Events in the journal (which depends on the schedule, so not compared)."""

    @property
    def task_keys(self) -> list[str]:
        """Keys of the effects the engine executed (those a schedule can steer)."""
        return [k for k in self.order if self.calls[k].kind == "task"]

    @property
    def decisions(self) -> tuple[tuple[str, int], ...]:
        """``(key, winner)`` of every decided race, in key order.

        The recorded choices of this execution: two executions are comparable
        call by call only if they made the same ones.
        """
        return tuple(
            sorted((k, c.value) for k, c in self.calls.items() if c.kind == "race")
        )

    def lost(self, key: str) -> bool:
        """Whether ``key`` is off the branch a race or fail-fast group chose.

        That is, in a branch that lost a race (or failed in one), or a
        sibling of the branch a fail-fast group failed at.
        """
        return _lost(key, self.decisions)

    def outcome(self) -> tuple[Any, ...]:
        """The final outcome, as compared."""
        return (self.status, self.result, self.error, self.pending)

    def describe_outcome(self) -> str:
        if self.status == "completed":
            return f"completed -> {short(self.result_value)}"
        if self.status == "failed" and self.error is not None:
            return f"failed {self.error[0]}: {self.error[1]}"
        if self.status == "waiting":
            return f"waiting for {', '.join(self.pending)}"
        return self.status


def build_trace(events: Iterable[Any], payload: Any) -> Trace:
    """Read a trace from a run's stored events; ``payload(address)`` decodes blobs."""
    trace = Trace()
    calls = trace.calls

    def call(key: bytes, kind: str, name: str) -> CallRecord:
        text = _key_text(key)
        record = calls.get(text)
        if record is None:
            record = calls[text] = CallRecord(key=text, kind=kind, name=name)
            trace.order.append(text)
        return record

    for stored in events:
        trace.events += 1
        event = stored.event
        if isinstance(event, jf.EffectRequested):
            record = call(event.key, "task" if event.kind == "task" else event.kind, "")
            record.name = event.task
            record.args = event.args
            record.args_value = payload(event.args)
        elif isinstance(event, jf.EffectCompleted):
            record = call(event.key, "task", "")
            record.outcome, record.result = "ok", event.result
            record.result_value = payload(event.result)
        elif isinstance(event, jf.EffectFailed):
            record = call(event.key, "task", "")
            record.outcome = "failed"
            record.error = (event.error.type, event.error.message)
        elif isinstance(event, jf.AttemptFailed):
            call(event.key, "task", "").failed_attempts += 1
        elif isinstance(event, jf.EffectAbandoned):
            call(event.key, "task", "").outcome = "abandoned"
        elif isinstance(event, jf.ValueRecorded | jf.PatchMarker):
            _settle(call(event.key, "value", _value_name(event)), "value", event)
        elif isinstance(event, jf.TimerStarted):
            call(event.key, "timer", "ctx.sleep")
        elif isinstance(event, jf.TimerFired):
            call(event.key, "timer", "ctx.sleep").outcome = "fired"
        elif isinstance(event, jf.RaceWon | jf.FailedFast):
            name = "ctx.parallel.any" if isinstance(event, jf.RaceWon) else "fail_fast"
            _settle(call(event.key, "race", name), "decided", event)
        elif isinstance(event, jf.LogLine):
            fields = json.dumps(event.fields, sort_keys=True, default=repr)
            trace.logs.append(
                (_key_text(event.key), event.ordinal, event.message, fields)
            )
        elif isinstance(event, jf.RunCompleted):
            trace.status, trace.result = "completed", event.result
            trace.result_value = payload(event.result)
        elif isinstance(event, jf.RunFailed):
            trace.status = "failed"
            trace.error = (event.error.type, event.error.message)
        elif isinstance(event, jf.RunWaiting):
            trace.status = "waiting"
            trace.pending = tuple(_key_text(k) for k in event.pending)
    trace.logs.sort()
    return trace


@dataclass(frozen=True)
class Difference:
    """The first thing two traces disagree on."""

    key: str | None
    """The invocation key, or None for the final outcome or the logs."""
    what: str
    """A short headline: ``"different args"``, ``"extra call"`` …"""
    first: str
    second: str
    task_side: bool = False
    """True when the calls agree and only the task's own result differs: the
    task, not the process, is nondeterministic."""


def first_difference(a: Trace, b: Trace) -> Difference | None:
    """Where ``b`` first departs from ``a``, walking ``a`` in journal order.

    In a branch that lost a race (in ``a``; compare traces with the same
    :attr:`Trace.decisions`) only calls both made are compared, and only as
    calls: a cancelled branch's progress and outcomes depend on timing.
    """
    races = a.decisions
    for key in [*a.order, *(k for k in b.order if k not in a.calls)]:
        x, y = a.calls.get(key), b.calls.get(key)
        if races and _lost(key, races):
            what = None if x is None or y is None else describe_change(x, y)
            if what is not None and x is not None and y is not None:
                return Difference(
                    key, what, x.describe(outcome=False), y.describe(outcome=False)
                )
            continue
        if x is None or y is None:
            return Difference(
                key,
                "a call only one execution made",
                x.describe() if x else "(no call at this key)",
                y.describe() if y else "(no call at this key)",
            )
        if x.signature() == y.signature():
            continue
        what = describe_change(x, y)
        if what is None:
            return Difference(
                key,
                "the same call (same task, same args) had a different outcome",
                x.describe(),
                y.describe(),
                task_side=x.kind == "task" and x.failed_attempts == y.failed_attempts,
            )
        return Difference(key, what, x.describe(), y.describe())
    logs_a, logs_b = a.logs, b.logs
    if races:  # a cancelled branch may or may not have got to its log lines
        logs_a = [line for line in logs_a if not _lost(line[0], races)]
        logs_b = [line for line in logs_b if not _lost(line[0], races)]
    if logs_a != logs_b:
        only_a = sorted(set(logs_a) - set(logs_b))
        only_b = sorted(set(logs_b) - set(logs_a))
        return Difference(
            None,
            "different log lines",
            short(only_a[0]) if only_a else "(none)",
            short(only_b[0]) if only_b else "(none)",
        )
    if a.outcome() != b.outcome():
        return Difference(
            None,
            "the same calls, but a different final outcome",
            a.describe_outcome(),
            b.describe_outcome(),
        )
    return None


def _lost(key: str, races: tuple[tuple[str, int], ...]) -> bool:
    return any(
        key.startswith(f"{race}.") and not key.startswith(f"{race}.{winner}.")
        for race, winner in races
    )


def describe_change(x: CallRecord, y: CallRecord) -> str | None:
    """How the call ``y`` differs from ``x`` (None if only the outcome differs)."""
    if (x.kind, x.name) != (y.kind, y.name):
        return "a different call at the same key"
    if x.args != y.args:
        return "the same task called with different args" + _dict_diff(
            x.args_value, y.args_value
        )
    if x.value != y.value:
        return f"a different {x.name}() value"
    return None


def _dict_diff(x: Any, y: Any) -> str:
    if not (isinstance(x, dict) and isinstance(y, dict)):
        return ""
    names = sorted(k for k in x.keys() | y.keys() if x.get(k) != y.get(k))
    return f" (they differ in {', '.join(map(repr, names))})" if names else ""


def value_digest(value: Any) -> str:
    """A digest of a value's canonical encoding, to compare values across runs.

    Independent of how the journal refers to payloads (inline or by address).
    """
    try:
        return jf.address_of(jf.encode_payload(value)).hex()
    except jf.FormatError:
        return f"unencodable {short(value)}"


def short(value: Any, limit: int = 160) -> str:
    """``repr`` cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _settle(
    record: CallRecord,
    outcome: str,
    event: jf.ValueRecorded | jf.PatchMarker | jf.RaceWon | jf.FailedFast,
) -> None:
    record.outcome = outcome
    if isinstance(event, jf.RaceWon):
        record.value = event.winner
    elif isinstance(event, jf.FailedFast):
        record.value = event.branch
    else:
        record.value = _value_of(event)


def _value_name(event: jf.ValueRecorded | jf.PatchMarker) -> str:
    if isinstance(event, jf.PatchMarker):
        return f"ctx.patched({event.patch!r})"
    return f"ctx.{event.kind}"


def _value_of(event: jf.ValueRecorded | jf.PatchMarker) -> int | bytes | None:
    if isinstance(event, jf.PatchMarker):
        return True  # a marker is recorded only for a True answer
    # ctx.now() reads the clock: it is recorded, not reproduced.
    return None if event.kind == "now" else event.value
