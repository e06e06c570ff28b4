"""Every record the journal stores, as msgspec Structs.

Encoding rules (numbered as in docs/journal-format.md):

JF-030  Every event struct is a tagged msgspec Struct with an explicit, stable
        tag in field ``t``. A class may be renamed; its tag never changes.
JF-031  Fields added after format version 1 must have defaults, and every
        struct uses ``omit_defaults=True``: an event that does not use a new
        field encodes to the same bytes as before, so its digest is stable.
JF-032  Events are encoded once, when appended, and their digest is taken over
        exactly the bytes stored. Verification hashes the stored bytes; it
        never re-encodes.
JF-033  Invocation keys are stored as key bytes (see ``_keys``); payloads are
        stored by content address (see ``_codec``).

The structs are ``gc=False`` (not tracked by the cyclic garbage collector):
they are frozen and hold only bytes, strings, numbers and other records, so
they cannot form cycles, and a replay holds hundreds of thousands of them.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from ._errors import FormatError, refuse_extension

FORMAT_VERSION: Final = 1
"""The format version written into every envelope and the meta record."""


class ErrorInfo(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """A failure as recorded: exception type, message and formatted traceback."""

    type: str
    message: str
    traceback: str = ""


class _Event(
    msgspec.Struct,
    frozen=True,
    omit_defaults=True,
    tag_field="t",
    kw_only=True,
    gc=False,
):
    """Base of every event body; the tag in ``t`` says which one."""


class RunStarted(_Event, tag="run_started", frozen=True):
    """A run began: which process, which code, which inputs."""

    process: str
    """The process function as ``module:qualname``."""
    fingerprint: str
    """What the process's code was, to notice changed code: ``code1:`` and the
    hex blake3 of the process function's code objects (JF-114); in journals
    written before that, the hex blake3 of its module's source."""
    inputs: bytes
    """Content address of the inputs payload."""
    parent: str | None = None
    """For a fork: the run it was forked from."""
    fork_at: int | None = None
    """For a fork: how many of the parent's events it shares."""
    seed: str | None = None
    """What ``ctx.random()``/``ctx.uuid()`` derive from: absent means the run id.
    A fork inherits its parent's, so an unchanged fork reproduces the parent."""
    pid: int | None = None
    """The process that created the run and executes it first (``Engine.run``);
    absent when the run was created without executing it (a fork, a submit).
    That first execution writes no ``execution`` event of its own."""
    host: str | None = None
    """The host of ``pid``."""
    code: dict[str, str] | None = None
    """Per function of the process (the process and each function it defines,
    by qualified name): a short hash of its code (JF-114)."""


class EffectRequested(_Event, tag="requested", frozen=True):
    """A call asked for an effect: recorded before it is dispatched."""

    key: bytes
    task: str
    kind: str
    """``task`` for in-process tasks, or the kind of an external effect."""
    args: bytes
    """Content address of the args payload."""
    deadline_ns: int | None = None
    """External effects with a timeout: when it expires (UTC nanoseconds)."""


class EffectCompleted(_Event, tag="completed", frozen=True):
    """An effect finished; its result is stored by address."""

    key: bytes
    result: bytes
    signal_seq: int | None = None
    """For ``ctx.wait_for_event``: the seq of the signal the wait consumed."""
    by: str | None = None
    """For posted results: who posted (a worker name), when given."""


class EffectFailed(_Event, tag="failed", frozen=True):
    """An effect failed for good (after its retries), or its deadline expired."""

    key: bytes
    error: ErrorInfo
    attempts: int = 1
    by: str | None = None
    """For posted errors: who posted, when given."""
    signal_seq: int | None = None
    """For ``ctx.wait_for_event``: the seq of the error signal the wait consumed
    (JF-141)."""


class EffectClaimed(_Event, tag="claimed", frozen=True):
    """A worker claimed an external effect (or renewed its lease by heartbeat)."""

    key: bytes
    worker: str
    lease_until_ns: int


class EffectAbandoned(_Event, tag="abandoned", frozen=True):
    """A pending external effect whose result can no longer matter.

    Recorded when a parallel group failed while this effect, in a branch of a
    higher index, was still waiting. Posting to it is refused.
    """

    key: bytes
    reason: str


class AttemptFailed(_Event, tag="attempt_failed", frozen=True):
    """One attempt failed and the effect will be retried."""

    key: bytes
    attempt: int
    error: ErrorInfo
    retry_in: float = 0.0


class LogLine(_Event, tag="log", frozen=True):
    """A ``ctx.log`` line, emitted once per run.

    Log lines do not take an invocation key of their own (adding a log line to
    a process must not shift the keys of later calls). They are anchored at the
    key the next call in their scope would take, and numbered from 0 at that
    anchor.
    """

    key: bytes
    ordinal: int
    message: str
    fields: dict[str, Any] = msgspec.field(default_factory=dict)


