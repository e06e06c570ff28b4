"""A run's call index read from LMDB key by key, for time-travel replays.

A resume holds the run's call index in memory (``checkpoints.load_index``):
one entry per call, because it answers each call with a dict lookup and may
checkpoint the index when it stops. A time-travel replay writes nothing and is
asked for each call about once, so it need not hold them all: ``replay`` of a
100k-event run would otherwise grow by one entry per call (issue 16: replay in
constant memory). :class:`KeyedCalls` answers the same questions from the
``keys`` database (every event at an invocation key, JF-070) instead: each
lookup reads and checks the events at one key, in one short read transaction,
and folds them by the rules of JF-102, so an entry is exactly what the fold of
the whole prefix would hold at that key.

What the events are checked for: :func:`scan` first reads the prefix once, in
one read transaction, checking every digest and chain link as a resume's fold
does, and keeps only what is not per key (``run_started``, the last event,
signals and which waits consumed them) and how many events create an entry.
Each lookup then checks the digest and place of every event it reads. One
check moves: an outcome with no request before it (JF-102: the run is damaged)
is reported when its key is looked up or walked, not when the prefix is read.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import journal_format as jf

from ..errors import JournalCorruptError
from .chain import check_event, orphaned
from .checkpoints import fold_all

BATCH_KEYS = 64
"""Keys examined per read transaction when walking the index in key order."""


class _Counted(dict[bytes, jf.CallEntry]):
    """A fold's ``calls`` that keeps nothing: it counts the entries created.

    ``get`` hands out one scratch effect entry, so the fold's updates land
    there and are dropped (the per-key lookups fold those events again).
    """

    def __init__(self) -> None:
        super().__init__()
        self.created = 0
        self._scratch = jf.CallEntry(jf.EFFECT, 0)

    def __setitem__(self, key: bytes, value: jf.CallEntry) -> None:
        self.created += 1

    def get(self, key: bytes, default: Any = None) -> Any:
        return self._scratch


class _Dropped(set[tuple[bytes, int]]):
    """A fold's ``logs`` that keeps nothing: a frozen replay emits no log line."""

    def add(self, item: tuple[bytes, int]) -> None:
        pass


def scan(
    txn: Any, dbs: dict[bytes, Any], run_id: str, stop: int
) -> tuple[jf.CallIndex, int]:
    """The run's first ``stop`` events, checked, without their calls.

    Returns an index whose ``calls`` and ``logs`` are empty and whose other
    parts (``started``, ``last_event``, ``signals``, ``consumed_signals``,
    ``events``, ``head``) are those of the whole fold, and how many of the
    events create an entry: an upper bound of the number of entries (a key
    may be requested again), 0 exactly when there is none.

    Raises:
        JournalCorruptError: a damaged event, naming run and seq.
    """
    counts: list[_Counted] = []  # the last one is the index returned

    def new_index() -> jf.CallIndex:
        index = jf.CallIndex()
        index.calls = _Counted()
        counts.append(index.calls)
        index.logs = _Dropped()
        return index

    # The same checked fold as a resume's, so both read the prefix alike.
    index = fold_all(txn, dbs, run_id, new_index, stop)
    created = counts[-1].created
    index.calls = {}
    index.logs = set()
    return index, created


