"""Time travel: ``replay`` a run as it stood after N events, ``fork`` it from there.

:mod:`.snapshots` builds the snapshot's view of the journal; this module
re-executes the process against the prefix in a frozen runtime.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import journal_format as jf

from ..errors import JournalCorruptError, ReplayRangeError
from .base import run_sync
from .executing import ProcessFn
from .inspecting import Inspection
from .results import RunInfo

if TYPE_CHECKING:
    from .._run.history import Ending
    from .snapshots import CallState, CallStream, LogEntry, Snapshot


class TimeTravel(Inspection):
    """``Engine``'s methods that look back: ``replay`` and ``fork``."""

    def replay(
        self,
        run_id: str,
        until: int | str | None = None,
        *,
        process: ProcessFn | str | None = None,
        calls: bool = True,
    ) -> Snapshot:
        """The run as it stood after its first ``until`` events; nothing is dispatched.

        The process is re-executed against the journal prefix only: calls the
        prefix answers are answered, and the process stops at the first calls
        that would need a later event (the frontier).

        A replay of the whole of a run that ended with ``run_completed`` or
        ``run_failed`` (a complete history) has no frontier: a call past the
        recorded ones, a recorded call never made, or another result or
        error raises ``NonDeterminismError``, as ``resume`` would. A
        cancelled or timed-out run was stopped wherever it was: a call past
        its journal is a frontier, but changed or missing calls diverge.

        Args:
            run_id: the run.
            until: how many events to use (0..events; None for all), or
                ``"key:3.1.0"`` to stop when the call at that key is reached.
            process: the process to re-execute (a function, or a
                ``module:qualname`` you wrote); needed for a run not started
                here. Without it, as for ``resume``: a reference found only in
                the journal is never imported.
            calls: False to leave the snapshot's ``calls`` and ``logs`` empty
                (the frontier and the outcome only; :meth:`replay_calls`
                streams those instead). The replay then holds no call index:
                the prefix is read and checked once, and each call is looked
                up in the journal by its key, so memory does not grow with
                the run (what the process itself holds aside).

        Raises:
            RunNotFoundError: no such run.
            ReplayRangeError: ``until`` is out of range or names an unknown key.
            NonDeterminismError: the process no longer agrees with its journal
                (for a complete history, also: it does not end as recorded).
            ProcessImportError: no ``process`` and the run's recorded process
                is not known here (nothing was imported), or it is not one.
        """
        return run_sync(self.replay_async(run_id, until, process=process, calls=calls))

    async def replay_async(
        self,
        run_id: str,
        until: int | str | None = None,
        *,
        process: ProcessFn | str | None = None,
        calls: bool = True,
    ) -> Snapshot:
        """The same as :meth:`replay`, for asyncio callers."""
        from .._run.journal import RunJournal

        record = self._store.require_run(run_id)
        limit = self._resolve_until(run_id, record.events, until)
        journal = RunJournal(self._store, run_id, read_only=True)
        if calls:
            journal.load(stop=max(limit, 1))
        else:
            # Only the frontier and the outcome: the calls are looked up in the
            # journal as the process makes them, not held (constant memory).
            journal.load_keyed(max(limit, 1))
        # The whole of a run that ended: a complete history, which the replay
        # must reproduce exactly (no frontier past its end).
        journal.ended = self._replay_ending(run_id, limit, record.events)
        started = journal.started
        first = self._store.read_events(run_id, 0, 1)
        if started is None or not first:
            raise JournalCorruptError(
                f"run {run_id!r} has no run_started event", run_id=run_id, seq=0
            )
        fn = self._processes.resolve(run_id, first[0], process)
        inputs = self.payload(started.inputs, run_id=run_id, seq=0)
        from .._run.runtime import Runtime  # executing: see executing.py

        runtime = Runtime(
            journal,
            run_id,
            executors=self._executors,
            max_in_flight=self._slots,
            frozen=True,
            hooks=self._hooks,
        )
        outcome = await runtime.execute(fn, inputs)
        # Start-up: the snapshot's dataclasses are made by the first replay,
        # not by every command that opens an Engine (issue 16).
        from .snapshots import Snapshot, build_calls

        states: list[CallState] = []
        logs: list[LogEntry] = []
        if calls:
            payload_cache: dict[bytes, Any] = {}

            def payload(address: bytes) -> Any:
                if address not in payload_cache:
                    payload_cache[address] = self.payload(address, run_id=run_id)
                return payload_cache[address]

            events = self._store.read_events(run_id, 0, record.events)
            states, logs = build_calls(events, limit, payload)
        return Snapshot(
            run_id=run_id,
            until=limit,
            events=record.events,
            process_status=outcome.status,
            result=outcome.result,
            error=outcome.error,
            calls=states,
            logs=logs,
            frontier=sorted(
                runtime.frontier.values(), key=lambda f: jf.parse_key(f.key)
            ),
        )

    def replay_calls(self, run_id: str, until: int | str | None = None) -> CallStream:
        """The calls and log lines of ``replay(run_id, until)``, streamed.

        What :meth:`replay` puts in a snapshot's ``calls`` and ``logs``, but
        read from the journal in batches and yielded as each call's state as
        of event ``until`` is known, in constant memory (bounded by the calls
        in flight at once): a call at its outcome, those still in flight at
        event ``until`` there, then each call not reached at its request;
        log lines at their events. Not in key order (sort on ``key`` for
        that). Nothing is executed: the frontier and the process's outcome
        need a re-execution, ``replay(..., calls=False)``. The returned
        iterator's ``until`` and ``events`` say where the snapshot point is.

        Raises:
            RunNotFoundError: no such run (at the call, not at the first item).
            ReplayRangeError: ``until`` is out of range or names an unknown key.
            JournalCorruptError: while iterating, a damaged event.
        """
        from .snapshots import CallStream, read_in_batches, stream_calls

        record = self._store.require_run(run_id)
        limit = self._resolve_until(run_id, record.events, until)

        def payload(address: bytes) -> Any:
            return self.payload(address, run_id=run_id)

        events = read_in_batches(self._store, run_id, record.events)
        return CallStream(stream_calls(events, limit, payload), limit, record.events)

    def _replay_ending(self, run_id: str, limit: int, events: int) -> Ending | None:
        """``ending_of`` the run's events, reading only its tail."""
        from .._run.history import ENDINGS, TRAILING, Ending

        if limit != events:
            return None
        stop = events
        while stop > 0:  # the trailing events are few: one read, almost always
            start = max(0, stop - 64)
            chunk = self._store.read_events(run_id, start, stop)
            for stored in reversed(chunk):
                if isinstance(stored.event, ENDINGS):
                    return Ending(stored.seq, stored.event)
                if not isinstance(stored.event, TRAILING):
                    return None
            stop = start
        return None

    def _resolve_until(self, run_id: str, events: int, until: int | str | None) -> int:
        if until is None:
            return events
        if isinstance(until, str):
            text = until.strip()
            if text.startswith("key:"):
                key = jf.encode_key(jf.parse_key(text[4:]))
                seqs = self._store.seqs_for_key(run_id, key)
                if not seqs:
                    raise ReplayRangeError(
                        f"run {run_id!r} has no call at key {text[4:]}; see"
                        f" `replay-engine log {run_id}` for its keys"
                    )
                return min(seqs)
            until = int(text)
        if not 0 <= until <= events:
            raise ReplayRangeError(
                f"until={until} is outside 0..{events} for run {run_id!r}"
            )
        return until

    def fork(self, run_id: str, at: int, new_run_id: str | None = None) -> RunInfo:
        """A new run sharing the first ``at`` events of ``run_id``; resume it to go on.

        The fork records its parent and fork point. Its journal's blobs are
        shared with the parent's, not copied. Resuming it re-executes the
        process (with the current code) against the shared prefix and goes on
        live from there: the "fix the code, rerun from step N" workflow. A
        fork of a run this user may resume without naming its process (see
        :meth:`resume`) may be resumed so too.

        Raises:
            RunNotFoundError: no such run.
            RunExistsError: ``new_run_id`` is taken.
            ReplayRangeError: ``at`` is outside 1..events.
        """
        new_run_id = new_run_id or f"{run_id}-fork-{os.urandom(2).hex()}"
        record = self._store.require_run(run_id)
        kept = self._store.read_events(run_id, max(0, at - 1), at) if at >= 1 else []
        last = kept[-1].event if kept else None
        # Not started yet: `queued` (a worker allowed its process starts it),
        # not `running`, which would show as an interrupted execution.
        status = "completed" if isinstance(last, jf.RunCompleted) else "queued"
        self._store.fork_run(record.run_id, at, new_run_id, status)
        parent = self._store.read_events(run_id, 0, 1)
        child = self._store.read_events(new_run_id, 0, 1)
        if parent and child and isinstance(parent[0].event, jf.RunStarted):
            # A fork of a run this user may resume without flags may be too.
            self._processes.forked(
                parent[0].event,
                run_id,
                parent[0],
                new_run_id,
                child[0].envelope,
                child[0].digest,
            )
        return self.status(new_run_id)
