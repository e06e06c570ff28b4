"""A run's journal as the engine sees it while executing.

What was recorded, loaded once, and what is being recorded, buffered for the
next group commit.

Loading reads the run's events in one checked scan (every digest and chain
link) and indexes them by invocation key, so each replayed call costs a dict
lookup rather than a database round trip.
"""

from __future__ import annotations

import bisect
import sys
from collections.abc import Callable
from types import FrameType

import journal_format as jf

from ._hooks import SimulatedCrash
from ._store import Store
from .errors import JournalCorruptError, NonDeterminismError

_key_text = jf.key_bytes_to_text
_ADDRESS_SIZE = jf.ADDRESS_SIZE


class Entry:
    """What the journal holds at one invocation key."""

    __slots__ = (
        "abandoned",
        "args",
        "attempts",
        "deadline_ns",
        "due_ns",
        "effect_kind",
        "error",
        "fired",
        "kind",
        "result",
        "seq",
        "task",
        "value",
        "visited",
    )

    def __init__(self, kind: str, seq: int) -> None:
        self.kind = kind  # "effect" | "value" | "timer"
        self.seq = seq
        self.task = ""
        self.effect_kind = ""
        self.args = b""
        self.result: bytes | None = None
        self.error: jf.ErrorInfo | None = None
        self.attempts = 0
        self.value: int | bytes | None = None
        self.due_ns = 0
        self.fired = False
        self.visited = False
        self.abandoned = False
        self.deadline_ns: int | None = None

    def describe(self) -> str:
        if self.kind == "effect":
            return f"task {self.task!r} args {describe_args(self.args)}"
        if self.kind == "value":
            return f"ctx.{self.task}()"
        return "ctx.sleep()"