class KeyedCalls:
    """The entries of a run's call index up to ``stop`` events, looked up by key.

    Supports what ``RunJournal`` asks of its index: ``get`` (and ``[]``),
    ``len`` (an upper bound, exact when 0) and a walk in key order
    (:meth:`entries_from`). Nothing is cached: each lookup reads the journal.
    """

    def __init__(
        self,
        read: Callable[[Callable[[Any], Any]], Any],
        dbs: dict[bytes, Any],
        run_id: str,
        stop: int,
        created: int,
    ) -> None:
        self._read = read
        self._dbs = dbs
        self._run_id = run_id
        self._prefix = jf.run_prefix(run_id)
        self._stop = stop
        self._created = created
        self._scratch = jf.CallIndex()
        self.last: tuple[bytes, jf.CallEntry | None] = (b"", None)
        """The key and entry of the latest :meth:`get` (see :class:`Visited`)."""

    def __len__(self) -> int:
        return self._created

    def get(self, key: bytes) -> jf.CallEntry | None:
        """The entry at ``key`` as the fold of the prefix holds it, or None.

        Raises:
            JournalCorruptError: an event at ``key`` is damaged, or an outcome
                there has no request before it.
        """
        entry: jf.CallEntry | None = self._read(lambda txn: self._entry(txn, key))
        self.last = (key, entry)
        return entry

    def __getitem__(self, key: bytes) -> jf.CallEntry:
        entry = self.get(key)
        if entry is None:
            raise KeyError(key)
        return entry

    def entries_from(
        self, start: bytes, *, after: bool = False
    ) -> Iterator[tuple[bytes, jf.CallEntry]]:
        """Every ``(key, entry)`` from ``start`` on (past it with ``after``).

        In byte order of the keys, as ``sorted(calls)`` gives them. Read
        lazily, :data:`BATCH_KEYS` keys per read transaction, so a caller that
        stops early reads little.
        """
        while True:
            batch, last = self._read(
                functools.partial(self._batch, start=start, after=after)
            )
            yield from batch
            if last is None:
                return
            start, after = last, True

    def _batch(
        self, txn: Any, *, start: bytes, after: bool
    ) -> tuple[list[tuple[bytes, jf.CallEntry]], bytes | None]:
        prefix = self._prefix
        cursor = txn.cursor(db=self._dbs[jf.DB_KEYS])
        if not cursor.set_range(prefix + start):
            return [], None
        if after and cursor.key() == prefix + start and not cursor.next_nodup():
            return [], None
        out: list[tuple[bytes, jf.CallEntry]] = []
        for _ in range(BATCH_KEYS):
            full = cursor.key()
            if not full.startswith(prefix):
                return out, None
            key = full[len(prefix) :]
            entry = self._entry(txn, key)
            if entry is not None:
                out.append((key, entry))
            if not cursor.next_nodup():
                return out, None
        return out, key

    def _entry(self, txn: Any, key: bytes) -> jf.CallEntry | None:
        """Fold the events at ``key`` before ``stop``, one at a time.

        Not ``chain.events_at``, which returns them all: a key may anchor
        tens of thousands of log lines, and those are read and dropped here.
        """
        prefix, run_id, stop = self._prefix, self._run_id, self._stop
        cursor = txn.cursor(db=self._dbs[jf.DB_KEYS])
        if not cursor.set_key(prefix + key):
            return None
        events_db = self._dbs[jf.DB_EVENTS]
        # One scratch index for every lookup: only its calls (and the
        # consumed signals a completion may note) are touched, and cleared.
        index = self._scratch
        index.calls.clear()
        index.consumed_signals.clear()
        unpack_seq, event_key, get = jf.unpack_seq, jf.event_key, txn.get
        for raw_seq in cursor.iternext_dup():
            seq = unpack_seq(raw_seq)
            if seq >= stop:
                break  # dups are in seq order
            value = get(event_key(prefix, seq), db=events_db)
            if value is None:
                raise JournalCorruptError(
                    f"run {run_id!r}: the index names event seq {seq} at key"
                    f" {jf.key_bytes_to_text(key)}, which is missing. `replay-engine"
                    f" verify {run_id}` lists every damaged record.",
                    run_id=run_id,
                    seq=seq,
                )
            event = check_event(run_id, seq, value, None, seq).event
            if getattr(event, "key", None) != key:
                raise JournalCorruptError(
                    f"run {run_id!r}: the index names event seq {seq} for key"
                    f" {jf.key_bytes_to_text(key)}, but that event is elsewhere."
                    f" `replay-engine verify {run_id}` lists every damaged record.",
                    run_id=run_id,
                    seq=seq,
                )
            if type(event) is jf.LogLine:
                continue
            try:
                index.fold(seq, (event,))
            except jf.OrphanOutcome as exc:
                raise orphaned(run_id, exc) from None
        return index.calls.get(key)


class Visited:
    """The recorded calls an execution has reached, one bit per event.

    What ``RunJournal.visited`` (a set of keys) is for a keyed replay: a set
    of keys grows by about 80 bytes a call; this marks the seq of each
    reached call's entry (its creating event) in a bitmap of the prefix, an
    eighth of a byte per event. ``add(key)`` follows a ``get(key)`` of the
    same calls (``RunJournal.answer``, ``ctx.patched``), whose entry it reuses;
    any other key is looked up again.
    """

    def __init__(self, calls: KeyedCalls, events: int) -> None:
        self._calls = calls
        self._bits = bytearray((events + 7) // 8)
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def _entry(self, key: bytes) -> jf.CallEntry | None:
        last_key, entry = self._calls.last
        return entry if last_key == key else self._calls.get(key)

    def add(self, key: bytes) -> None:
        """Mark the call at ``key`` reached (it holds an entry)."""
        entry = self._entry(key)
        if entry is not None and not self.has(entry):
            self._bits[entry.seq >> 3] |= 1 << (entry.seq & 7)
            self._count += 1

    def has(self, entry: jf.CallEntry) -> bool:
        """Whether the call whose entry this is was reached."""
        return bool(self._bits[entry.seq >> 3] & (1 << (entry.seq & 7)))

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, bytes):
            return False
        entry = self._entry(key)
        return entry is not None and self.has(entry)
