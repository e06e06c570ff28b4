"""A running checkpoint written without reading or re-encoding the last one.

Each running checkpoint of a long run rewrites every call it covers (the
record is one value, format spec section 12). Built from the last one, that
meant reading it back, checking its digest, decoding every key and call state
(as ``msgspec.Raw``), merging the new calls in and encoding it all again:
about 0.4 µs per effect of a fresh fan-out, more than half of what its
checkpoints cost it.

A fan-out's calls settle in key order: the requests go out in key order and
only the last few thousand are in flight at a checkpoint. So the calls up to
the first one still in flight never change again (``Frozen``): their encoded
keys and states are, in key order, two runs of bytes in the record this
execution wrote, and the next checkpoint is those bytes (read in the
transaction, digest checked, sliced where the execution noted they are: no
decode; holding them between checkpoints cost a 500,000-effect fan-out 26 MB
more), then the encoding of the calls after them (the new ones and the ones
that were in flight), written into the record as they are (``msgspec.Raw``):
the same bytes as encoding the whole index (the encoder is deterministic,
JF-103's byte order is kept because every new key sorts after the frozen
ones, which is checked).

Only for what the fold of a fan-out's events can change (:func:`fold_calls`:
requests, completions of the run's own requests, logs, the run's start):
any other event, or a call that does not sort after the frozen ones, and the
checkpoint is built the general way (``running.py``), with no frozen part
after it.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import msgspec
from blake3 import blake3

import journal_format as jf

_encoder = msgspec.msgpack.Encoder(order="deterministic")


_IGNORED = frozenset(
    {
        jf.ExecutionStarted,
        jf.EffectClaimed,
        jf.RunCompleted,
        jf.RunFailed,
        jf.RunWaiting,
        jf.CancelRequested,
        jf.RunCancelled,
        jf.RunTimedOut,
    }
)
"""Events the fold passes over (``CallIndex._fold_other``): nothing but the
count and ``last_event``. Another kind added to the format is not here, so it
goes to the tail, folded by the rules of its day."""


def fold_calls(
    entries: dict[bytes, jf.CallEntry],
    events: Sequence[jf.Event],
    seq: int,
    logs: list[tuple[bytes, int]],
) -> tuple[int, jf.RunStarted | None]:
    """Fold a fan-out's events (``seq`` the first's) into ``entries``.

    The rules of ``fold_own`` for requests, completions of a request in
    ``entries``, logs (appended to ``logs``), the run's start (returned) and
    the events the fold passes over; it stops at any other event. Returns how
    many were folded. Idempotent per event: a checkpoint written in a
    transaction that is retried folds its events into the same entries
    again, setting the same fields.
    """
    own = dict.get
    requested, completed = jf.EffectRequested, jf.EffectCompleted
    entry_of, effect, ignored = jf.CallEntry, jf.EFFECT, _IGNORED
    started: jf.RunStarted | None = None
    done = 0
    for event in events:
        kind = type(event)
        if kind is requested:
            entry = entries[event.key] = entry_of(  # type: ignore[union-attr]
                effect,
                seq + done,
                event.task,  # type: ignore[union-attr]
                event.kind,  # type: ignore[union-attr]
                event.args,  # type: ignore[union-attr]
            )
            if event.deadline_ns is not None:  # type: ignore[union-attr]
                entry.deadline_ns = event.deadline_ns  # type: ignore[union-attr]
        elif kind is completed:
            call = own(entries, event.key)  # type: ignore[union-attr]
            if (
                call is None  # its request is in the index: folded there
                or call.kind != effect
                or event.signal_seq is not None  # type: ignore[union-attr]
            ):
                break
            call.result = event.result  # type: ignore[union-attr]
        elif kind in ignored:
            pass
        elif kind is jf.RunStarted:
            started = event  # type: ignore[assignment]
        elif kind is jf.LogLine:
            logs.append((event.key, event.ordinal))  # type: ignore[union-attr]
        else:
            break
        done += 1
    return done, started


class _RawCheckpoint(msgspec.Struct, omit_defaults=True, gc=False):
    """``jf.Checkpoint`` with its keys and calls given encoded (same fields)."""

    v: int
    run_id: str
    events: int
    head: bytes
    keys: msgspec.Raw
    calls: msgspec.Raw
    logs: list[tuple[bytes, int]] = msgspec.field(default_factory=list)
    signals: list[tuple[int, str, bytes]] = msgspec.field(default_factory=list)
    consumed_signals: list[int] = msgspec.field(default_factory=list)
    started: jf.RunStarted | None = None
    last_event: jf.Event | None = None


class _Head(msgspec.Struct):
    """The fields of ``jf.Checkpoint`` before ``keys``: where ``keys`` starts.

    A map of 4 fields has the same one-byte header as the checkpoint's (at
    most 11 fields), so its encoding is as long as the record's first fields.
    """

    v: int
    run_id: str
    events: int
    head: bytes


class Frozen:
    """The calls of the last checkpoint that can no longer change.

    Its first ``count`` keys and call states, in key order, ``last`` the last
    of those keys; their encodings (msgpack array bodies, no header) are the
    bytes ``keys`` and ``calls`` (start, end) of the sealed record, ``size``
    bytes long, sealed with ``digest``, that this execution wrote. ``logs``,
    ``signals``, ``consumed`` and ``started`` are the checkpoint's (a
    fan-out's are small).
    """

    __slots__ = (
        "calls",
        "consumed",
        "count",
        "digest",
        "keys",
        "last",
        "logs",
        "signals",
        "size",
        "started",
    )

    def __init__(self, index: jf.CallIndex) -> None:
        """The frozen part of a run with no calls yet (``index`` has none)."""
        self.count = self.size = 0
        self.digest = b""
        self.keys = self.calls = (0, 0)
        self.last: bytes | None = None
        self.logs = set(index.logs)
        self.signals = list(index.signals)
        self.consumed = set(index.consumed_signals)
        self.started = index.started


def _header(count: int) -> bytes:
    """The msgpack array header of ``count`` items (the encoder's: smallest)."""
    if count < 16:
        return bytes((0x90 | count,))
    if count < 0x10000:
        return b"\xdc" + count.to_bytes(2, "big")
    return b"\xdd" + count.to_bytes(4, "big")


def _body(items: Any) -> bytes:
    """The encoding of the list ``items`` without its array header."""
    encoded = _encoder.encode(items)
    return encoded[len(_header(len(items))) :]


def seal_frozen(
    frozen: Frozen,
    stored: bytes | None,
    calls: dict[bytes, jf.CallEntry],
    run_id: str,
    events: int,
    head: bytes,
    logs: list[tuple[bytes, int]],
    started: jf.RunStarted | None,
    last_event: jf.Event,
) -> tuple[bytearray, Frozen, dict[bytes, jf.CallEntry]] | None:
    """The sealed checkpoint of ``frozen`` + ``calls``, and what comes after.

    Returns the record, the next frozen part and the calls after it (every
    effect in flight among them: the next ``entries``); None
    when a call does not sort after the frozen ones or ``stored`` (the stored
    record, if any calls are frozen) is not the one ``frozen`` was written
    with (the caller builds it the general way). ``calls`` are every call not
    frozen, in their state after ``events`` events, all effects
    (``fold_calls`` makes nothing else).
    """
    keys = sorted(calls)
    if keys and frozen.last is not None and keys[0] <= frozen.last:
        return None
    old_keys: bytes | memoryview = b""
    old_calls: bytes | memoryview = b""
    if frozen.count:
        # The record this execution wrote (its digest, checked): the bytes
        # are where they were noted.
        if (
            stored is None
            or len(stored) != frozen.size
            or stored[: jf.ADDRESS_SIZE] != frozen.digest
        ):
            return None
        try:
            jf.unseal(stored)
        except jf.FormatError:
            return None
        view = memoryview(stored)
        old_keys = view[frozen.keys[0] : frozen.keys[1]]
        old_calls = view[frozen.calls[0] : frozen.calls[1]]
    states: Any = operator.itemgetter(*keys)(calls) if keys else ()
    if len(keys) == 1:
        states = (states,)
    # A fan-out's effects in flight are the last few thousand: the first one
    # is where the next frozen part ends.
    cut = next(
        (
            at
            for at, entry in enumerate(states)
            if entry.result is None and entry.error is None and not entry.abandoned
        ),
        len(keys),
    )
    head_keys, head_calls = _body(keys[:cut]), _body(states[:cut])
    tail_keys, tail_calls = _body(keys[cut:]), _body(states[cut:])
    frozen_keys = len(old_keys) + len(head_keys)
    frozen_calls = len(old_calls) + len(head_calls)
    header = _header(frozen.count + len(keys))
    all_keys = b"".join((header, old_keys, head_keys, tail_keys))
    all_calls = b"".join((header, old_calls, head_calls, tail_calls))
    del old_keys, old_calls, stored
    # Where the two bodies land in the record: after the digest, the fields
    # before ``keys``, the field names (fixstr) and the array headers.
    keys_at = (
        jf.ADDRESS_SIZE
        + len(_encoder.encode(_Head(jf.FORMAT_VERSION, run_id, events, head)))
        + len(b"\xa4keys")
        + len(header)
    )
    calls_at = keys_at + len(all_keys) - len(header) + len(b"\xa5calls") + len(header)
    checkpoint = _RawCheckpoint(
        v=jf.FORMAT_VERSION,
        run_id=run_id,
        events=events,
        head=head,
        keys=msgspec.Raw(all_keys),
        calls=msgspec.Raw(all_calls),
        logs=sorted(frozen.logs.union(logs)),
        signals=list(frozen.signals),
        consumed_signals=sorted(frozen.consumed),
        started=frozen.started if started is None else started,
        last_event=last_event,
    )
    sealed = bytearray(jf.ADDRESS_SIZE)
    _encoder.encode_into(checkpoint, sealed, jf.ADDRESS_SIZE)
    del checkpoint  # its joined copies: before LMDB copies the record
    view = memoryview(sealed)
    try:
        sealed[: jf.ADDRESS_SIZE] = blake3(view[jf.ADDRESS_SIZE :]).digest()
    finally:
        view.release()
    after = Frozen.__new__(Frozen)
    after.count = frozen.count + cut
    after.size = len(sealed)
    after.digest = bytes(sealed[: jf.ADDRESS_SIZE])
    after.keys = (keys_at, keys_at + frozen_keys)
    after.calls = (calls_at, calls_at + frozen_calls)
    after.last = keys[cut - 1] if cut else frozen.last
    after.logs = frozen.logs.union(logs)
    after.signals = frozen.signals
    after.consumed = frozen.consumed
    after.started = frozen.started if started is None else started
    # Every call after the frozen ones, settled or not: the next checkpoint
    # is built from these and the new frozen part alone.
    return sealed, after, dict(zip(keys[cut:], states[cut:], strict=True))
