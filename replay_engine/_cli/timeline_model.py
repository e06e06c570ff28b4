"""The ``timeline`` model: one row per call of a run, its boundaries and times.

One row per call, in key order (tree order): every key of a ``requested``,
``value`` or ``timer_started`` event. ``log`` lines have no row: their key is
an anchor, not a call. A bar runs from the call's first event (``requested``
or ``timer_started``) to its outcome (``completed``, ``failed`` or
``timer_fired``), on the clock of the events' envelopes (``at``); a value
(``ctx.now`` …) is a diamond.

Colours. A run is executed in *executions*: the first ``run``, then every
``resume``, ``iterate`` or worker's wake-up that wrote something. Each
execution after the first opens with an ``execution`` event (why, pid,
host: a dashed line labelled so); an execution that ends without finishing
the run records ``run_waiting`` or ``run_failed``, and a fork's own events
start a new execution after the ``fork_at`` events it shares with its parent;
these are the boundaries (dashed lines on the chart). An effect that
completed in the run's **latest** execution is *dispatched* (blue): that
execution ran it. One that completed in an **earlier** execution is
*replayed* (grey): the latest execution was served its result from the
journal. An in-process effect requested in one execution and finished in a
later one was in flight when its execution ended (a crash) and was
dispatched again (``redispatched``, said on hover). A result posted to an
external effect counts as part of the execution after the post. Failed
effects are red, retried attempts are ticks on their bar, and a call with no
outcome yet is striped (in flight).

"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import journal_format as jf


@dataclass
class Boundary:
    """Where one execution ended (or, for a fork, where its own events begin)."""

    label: str
    at: int


@dataclass
class Execution:
    """One execution of the run: its lane and colour on the chart."""

    index: int
    label: str
    start: int
    end: int


@dataclass
class Row:
    """One call on the chart."""

    key: str
    parts: tuple[int, ...]
    task: str
    kind: str
    """The effect's kind (``task``, an external kind), ``value`` or ``timer``."""
    start: int
    end: int | None = None
    status: str = "in flight"
    """``done``, ``failed``, ``in flight``, or ``abandoned`` (the run was
    cancelled with it in flight: it ends at the cancel, with no outcome)."""
    execution: int = 0
    """The execution in which the call finished (or started, if it has not)."""
    attempts: list[tuple[int, str]] = field(default_factory=list)
    """Failed attempts that were retried: (time, error)."""
    error: str | None = None
    requested_in: int = 0
    """The execution that requested it."""
    args: bytes | None = None
    """The payload reference of its args (an effect's), for the details."""
    result: bytes | None = None
    """The payload reference of its result (a completed effect's)."""

    @property
    def redispatched(self) -> bool:
        """An in-process effect a later execution than its request's ran again."""
        return self.kind == "task" and self.execution != self.requested_in


@dataclass
class Timeline:
    """A run laid out in time."""

    run_id: str
    process: str
    status: str
    events: int
    start: int
    end: int
    rows: list[Row]
    boundaries: list[Boundary]
    latest_execution: int
    times: list[int] = field(default_factory=list)
    """When each event happened, by seq."""
    executions: list[Execution] = field(default_factory=list)
    """Every execution, in order (the index is a row's ``execution``)."""

    def shade(self, row: Row) -> str:
        """The CSS class that colours ``row`` (see the module docstring)."""
        if row.kind == "value":
            return "value"
        if row.status == "failed":
            return "failed"
        if row.status in ("in flight", "abandoned"):
            return "inflight"
        return "dispatched" if row.execution == self.latest_execution else "replayed"


def build_timeline(
    run_id: str,
    status: str,
    events: Sequence[Any],
    times: Sequence[int],
    *,
    fork_at: int | None = None,
) -> Timeline:
    """Lay out ``events`` (stored events); ``times[seq]`` is when each happened."""
    rows: dict[bytes, Row] = {}
    boundaries: list[Boundary] = []
    execution = latest = 0
    # An execution ended with run_waiting/run_failed since the last
    # `execution` event: the next one has begun already (posts in between
    # belong to it). Otherwise an `execution` event follows a crash.
    ended = False
    process = ""
    execs: list[Execution] = []
    named: set[int] = set()
    plain = _PLAIN
    for stored in events:
        seq = stored.seq
        event, at = stored.event, times[seq]
        if (kind := type(event)) in plain and execution < len(execs) and seq != fork_at:
            # Most events (requests, outcomes, values, log lines) start no
            # execution and end none: only the rows and the lane's end move.
            execs[execution].end = at
            apply = _APPLY.get(kind)
            if apply is not None:
                apply(rows, event, at, execution)
            latest = execution
            continue
        label = ""
        if fork_at is not None and seq == fork_at:
            execution += 1
            ended = True
            label = f"fork at {fork_at}"
            boundaries.append(Boundary(label, at))
        if isinstance(event, jf.ExecutionStarted):
            if not ended:
                execution += 1  # the one before ended without a word: a crash
            ended = False
            label = f"{event.why} (pid {event.pid})"
            boundaries.append(Boundary(label, at))
        elif isinstance(event, jf.RunStarted):
            process = event.process
            label = f"start (pid {event.pid})" if event.pid else "start"
        while len(execs) <= execution:
            # An old journal has no `execution` events: a run boundary
            # (run_waiting …) starts the next execution, called a resume.
            execs.append(Execution(len(execs), label or "resume", at, at))
        if label and execution not in named:
            execs[execution].label = label
            named.add(execution)
        execs[execution].end = at
        _apply(rows, event, at, execution)
        latest = execution  # the execution of the last event seen
        if isinstance(event, jf.RunCancelled):
            _abandon(rows, event, at)
        if isinstance(event, _BOUNDARIES):
            execution += 1
            ended = True
            boundaries.append(Boundary(jf.event_tag(event), at))
    start = min(times) if times else 0
    end = max(times) if times else 0
    ordered = sorted(rows.values(), key=lambda r: r.parts)
    return Timeline(
        run_id,
        process,
        status,
        len(events),
        start,
        end,
        ordered,
        boundaries,
        latest,
        list(times),
        execs[: latest + 1],
    )


