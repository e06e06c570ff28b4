"""A running checkpoint written without reading or re-encoding the last one.

Each running checkpoint of a long run rewrites every call it covers (the
record is one value, format spec section 12). Built from the last one, that
meant reading it back, checking its digest, decoding every key and call state
(as ``msgspec.Raw``), merging the new calls in and encoding it all again:
about 0.4 µs per effect of a fresh fan-out, more than half of what its
checkpoints cost it.

A fan-out's calls settle in key order: the requests go out in key order and
only the last few thousand are in flight at a checkpoint. So the calls up to
the first one still in flight never change again (``Frozen``): this execution
keeps their encoded keys and states as bytes, in key order, and the next
checkpoint is those bytes, then the encoding of the calls after them (the new
ones and the ones that were in flight), written into the record as they are
(``msgspec.Raw``): the same bytes as encoding the whole index (the encoder is
deterministic, JF-103's byte order is kept because every new key sorts after
the frozen ones, which is checked).

Only for what the fold of a fan-out's events can change (``running.fold_calls``:
requests, completions of the run's own requests, logs, the run's start):
any other event, or a call that does not sort after the frozen ones, and the
checkpoint is built the general way (``running.py``), with no frozen part
after it.
"""

from __future__ import annotations

import operator
from typing import Any

import msgspec
from blake3 import blake3

import journal_format as jf

_encoder = msgspec.msgpack.Encoder(order="deterministic")


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


class Frozen:
    """The calls of the last checkpoint that can no longer change, encoded.

    ``keys`` and ``calls`` are chunks of the msgpack array bodies (no header)
    of its first ``count`` keys and call states, in key order, ``last`` the
    last of those keys. ``logs``, ``signals``, ``consumed`` and ``started``
    are the checkpoint's (a fan-out's are small).
    """

    __slots__ = (
        "calls",
        "consumed",
        "count",
        "keys",
        "last",
        "logs",
        "signals",
        "started",
    )

    def __init__(self, index: jf.CallIndex) -> None:
        """The frozen part of a run with no calls yet (``index`` has none)."""
        self.count = 0
        self.keys: list[bytes] = []
        self.calls: list[bytes] = []
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
    when a call does not sort after the frozen ones (the caller builds it the
    general way). ``calls`` are every call not frozen, in their state after ``events``
    events, all effects (``fold_calls`` makes nothing else).
    """
    keys = sorted(calls)
    if keys and frozen.last is not None and keys[0] <= frozen.last:
        return None
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
    total = frozen.count + len(keys)
    checkpoint = _RawCheckpoint(
        v=jf.FORMAT_VERSION,
        run_id=run_id,
        events=events,
        head=head,
        keys=msgspec.Raw(
            b"".join((_header(total), *frozen.keys, head_keys, _body(keys[cut:])))
        ),
        calls=msgspec.Raw(
            b"".join((_header(total), *frozen.calls, head_calls, _body(states[cut:])))
        ),
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
    after.keys = [*frozen.keys, head_keys] if cut else frozen.keys
    after.calls = [*frozen.calls, head_calls] if cut else frozen.calls
    after.last = keys[cut - 1] if cut else frozen.last
    after.logs = frozen.logs.union(logs)
    after.signals = frozen.signals
    after.consumed = frozen.consumed
    after.started = frozen.started if started is None else started
    # Every call after the frozen ones, settled or not: the next checkpoint
    # is built from these and the new frozen part alone.
    return sealed, after, dict(zip(keys[cut:], states[cut:], strict=True))