class ValueRecorded(_Event, tag="value", frozen=True):
    """A value that must be the same on every replay: ``now``, ``random``, ``uuid``."""

    key: bytes
    kind: str
    value: int | bytes
    """``now``: UTC nanoseconds; ``random``: a 64-bit seed; ``uuid``: 16 bytes."""


class TimerStarted(_Event, tag="timer_started", frozen=True):
    """A durable timer (``ctx.sleep``) was set."""

    key: bytes
    due_ns: int
    """When it fires, in UTC nanoseconds since the epoch."""


class TimerFired(_Event, tag="timer_fired", frozen=True):
    """A durable timer fired."""

    key: bytes


class SignalReceived(_Event, tag="signal", frozen=True):
    """A named signal was posted to the run."""

    name: str
    payload: bytes
    error: ErrorInfo | None = None
    """An error signal (``post --event NAME --error MSG``): the wait that
    consumes it fails with this error instead of returning the payload (JF-141)."""


class RaceWon(_Event, tag="race_won", frozen=True):
    """The race ``ctx.parallel.any`` at ``key`` was decided (JF-140).

    Replay serves the decision from here: only branch ``winner`` is executed
    again. The branches in ``cancelled`` were still running when it was decided
    (their open effects are ``abandoned`` in the same commit); the others had
    failed, or were never started.
    """

    key: bytes
    winner: int
    cancelled: list[int] = msgspec.field(default_factory=list)


class FailedFast(_Event, tag="failed_fast", frozen=True):
    """The fail-fast group at ``key`` failed at branch ``branch`` (JF-144).

    ``ctx.parallel.all``/``map`` with ``fail_fast=True``: replay serves the
    decision from here, executing only branch ``branch`` again (it fails the
    same way) and treating the other branches' recorded calls as reached, so
    a sibling cancelled on a timer records nothing new. The branches in
    ``cancelled`` were still running when it was decided (their open effects
    are ``abandoned`` in the same commit).
    """

    key: bytes
    branch: int
    cancelled: list[int] = msgspec.field(default_factory=list)


class RunCompleted(_Event, tag="run_completed", frozen=True):
    """The process returned; its result is stored by address."""

    result: bytes


class RunFailed(_Event, tag="run_failed", frozen=True):
    """The process raised."""

    error: ErrorInfo


class RunWaiting(_Event, tag="run_waiting", frozen=True):
    """Nothing can progress until external results arrive or a timer is due."""

    pending: list[bytes] = msgspec.field(default_factory=list)
    next_due_ns: int | None = None


class CancelRequested(_Event, tag="cancel_requested", frozen=True):
    """Someone asked to cancel the run while an executor held it.

    Appended without the run lock (like a post); the executing process sees
    it within a fraction of a second and ends the run with ``RunCancelled``.
    """

    reason: str | None = None


class RunCancelled(_Event, tag="run_cancelled", frozen=True):
    """The run was cancelled: terminal. Nothing more is executed or accepted."""

    reason: str | None = None
    abandoned: list[bytes] = msgspec.field(default_factory=list)
    """Keys of effects requested without an outcome when the run was cancelled:
    async tasks were cancelled, sync ones left running with their results
    unrecorded, external effects can no longer be posted."""


class RunTimedOut(_Event, tag="run_timed_out", frozen=True):
    """The run passed its deadline (``RunRecord.deadline_ns``): terminal."""

    deadline_ns: int


class ExecutionStarted(_Event, tag="execution", frozen=True):
    """An execution of the run began: who executes it, and why.

    Written just before an execution's first event (an execution that writes
    nothing leaves no trace). It has no invocation key: replay ignores it.
    """

    pid: int
    """The executing process's id on ``host``."""
    host: str
    """The executing machine's host name."""
    why: str
    """``start``, ``resume``, ``recovery``, ``wake``, ``fork`` or ``iterate``."""
    fingerprint: str | None = None
    """The code fingerprint of the process this execution ran (JF-114);
    absent in journals written before it was recorded."""
    code: dict[str, str] | None = None
    """Per function of that process (the process and each function it
    defines, by qualified name): a short hash of its code (JF-114)."""


class PatchMarker(_Event, tag="patched", frozen=True):
    """``ctx.patched(id)`` took the new path here (JF-110).

    Recorded at the invocation key the call took, like any call, so a replay
    that reaches the same key finds it and takes the new path again.
    """

    key: bytes
    patch: str
    """The patch id the process passed."""


Event = (
    RunStarted
    | EffectRequested
    | EffectCompleted
    | EffectFailed
    | EffectClaimed
    | EffectAbandoned
    | AttemptFailed
    | LogLine
    | ValueRecorded
    | TimerStarted
    | TimerFired
    | SignalReceived
    | RunCompleted
    | RunFailed
    | RunWaiting
    | CancelRequested
    | RunCancelled
    | RunTimedOut
    | ExecutionStarted
    | PatchMarker
    | RaceWon
    | FailedFast
)
"""Any event body."""

