"""External effects: ``iterate``, ``waiting``, ``pending``, ``post``, claims, signals.

Every write here is one atomic LMDB transaction (``_store.posts``): a post is
validated against the journal as it is at that instant, so of two racing
posters exactly one wins and a refused post writes nothing.
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any

from .._store import posts as _posts
from .._store.posts import PendingEffect
from ..errors import PostRejected
from .base import run_sync
from .executing import Executing, ProcessFn
from .results import Run
from .waiting import Waiting, read_waiting

_MISSING: Any = object()

MAX_LEASE_SECONDS = 366 * 24 * 3600.0
"""The longest lease a claim or heartbeat may ask for (the CLI checks it too)."""


def _check_lease(run_id: str, key: str | None, lease: float) -> None:
    """A lease is a finite number of seconds in (0, MAX_LEASE_SECONDS]."""
    if isinstance(lease, bool) or not isinstance(lease, int | float):
        problem = f"is a {type(lease).__name__}, not a number of seconds"
    elif not math.isfinite(lease) or not 0 < lease <= MAX_LEASE_SECONDS:
        problem = f"is {lease!r}"
    else:
        return
    raise PostRejected(
        f"the lease {problem}: give a number of seconds above 0 and at most"
        f" {MAX_LEASE_SECONDS:.0f} (366 days); nothing was written",
        reason="invalid_lease",
        run_id=run_id,
        key=key,
    )


class ExternalEffects(Executing):
    """``Engine``'s methods for runs that wait on the outside world."""

    def iterate(
        self,
        run_id: str,
        *,
        process: ProcessFn | str | None = None,
        why: str = "iterate",
    ) -> Run:
        """One turn of the orchestration loop: replay, run what can run, stop.

        Re-executes the run from the start, executes every in-process task that
        can now run, and returns when the run completes, fails, or can progress
        no further without external results. Timers not yet due do not block:
        the run is left waiting with ``next_due`` set, and an ``iterate`` after
        that time fires them. A completed run changes nothing. ``process`` is
        chosen as for :meth:`resume`; ``why`` is recorded as for :meth:`resume`
        (a worker passes ``wake``).
        """
        return run_sync(
            self.resume_async(run_id, process=process, park_timers=True, why=why)
        )

    def waiting(self, run_id: str) -> Waiting:
        """What the run waits for, read from its journal; nothing is executed.

        For a waiting run: its external effects without a result (breakpoints
        among them), the events it waits for (``ctx.wait_for_event`` names),
        and when its next timer or deadline falls due. Costs a few reads per
        waited-on key, however long the journal. For a run that is not
        waiting, what its journal leaves outstanding.

        Example::

            w = engine.waiting("r1")
            for effect in w.externals:
                engine.post("r1", effect.key, result=do(effect.task, effect.args))
            for signal in w.signals:
                engine.post_event("r1", signal.name, {"ok": True})

        Raises:
            RunNotFoundError: no such run.
        """
        record = self._store.require_run(run_id)
        return read_waiting(self._store, record, self._payload_of(run_id))

    def pending(self, run_id: str) -> list[PendingEffect]:
        """External effects waiting for a result (including abandoned ones, flagged)."""
        self._store.require_run(run_id)
        return self._pending_effects(run_id)

    def post(
        self,
        run_id: str,
        key: str,
        *,
        result: Any = _MISSING,
        error: str | None = None,
        by: str | None = None,
    ) -> int:
        """Record the result (or error) of a pending external effect.

        Validated and atomic: an unknown key, a key that already has a result
        (of two racing posters exactly one wins), an abandoned key, a finished
        run or a payload that cannot be encoded each raise and write nothing.
        Resume or ``iterate`` the run afterwards to go on.

        Args:
            run_id: the run.
            key: the effect's invocation key (``"3.1"``).
            result: the effect's result (any msgspec-encodable value).
            error: instead of a result, a failure message; the process sees
                :class:`TaskFailed` with ``error_type == "ExternalError"``. An
                error (not a result) may also answer a ``ctx.wait_for_event``
                wait by its key: it fails that one wait.
            by: the posting worker; when the effect is claimed by another
                worker whose lease has not expired, the post is refused.

        Returns:
            The seq of the recorded event.

        Raises:
            PostRejected: the post was refused (``.reason`` says why).
            PayloadError: the result cannot be encoded.
        """
        if (result is _MISSING) == (error is None):
            raise ValueError("post needs exactly one of result=... or error=...")
        self._store.require_run(run_id)
        return _posts.post(
            self._store,
            run_id,
            key,
            result=None if result is _MISSING else result,
            error=error,
            by=by,
        )

    def post_event(
        self, run_id: str, name: str, payload: Any = None, *, error: str | None = None
    ) -> int:
        """Send a named signal to a run (for ``ctx.wait_for_event``); its seq.

        With ``error`` (and no payload), the wait that takes the signal raises
        :class:`TaskFailed` (``error_type == "ExternalError"``, the message
        ``error``) instead of returning, live and on replay. To fail one
        particular wait instead, ``post(run_id, key, error=...)`` its key.
        """
        if error is not None and payload is not None:
            raise ValueError("post_event takes a payload or an error, not both")
        self._store.require_run(run_id)
        return _posts.post_signal(self._store, run_id, name, payload, error)

    def claim(
        self,
        run_id: str,
        worker: str,
        *,
        lease: float,
        limit: int | None = 1,
        kind: str | None = None,
    ) -> list[PendingEffect]:
        """Atomically hand ``worker`` up to ``limit`` unclaimed or stale effects.

        Each claim is recorded with its lease expiry; an effect whose lease
        expires without a result is offered again (and shows as stale).

        Raises:
            PostRejected: ``reason="invalid_lease"`` for a lease that is not a
                finite number of seconds in (0, 366 days]; nothing is written.
        """
        _check_lease(run_id, None, lease)
        self._store.require_run(run_id)
        return _posts.claim(
            self._store,
            run_id,
            worker,
            lease,
            limit=limit,
            kind=kind,
            payload=self._payload_of(run_id),
        )

    def heartbeat(
        self, run_id: str, key: str, worker: str, *, lease: float
    ) -> _dt.datetime:
        """Extend ``worker``'s lease on a claimed effect; returns the new expiry.

        ``lease`` is checked as :meth:`claim` checks it.
        """
        _check_lease(run_id, key, lease)
        self._store.require_run(run_id)
        return _posts.heartbeat(self._store, run_id, key, worker, lease)
