"""``check_compatible``: which stored runs a change to a process would break.

The CI gate before a deploy: every stored run of the process is replayed,
read-only, against the code about to ship. A run whose journal the new code
no longer agrees with (a call added, removed or changed before the end of
what was recorded; for a complete history, also a different ending) would
stop with ``NonDeterminismError`` when resumed; every other run would go on.
Nothing is dispatched and nothing is written: a replay answers every call
from the journal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ..errors import JournalCorruptError, NonDeterminismError, ReplayEngineError
from .base import run_sync
from .executing import ProcessFn, load_process
from .travel import TimeTravel

if TYPE_CHECKING:
    import journal_format as jf

    from .._run.history import Ending
    from .._run.stats import FrontierCall
    from .compat_result import RunCompatibility

# The run layer is imported by the methods that replay (issue 16: an Engine
# opened to read a journal never loads it).

TAIL_EVENTS = 8
"""How many of a run's last events are read to find its terminal event
(key-less events an execution or a canceller leaves may follow it)."""


class CompatChecking(TimeTravel):
    """``Engine.check_compatible``."""

    def check_compatible(
        self,
        process: ProcessFn | str,
        runs: Iterable[str] | None = None,
    ) -> list[RunCompatibility]:
        """Replay stored runs against ``process``; report which it would break.

        Args:
            process: the new code (a function, or a ``module:qualname`` you
                name; it is imported as ``run`` would).
            runs: the run ids to check; None for every run recorded with this
                process's reference (``module:qualname``), whatever its status.

        Raises:
            ProcessImportError: ``process`` cannot be imported or is not a
                process (``async def process(inputs, ctx)``).
            RunNotFoundError: a run named in ``runs`` does not exist.
        """
        from .._run import process_ref as _process_ref

        fn = load_process(process) if isinstance(process, str) else process
        ref = _process_ref.reference(fn)
        _process_ref.check_process(fn, ref)
        if runs is None:
            chosen = {i.run_id: i.status for i in self.runs() if i.process == ref}
        else:
            # An unknown run is reported before any work.
            chosen = {run_id: self.status(run_id).status for run_id in runs}
        return run_sync(self._check_all(fn, chosen))

    async def _check_all(
        self, fn: ProcessFn, chosen: dict[str, str]
    ) -> list[RunCompatibility]:
        from .._run import gc_relax

        # One event loop for every run: a loop per run costs more than a
        # small run's replay. The collector is relaxed once for all of them,
        # not once per run (restoring it after each run triggers a pass).
        with gc_relax.relaxed():
            return [
                await self._check_one(run_id, chosen[run_id], fn)
                for run_id in sorted(chosen)
            ]

    async def _check_one(
        self, run_id: str, status: str, fn: ProcessFn
    ) -> RunCompatibility:
        from .compat_result import RunCompatibility

        try:
            unproven = await self._replay_whole(run_id, fn)
        except NonDeterminismError as exc:
            return RunCompatibility(
                run_id, status, "breaks", exc.key, exc.seq, str(exc)
            )
        except ReplayEngineError as exc:
            return RunCompatibility(
                run_id, status, "error", message=f"{type(exc).__name__}: {exc}"
            )
        if unproven is not None:
            key, seq, message = unproven
            return RunCompatibility(run_id, status, "unproven", key, seq, message)
        return RunCompatibility(run_id, status, "compatible")

    async def _replay_whole(
        self, run_id: str, fn: ProcessFn
    ) -> tuple[str, int, str] | None:
        """``replay(run_id, process=fn)`` of the whole run, keeping only the verdict.

        The same frozen execution against the same complete history, loaded
        leaner: one read transaction for the index (as a resume loads it), one
        for the blobs the replay will read, and the last few events only to
        find how the run ended. No snapshot is built.

        Returns None when the run replays as recorded; (key, seq, message)
        when that cannot be known without dispatching (``unproven``).
        """
        from .._run.history import ENDINGS, TRAILING, Ending
        from .._run.journal import RunJournal

        journal = RunJournal(self._store, run_id, read_only=True)
        journal.load()
        started = journal.started
        if started is None:
            raise JournalCorruptError(
                f"run {run_id!r} has no run_started event", run_id=run_id, seq=0
            )
        last = journal.last_event
        journal.ended = (
            Ending(journal.index.events - 1, last)
            if isinstance(last, ENDINGS)
            else self._ending(run_id, journal.index.events)
            if isinstance(last, TRAILING)
            else None
        )
        journal.preload_results()
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
        await runtime.execute(fn, inputs)
        return _unproven(runtime.frontier.values(), journal.unvisited)

    def _ending(self, run_id: str, events: int) -> Ending | None:
        """How a run whose last event is key-less ended: read its last events.

        All of them only if need be.
        """
        from .._run.history import TRAILING, ending_of

        for tail in (TAIL_EVENTS, events):
            stored = self._store.read_events(run_id, max(0, events - tail), events)
            ending = ending_of(stored, len(stored))
            if ending is not None or len(stored) == events:
                return ending
            if any(not isinstance(s.event, TRAILING) for s in stored):
                return None  # a non-terminal, non-trailing event: not ended
        return None


def _unproven(
    frontier: Iterable[FrontierCall],
    unvisited: Callable[[], list[tuple[bytes, jf.CallEntry]]],
) -> tuple[str, int, str] | None:
    """Why a replay that stopped at its frontier proves nothing, if it does not.

    Two ways. A resume dispatches a new call and goes on with its result;
    this check cannot, so recorded calls reached only after that result stay
    unchecked (they may replay, or the resume may diverge there after the new
    effect ran). And a replay that stops waiting (an external, a timer, an
    effect in flight) with recorded calls it never reached: the recorded run
    had made them by the time it stopped at the same place, so the code no
    longer makes them there, and whether it makes them once the wait is over
    (an un-awaited group may start a branch late) only that answer tells; a
    resume then finishes or diverges with "fewer calls". Against a history
    that has ended, a new call is already a divergence
    (``history.past_the_end``) and a missing one too, so this concerns
    unfinished runs.
    """
    stops = list(frontier)
    left = unvisited()
    if not left or not stops:
        return None
    from journal_format import key_bytes_to_text

    key, entry = left[0]
    recorded = key_bytes_to_text(key)
    new = next((f for f in stops if f.reason == "new call"), None)
    if new is not None:
        return (
            new.key,
            entry.seq,
            f"the code makes a new call at {new.key} ({new.task}, {new.site}) that"
            f" a resume would dispatch before it reaches {len(left)} recorded"
            f" call(s), first at {recorded} (event seq {entry.seq}), which this"
            " check cannot replay without that call's result. A resume may"
            " dispatch it and then diverge. Guard the change with"
            " ctx.patched(...) (docs/evolving-code.md), or resume a fork of the"
            " run first (`replay-engine fork`).",
        )
    wait = stops[0]
    return (
        recorded,
        entry.seq,
        f"the replay stops waiting at {wait.key} ({wait.task}: {wait.reason},"
        f" {wait.site}) without having made {len(left)} recorded call(s), first"
        f" at {recorded} (event seq {entry.seq}): the recorded run had made"
        " them before it waited there, so the code no longer makes them before"
        " that wait. Whether it makes them after, this check cannot tell"
        " without the wait's outcome; a resume may finish waiting and then"
        " diverge with 'fewer calls'. Guard the change with ctx.patched(...)"
        " (docs/evolving-code.md), or resume a fork of the run first"
        " (`replay-engine fork`).",
    )