EVENT_TYPES: Final[tuple[type[_Event], ...]] = (
    RunStarted,
    EffectRequested,
    EffectCompleted,
    EffectFailed,
    EffectClaimed,
    EffectAbandoned,
    AttemptFailed,
    LogLine,
    ValueRecorded,
    TimerStarted,
    TimerFired,
    SignalReceived,
    RunCompleted,
    RunFailed,
    RunWaiting,
    CancelRequested,
    RunCancelled,
    RunTimedOut,
    ExecutionStarted,
    PatchMarker,
    RaceWon,
    FailedFast,
)


def event_tag(event: Event) -> str:
    """The stable tag of an event (``"requested"``, ``"completed"`` …)."""
    tag = type(event).__struct_config__.tag
    assert isinstance(tag, str)
    return tag


class Envelope(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """One event as stored: its place in the run's chain and its body."""

    v: int
    """Format version the envelope was written with."""
    seq: int
    """Position in the run, dense from 0."""
    prev: bytes
    """Digest of the previous event of the run (the genesis digest for seq 0)."""
    at: int
    """Wall-clock UTC nanoseconds when the event was appended (informational)."""
    event: Event


class RunRecord(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """The ``runs`` database value: a run's current state, derived from its events.

    It is not part of the chain; ``verify`` checks that ``events`` and ``head``
    agree with the chain.
    """

    v: int
    run_id: str
    process: str
    fingerprint: str
    status: str
    created_ns: int
    updated_ns: int
    events: int
    head: bytes
    parent: str | None = None
    fork_at: int | None = None
    dispatched: int = 0
    """Effects dispatched by the latest ``run``/``resume`` of the run."""
    replayed: int = 0
    """Effects the latest ``run``/``resume`` answered from the journal."""
    deadline_ns: int | None = None
    """The run's deadline (UTC nanoseconds): past it, the run ends ``timed_out``."""
    cancel_requested_ns: int | None = None
    """When a ``cancel_requested`` was appended (while an executor held the
    run); the executor, or the next resume, ends the run ``cancelled``."""
    queue: str | None = None
    """The queue a submitted run was queued on (``Engine.submit``)."""
    waiting_seq: int | None = None
    """While the run waits: the seq of its latest ``run_waiting``, so anything
    appended after it (a post, a signal) shows as ``events > waiting_seq + 1``."""
    next_due_ns: int | None = None
    """While the run waits: when its earliest timer falls due (that event's)."""
    executions: int = 0
    """How many executions wrote to the run: a ``run_started`` written by its
    executor (``pid`` set, not a fork's) and every ``execution`` event."""
    last_execution_seq: int | None = None
    """The seq of the event that began the latest of them."""
    child_of: str | None = None
    """For a sub-run (``ctx.run_child``): the run id of its parent (JF-152)."""
    child_key: str | None = None
    """For a sub-run: the invocation key of the parent's call that started it."""


class FormatMeta(msgspec.Struct, frozen=True):
    """The ``meta`` database's ``format`` record (JF-040)."""

    magic: str
    read_version: int
    write_version: int


MAGIC: Final = "replay-engine-journal"

_envelope_encoder = msgspec.msgpack.Encoder(order="deterministic")
RECORD_ENCODER: Final = _envelope_encoder
"""The encoder behind :func:`encode_record`, for loops that encode many records."""
_envelope_decoder = msgspec.msgpack.Decoder(Envelope, ext_hook=refuse_extension)
_run_decoder = msgspec.msgpack.Decoder(RunRecord, ext_hook=refuse_extension)
_meta_decoder = msgspec.msgpack.Decoder(FormatMeta, ext_hook=refuse_extension)


def encode_record(record: Envelope | RunRecord | FormatMeta) -> bytes:
    """Encode an envelope, run record or meta record."""
    return _envelope_encoder.encode(record)


def decode_envelope(data: bytes) -> Envelope:
    """Decode an envelope.

    Raises:
        FormatError: the bytes are not an envelope of a known event type.
    """
    try:
        return _envelope_decoder.decode(data)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise FormatError(f"event does not decode: {exc}") from None


def decode_run_record(data: bytes) -> RunRecord:
    """Decode a ``runs`` value.

    Raises:
        FormatError: the bytes are not a run record.
    """
    try:
        return _run_decoder.decode(data)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise FormatError(f"run record does not decode: {exc}") from None


def decode_meta(data: bytes) -> FormatMeta:
    """Decode the meta record.

    Raises:
        FormatError: the bytes are not a meta record.
    """
    try:
        return _meta_decoder.decode(data)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise FormatError(f"format record does not decode: {exc}") from None
