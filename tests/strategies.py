"""Hypothesis strategies for everything the journal format can hold.

Every event struct in ``journal_format`` has a strategy in ``EVENT_STRATEGIES``
(``test_events.py`` checks that none is missing): add one here whenever an
event type is added.
"""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import strategies as st

import journal_format as jf

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1

# -- invocation keys -----------------------------------------------------------

#: One key component: mostly small (the common case, and where the one-byte
#: and two-byte encodings meet), sometimes anywhere in the 64-bit range.
components = st.one_of(
    st.integers(0, 300),
    st.integers(0, UINT64_MAX),
    st.sampled_from([255, 256, 65535, 65536, 2**32 - 1, 2**32, UINT64_MAX]),
)


def key_tuples(
    *, min_size: int = 0, max_size: int = 6
) -> st.SearchStrategy[tuple[int, ...]]:
    """Invocation keys as tuples of components."""
    return st.lists(components, min_size=min_size, max_size=max_size).map(tuple)


def key_bytes(*, min_size: int = 1, max_size: int = 6) -> st.SearchStrategy[bytes]:
    """Encoded invocation keys."""
    return key_tuples(min_size=min_size, max_size=max_size).map(jf.encode_key)


# -- payloads ------------------------------------------------------------------

scalars: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(INT64_MIN, INT64_MAX),
    st.floats(allow_nan=False),
    st.text(),
    st.binary(),
)


def payloads(*, max_leaves: int = 20) -> st.SearchStrategy[Any]:
    """Values ``encode_payload`` accepts and ``decode_payload`` gives back equal.

    Arrays are lists (tuples would come back as lists) and maps have str keys.
    """
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=5),
            st.dictionaries(st.text(max_size=8), children, max_size=5),
        ),
        max_leaves=max_leaves,
    )


# -- event fields --------------------------------------------------------------

addresses = st.binary(min_size=jf.ADDRESS_SIZE, max_size=jf.ADDRESS_SIZE)
run_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)
counts = st.integers(0, INT64_MAX)
nanos = st.integers(0, INT64_MAX)

error_infos = st.builds(
    jf.ErrorInfo, type=st.text(), message=st.text(), traceback=st.text()
)

EVENT_STRATEGIES: dict[type[Any], st.SearchStrategy[Any]] = {
    jf.RunStarted: st.builds(
        jf.RunStarted,
        process=st.text(),
        fingerprint=st.text(),
        inputs=addresses,
        parent=st.none() | run_ids,
        fork_at=st.none() | counts,
        seed=st.none() | run_ids,
        pid=st.none() | st.integers(0, 2**31),
        host=st.none() | st.text(max_size=20),
        code=st.none()
        | st.dictionaries(st.text(max_size=20), st.text(max_size=16), max_size=3),
    ),
    jf.EffectRequested: st.builds(
        jf.EffectRequested,
        key=key_bytes(),
        task=st.text(),
        kind=st.sampled_from(["task", "agent", "human"]) | st.text(),
        args=addresses,
        deadline_ns=st.none() | nanos,
    ),
    jf.EffectCompleted: st.builds(
        jf.EffectCompleted,
        key=key_bytes(),
        result=addresses,
        signal_seq=st.none() | counts,
        by=st.none() | st.text(),
    ),
    jf.EffectFailed: st.builds(
        jf.EffectFailed,
        key=key_bytes(),
        error=error_infos,
        attempts=st.integers(1, 1000),
        by=st.none() | st.text(),
        signal_seq=st.none() | counts,
    ),
    jf.EffectClaimed: st.builds(
        jf.EffectClaimed, key=key_bytes(), worker=st.text(), lease_until_ns=nanos
    ),
    jf.EffectAbandoned: st.builds(
        jf.EffectAbandoned, key=key_bytes(), reason=st.text()
    ),
    jf.AttemptFailed: st.builds(
        jf.AttemptFailed,
        key=key_bytes(),
        attempt=st.integers(1, 1000),
        error=error_infos,
        retry_in=st.floats(min_value=0, allow_nan=False),
    ),
    jf.LogLine: st.builds(
        jf.LogLine,
        key=key_bytes(),
        ordinal=counts,
        message=st.text(),
        fields=st.dictionaries(st.text(max_size=8), payloads(max_leaves=5), max_size=4),
    ),
    jf.ValueRecorded: st.builds(
        jf.ValueRecorded,
        key=key_bytes(),
        kind=st.sampled_from(["now", "random", "uuid"]),
        value=st.integers(INT64_MIN, INT64_MAX) | st.binary(max_size=16),
    ),
    jf.TimerStarted: st.builds(jf.TimerStarted, key=key_bytes(), due_ns=nanos),
    jf.TimerFired: st.builds(jf.TimerFired, key=key_bytes()),
    jf.SignalReceived: st.builds(
        jf.SignalReceived,
        name=st.text(),
        payload=addresses,
        error=st.none() | error_infos,
    ),
    jf.RaceWon: st.builds(
        jf.RaceWon,
        key=key_bytes(),
        winner=counts,
        cancelled=st.lists(counts, max_size=4),
    ),
    jf.FailedFast: st.builds(
        jf.FailedFast,
        key=key_bytes(),
        branch=counts,
        cancelled=st.lists(counts, max_size=4),
    ),
    jf.RunCompleted: st.builds(jf.RunCompleted, result=addresses),
    jf.RunFailed: st.builds(jf.RunFailed, error=error_infos),
    jf.RunWaiting: st.builds(
        jf.RunWaiting,
        pending=st.lists(key_bytes(), max_size=4),
        next_due_ns=st.none() | nanos,
    ),
    jf.CancelRequested: st.builds(jf.CancelRequested, reason=st.none() | st.text()),
    jf.RunCancelled: st.builds(
        jf.RunCancelled,
        reason=st.none() | st.text(),
        abandoned=st.lists(key_bytes(), max_size=4),
    ),
    jf.RunTimedOut: st.builds(jf.RunTimedOut, deadline_ns=nanos),
    jf.ExecutionStarted: st.builds(
        jf.ExecutionStarted,
        pid=st.integers(0, 2**31),
        host=st.text(max_size=20),
        why=st.sampled_from(["start", "resume", "recovery", "wake", "fork", "iterate"]),
        fingerprint=st.none() | st.text(max_size=70),
        code=st.none()
        | st.dictionaries(st.text(max_size=20), st.text(max_size=16), max_size=3),
    ),
    jf.PatchMarker: st.builds(
        jf.PatchMarker, key=key_bytes(), patch=st.text(min_size=1)
    ),
}

