"""The call index a run's events imply, and checkpoints of it.

A resume needs to know, for every invocation key, what the journal says
happened there: which task was requested with which args, whether it
completed (and with what result) or failed, which values and timers were
recorded. That *call index* is a left fold over the run's events
(:meth:`CallIndex.fold`), defined here once so that the runtime, ``verify``
and any other reader agree on it.

A *checkpoint* (JF-100 … JF-105 in docs/journal-format.md) is the call index
of a run's first ``events`` events, sealed into one record of the
``checkpoints`` database. It is derived data: the events stay the truth. A
reader that finds a valid checkpoint folds only the events after it, so a
resume reads one record plus a short tail instead of every event; one that
finds none, or one it cannot use, folds every event and gets the same index.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Final

import msgspec
from blake3 import blake3

from ._codec import ADDRESS_SIZE
from ._errors import FormatError, refuse_extension
from ._events import (
    FORMAT_VERSION,
    AttemptFailed,
    EffectAbandoned,
    EffectCompleted,
    EffectFailed,
    EffectRequested,
    Envelope,
    ErrorInfo,
    Event,
    FailedFast,
    LogLine,
    PatchMarker,
    RaceWon,
    RunStarted,
    SignalReceived,
    TimerFired,
    TimerStarted,
    ValueRecorded,
)
from ._keys import key_bytes_to_text
from ._layout import genesis_digest, run_prefix

SEQ_SIZE: Final = 8
"""Bytes of the seq that ends an ``events`` key (after the run's prefix)."""

_envelope_decoder = msgspec.msgpack.Decoder(Envelope, ext_hook=refuse_extension)

TASK: Final = "task"
"""The ``kind`` of an in-process task's request (the fold shares one str for it)."""

EFFECT: Final = 0
"""``CallEntry.kind`` of a requested effect (a task or an external effect)."""
VALUE: Final = 1
"""``CallEntry.kind`` of a recorded value (``now``, ``random``, ``uuid``)."""
TIMER: Final = 2
"""``CallEntry.kind`` of a durable timer (``ctx.sleep``)."""
PATCH: Final = 3
"""``CallEntry.kind`` of a patch marker (``ctx.patched``; ``task`` is the patch id)."""
RACE: Final = 4
"""``CallEntry.kind`` of a decided race (``ctx.parallel.any``): ``value`` is the
winning branch's index (JF-140)."""
FAIL_FAST: Final = 5
"""``CallEntry.kind`` of a fail-fast group that failed (``ctx.parallel.all``/``map``
with ``fail_fast=True``): ``value`` is the failing branch's index (JF-144)."""


class CallEntry(msgspec.Struct, array_like=True, gc=False):
    """What a run's events say happened at one invocation key (JF-102).

    Mutable: folding a completion into the index updates the request's state.
    """

    kind: int
    """:data:`EFFECT`, :data:`VALUE` or :data:`TIMER`."""
    seq: int
    """The seq of the event that created it (the request, value or timer)."""
    task: str = ""
    """Effects: the task name. Values: ``now``, ``random`` or ``uuid``."""
    effect_kind: str = ""
    """Effects: ``task`` or the kind of an external effect."""
    args: bytes = b""
    """Effects: the args' payload reference."""
    result: bytes | None = None
    """Effects: the result's payload reference, once completed."""
    error: ErrorInfo | None = None
    """Effects: the final failure, once failed."""
    attempts: int = 0
    """Effects: the number of the last failed attempt that was retried."""
    value: int | bytes | None = None
    """Values: the recorded value."""
    due_ns: int = 0
    """Timers: when the timer is due."""
    fired: bool = False
    """Timers: whether it fired."""
    abandoned: bool = False
    """Effects: abandoned (a lower-index sibling's failure decided its group)."""
    deadline_ns: int | None = None
    """External effects with a timeout: when the request expires."""


class Checkpoint(msgspec.Struct, omit_defaults=True, gc=False):
    """The call index of a run's first ``events`` events (JF-101)."""

    v: int
    run_id: str
    events: int
    """How many of the run's events (seqs ``0 .. events - 1``) it covers."""
    head: bytes
    """The digest of event ``events - 1``: ties the checkpoint to the chain."""
    keys: list[bytes]
    calls: list[CallEntry]
    """``calls[i]`` is the state at invocation key ``keys[i]``."""
    logs: list[tuple[bytes, int]] = msgspec.field(default_factory=list)
    """Every log line's ``(key, ordinal)``, sorted."""
    signals: list[tuple[int, str, bytes]] = msgspec.field(default_factory=list)
    """Every posted signal: ``(seq, name, payload reference)``, in seq order."""
    consumed_signals: list[int] = msgspec.field(default_factory=list)
    """Seqs of the signals a wait has consumed, sorted."""
    started: RunStarted | None = None
    last_event: Event | None = None


_checkpoint_encoder = msgspec.msgpack.Encoder(order="deterministic")
_checkpoint_decoder = msgspec.msgpack.Decoder(Checkpoint, ext_hook=refuse_extension)


def encode_checkpoint(checkpoint: Checkpoint) -> bytes:
    """Encode a checkpoint (seal it before storing: JF-100)."""
    return _checkpoint_encoder.encode(checkpoint)


def seal_checkpoint(checkpoint: Checkpoint) -> bytearray:
    """``seal(encode_checkpoint(checkpoint))``, the same bytes, in one buffer.

    The encoding is written after room for its digest, which is then filled
    in: a long run's checkpoint is tens of MB, and sealing a separate
    encoding would hold both at once (peak memory of a large resume).
    """
    sealed = bytearray(ADDRESS_SIZE)
    _checkpoint_encoder.encode_into(checkpoint, sealed, ADDRESS_SIZE)
    view = memoryview(sealed)
    try:
        digest = blake3(view[ADDRESS_SIZE:]).digest()
    finally:
        view.release()
    sealed[:ADDRESS_SIZE] = digest
    return sealed


def unseal_checkpoint(value: bytes) -> Checkpoint:
    """``decode_checkpoint(unseal(value)[1])`` without copying the encoding.

    Raises:
        FormatError: the digest does not match, or the bytes are not a checkpoint.
    """
    if len(value) < ADDRESS_SIZE:
        raise FormatError(f"sealed record of {len(value)} bytes is truncated")
    with memoryview(value) as view:
        data = view[ADDRESS_SIZE:]
        if blake3(data).digest() != value[:ADDRESS_SIZE]:
            raise FormatError("record bytes do not match their blake3 digest")
        return decode_checkpoint(data)  # type: ignore[arg-type]  # any buffer


def decode_checkpoint(data: bytes) -> Checkpoint:
    """Decode an unsealed checkpoint.

    Raises:
        FormatError: the bytes are not a checkpoint.
    """
    try:
        checkpoint = _checkpoint_decoder.decode(data)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise FormatError(f"checkpoint does not decode: {exc}") from None
    if len(checkpoint.keys) != len(checkpoint.calls):
        raise FormatError(
            f"checkpoint has {len(checkpoint.keys)} keys but"
            f" {len(checkpoint.calls)} call states"
        )
    return checkpoint


def checkpoint_mismatch(
    checkpoint: Checkpoint, run_id: str, digest_of: Callable[[int], bytes | None]
) -> str | None:
    """Why a decoded checkpoint cannot be used for ``run_id`` (JF-105), or None.

    ``digest_of(seq)`` is the stored digest of the run's event ``seq``, or
    None when the run has no such event.
    """
    if checkpoint.run_id != run_id:
        return f"belongs to run {checkpoint.run_id!r}"
    if checkpoint.v > FORMAT_VERSION:
        return f"has format version {checkpoint.v}"
    if checkpoint.events < 1:
        return "covers no events"
    last = checkpoint.events - 1
    digest = digest_of(last)
    if digest is None:
        return f"covers {checkpoint.events} events, more than the run has"
    if digest != checkpoint.head:
        return f"does not match the chain at event seq {last}"
    return None


class DamagedEvent(FormatError):
    """A stored event failed a check while being read."""

    def __init__(self, seq: int, what: str, key: bytes | None = None) -> None:
        super().__init__(what)
        self.seq = seq
        self.what = what
        self.key = key


CHAIN_BROKEN: Final = (
    "its link to the previous event does not match (the chain is broken here)"
)
"""What is wrong with an event whose ``prev`` is not its predecessor's digest."""


def out_of_place(expected: int, found: int) -> str:
    """What is wrong with an event read as seq ``expected`` that says ``found``."""
    return f"expected seq {expected}, found {found}: events are missing or out of place"


def _misplaced(envelope: Envelope, seq: int) -> DamagedEvent:
    key = getattr(envelope.event, "key", None)
    if envelope.seq != seq:
        return DamagedEvent(seq, out_of_place(seq, envelope.seq), key)
    return DamagedEvent(seq, CHAIN_BROKEN, key)


class OrphanOutcome(FormatError):
    """An outcome event whose key has no request before it."""

    def __init__(self, seq: int, key: bytes) -> None:
        super().__init__(
            f"event seq {seq}: an outcome at key {key_bytes_to_text(key)} has no"
            " request before it"
        )
        self.seq = seq
        self.key = key


def _own_records(
    run_id: str, records: Iterable[tuple[bytes, bytes]], count: int | None
) -> Iterator[tuple[bytes, bytes]]:
    """``records`` up to the first key outside the run, and at most ``count``."""
    prefix = run_prefix(run_id)
    # The run's first and last possible event keys: a key of event-key
    # length between them starts with the run's prefix.
    low, high = prefix + b"\x00" * SEQ_SIZE, prefix + b"\xff" * SEQ_SIZE
    for record in itertools.islice(records, count):
        key = record[0]
        if len(key) != len(low) or key > high or key < low:
            return
        yield record


class CallIndex:
    """What a run's first :attr:`events` events say, by invocation key (JF-102).

    Built by folding events in seq order (:meth:`fold`), or restored from a
    checkpoint (:meth:`from_checkpoint`) and then folding the events after it:
    both give equal indexes (JF-104).
    """

    __slots__ = (
        "calls",
        "consumed_signals",
        "events",
        "head",
        "last_event",
        "logs",
        "signals",
        "started",
    )

    def __init__(self) -> None:
        self.calls: dict[bytes, CallEntry] = {}
        self.logs: set[tuple[bytes, int]] = set()
        self.signals: list[tuple[int, str, bytes]] = []
        self.consumed_signals: set[int] = set()
        self.started: RunStarted | None = None
        self.last_event: Event | None = None
        self.events = 0
        """How many events have been folded in (seqs ``0 .. events - 1``)."""
        self.head = b""
        """The digest of event ``events - 1`` (set by whoever read it)."""

    def fold(self, seq: int, events: Iterable[Event]) -> None:
        """Fold events ``seq, seq + 1, …`` into the index, in order (JF-102).

        Raises:
            OrphanOutcome: an outcome at a key with no request before it.
        """
        event: Event | None = None
        for event in events:
            self._fold_one(seq, event)
            seq += 1
        self.events = seq
        if event is not None:
            self.last_event = event

    def _fold_one(self, seq: int, event: Event) -> None:
        """The fold rules of JF-102 (``fold_records`` inlines the first two)."""
        if isinstance(event, EffectRequested):
            self.calls[event.key] = CallEntry(
                EFFECT,
                seq,
                event.task,
                event.kind,
                event.args,
                deadline_ns=event.deadline_ns,
            )
        elif isinstance(event, EffectCompleted):
            self._effect(seq, event.key).result = event.result
            if event.signal_seq is not None:
                self.consumed_signals.add(event.signal_seq)
        else:
            self._fold_other(seq, event)

    def fold_records(
        self,
        run_id: str,
        records: Iterable[tuple[bytes, bytes]],
        stop: int | None = None,
    ) -> None:
        """Check and fold stored events: ``(events key, sealed envelope)`` pairs.

        ``records`` are read in key order from the run's next event on (seq
        :attr:`events`); reading stops at the first key outside the run, or
        at seq ``stop``. Each record is checked as section 10 says: its digest
        (JF-061), its seq (JF-066) and its chain link (JF-063, JF-064). On
        return :attr:`events` and :attr:`head` describe the last event read.

        Raises:
            DamagedEvent: a record fails a check (nothing after it is folded).
            OrphanOutcome: an outcome at a key with no request before it.
        """
        count = None if stop is None else max(0, stop - self.events)
        self.fold_run(run_id, _own_records(run_id, records, count))

    def fold_run(self, run_id: str, records: Iterable[tuple[bytes, bytes]]) -> None:
        """:meth:`fold_records` of records known to be the run's next ones.

        The hot loop of every cold resume. The caller has limited ``records``
        to the run's key range and count (:meth:`fold_records` filters them;
        the store reads exactly the run's keys and checks the last one), so
        of the key only its length is checked here, and reading stops at a
        key of another length. Every record's digest, seq and chain link are
        checked as in :meth:`fold_records`.

        Raises:
            DamagedEvent: a record fails a check (nothing after it is folded).
            OrphanOutcome: an outcome at a key with no request before it.
        """
        key_length = len(run_prefix(run_id)) + SEQ_SIZE
        # Slice objects made once: ``value[:size]`` builds one per event.
        stored_digest, encoded = slice(None, ADDRESS_SIZE), slice(ADDRESS_SIZE, None)
        decode = _envelope_decoder.decode
        hasher = blake3()  # reset per record: cheaper than a new hasher each
        update, digest_of, reset = hasher.update, hasher.digest, hasher.reset
        # One str object per distinct task name, not one per request (memory
        # of a long run's index); the last name is checked first, as runs
        # tend to repeat it.
        names: dict[str, str] = {}
        last_task, calls = "", self.calls
        requested, completed = EffectRequested, EffectCompleted
        seq = self.events
        prev = self.head if seq else genesis_digest(run_id)
        last = self.last_event
        try:
            for key, value in records:
                if len(key) != key_length:
                    break
                digest, data = value[stored_digest], value[encoded]
                update(data)
                if digest_of() != digest:
                    raise DamagedEvent(
                        seq, "record bytes do not match their blake3 digest"
                    )
                reset()
                envelope = decode(data)
                if envelope.seq != seq or envelope.prev != prev:
                    raise _misplaced(envelope, seq)
                event = envelope.event
                kind = type(event)
                # The two most frequent rules of _fold_one, inlined: this loop
                # runs once per event of every cold resume.
                if kind is requested:
                    task = event.task  # type: ignore[union-attr]
                    if task != last_task:
                        last_task = names.setdefault(task, task)
                    effect_kind = event.kind  # type: ignore[union-attr]
                    entry = calls[event.key] = CallEntry(  # type: ignore[union-attr]
                        EFFECT,
                        seq,
                        last_task,
                        TASK if effect_kind == TASK else effect_kind,
                        event.args,  # type: ignore[union-attr]
                    )
                    if event.deadline_ns is not None:  # type: ignore[union-attr]
                        entry.deadline_ns = event.deadline_ns  # type: ignore[union-attr]
                elif kind is completed:
                    call = calls.get(event.key)  # type: ignore[union-attr]
                    if call is None or call.kind != EFFECT:
                        raise OrphanOutcome(seq, event.key)  # type: ignore[union-attr]
                    call.result = event.result  # type: ignore[union-attr]
                    if event.signal_seq is not None:  # type: ignore[union-attr]
                        self.consumed_signals.add(event.signal_seq)  # type: ignore[union-attr]
                else:
                    self._fold_other(seq, event)
                last, prev, seq = event, digest, seq + 1
        except (msgspec.DecodeError, RecursionError) as exc:
            raise DamagedEvent(seq, f"event does not decode: {exc}") from None
        finally:
            # Up to the last event folded whole, even when one fails a check.
            self.events = seq
            self.head = prev
            self.last_event = last

    def _fold_other(self, seq: int, event: Event) -> None:
        calls = self.calls
        if isinstance(event, LogLine):
            self.logs.add((event.key, event.ordinal))
        elif isinstance(event, ValueRecorded):
            calls[event.key] = CallEntry(VALUE, seq, event.kind, value=event.value)
        elif isinstance(event, EffectFailed):
            self._effect(seq, event.key).error = event.error
            if event.signal_seq is not None:  # an error signal consumed (JF-141)
                self.consumed_signals.add(event.signal_seq)
        elif isinstance(event, AttemptFailed):
            self._effect(seq, event.key).attempts = event.attempt
        elif isinstance(event, TimerStarted):
            calls[event.key] = CallEntry(TIMER, seq, due_ns=event.due_ns)
        elif isinstance(event, TimerFired):
            timer = calls.get(event.key)
            if timer is not None and timer.kind == TIMER:
                timer.fired = True
        elif isinstance(event, EffectAbandoned):
            self._effect(seq, event.key).abandoned = True
        elif isinstance(event, RaceWon):
            calls[event.key] = CallEntry(RACE, seq, value=event.winner)
        elif isinstance(event, FailedFast):
            calls[event.key] = CallEntry(FAIL_FAST, seq, value=event.branch)
        elif isinstance(event, SignalReceived):
            self.signals.append((seq, event.name, event.payload))
        elif isinstance(event, RunStarted):
            self.started = event
        elif isinstance(event, PatchMarker):
            calls[event.key] = CallEntry(PATCH, seq, event.patch)

    def _effect(self, seq: int, key: bytes) -> CallEntry:
        call = self.calls.get(key)
        if call is None or call.kind != EFFECT:
            raise OrphanOutcome(seq, key)
        return call

    def to_checkpoint(self, run_id: str, version: int) -> Checkpoint:
        """The checkpoint of this index (keys in byte order, JF-103)."""
        keys = sorted(self.calls)
        calls = self.calls
        return Checkpoint(
            v=version,
            run_id=run_id,
            events=self.events,
            head=self.head,
            keys=keys,
            calls=[calls[k] for k in keys],
            logs=sorted(self.logs),
            signals=list(self.signals),
            consumed_signals=sorted(self.consumed_signals),
            started=self.started,
            last_event=self.last_event,
        )

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint) -> CallIndex:
        """The index a checkpoint holds (the checkpoint's lists are taken over)."""
        index = cls()
        index.calls = dict(zip(checkpoint.keys, checkpoint.calls, strict=True))
        index.logs = set(checkpoint.logs)
        index.signals = checkpoint.signals
        index.consumed_signals = set(checkpoint.consumed_signals)
        index.started = checkpoint.started
        index.last_event = checkpoint.last_event
        index.events = checkpoint.events
        index.head = checkpoint.head
        return index