def _apply(rows: dict[bytes, Row], event: Any, at: int, execution: int) -> None:
    """Fold one event into the rows of the calls it concerns."""
    apply = _APPLY.get(type(event))
    if apply is not None:
        apply(rows, event, at, execution)


def _requested(
    rows: dict[bytes, Row], event: jf.EffectRequested, at: int, execution: int
) -> None:
    row = rows[event.key] = _row(event.key, event.task, event.kind, at, execution)
    row.args = event.args


def _value(
    rows: dict[bytes, Row],
    event: jf.ValueRecorded | jf.PatchMarker,
    at: int,
    execution: int,
) -> None:
    row = _row(event.key, _value_name(event), "value", at, execution)
    row.end, row.status = at, "done"
    rows[event.key] = row


def _timer(
    rows: dict[bytes, Row], event: jf.TimerStarted, at: int, execution: int
) -> None:
    rows[event.key] = _row(event.key, "ctx.sleep", "timer", at, execution)


def _completed(
    rows: dict[bytes, Row], event: jf.EffectCompleted, at: int, execution: int
) -> None:
    done = rows.get(event.key)
    if done is not None:
        done.end, done.execution, done.status = at, execution, "done"
        done.result = event.result


def _failed(
    rows: dict[bytes, Row], event: jf.EffectFailed, at: int, execution: int
) -> None:
    done = rows.get(event.key)
    if done is not None:
        done.end, done.execution, done.status = at, execution, "failed"
        done.error = f"{event.error.type}: {event.error.message}"


def _fired(
    rows: dict[bytes, Row], event: jf.TimerFired, at: int, execution: int
) -> None:
    done = rows.get(event.key)
    if done is not None:
        done.end, done.execution, done.status = at, execution, "done"


def _attempt(
    rows: dict[bytes, Row], event: jf.AttemptFailed, at: int, execution: int
) -> None:
    retried = rows.get(event.key)
    if retried is not None:
        text = f"attempt {event.attempt}: {event.error.type}: "
        retried.attempts.append((at, text + event.error.message))


_APPLY: dict[type, Callable[[dict[bytes, Row], Any, int, int], None]] = {
    jf.EffectRequested: _requested,
    jf.ValueRecorded: _value,
    jf.PatchMarker: _value,
    jf.TimerStarted: _timer,
    jf.EffectCompleted: _completed,
    jf.EffectFailed: _failed,
    jf.TimerFired: _fired,
    jf.AttemptFailed: _attempt,
}
"""What each kind of event does to the rows (by exact type: event structs are
final); kinds not here change no row."""

_SPECIAL = (
    jf.ExecutionStarted,
    jf.RunStarted,
    jf.RunCancelled,
    jf.RunWaiting,
    jf.RunFailed,
    jf.RunTimedOut,
)
"""Events that name, start or end an execution: the slow path of the loop."""

_BOUNDARIES = (
    jf.RunWaiting,
    jf.RunFailed,
    jf.RunCancelled,
    jf.RunTimedOut,
)
"""Events that end an execution: a boundary on the chart."""

_PLAIN = frozenset(set(jf.EVENT_TYPES) - set(_SPECIAL))
"""Every other event: it starts no execution and ends none."""


def _abandon(rows: Mapping[bytes, Row], event: jf.RunCancelled, at: int) -> None:
    """End the bars of the effects a cancel left without an outcome."""
    for key in event.abandoned:
        left = rows.get(key)
        if left is not None and left.end is None:
            left.end, left.status = at, "abandoned"
            left.error = "abandoned: the run was cancelled"


def _row(key: bytes, task: str, kind: str, at: int, execution: int) -> Row:
    parts = jf.decode_key(key)
    return Row(
        jf.format_key(parts),
        parts,
        task,
        kind,
        at,
        execution=execution,
        requested_in=execution,
    )


def times_by_seq(events: Sequence[Any], inherited: Mapping[int, int]) -> list[int]:
    """Each event's time: a fork's shared prefix keeps its parent's times."""
    return [inherited.get(s.seq, s.envelope.at) for s in events]


def _value_name(event: jf.ValueRecorded | jf.PatchMarker) -> str:
    """The row label of a recorded value or a patch marker."""
    if isinstance(event, jf.PatchMarker):
        return f"ctx.patched({event.patch})"
    return f"ctx.{event.kind}"
