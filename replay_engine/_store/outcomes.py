"""Outcomes an executing run decides against posters: a signal bound to a wait, a race.

Both are read-check-append in one write transaction (``Store.transact``), like a
post: what a poster may have written since the executor loaded the run is seen
inside the transaction, so a wait never gets two outcomes (a signal and a posted
error) and a lost race never leaves an effect that can still be posted to.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import journal_format as jf

from .chain import AppendResult
from .run_txn import RunTxn
from .store import Store
from .telling import Append, transact_telling

_OUTCOMES = (jf.EffectCompleted, jf.EffectFailed, jf.EffectAbandoned)


def _outcome(view: RunTxn, key: bytes) -> jf.Event | None:
    for stored in view.events_at(key):
        if isinstance(stored.event, _OUTCOMES):
            return stored.event
    return None


def bind_signal(
    store: Store,
    run_id: str,
    key: bytes,
    signal_seq: int,
    *,
    on_append: Callable[[AppendResult], None] | None = None,
) -> jf.Event:
    """Consume signal ``signal_seq`` for the wait at ``key``; returns its outcome.

    The outcome is ``completed`` with the signal's payload, or ``failed`` with
    its error (an error signal, JF-141). If the wait already has an outcome (an
    error posted to its key, JF-142), that outcome is returned and the signal
    is left for another wait. ``on_append`` is told what was appended.
    """

    def body(view: RunTxn, append: Append) -> jf.Event:
        known = _outcome(view, key)
        if known is not None:
            return known
        signal = view.event_at(signal_seq).event
        assert isinstance(signal, jf.SignalReceived)
        event: jf.Event
        if signal.error is not None:
            event = jf.EffectFailed(key=key, error=signal.error, signal_seq=signal_seq)
        else:
            event = jf.EffectCompleted(
                key=key, result=signal.payload, signal_seq=signal_seq
            )
        append([event])
        return event

    outcome = transact_telling(store, run_id, body, on_append)
    return outcome


def cancel_branches(
    store: Store,
    run_id: str,
    key: bytes,
    cancelled: Sequence[int],
    reason: str,
    *,
    winner: int | None = None,
    failed: int | None = None,
    on_append: Callable[[AppendResult], None] | None = None,
) -> list[bytes]:
    """Cancel branches ``cancelled`` of the group at ``key``; returns keys abandoned.

    Every effect of those branches that was requested and has no outcome is
    recorded ``abandoned`` (``reason`` says why), so a late post or claim to it
    is refused (JF-143). With ``winner``, the group is a race and the same
    transaction records it won (``race_won``, JF-140) first; with ``failed``,
    the group failed fast at that branch (``failed_fast``, JF-144).
    """

    def body(view: RunTxn, append: Append) -> list[bytes]:
        marked: list[bytes] = []
        for index in cancelled:
            for sub in view.keys_under(key + jf.encode_component(index)):
                events = view.events_at(sub)
                requested = any(isinstance(s.event, jf.EffectRequested) for s in events)
                if requested and not any(
                    isinstance(s.event, _OUTCOMES) for s in events
                ):
                    marked.append(sub)
        new: list[jf.Event] = [jf.EffectAbandoned(key=k, reason=reason) for k in marked]
        if winner is not None:
            new.insert(0, jf.RaceWon(key=key, winner=winner, cancelled=list(cancelled)))
        elif failed is not None:
            new.insert(
                0, jf.FailedFast(key=key, branch=failed, cancelled=list(cancelled))
            )
        if new:
            append(new)
        return marked

    marked = transact_telling(store, run_id, body, on_append)
    return marked
