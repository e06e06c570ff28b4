"""Inspecting runs without executing them: status, result, runs, events, verify."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import journal_format as jf

from .._store.children import CHILD_KIND, child_run_id
from .._store.lock import probe
from .._store.pending import PendingEffect
from .._store.store import StoredEvent
from .base import EngineBase
from .results import ExecutorInfo, RunInfo

if TYPE_CHECKING:
    from .._store.verify import VerifyReport

INTERRUPTED = "interrupted"
"""The status shown for a run stored ``running`` that no live executor holds."""


class Inspection(EngineBase):
    """``Engine``'s read-only methods: what is stored, nothing executed."""

    def status(
        self, run_id: str, *, events: Sequence[StoredEvent] | None = None
    ) -> RunInfo:
        """The stored state of a run.

        Args:
            run_id: the run.
            events: the run's events from seq 0 on, when the caller has just
                read them (``events(run_id)``): they are used instead of
                reading the journal again (what is pending or abandoned, a
                failed run's error). ``timeline`` reads a long run once so.

        Raises:
            RunNotFoundError: no such run (close matches are suggested).
        """
        record = self._store.require_run(run_id)
        info = self._live(RunInfo._from_record(record))
        if record.status == "failed" and record.events:
            read = self._store.read_events(run_id) if events is None else events
            for stored in reversed(read):
                if isinstance(stored.event, jf.RunFailed):
                    info = dataclasses.replace(info, error=stored.event.error)
                    break
        if record.status == "cancelled" and record.events:
            last = self._store.read_events(run_id, record.events - 1)[0].event
            if isinstance(last, jf.RunCancelled):
                return dataclasses.replace(
                    info,
                    cancel_reason=last.reason,
                    abandoned=tuple(jf.key_bytes_to_text(k) for k in last.abandoned),
                )
        if record.status != "running":
            # From the whole journal: claims, posts and signals follow run_waiting.
            pending = self._pending_effects(run_id, events)
            info = dataclasses.replace(
                info,
                pending=tuple(p.key for p in pending if not p.abandoned)
                if record.status == "waiting"
                else (),
                abandoned=tuple(p.key for p in pending if p.abandoned),
                waiting_on=_children_waited_on(run_id, pending)
                if record.status == "waiting"
                else (),
            )
        return info

    def result(self, run_id: str) -> Any:
        """The recorded result of a completed run (None otherwise)."""
        record = self._store.require_run(run_id)
        return self._recorded_result(record) if record.status == "completed" else None

    def runs(self, status: str | None = None) -> list[RunInfo]:
        """Every run in the journal, newest first (only those with ``status``)."""
        infos = [self._live(RunInfo._from_record(r)) for r in self._store.list_runs()]
        if status is not None:
            infos = [i for i in infos if i.status == status]
        return sorted(infos, key=lambda i: i.created, reverse=True)

    def _live(self, info: RunInfo) -> RunInfo:
        """A stored ``running`` run with its executor, or ``interrupted``.

        Probes the run lock without taking it and reads its holder's file:
        nothing is written, nothing imported.
        """
        if info.stored_status != "running":
            return info
        found = probe(self.path, info.run_id)
        executor = ExecutorInfo(
            holds_lock=found.held,
            pid=found.pid,
            host=found.host,
            since=found.since,
            alive=found.alive,
        )
        status = INTERRUPTED if found.held is False else info.status
        return dataclasses.replace(info, status=status, executor=executor)

    def events(
        self, run_id: str, start: int = 0, stop: int | None = None
    ) -> list[StoredEvent]:
        """A run's events ``start`` up to ``stop``, each checked as it is read."""
        self._store.require_run(run_id)
        return self._store.read_events(run_id, start, stop)

    def verify(self, run_id: str | None = None) -> VerifyReport:
        """Recompute every digest and chain link of one run (or every run and blob)."""
        # Not imported at start-up: only verify reads pages this way (issue 16).
        from .._store.verify import verify

        report = verify(self._store, run_id)
        if run_id is not None and report.runs == 0 and not report.problems:
            self._store.require_run(run_id)  # no record, no records: unknown
        return report


def _children_waited_on(run_id: str, pending: list[PendingEffect]) -> tuple[str, ...]:
    """The child runs a waiting run waits on: its pending effects of kind ``child``."""
    out: list[str] = []
    for effect in pending:
        if effect.kind != CHILD_KIND or effect.abandoned:
            continue
        args = effect.args if isinstance(effect.args, dict) else {}
        given = args.get("run_id")
        # A journal is untrusted: a non-string id is shown as the default one.
        out.append(
            given if isinstance(given, str) else child_run_id(run_id, effect.key)
        )
    return tuple(out)
