"""Comparing two runs' journals call by call (``replay-engine diff``).

Read-only and on the public API only (``Engine.events``, ``Engine.payload``,
``Engine.status``): it compares what two journals recorded, it runs and
imports nothing. Each run's events are folded into one :class:`Call` per
invocation key; the two runs' calls are paired by key and walked in key
order. Two calls are the same when they have the same kind, task (or value
kind) and args, the same outcome (completed, failed, abandoned, in flight…)
and the same result, error or recorded value. Payloads are compared by their
reference (inline bytes or content address): the encoding is canonical, so
equal values have equal references, and nothing is decoded but what is shown.

Timing (a call's duration) is shown, never compared: a fork shares its
parent's first events, and the calls after the fork point are new anyway.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import journal_format as jf

from .. import Engine

ONLY_IN_A = "only_in_a"
ONLY_IN_B = "only_in_b"
DIFFERENT_TASK = "different_task"
DIFFERENT_ARGS = "different_args"
DIFFERENT_OUTCOME = "different_outcome"
DIFFERENT_RESULT = "different_result"
KINDS = (
    ONLY_IN_A,
    ONLY_IN_B,
    DIFFERENT_TASK,
    DIFFERENT_ARGS,
    DIFFERENT_OUTCOME,
    DIFFERENT_RESULT,
)
"""Every way two runs can differ at a key, in the order the summary lists them."""


@dataclass
class Call:
    """What one run's journal says happened at one invocation key."""

    key: str
    seq: int
    """The event that created the call (request, value or timer)."""
    kind: str
    """``task``, an external kind (``agent`` …), ``value`` or ``timer``."""
    task: str
    """The task name; ``now``/``random``/``uuid`` for a value; ``sleep``."""
    args: bytes | None = None
    outcome: str = "in flight"
    """``completed``, ``failed``, ``abandoned``, ``in flight``, ``recorded``
    (a value), ``fired`` or ``started`` (a timer)."""
    result: bytes | None = None
    """The result's payload reference (a value: its recorded bytes or int)."""
    value: int | bytes | None = None
    error: jf.ErrorInfo | None = None
    started_ns: int = 0
    ended_ns: int | None = None

    @property
    def duration(self) -> float | None:
        """Seconds from the call's first event to its outcome (None: no outcome)."""
        if self.ended_ns is None:
            return None
        return max(0, self.ended_ns - self.started_ns) / 1e9


@dataclass
class RunSide:
    """One run of the comparison: its calls and how it ended."""

    run_id: str
    status: str
    events: int
    calls: dict[str, Call]
    result: bytes | None = None
    """The ``run_completed`` result reference (None: not completed)."""
    error: jf.ErrorInfo | None = None
    parent: str | None = None
    fork_at: int | None = None
    contents: list[Any] = field(default_factory=list, repr=False)
    """Every event's body (for the shared prefix)."""


@dataclass
class Difference:
    """How the two runs differ at one key."""

    key: str
    kind: str
    """One of :data:`KINDS`."""
    a: Call | None
    b: Call | None


@dataclass
class RunDiff:
    """The comparison of two runs."""

    a: RunSide
    b: RunSide
    differences: list[Difference]
    """Every differing key, in invocation-key order."""
    common_events: int
    """How many leading events the runs share (a fork's prefix; 0 if unrelated)."""

    @property
    def first(self) -> Difference | None:
        return self.differences[0] if self.differences else None

    @property
    def same_end(self) -> bool:
        """Both ended alike: the same status, result and error."""
        a, b = self.a, self.b
        return (a.status, a.result, _error_key(a.error)) == (
            b.status,
            b.result,
            _error_key(b.error),
        )

    @property
    def identical(self) -> bool:
        """The same calls with the same outcomes, and the same end."""
        return not self.differences and self.same_end

    def keys(self, kind: str) -> list[str]:
        return [d.key for d in self.differences if d.kind == kind]


def load_side(engine: Engine, run_id: str) -> RunSide:
    """Fold one run's events into its calls (raises RunNotFoundError first)."""
    info = engine.status(run_id)
    stored = engine.events(run_id)
    calls: dict[str, Call] = {}
    side = RunSide(
        run_id=run_id,
        status=info.status,
        events=len(stored),
        calls=calls,
        parent=info.parent,
        fork_at=info.fork_at,
    )
    for item in stored:
        _fold(side, item.seq, item.envelope.at, item.event)
        side.contents.append(item.event)
    return side