events: st.SearchStrategy[Any] = st.one_of(*EVENT_STRATEGIES.values())
"""Any event body."""

keyed_events: st.SearchStrategy[Any] = st.one_of(
    *(s for t, s in EVENT_STRATEGIES.items() if "key" in t.__struct_fields__)
)
"""Event bodies that carry an invocation key (and so are indexed)."""

envelopes = st.builds(
    jf.Envelope,
    v=st.just(jf.FORMAT_VERSION),
    seq=counts,
    prev=addresses,
    at=nanos,
    event=events,
)

run_records = st.builds(
    jf.RunRecord,
    v=st.just(jf.FORMAT_VERSION),
    run_id=run_ids,
    process=st.text(),
    fingerprint=st.text(),
    status=st.sampled_from(["running", "waiting", "completed", "failed"]),
    created_ns=nanos,
    updated_ns=nanos,
    events=counts,
    head=addresses,
    parent=st.none() | run_ids,
    fork_at=st.none() | counts,
    dispatched=counts,
    replayed=counts,
    deadline_ns=st.none() | nanos,
    cancel_requested_ns=st.none() | nanos,
)


@st.composite
def histories(draw: st.DrawFn, *, max_events: int = 40) -> list[Any]:
    """Well-formed run histories: every outcome follows a request at its key.

    Keys come from a small pool, so later events often land on keys that
    already hold something (a retried request, a timer firing, a value).
    """
    pool = draw(st.lists(key_bytes(max_size=3), min_size=1, max_size=6, unique=True))
    out: list[Any] = [draw(EVENT_STRATEGIES[jf.RunStarted])]
    requested: list[bytes] = []
    outcomes = (
        jf.EffectCompleted,
        jf.EffectFailed,
        jf.AttemptFailed,
        jf.EffectAbandoned,
        jf.EffectClaimed,
    )
    starters = (
        jf.EffectRequested,
        jf.ValueRecorded,
        jf.TimerStarted,
        jf.TimerFired,
        jf.LogLine,
        jf.SignalReceived,
        jf.RunWaiting,
        jf.RunFailed,
        jf.ExecutionStarted,
        jf.PatchMarker,
    )
    for _ in range(draw(st.integers(0, max_events))):
        kinds = starters + (outcomes if requested else ())
        kind = draw(st.sampled_from(kinds))
        body = draw(EVENT_STRATEGIES[kind])
        if kind in outcomes:
            body = msgspec.structs.replace(body, key=draw(st.sampled_from(requested)))
        elif "key" in kind.__struct_fields__:
            key = draw(st.sampled_from(pool))
            body = msgspec.structs.replace(body, key=key)
            if kind is jf.EffectRequested:
                requested.append(key)
            elif kind in (jf.ValueRecorded, jf.TimerStarted, jf.PatchMarker):
                # The key no longer holds a request.
                requested = [k for k in requested if k != key]
        if kind is jf.EffectCompleted and draw(st.booleans()):
            body = msgspec.structs.replace(body, signal_seq=draw(counts))
        out.append(body)
    return out
