"""A run's journal as the engine sees it while executing.

What was recorded, loaded once, and what is being recorded, buffered for the
next group commit.

Loading builds the run's call index (``journal_format.CallIndex``: what the
journal says happened at each invocation key) in one read transaction (a long
cold fold in several: ``_store/load_batches.py``), from
the run's checkpoint plus a checked fold of the events after it, so each
replayed call costs a dict lookup rather than a database round trip. Commits
keep its checkpoint current: while the run runs (:func:`running_due`, so a
crash leaves at most about a third of its events to fold one by one) and when
it stops waiting. A running run's checkpoints are folded from its own events
in memory (``_store/running.py``), apart from :attr:`RunJournal.index`.

It also decides every replayed call (:meth:`RunJournal.answer`, inherited
from ``decisions.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import journal_format as jf

from .._store.running import RunningCheckpoints
from .._store.store import AppendResult, GroupItem, Store
from ..errors import JournalWriteError, NonDeterminismError
from .decisions import Reached, ReplayDecisions, reached_for
from .hooks import SimulatedCrash

if TYPE_CHECKING:  # time travel only (``load_keyed``): not imported by a resume
    from .._store.keyed import KeyedCalls, Visited
    from .history import Ending

GROUP = -1
"""The call kind of a parallel group: it takes a key but records nothing there,
so any entry at its key is a divergence (no entry has this kind)."""

CHECKPOINT_MIN_EVENTS = 16
"""A waiting run gets a checkpoint once this many events are not covered by one."""
CHECKPOINT_GROWTH = 4
"""… and once the uncovered events are at least 1/this of the covered ones, so
rewriting checkpoints costs O(1) amortised per event (see ``_checkpoint_due``)."""
RUNNING_MIN_EVENTS = 4096
"""A running run gets a checkpoint with a commit once this many events, and at
least 1/:data:`RUNNING_GROWTH` of the covered ones, are not covered by one (see
:func:`running_due`)."""
RUNNING_GROWTH = 2
"""… so each running checkpoint covers at least 1.5 times the last one."""


def running_due(covered: int, uncovered: int) -> bool:
    """Whether a running run with these events checkpoints (issue 17).

    Geometric, 1.5 times the last checkpoint: a run of N events writes
    checkpoints covering about 3N events in all (each event folded in memory
    once, the calls a checkpoint can copy as bytes copied: O(1) amortised per
    event), and a crash leaves at most about a third of them uncovered (just
    before the next one), about 19 % at a random point (1 - 2 ln 1.5). Folding
    an uncovered event costs a first resume several times what restoring a
    covered one does (``bench/bench_cold.py``); the fan-out's cost of the
    extra checkpoints is in bench/README.md (issue 17). The minimum keeps
    short runs from paying for a checkpoint their resume would fold in a few
    milliseconds anyway.
    """
    return uncovered >= RUNNING_MIN_EVENTS and uncovered * RUNNING_GROWTH >= covered


class RunJournal(ReplayDecisions):
    """Recorded state of one run plus the buffer of events not yet committed."""

    def __init__(self, store: Store, run_id: str, *, read_only: bool = False) -> None:
        self.store = store
        self.run_id = run_id
        self.read_only = read_only
        self.index = jf.CallIndex()
        self.entries: dict[bytes, jf.CallEntry] | KeyedCalls = self.index.calls
        """The index's calls; for a time-travel replay (:meth:`load_keyed`),
        looked up in the journal key by key instead of held."""
        self.visited: set[bytes] | Visited | Reached = set()
        self.marks: bytearray | None = None
        """``Reached.marks`` of a loaded journal's ``visited`` (else None)."""
        """Recorded keys this execution has reached (the rest are checked last)."""
        self.diverged: NonDeterminismError | None = None
        """The first divergence this execution met. Every later ctx call
        re-raises it, so user code catching it cannot make the run go on
        recording."""
        self.ended: Ending | None = None
        """Set by a time-travel replay of a whole run that ended: the end its
        replay must reach (see ``history``)."""
        self.recorded_events = 0
        self.restored_events = 0
        """Events covered by the checkpoint the load started from (0: none)."""
        self._running = RunningCheckpoints(self.index)
        """What the running checkpoints are built from (never the runtime's index)."""
        self._pending: list[jf.Event] = []
        self._pending_blobs: dict[bytes, bytes] = {}
        self._payloads: dict[bytes, bytes] = {}
        self._sorted_keys: list[bytes] | None = None
        self.crash_after_events: int | None = None
        self.loaded_status = ""
        self.mark_running = False
        """A resumed run is marked running with its first commit, not before:
        an iterate that finds nothing to do writes nothing and fsyncs nothing."""
        self.on_crash: Callable[[], None] | None = None
        self.crashed = False
        self.broken: BaseException | None = None
        """Why a commit of this execution failed. Its events are lost, so
        nothing later may be committed (it could lack what it depends on)."""
        self.on_broken: Callable[[BaseException], None] | None = None
        self.events_written = 0
        self.commits = 0
        self.execution: jf.ExecutionStarted | None = None
        """Who executes the run and why: written just before this execution's
        first event (an execution that writes nothing leaves no trace)."""
        self.known_events = 0
        """The run's event count as this execution knows it: what it loaded
        plus what it appended. A commit that finds more means someone else
        (a post, a signal) appended meanwhile."""
        self.moved = False
        """Someone else appended to the run since it was loaded: the
        execution may not have seen it, so it must not record ``run_waiting``
        (see :meth:`flush` ``if_unmoved``)."""
        self.patches: dict[str, tuple[bool, bytes]] = {}
        """``ctx.patched`` answers of this execution: id -> (answer, first key)."""
        self.watch_posts = True
        """False for an execution's last allowed pass: it records waiting
        even after a post (the post's wake-up is then the worker's job)."""

    # The parts of the index the runtime reads by name.

    @property
    def logs(self) -> set[tuple[bytes, int]]:
        return self.index.logs

    @property
    def signals(self) -> list[tuple[int, str, bytes]]:
        """Posted signals: (seq, name, payload reference), in journal order."""
        return self.index.signals

    @property
    def consumed_signals(self) -> set[int]:
        return self.index.consumed_signals

    @property
    def started(self) -> jf.RunStarted | None:
        return self.index.started

    @started.setter
    def started(self, value: jf.RunStarted | None) -> None:
        """Set for a run this execution just created: ``value`` is its event 0."""
        self.index.started = value
        if value is not None and self.index.events == 0:
            self._running.created(value)

    @property
    def last_event(self) -> jf.Event | None:
        return self.index.last_event

    # -- loading -----------------------------------------------------------------

    def load(self, stop: int | None = None) -> None:
        """Read, check and index the run's recorded events (``Store.load_index``).

        Starts from the run's checkpoint when there is a usable one, so only
        the events after it are read. With ``stop``, only the first ``stop``
        events (time travel).
        """
        index, restored = self.store.load_index(self.run_id, stop=stop)
        self.index, self.entries = index, index.calls
        self.recorded_events = self.known_events = index.events
        self.visited = reached = reached_for(index.calls, index.events)
        self.marks = reached.marks  # ctx.task marks its replayed calls here
        self.restored_events = restored
        # The resumed run is a running run: its commits checkpoint by the
        # running rule (``_running_due``), the first one included. A crash
        # leaves at most about half as many events uncovered as covered (or
        # fewer than RUNNING_MIN_EVENTS), so checkpointing them at once would only
        # put a rewrite of the whole index before the first dispatch, for a
        # saving the next resume gets anyway once the rule says so; a journal
        # with no checkpoint at all (more than the minimum uncovered, none
        # covered) is due at once.
        self._running = RunningCheckpoints(index)

    def load_keyed(self, stop: int) -> None:
        """:meth:`load` for a time-travel replay, in memory that does not grow.

        The first ``stop`` events are read and checked once, and each call is
        then looked up in the journal by its key when the process makes it
        (``_store/keyed.py``). Answers are the same as after :meth:`load`;
        nothing may be recorded (no checkpoint either).
        """
        from .._store.keyed import Visited  # time travel only: not at start-up

        index, calls = self.store.keyed_index(self.run_id, stop)
        self.index = index
        self.entries = calls
        self.visited = Visited(calls, index.events)
        self.marks = None
        self.recorded_events = self.known_events = index.events

    def payload(self, ref: bytes) -> bytes:
        """The payload a recorded reference names (a blob is read and checked once)."""
        if len(ref) < jf.ADDRESS_SIZE:
            return ref
        data = self._payloads.get(ref)
        if data is None:
            data = self._payloads[ref] = self.store.get_blob(ref)
        return data

    def preload_results(self) -> None:
        """Read every recorded result blob in one read transaction.

        For a replay that will ask for them all (``compat``): one transaction
        instead of one per result.
        """
        size = jf.ADDRESS_SIZE
        entries = self.entries
        if not isinstance(entries, dict):  # keyed calls (decisions._sorted_from)
            return  # each is read when its call is answered
        wanted = {
            e.result
            for e in entries.values()
            if e.result is not None and len(e.result) >= size
        }
        wanted.difference_update(self._payloads)
        if wanted:
            self._payloads.update(self.store.get_blobs(wanted))

    def _checkpoint_due(self, appending: int) -> bool:
        """Whether to checkpoint with an append of ``appending`` events.

        The thresholds make rewrites geometric: a run of N events is
        checkpointed O(log N) times (O(1) amortised per event), and a resume
        folds at most about a fifth of its events one by one.
        """
        total = self.recorded_events + self.events_written + appending
        covered = self.restored_events
        uncovered = total - covered
        return uncovered >= max(CHECKPOINT_MIN_EVENTS, covered // CHECKPOINT_GROWTH)

    def _running_due(self, appending: int) -> bool:
        """Whether a commit of a running run of ``appending`` events checkpoints."""
        covered = self.restored_events
        uncovered = self.recorded_events + self.events_written + appending - covered
        return running_due(covered, uncovered)

    # -- recording ---------------------------------------------------------------

    def record(self, event: jf.Event, blobs: dict[bytes, bytes] | None = None) -> None:
        """Buffer an event (and its blobs) for the next group commit."""
        if self.crashed:
            raise SimulatedCrash  # the "dead" process records nothing more
        if self.read_only:
            raise AssertionError("a read-only journal (time travel) was written to")
        self._pending.append(event)
        if blobs:
            self._pending_blobs.update(blobs)

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    def note_append(self, result: AppendResult) -> None:
        """Account for an append of this execution.

        Also one made through a post-like transaction (abandoning or expiring
        effects), so that it is not mistaken for someone else's.
        """
        self._running.unknown()  # not in the running checkpoints' tail
        self._account(result)

    def _account(self, result: AppendResult) -> None:
        if result.first_seq != self.known_events:
            self.moved = True  # someone else's events lie before it
        self.known_events = result.first_seq + result.count

    def flush(
        self,
        status: str | None = None,
        counters: tuple[int, int] | None = None,
        *,
        checkpoint: bool = False,
        if_unmoved: bool = False,
    ) -> bool:
        """Commit every buffered event in one transaction (one fsync).

        With ``checkpoint``, the execution is over and the run will be resumed
        (it waits): the commit also checkpoints the run when one is due. So
        does the first commit after a load that read many events one by one.

        With ``if_unmoved`` (the commit that records ``run_waiting``, last in
        the buffer), the commit is a compare-and-append: when anyone else
        appended to the run since this execution loaded it (a post that
        landed while it executed), ``run_waiting`` and the status are not
        written, and False is returned: the caller executes the run again,
        at once, to see what was posted. An execution that writes nothing
        still checks (one read of the run record).
        """
        if self.read_only or self.crashed:
            return True
        if self.broken is not None:
            raise self.broken
        if_unmoved = if_unmoved and self.watch_posts
        if if_unmoved and self.moved:
            self._drop_waiting()
            self.flush()  # whatever else is buffered, unconditionally
            return False
        if not self._pending:
            if status is None and counters is None:
                return True
            if self.mark_running and status == self.loaded_status:
                # An execution that changed nothing commits nothing.
                return not (if_unmoved and self._moved_since_load())
        marking = self.mark_running
        events, blobs, status, opened = self._take(status)
        limit = self.crash_after_events
        if limit is not None:
            room = limit - (self.recorded_events + self.events_written)
            if room < len(events):
                # A simulated crash lands exactly after event `limit`: write
                # what fits, then nothing more, ever, from this execution.
                if room > 0:
                    done = self._append(
                        events[:room], blobs, status=None, counters=None
                    )
                    self.note_append(done)  # the execution ends here
                    self.events_written += room
                self.crashed = True
                if self.on_crash is not None:
                    self.on_crash()
                return True
        result = self._append(
            events,
            blobs,
            status=status,
            counters=counters,
            checkpoint=self._checkpoint_for(events, checkpoint),
            expect_events=self.known_events if if_unmoved else None,
        )
        self.commits += 1
        if result.moved:
            self._refused(events, blobs, opened, marking)
            return False
        self._appended(result, events)
        return True

    def _take(
        self, status: str | None
    ) -> tuple[
        list[jf.Event], dict[bytes, bytes], str | None, jf.ExecutionStarted | None
    ]:
        """Empty the buffer into one commit.

        Its events, blobs and status, and the ``execution`` event opened
        before them (if this commit writes it).
        """
        if self.mark_running and status is None:
            status = "running"  # marked with the execution's first commit
        self.mark_running = False
        events, self._pending = self._pending, []
        blobs, self._pending_blobs = self._pending_blobs, {}
        opened = self.execution
        if opened is not None and events:
            events.insert(0, opened)
            self.execution = None
        return events, blobs, status, opened

    def _checkpoint_for(
        self, events: list[jf.Event], checkpoint: bool
    ) -> RunningCheckpoints | None:
        """What to checkpoint with a commit of ``events``, if one is due."""
        if not events:
            return None
        if checkpoint and self._checkpoint_due(len(events)):
            return self._running
        if self._running_due(len(events)):
            return self._running
        return None

    def _appended(self, result: AppendResult, events: list[jf.Event]) -> None:
        """Account for a commit of ``events`` of this execution."""
        self._account(result)
        self.events_written += len(events)
        if result.checkpointed:
            self.restored_events = result.checkpointed
            self._running.checkpointed()
        else:
            self._running.committed(result, events)

    # -- the commit shared with other runs (group_commit.py) ---------------------

    def take_shared(
        self, status: str | None = None, counters: tuple[int, int] | None = None
    ) -> GroupItem | None:
        """A :meth:`flush` as one run's part of a commit shared with others.

        (``status`` and ``counters``: a flush that ends the run.)

        None when this flush cannot be shared (nothing buffered, a simulated
        crash point, a broken or read-only journal): the caller then calls
        :meth:`flush` itself, which handles each of those. Otherwise the
        buffer is taken, and :meth:`shared_done` or :meth:`shared_failed`
        must follow with what became of it.
        """
        if (
            not self._pending
            or self.read_only
            or self.crashed
            or self.broken is not None
            or self.crash_after_events is not None
        ):
            return None
        events, blobs, status, _ = self._take(status)
        checkpoint = self._checkpoint_for(events, False)
        return GroupItem(self.run_id, events, blobs, status, counters, checkpoint)

    def shared_done(self, item: GroupItem, result: AppendResult) -> None:
        """The shared commit wrote ``item`` (durable, with ``fsync``)."""
        self.commits += 1
        self._appended(result, item.events)

    def shared_failed(self, exc: BaseException) -> BaseException:
        """The shared commit refused this run's part: the error that ends it."""
        return self._broke(exc)

    def _refused(
        self,
        events: list[jf.Event],
        blobs: dict[bytes, bytes],
        opened: jf.ExecutionStarted | None,
        marking: bool,
    ) -> None:
        """A compare-and-append found the run moved: nothing was written.

        What is not the waiting verdict is committed all the same.
        """
        self.moved = True
        self.execution = opened
        self.mark_running = marking
        rest = events[1:] if opened is not None and events else events
        if rest and isinstance(rest[-1], jf.RunWaiting):
            rest = rest[:-1]
        if rest:
            self._pending, self._pending_blobs = rest, blobs
            self.flush()

    def _drop_waiting(self) -> None:
        """Take the ``run_waiting`` verdict out of the buffer (a post moved the run)."""
        if self._pending and isinstance(self._pending[-1], jf.RunWaiting):
            self._pending.pop()

    def _moved_since_load(self) -> bool:
        """Whether anyone appended since this execution last knew the run."""
        if self.moved:
            return True
        record = self.store.get_run(self.run_id)
        if record is not None and record.events != self.known_events:
            self.moved = True
        return self.moved

    def _append(
        self,
        events: list[jf.Event],
        blobs: dict[bytes, bytes],
        *,
        status: str | None,
        counters: tuple[int, int] | None,
        checkpoint: RunningCheckpoints | None = None,
        expect_events: int | None = None,
    ) -> AppendResult:
        """One commit; a failure breaks the journal for this execution."""
        try:
            return self.store.append(
                self.run_id,
                events,
                blobs,
                status=status,
                counters=counters,
                checkpoint=checkpoint,
                expect_events=expect_events,
            )
        except BaseException as exc:
            error = self._broke(exc)
            if error is exc:
                raise
            raise error from exc

    def _broke(self, exc: BaseException) -> BaseException:
        """A commit failed: nothing more may be committed; the error to raise."""
        error = self._write_failed(exc) if isinstance(exc, JournalWriteError) else exc
        self.broken = error
        if self.on_broken is not None:
            self.on_broken(error)
        return error

    def _write_failed(self, exc: JournalWriteError) -> JournalWriteError:
        """The error for a run whose commit failed: what is kept, what to do."""
        last = self.recorded_events + self.events_written - 1
        return JournalWriteError(
            f"the journal of run {self.run_id!r} could not be written (disk"
            f" full?): nothing after seq {last} was recorded; the run can be"
            f" resumed once there is room (`replay-engine resume {self.run_id}`)."
            f" The store said: {exc}",
            path=exc.path,
        )
