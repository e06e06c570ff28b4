"""``Engine.cancel``: end a run from any process, whether or not it executes.

A run nobody executes (its run lock is free: waiting, queued, failed, or
interrupted) is cancelled at once, under its lock, in one transaction. A run
executing here or elsewhere gets a ``cancel_requested`` event instead (no
lock, like a post); its executor sees it within a second and ends the run
itself (``_run.settle.HaltWatch``). Either way the end is one transaction, so a
canceller killed at any moment leaves the run cancelled or as it was.
"""

from __future__ import annotations

import logging
import time

from .._store import cancel as _cancel
from .._store.lock import RunLock
from ..errors import RunLockedError
from .children import cancel_children, deliver_if_child
from .inspecting import Inspection
from .results import RunInfo

_log = logging.getLogger("replay_engine")

CANCEL_WAIT = 5.0
"""Seconds ``cancel`` waits for an executing run to end."""
_CANCEL_POLL = 0.05


class Cancelling(Inspection):
    """``Engine``'s ``cancel``."""

    def cancel(
        self, run_id: str, reason: str | None = None, *, wait: float = CANCEL_WAIT
    ) -> RunInfo:
        """Cancel a run: terminal status ``cancelled``, recorded with ``reason``.

        A run that is not executing (``waiting``, ``queued``, ``failed``, or
        ``running`` with no live executor) is cancelled at once: effects
        requested without an outcome are listed as abandoned in the
        ``run_cancelled`` event, and posting to them is refused from now on.

        A run executing (in this process or another) is asked to stop: its
        executor sees the request within a second, cancels its async effects,
        abandons sync ones still running (their late results are never
        recorded) and records ``cancelled``; its ``run``/``resume`` returns a
        ``Run`` whose status is ``"cancelled"``. This call waits up to
        ``wait`` seconds for that; if the run has not ended by then, the
        returned info has ``cancel_requested=True`` (the request is recorded
        and the executor, or the next resume, ends the run).

        A run that completes before its executor sees the request stays
        ``completed`` (the returned info says so; the request is then moot).

        A run's unfinished child runs (``ctx.run_child``) are cancelled after
        it, and so on down; a cancelled child's parent gets ``ChildRunFailed``.

        ``resume``/``iterate`` of a cancelled run return it as it is.

        Returns:
            The run as stored after the cancel.

        Raises:
            RunNotFoundError: no such run.
            RunEndedError: the run already ended (``completed``,
                ``cancelled`` or ``timed_out``); nothing was written.
        """
        info = self._cancel_one(run_id, reason, wait)
        # Children after their parent: a parent executing a child inline has
        # stopped it by now, so each is cancelled at once (docs: Sub-runs).
        cancel_children(self, run_id, reason)
        deliver_if_child(self._store, run_id)
        return info

    def _cancel_one(self, run_id: str, reason: str | None, wait: float) -> RunInfo:
        record = self._store.require_run(run_id)
        if record.status in _cancel.ENDED:
            raise _cancel.ended_error(run_id, record.status)
        if self._cancel_if_free(run_id, reason):
            return self.status(run_id)
        self._store.transact(
            run_id, lambda view: _cancel.request_cancel_in(view, reason)
        )
        give_up = time.monotonic() + max(0.0, wait)
        while time.monotonic() < give_up:
            time.sleep(_CANCEL_POLL)
            now = self._store.require_run(run_id)
            if now.status in _cancel.ENDED:
                return self.status(run_id)
            # The executor may have let go without seeing the request (it
            # stopped just before it): then the run is ours to end.
            if self._end_if_free(run_id):
                return self.status(run_id)
        _log.warning(
            "run %r is still executing: the cancel request is recorded and its"
            " executor will stop at its next check (or the next resume will)",
            run_id,
        )
        return self.status(run_id)

    def _cancel_if_free(self, run_id: str, reason: str | None) -> bool:
        """Cancel at once under the run lock; False if an executor holds it."""
        try:
            lock = RunLock(self.path, run_id)
        except RunLockedError:
            return False
        with lock:
            self._store.transact(run_id, lambda view: _cancel.cancel_in(view, reason))
        return True

    def _end_if_free(self, run_id: str) -> bool:
        try:
            lock = RunLock(self.path, run_id)
        except RunLockedError:
            return False
        with lock:
            _cancel.end_if_due(self._store, run_id)
        return True