class RunJournal:
    """Recorded state of one run plus the buffer of events not yet committed."""

    def __init__(self, store: Store, run_id: str, *, read_only: bool = False) -> None:
        self.store = store
        self.run_id = run_id
        self.read_only = read_only
        self.entries: dict[bytes, Entry] = {}
        self.logs: set[tuple[bytes, int]] = set()
        self.signals: list[tuple[int, str, bytes]] = []
        """Posted signals: (seq, name, payload address), in journal order."""
        self.consumed_signals: set[int] = set()
        self.recorded_events = 0
        self.last_event: jf.Event | None = None
        self.started: jf.RunStarted | None = None
        self._pending: list[jf.Event] = []
        self._pending_blobs: dict[bytes, bytes] = {}
        self._sorted_keys: list[bytes] | None = None
        self.crash_after_events: int | None = None
        self.loaded_status = ""
        self.mark_running = False
        """A resumed run is marked running with its first commit, not before:
        an iterate that finds nothing to do writes nothing and fsyncs nothing."""
        self.on_crash: Callable[[], None] | None = None
        self.crashed = False
        self.events_written = 0
        self.commits = 0

    # -- loading -----------------------------------------------------------------

    def load(self, stop: int | None = None) -> None:
        """Read, check and index the run's recorded events (one read transaction).

        The results of completed effects are fetched, checked, in the same
        snapshot. With ``stop``, only the first ``stop`` events (time travel).
        """
        entries = self.entries
        logs = self.logs
        names: dict[str, str] = {}  # one str object per distinct task/kind name
        requested, completed = jf.EffectRequested, jf.EffectCompleted

        def visit(
            seq: int, envelope: jf.Envelope, fetch: Callable[[bytes], bytes]
        ) -> None:
            event = envelope.event
            kind = type(event)
            # Ordered by frequency: requests and completions are most events.
            if kind is requested:
                entry = Entry("effect", seq)
                task = event.task  # type: ignore[union-attr]
                entry.task = names.setdefault(task, task)
                effect_kind = event.kind  # type: ignore[union-attr]
                entry.effect_kind = names.setdefault(effect_kind, effect_kind)
                entry.args = event.args  # type: ignore[union-attr]
                entry.deadline_ns = event.deadline_ns  # type: ignore[union-attr]
                entries[event.key] = entry  # type: ignore[union-attr]
            elif kind is completed:
                done = entries.get(event.key)  # type: ignore[union-attr]
                if done is None or done.kind != "effect":
                    done = self._effect_by_key(event.key, seq)  # type: ignore[union-attr]
                ref = event.result  # type: ignore[union-attr]
                done.result = ref if len(ref) < _ADDRESS_SIZE else fetch(ref)
                signal_seq = event.signal_seq  # type: ignore[union-attr]
                if signal_seq is not None:
                    self.consumed_signals.add(signal_seq)
            else:
                self._load_other(seq, event, logs)

        count, last = self.store.scan_events(self.run_id, visit, stop=stop)
        self.recorded_events = count
        self.last_event = last

    def _load_other(
        self, seq: int, event: jf.Event, logs: set[tuple[bytes, int]]
    ) -> None:
        entries = self.entries
        if isinstance(event, jf.LogLine):
            logs.add((event.key, event.ordinal))
        elif isinstance(event, jf.ValueRecorded):
            entry = Entry("value", seq)
            entry.task = event.kind
            entry.value = event.value
            entries[event.key] = entry
        elif isinstance(event, jf.EffectFailed):
            self._effect_by_key(event.key, seq).error = event.error
        elif isinstance(event, jf.AttemptFailed):
            self._effect_by_key(event.key, seq).attempts = event.attempt
        elif isinstance(event, jf.TimerStarted):
            entry = Entry("timer", seq)
            entry.due_ns = event.due_ns
            entries[event.key] = entry
        elif isinstance(event, jf.TimerFired):
            timer = entries.get(event.key)
            if timer is not None:
                timer.fired = True
        elif isinstance(event, jf.EffectAbandoned):
            self._effect_by_key(event.key, seq).abandoned = True
        elif isinstance(event, jf.SignalReceived):
            self.signals.append((seq, event.name, event.payload))
        elif isinstance(event, jf.RunStarted):
            self.started = event

    def _effect_by_key(self, key: bytes, seq: int = -1) -> Entry:
        entry = self.entries.get(key)
        if entry is None or entry.kind != "effect":
            raise JournalCorruptError(
                f"run {self.run_id!r}: an outcome at key {_key_text(key)} has no"
                " request before it",
                run_id=self.run_id,
                seq=seq if seq >= 0 else None,
                key=_key_text(key),
            )
        return entry

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

    def flush(
        self, status: str | None = None, counters: tuple[int, int] | None = None
    ) -> None:
        """Commit every buffered event in one transaction (one fsync)."""
        if self.read_only or self.crashed:
            return
        if not self._pending:
            if status is None and counters is None:
                return
            if self.mark_running and status == self.loaded_status:
                return  # an execution that changed nothing commits nothing
        if self.mark_running and status is None:
            status = "running"  # marked with the execution's first commit
        self.mark_running = False
        events, self._pending = self._pending, []
        blobs, self._pending_blobs = self._pending_blobs, {}
        limit = self.crash_after_events
        if limit is not None:
            room = limit - (self.recorded_events + self.events_written)
            if room < len(events):
                # A simulated crash lands exactly after event `limit`: write
                # what fits, then nothing more, ever, from this execution.
                if room > 0:
                    self.store.append(self.run_id, events[:room], blobs)
                    self.events_written += room
                self.crashed = True
                if self.on_crash is not None:
                    self.on_crash()
                return
        self.store.append(self.run_id, events, blobs, status=status, counters=counters)
        self.events_written += len(events)
        self.commits += 1

    # -- divergence checks -------------------------------------------------------

    def check_new_key(
        self, key: bytes, scope_prefix: bytes, replayed: str = "a new call"
    ) -> None:
        """Refuse a call the journal has not seen if the journal says it is extra.

        A new call at index ``i`` of a scope diverges when the journal holds a
        later sibling (index > ``i``: a call was inserted) or a descendant of
        ``key`` (a group was recorded there). Only calls past the journal's
        frontier reach this check, so it does not slow replay.
        """
        if not self.entries:
            return
        keys = self._sorted_keys
        if keys is None:
            keys = self._sorted_keys = sorted(self.entries)
        # Descendants of key: byte strings starting with key, other than key.
        pos = bisect.bisect_right(keys, key)
        if pos < len(keys) and keys[pos].startswith(key):
            self._raise_extra(key, keys[pos], "a call nested inside it", replayed)
        # Later siblings (or their subtrees) of the same scope that this
        # execution has not reached. One it has already called proves nothing:
        # keys are taken when calls are made, and an earlier call may be
        # awaited (so recorded) after a later one.
        for later in keys[pos:]:
            if not later.startswith(scope_prefix):
                break
            if not self.entries[later].visited:
                self._raise_extra(
                    key, later, "a later call of the same scope", replayed
                )

    def _raise_extra(
        self, key: bytes, recorded_key: bytes, what: str, replayed: str
    ) -> None:
        entry = self.entries[recorded_key]
        raise divergence(
            self.run_id,
            key,
            entry.seq,
            recorded=f"nothing at {_key_text(key)}; {what} at"
            f" {_key_text(recorded_key)} ({entry.describe()})",
            replayed=f"{replayed} here",
            headline="the process made a call the journal does not have (an extra"
            " or inserted call)",
        )

    def unvisited(self) -> list[tuple[bytes, Entry]]:
        """Recorded calls this execution has not reached, in key order."""
        return sorted((k, e) for k, e in self.entries.items() if not e.visited)


