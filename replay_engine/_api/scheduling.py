"""Runs that drive themselves: ``submit`` (a queued run) and ``worker``."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import journal_format as jf

from .._store.payload import encode_or_refuse
from ..errors import ReplayEngineError, RunExistsError
from .effects import ExternalEffects
from .executing import ProcessFn, _new_run_id, load_process
from .processes import ProcessLike
from .results import RunInfo

if TYPE_CHECKING:
    # The worker's module imports asyncio: only ``worker()`` loads it (issue 16).
    from .worker import QueueLimits, Worker

QUEUE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""Queue names: like run ids, at most 64 characters."""


def check_queue_name(queue: str) -> str:
    """Return ``queue`` if it is a valid queue name.

    Raises:
        ReplayEngineError: it is not.
    """
    if not isinstance(queue, str) or not QUEUE_NAME.fullmatch(queue):
        raise ReplayEngineError(
            f"invalid queue name {queue!r}: use 1-64 letters, digits, '.', '_' or"
            " '-', starting with a letter or digit; nothing was recorded"
        )
    return queue


class Scheduling(ExternalEffects):
    """``Engine``'s methods for queued runs and the worker that runs them."""

    def submit(
        self,
        process: ProcessFn | str,
        inputs: Any = None,
        *,
        run_id: str | None = None,
        queue: str | None = None,
    ) -> RunInfo:
        """Record a ``queued`` run of ``process`` and return at once.

        Nothing executes here: a worker (:meth:`worker`, ``replay-engine
        worker``) allowed to run ``process`` starts it, FIFO within its queue
        and within the queue's limits. The run's process is remembered for
        this user, as :meth:`run` does.

        Raises:
            ProcessImportError: ``process`` cannot be imported or is not an
                ``async def process(inputs, ctx)``.
            PayloadError: ``inputs`` cannot be encoded.
            RunExistsError: ``run_id`` is taken.
            ReplayEngineError: ``run_id`` or ``queue`` is malformed.
            (In every case nothing is recorded.)
        """
        from .._run import process_ref as _process_ref

        run_id = run_id or _new_run_id()
        try:
            jf.check_run_id(run_id)
        except jf.FormatError as exc:
            raise ReplayEngineError(f"{exc}; nothing was recorded") from None
        if queue is not None:
            check_queue_name(queue)
        label = process if isinstance(process, str) else None
        fn = load_process(process) if isinstance(process, str) else process
        ref = _process_ref.reference(fn)
        _process_ref.check_process(fn, label or ref)
        inputs_bytes = encode_or_refuse(
            inputs, f"the inputs of run {run_id!r}", "; nothing was recorded"
        )
        address = jf.payload_ref(inputs_bytes)
        fingerprint, code = _process_ref.code_of(fn)
        started = jf.RunStarted(
            process=ref, fingerprint=fingerprint, code=code or None, inputs=address
        )
        if self._store.get_run(run_id) is not None:
            # Checked before the note: a taken id must not re-point its note.
            raise RunExistsError(
                f"a run named {run_id!r} already exists in {self.path}; choose"
                " another run id (nothing was recorded)"
            )
        note = self._processes.starting(run_id, fn, started)
        self._store.create_run(
            run_id,
            started,
            jf.blobs_for(address, inputs_bytes),
            queued=True,
            queue=queue,
        )
        self._processes.started(note, self._first(run_id).digest)
        return RunInfo._from_record(self._store.require_run(run_id))

    def worker(
        self,
        processes: Iterable[ProcessLike],
        queues: Mapping[str, QueueLimits] | None = None,
        **options: Any,
    ) -> Worker:
        """A worker that recovers, wakes and starts runs of ``processes`` here.

        ``worker.run()`` blocks until :meth:`Worker.stop` (or a signal the
        caller routes to it); ``async with worker:`` runs it in the background
        of the caller's event loop and drains it on exit. See :class:`Worker`
        for ``options`` (``max_runs``, ``recovery_grace``, ``on_event`` …).

        Args:
            processes: the allow-list: functions or ``"module:qualname"``
                strings. A run whose recorded process is none of them is left
                alone (logged once).
            queues: queue name → :class:`QueueLimits`; queues not named have
                no limits. Runs submitted without a queue form the queue
                ``None`` (limit it with the key ``""``).
            **options: passed to :class:`Worker` (``max_runs``,
                ``recovery_grace``, ``stop_grace``, ``on_event`` …).

        Raises:
            ProcessImportError: an entry of ``processes`` is not a process.
            ValueError: a limit is not a positive number.
        """
        from .worker import Worker

        return Worker(self, processes, queues, **options)


__all__ = ["Scheduling", "check_queue_name"]
