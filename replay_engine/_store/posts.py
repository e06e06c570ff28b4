"""External effects: posting results, claims and signals, and expiring effects.

Everything here writes, in one LMDB write transaction that first re-reads the
run's current state (``Store.transact``): a post is validated against the
journal as it is at that instant and appended atomically, so of two agents
racing to post one key exactly one wins, and forty concurrent posters all
succeed without ever failing for a lock. A crash mid-post loses or duplicates
nothing: the transaction either committed or did not. What is pending is
read by ``pending``.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable
from typing import Any

import journal_format as jf

from ..errors import PostRejected
from .chain import AppendResult
from .payload import encode_or_refuse
from .pending import (
    NOT_POSTABLE,
    EffectState,
    PendingEffect,
    external_states,
    pending_effects,
    utc_datetime,
)
from .run_txn import RunTxn
from .store import Store
from .telling import Append, transact_telling

# PendingEffect and pending_effects live in ``pending``; they are re-exported
# here for the callers in other layers that still import them from ``posts``.
__all__ = [
    "PendingEffect",
    "abandon",
    "claim",
    "expire",
    "heartbeat",
    "pending_effects",
    "post",
    "post_signal",
]

TERMINAL = ("completed", "failed")


def _reject(reason: str, message: str, run_id: str, key: str | None) -> PostRejected:
    return PostRejected(message, reason=reason, run_id=run_id, key=key)


def _parse_key(run_id: str, key_text: str) -> bytes:
    try:
        return jf.encode_key(jf.parse_key(key_text))
    except jf.FormatError as exc:
        raise _reject(
            "unknown_key",
            f"{exc}; list the keys run {run_id!r} waits on with"
            f" `replay-engine pending {run_id}`",
            run_id,
            key_text,
        ) from None


def _check_open(view: RunTxn, key_text: str | None) -> None:
    status = view.record.status
    if status in ("cancelled", "timed_out"):
        what = (
            "was cancelled"
            if status == "cancelled"
            else "passed its deadline (timed out)"
        )
        raise _reject(
            "run_finished",
            f"run {view.run_id!r} {what}: its pending effects were abandoned, so"
            " posting to it changes nothing and nothing was written; fork it"
            f" (`replay-engine fork {view.run_id} --at N`) to run again",
            view.run_id,
            key_text,
        )
    if status in TERMINAL:
        hint = (
            f"fork it (`replay-engine fork {view.run_id} --at N`) to run again"
            if status == "completed"
            else f"resume it (`replay-engine resume {view.run_id}`) with fixed code,"
            " or fork it"
        )
        raise _reject(
            "run_finished",
            f"run {view.run_id!r} is {status}: posting to it changes nothing and"
            f" nothing was written; {hint}",
            view.run_id,
            key_text,
        )


def _pending_state(
    view: RunTxn, key: bytes, key_text: str, *, error_post: bool = False
) -> EffectState:
    events = view.events_at(key)
    request = next((s for s in events if isinstance(s.event, jf.EffectRequested)), None)
    if request is None:
        raise _reject(
            "unknown_key",
            f"run {view.run_id!r} has no effect at key {key_text}; list what it waits"
            f" for with `replay-engine pending {view.run_id}`",
            view.run_id,
            key_text,
        )
    event = request.event
    assert isinstance(event, jf.EffectRequested)
    # An event wait takes results only by name (post --event), but it may be
    # failed by its key (JF-142): that answers this one wait, not the next.
    if event.kind in NOT_POSTABLE and not (error_post and event.kind == "signal"):
        what = (
            "an in-process task: the engine executes it"
            if event.kind == "task"
            else f"a wait for event {event.task!r}: post the event with --event"
        )
        raise _reject(
            "not_external", f"key {key_text} is {what}", view.run_id, key_text
        )
    if event.kind == "child":
        # A child's outcome is its run's, journaled by the engine (children.py).
        raise _reject(
            "not_external",
            f"key {key_text} of run {view.run_id!r} is a child run: post to the"
            " child run itself (`replay-engine runs --tree` names it)",
            view.run_id,
            key_text,
        )
    state = EffectState(request=request)
    for stored in events:
        state.note(stored)
    if state.outcome is not None:
        by = getattr(state.outcome.event, "by", None)
        raise _reject(
            "already_completed",
            f"key {key_text} of run {view.run_id!r} already has a result (event seq"
            f" {state.outcome.seq}{', posted by ' + by if by else ''}); the first post"
            " wins and this one wrote nothing",
            view.run_id,
            key_text,
        )
    if state.abandoned:
        raise _reject(
            "abandoned",
            f"key {key_text} of run {view.run_id!r} was abandoned (its parallel group"
            " failed, or its branch lost a ctx.parallel.any race); its result can no"
            " longer matter and nothing was written",
            view.run_id,
            key_text,
        )
    return state


def post(
    store: Store,
    run_id: str,
    key_text: str,
    *,
    result: Any = None,
    error: str | None = None,
    by: str | None = None,
    has_result: bool = True,
) -> int:
    """Record the outcome of a pending external effect; returns its event seq."""
    key = _parse_key(run_id, key_text)
    key_text = jf.key_bytes_to_text(key)
    blobs: dict[bytes, bytes] = {}
    if error is None:
        if not has_result:
            raise ValueError("post needs result=... or error=...")
        data = encode_or_refuse(
            result,
            f"the result posted to key {key_text} of run {run_id!r}",
            "; nothing was written",
        )
        result_ref = jf.payload_ref(data)
        blobs.update(jf.blobs_for(result_ref, data))

    def body(view: RunTxn) -> int:
        _check_open(view, key_text)
        state = _pending_state(view, key, key_text, error_post=error is not None)
        claim = state.claim
        if (
            by is not None
            and claim is not None
            and claim.worker != by
            and claim.lease_until_ns > time.time_ns()
        ):
            raise _reject(
                "claimed",
                f"key {key_text} is claimed by {claim.worker!r} until"
                f" {utc_datetime(claim.lease_until_ns)}; only that worker may post"
                " until the lease expires",
                run_id,
                key_text,
            )
        request = state.request.event
        assert isinstance(request, jf.EffectRequested)
        if error is None and request.kind == "breakpoint":
            _check_breakpoint_result(result, run_id, key_text)
        event: jf.Event
        if error is None:
            event = jf.EffectCompleted(key=key, result=result_ref, by=by)
        else:
            event = jf.EffectFailed(
                key=key,
                error=jf.ErrorInfo(type="ExternalError", message=str(error)),
                by=by,
            )
        return view.append([event], blobs).first_seq

    return store.transact(run_id, body)


def _check_breakpoint_result(result: Any, run_id: str, key_text: str) -> None:
    if not isinstance(result, dict) or not isinstance(result.get("approved"), bool):
        raise _reject(
            "invalid_result",
            f"key {key_text} of run {run_id!r} is a breakpoint: post"
            ' {"approved": true|false, "response": ...} (or use --approve/--reject);'
            " nothing was written",
            run_id,
            key_text,
        )


def post_signal(
    store: Store, run_id: str, name: str, payload: Any, error: str | None = None
) -> int:
    """Record a named signal for ``ctx.wait_for_event``; returns its event seq.

    With ``error``, the wait that consumes it fails with that message
    (``TaskFailed``, ``error_type == "ExternalError"``) instead (JF-141).
    """
    data = encode_or_refuse(
        payload,
        f"the payload of event {name!r} for run {run_id!r}",
        "; nothing was written",
    )
    ref = jf.payload_ref(data)

    def body(view: RunTxn) -> int:
        _check_open(view, None)
        return view.append(
            [
                jf.SignalReceived(
                    name=name,
                    payload=ref,
                    error=None
                    if error is None
                    else jf.ErrorInfo(type="ExternalError", message=str(error)),
                )
            ],
            jf.blobs_for(ref, data),
        ).first_seq

    return store.transact(run_id, body)


def claim(
    store: Store,
    run_id: str,
    worker: str,
    lease_seconds: float,
    *,
    limit: int | None = 1,
    kind: str | None = None,
    payload: Callable[[bytes], Any],
) -> list[PendingEffect]:
    """Atomically hand out unclaimed (or lease-expired) effects to ``worker``."""
    if lease_seconds <= 0:
        raise ValueError(f"the lease must be > 0 seconds, not {lease_seconds}")

    def body(view: RunTxn) -> list[tuple[bytes, int]]:
        _check_open(view, None)
        now = time.time_ns()
        until = now + int(lease_seconds * 1e9)
        taken: list[tuple[bytes, int]] = []
        for key, state in sorted(external_states(view.events()).items()):
            if state.outcome is not None or state.abandoned:
                continue
            request = state.request.event
            assert isinstance(request, jf.EffectRequested)
            if (kind is not None and request.kind != kind) or request.kind == "child":
                continue
            if state.claim is not None and state.claim.lease_until_ns > now:
                continue
            taken.append((key, until))
            if limit is not None and len(taken) >= limit:
                break
        if taken:
            view.append(
                [
                    jf.EffectClaimed(key=k, worker=worker, lease_until_ns=u)
                    for k, u in taken
                ]
            )
        return taken

    taken = store.transact(run_id, body)
    keys = {jf.key_bytes_to_text(k) for k, _ in taken}
    events = store.read_events(run_id)
    return [p for p in pending_effects(events, payload) if p.key in keys]


def heartbeat(
    store: Store, run_id: str, key_text: str, worker: str, lease_seconds: float
) -> _dt.datetime:
    """Extend ``worker``'s lease on a pending effect; returns the new expiry."""
    key = _parse_key(run_id, key_text)
    key_text = jf.key_bytes_to_text(key)

    def body(view: RunTxn) -> int:
        _check_open(view, key_text)
        state = _pending_state(view, key, key_text)
        now = time.time_ns()
        held = state.claim
        if held is None or (held.worker != worker and held.lease_until_ns > now):
            owner = "nobody" if held is None else repr(held.worker)
            raise _reject(
                "not_claimed",
                f"worker {worker!r} does not hold key {key_text} (claimed by {owner});"
                " claim it first with `pending --claim`",
                run_id,
                key_text,
            )
        if held.worker != worker:
            raise _reject(
                "not_claimed",
                f"the lease of {worker!r} on key {key_text} expired and"
                f" {held.worker!r} claimed it",
                run_id,
                key_text,
            )
        until = now + int(lease_seconds * 1e9)
        view.append([jf.EffectClaimed(key=key, worker=worker, lease_until_ns=until)])
        return until

    until_ns = store.transact(run_id, body)
    when = utc_datetime(until_ns)
    assert when is not None
    return when