def _fold(side: RunSide, seq: int, at: int, event: Any) -> None:
    calls = side.calls
    key = getattr(event, "key", None)
    text = jf.key_bytes_to_text(key) if isinstance(key, bytes) else None
    if isinstance(event, jf.EffectRequested) and text is not None:
        calls[text] = Call(text, seq, event.kind, event.task, event.args, "in flight")
        calls[text].started_ns = at
    elif isinstance(event, jf.ValueRecorded) and text is not None:
        call = Call(text, seq, "value", event.kind, outcome="recorded")
        call.value, call.started_ns, call.ended_ns = event.value, at, at
        calls[text] = call
    elif isinstance(event, jf.PatchMarker) and text is not None:
        call = Call(text, seq, "value", f"patched {event.patch}", outcome="recorded")
        call.value, call.started_ns, call.ended_ns = True, at, at
        calls[text] = call
    elif isinstance(event, jf.TimerStarted) and text is not None:
        calls[text] = Call(text, seq, "timer", "sleep", outcome="started")
        calls[text].started_ns = at
    elif text is not None and text in calls:
        call = calls[text]
        if isinstance(event, jf.EffectCompleted):
            call.outcome, call.result, call.ended_ns = "completed", event.result, at
        elif isinstance(event, jf.EffectFailed):
            call.outcome, call.error, call.ended_ns = "failed", event.error, at
        elif isinstance(event, jf.EffectAbandoned):
            call.outcome, call.ended_ns = "abandoned", at
        elif isinstance(event, jf.TimerFired):
            call.outcome, call.ended_ns = "fired", at
    elif isinstance(event, jf.RunCompleted):
        side.result, side.error = event.result, None
    elif isinstance(event, jf.RunFailed):
        side.result, side.error = None, event.error
    elif isinstance(event, jf.RunCancelled):
        for key in event.abandoned:
            dropped = calls.get(jf.key_bytes_to_text(key))
            if dropped is not None and dropped.ended_ns is None:
                dropped.outcome, dropped.ended_ns = "abandoned", at


def _error_key(error: jf.ErrorInfo | None) -> tuple[str, str] | None:
    # The traceback names files and lines: not what makes two failures differ.
    return None if error is None else (error.type, error.message)


def difference_kind(a: Call | None, b: Call | None) -> str | None:
    """How two calls at one key differ (None: they do not)."""
    if a is None:
        return ONLY_IN_B if b is not None else None
    if b is None:
        return ONLY_IN_A
    if (a.kind, a.task) != (b.kind, b.task):
        return DIFFERENT_TASK
    if a.args != b.args:
        return DIFFERENT_ARGS
    if a.outcome != b.outcome:
        return DIFFERENT_OUTCOME
    if (a.result, a.value, _error_key(a.error)) != (
        b.result,
        b.value,
        _error_key(b.error),
    ):
        return DIFFERENT_RESULT
    return None


def compare(engine: Engine, run_a: str, run_b: str) -> RunDiff:
    """Compare two runs of one journal, key by key.

    Raises:
        RunNotFoundError: either run is unknown.
        JournalCorruptError: an event of either run is damaged.
    """
    a, b = load_side(engine, run_a), load_side(engine, run_b)
    keys = sorted(set(a.calls) | set(b.calls), key=_order)
    differences = []
    for key in keys:
        ca, cb = a.calls.get(key), b.calls.get(key)
        kind = difference_kind(ca, cb)
        if kind is not None:
            differences.append(Difference(key, kind, ca, cb))
    return RunDiff(a, b, differences, _common_prefix(a.contents, b.contents))


def _order(key: str) -> tuple[int, ...]:
    return tuple(jf.parse_key(key))


def _common_prefix(a: Iterable[Any], b: Iterable[Any]) -> int:
    shared = 0
    for ea, eb in zip(a, b, strict=False):
        if isinstance(ea, jf.RunStarted) and isinstance(eb, jf.RunStarted):
            # A fork's run_started names its parent and fork point: the same
            # start all the same when it runs the same process on the same inputs.
            if (ea.process, ea.inputs) != (eb.process, eb.inputs):
                break
        elif ea != eb:
            break
        shared += 1
    return shared