def call_site(depth: int = 2) -> str:
    """``file:line`` of the user code that made the current ctx call."""
    frame: FrameType | None = sys._getframe(depth)
    # Skip the engine's own (private) modules and asyncio's machinery.
    while frame is not None and (
        frame.f_globals.get("__name__", "").startswith(("replay_engine._", "asyncio"))
    ):
        frame = frame.f_back
    if frame is None:
        return "<unknown>"
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


def divergence(
    run_id: str,
    key: bytes,
    seq: int | None,
    *,
    recorded: str,
    replayed: str,
    headline: str = "",
    site: str | None = None,
    replayed_args: bytes | None = None,
) -> NonDeterminismError:
    """Build the NonDeterminismError for a divergence at ``key``."""
    key_text = _key_text(key)
    where = f"at key {key_text}" + (f" (event seq {seq})" if seq is not None else "")
    site = site if site is not None else call_site(3)
    fork_hint = (
        f"\nTo branch from the last agreeing event: replay-engine fork {run_id}"
        f" --at {seq}"
        if seq is not None
        else ""
    )
    message = (
        f"run {run_id!r} diverged from its journal {where}"
        + (f": {headline}" if headline else "")
        + f".\n  recorded: {recorded}\n  replayed: {replayed}\n  call site: {site}\n"
        "The process must make the same ctx calls in the same places on every"
        " resume. Likely causes:\n"
        "  1. a branch on time, randomness or the environment read outside"
        " ctx.now()/ctx.random()/ctx.uuid();\n"
        "  2. iterating a set, or a dict built in an order that changed;\n"
        "  3. the process code changed since the run started." + fork_hint
    )
    return NonDeterminismError(
        message,
        run_id=run_id,
        key=key_text,
        seq=seq,
        recorded=recorded,
        replayed=replayed,
        replayed_args=replayed_args,
    )


def describe_args(ref: bytes) -> str:
    """Args for an error message: the value when inline, else its address prefix."""
    if jf.ref_is_inline(ref):
        try:
            text = repr(jf.decode_payload(ref))
        except jf.FormatError:
            text = f"<bytes {ref.hex()}>"
        return text if len(text) <= 60 else text[:57] + "..."
    return f"b3:{ref.hex()[:12]}"