def abandon(
    store: Store,
    run_id: str,
    keys: list[bytes],
    reason: str,
    *,
    on_append: Callable[[AppendResult], None] | None = None,
) -> list[bytes]:
    """Mark still-pending external effects abandoned; returns the keys marked.

    A key that received a result in the meantime is left alone. ``on_append``
    is told what was appended (the executing run counts its own appends).
    """

    def body(view: RunTxn, append: Append) -> list[bytes]:
        marked: list[bytes] = []
        for key in keys:
            events = view.events_at(key)
            if any(
                isinstance(
                    s.event, jf.EffectCompleted | jf.EffectFailed | jf.EffectAbandoned
                )
                for s in events
            ):
                continue
            marked.append(key)
        if marked:
            append([jf.EffectAbandoned(key=k, reason=reason) for k in marked])
        return marked

    marked = transact_telling(store, run_id, body, on_append)
    return marked


def expire(
    store: Store,
    run_id: str,
    key: bytes,
    message: str,
    *,
    on_append: Callable[[AppendResult], None] | None = None,
) -> jf.Event | None:
    """Record an expired deadline unless a result arrived first; returns the outcome.

    ``on_append`` is told what was appended, as for :func:`abandon`.
    """

    def body(view: RunTxn, append: Append) -> jf.Event | None:
        for stored in view.events_at(key):
            if isinstance(stored.event, jf.EffectCompleted | jf.EffectFailed):
                return stored.event  # a post won the race: it is the outcome
        event = jf.EffectFailed(
            key=key, error=jf.ErrorInfo(type="Expired", message=message)
        )
        append([event])
        return event

    outcome = transact_telling(store, run_id, body, on_append)
    return outcome
