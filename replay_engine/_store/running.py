"""Checkpoints of a run while it runs, folded in memory from its own events.

A run is checkpointed while it executes (``_run/journal.py`` decides when), so
that a crash leaves a checkpoint covering most of its events and the next
resume folds only the rest. Reading the run's new events back out of LMDB to
build it (:func:`checkpoints.put_checkpoint`: a cursor step, a digest check
and a decode per event) would cost a fresh fan-out about 1.6 µs per event; the
events were just written by this very execution, so they are folded from the
``jf.Event`` objects it appended instead (no decode, no digest check: nothing
was read), and the head digest is the one the append computed.

Between two checkpoints the run keeps only what those events (the tail) fold
to: they are folded as they commit (:meth:`RunningCheckpoints.committed`),
while they are still in the CPU's caches (folding them at the checkpoint
walked tens of MB of cold objects) and so that the events themselves are
freed: a fan-out's request and completion become one ``CallEntry``. Only
requests, completions of the run's own requests and events the fold ignores
are folded then (a fan-out's events); from the first other event on, the tail
keeps the events, folded at the checkpoint over the whole index. A
checkpoint is built on a new index: the last one this execution wrote, read
back, checked and decoded (its events are immutable), or at the first one the
loaded index seen through an overlay (``_TailCalls``: the loaded entries are
copied before a fold changes them), so the runtime's index
(``RunJournal.index``) is never written and never sees a call of this
execution as a recorded one. The index is dropped once the record is sealed:
a long fan-out holds no second index of all its calls, only the events since
its last checkpoint.

Correct first: when anyone else appended to the run between two commits of
this execution (a post), or when this execution appended through another path
(``RunJournal.note_append``), the events in memory are not the run's whole
tail, and the checkpoint folds the run's events from LMDB after what the index
covers, exactly as a waiting run's always did. Checkpoints stay derived data
(format spec section 12): same record, same checks on reading.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import operator
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

import journal_format as jf

from ..errors import JournalCorruptError
from .chain import AppendResult
from .checkpoints import fold_events, overlay_index, put_checkpoint, seal_index
from .frozen import Frozen, fold_calls, seal_frozen

_log = logging.getLogger("replay_engine")


class RunningCheckpoints:
    """What an executing run keeps to checkpoint itself without reading back.

    ``loaded`` is the runtime's index (covering the events the execution
    loaded), never written here. ``stored`` is the (events, head) of the last
    checkpoint this execution wrote, or None. The events this execution
    committed after what that checkpoint (else ``loaded``) covers are, in seq
    order, the ``folded`` first ones (their calls in ``entries``, with the
    stored checkpoint's effects still in flight; ``started`` and ``logs``)
    then the ``tail`` ones (events); ``tail`` is None when that is not known
    (someone else appended in between): the next checkpoint then folds from
    LMDB.

    Nothing else is kept between checkpoints: the index a checkpoint is built
    from is made for it (from the stored checkpoint, decoded and checked, or
    from ``loaded``) and dropped after it, so memory holds at most the events
    since the last checkpoint (at most about a third of a long run's: a
    geometric rule), never a second index of every call.
    """

    __slots__ = (
        "_carry_next",
        "_frozen",
        "_frozen_next",
        "_written",
        "entries",
        "folded",
        "last",
        "loaded",
        "logs",
        "started",
        "stored",
        "tail",
    )

    def __init__(self, loaded: jf.CallIndex) -> None:
        self.loaded = loaded
        self.stored: tuple[int, bytes] | None = None
        self._written: tuple[int, bytes] | None = None
        self.entries: dict[bytes, jf.CallEntry] = {}
        """The calls the folded events made or changed, and the stored
        checkpoint's effects still in flight, as entries: their outcomes come
        after it (a fan-out's requests commit well ahead of their
        completions), and each would be decoded and looked up again."""
        self.folded = 0
        self.last: jf.Event | None = None
        self.started: jf.RunStarted | None = None
        self.logs: list[tuple[bytes, int]] = []
        self.tail: list[jf.Event] | None = []
        self._carry_next: dict[bytes, jf.CallEntry] = {}
        self._frozen = Frozen(loaded) if not loaded.calls else None
        """The stored checkpoint's settled calls, encoded (``frozen.py``), or
        None: the next checkpoint is built the general way. A resumed run's
        loaded calls are not encoded here: it starts without."""
        self._frozen_next: Frozen | None = None

    @property
    def covered(self) -> int:
        """Events before the tail: the stored checkpoint's, else the loaded ones."""
        stored = self.stored
        return self.loaded.events if stored is None else stored[0]

    def created(self, started: jf.RunStarted) -> None:
        """The run was created by this execution: ``started`` is its event 0."""
        if (
            self.stored is None
            and self.tail == []
            and not self.folded
            and self.loaded.events == 0
        ):
            self._fold((started,))

    def committed(self, result: AppendResult, events: Sequence[jf.Event]) -> None:
        """This execution committed ``events`` (without a checkpoint): note them.

        Called after the commit is durable. Events that do not follow the
        tail (someone else's lie before them) make it unknown.
        """
        tail = self.tail
        if tail is None:
            return
        if result.first_seq != self.covered + self.folded + len(tail):
            self.unknown()  # someone else's events: LMDB decides next time
            return
        if tail:
            tail.extend(events)
        else:
            self._fold(events)

    def _fold(self, events: Sequence[jf.Event]) -> None:
        """Fold ``events`` into ``entries``, up to the first one not folded here.

        That one and every event after it go to the tail (folded at the
        checkpoint, in order, over the whole index).
        """
        logs = self.logs
        done, started = fold_calls(
            self.entries, events, self.covered + self.folded, logs
        )
        if started is not None:
            self.started = started
        if done:
            self.folded += done
            self.last = events[done - 1]
        if done != len(events):
            self.tail = list(events[done:])

    def checkpointed(self) -> None:
        """The checkpoint :meth:`write` made was committed: it is the base now."""
        self.stored, self._written = self._written, None
        self.entries, self._carry_next = self._carry_next, {}
        self._frozen, self._frozen_next = self._frozen_next, None
        self._restart([])

    def unknown(self) -> None:
        """Events were appended that are not in the tail (another path)."""
        self.entries = {}  # not used until the next checkpoint
        self._frozen = None
        self._restart(None)

    def _restart(self, tail: list[jf.Event] | None) -> None:
        self.folded = 0
        self.last = self.started = None
        self.logs = []
        self.tail = tail

    def write(
        self,
        txn: Any,
        dbs: dict[bytes, Any],
        run_id: str,
        events: Sequence[jf.Event],
        result: AppendResult,
    ) -> int:
        """Checkpoint the run in ``txn``, just after ``events`` were appended.

        Returns the events covered (0: none written, with a warning). Nothing
        here changes until :meth:`checkpointed` (the commit is durable) but
        the carried entries, which folding the same events again leaves as
        they are, so a retried transaction (a map grown) starts over from the
        same state.
        """
        self._written = self._frozen_next = None
        sealed = self._write_frozen(txn, dbs, run_id, events, result)
        if sealed is not None:
            txn.put(jf.run_prefix(run_id), sealed, db=dbs[jf.DB_CHECKPOINTS])
            return result.first_seq + len(events)
        try:
            index = self._base(txn, dbs, run_id)
            tail = self.tail
            if (
                index is not None
                and tail is not None
                and result.first_seq == index.events + self.folded + len(tail)
            ):
                self._folded_into(index)
                fold_own(index, itertools.chain(tail, events) if tail else events)
            else:
                index = overlay_index(self.loaded) if index is None else index
                fold_events(txn, dbs, run_id, index, None)
        except (JournalCorruptError, jf.FormatError) as exc:
            # Never lose the events being appended over derived data.
            _log.warning("run %r: no checkpoint written: %s", run_id, exc)
            self.unknown()  # a fold stopped part-way through the entries
            return 0
        index.head = result.head
        calls = index.calls
        effect = jf.EFFECT
        # ``result`` first: most entries have one, and the test stops there.
        self._carry_next = {
            key: entry
            for key, entry in dict.items(calls)
            if entry.result is None
            and entry.kind == effect
            and entry.error is None
            and not entry.abandoned
        }
        if isinstance(calls, _EncodedCalls):
            index.calls = {}  # read below, not through the index
            checkpoint = index.to_checkpoint(run_id, jf.FORMAT_VERSION)
            checkpoint.keys, checkpoint.calls = calls.merged()
            del calls
            sealed = jf.seal_checkpoint(checkpoint)
            del checkpoint
        else:
            sealed = seal_index(run_id, index)
        self._written = (index.events, index.head)
        del index  # the index's objects: before LMDB copies the record
        txn.put(jf.run_prefix(run_id), sealed, db=dbs[jf.DB_CHECKPOINTS])
        return self._written[0]

    def _write_frozen(
        self,
        txn: Any,
        dbs: dict[bytes, Any],
        run_id: str,
        events: Sequence[jf.Event],
        result: AppendResult,
    ) -> bytearray | None:
        """The checkpoint built on the frozen part (``frozen.py``), or None.

        Only when every event since the stored checkpoint, these included, was
        folded into ``entries`` (their copy, for these: nothing changes until
        :meth:`checkpointed`, but entries a retried fold sets again).
        """
        frozen = self._frozen
        seq = self.covered + self.folded
        if frozen is None or self.tail or result.first_seq != seq:
            return None
        calls = dict(self.entries)
        logs = list(self.logs)
        done, started = fold_calls(calls, events, seq, logs)
        if done != len(events):
            return None
        stored = None
        if frozen.count:  # its calls' encodings: in the record written last
            stored = txn.get(jf.run_prefix(run_id), db=dbs[jf.DB_CHECKPOINTS])
        built = seal_frozen(
            frozen,
            stored,
            calls,
            run_id,
            seq + done,
            result.head,
            logs,
            self.started if started is None else started,
            events[-1],
        )
        if built is None:
            return None
        sealed, self._frozen_next, self._carry_next = built
        self._written = (seq + done, result.head)
        return sealed

    def _folded_into(self, index: jf.CallIndex) -> None:
        """Put what the folded events made into ``index`` (which covers none)."""
        if not self.folded:
            return
        # Into the index's own dict: the fold of this commit's events adds its
        # calls there, not to ``entries`` (a retried transaction starts over).
        dict.update(index.calls, self.entries)
        if self.started is not None:
            index.started = self.started
        index.logs.update(self.logs)
        index.events += self.folded
        index.last_event = self.last

    def _base(
        self, txn: Any, dbs: dict[bytes, Any], run_id: str
    ) -> jf.CallIndex | None:
        """A new index to build on: the stored checkpoint's, else ``loaded``'s.

        The stored one is read back sealed and checked like any checkpoint
        (its digest, and the events and head this execution wrote it with);
        None when it is not the one this execution wrote (the caller then
        folds from LMDB after ``loaded``).
        """
        stored = self.stored
        if stored is None:
            return overlay_index(self.loaded)
        raw = txn.get(jf.run_prefix(run_id), db=dbs[jf.DB_CHECKPOINTS])
        if raw is None:
            return None
        try:
            data = jf.unseal(raw)[1]  # its digest checked
            del raw
            checkpoint = _encoded_decoder.decode(data)
        except (jf.FormatError, msgspec.DecodeError, RecursionError):
            return None
        if (
            checkpoint.run_id,
            checkpoint.events,
            checkpoint.head,
        ) != (run_id, *stored) or len(checkpoint.keys) != len(checkpoint.calls):
            return None
        index = jf.CallIndex()
        index.calls = _EncodedCalls(checkpoint.keys, checkpoint.calls)
        index.logs = set(checkpoint.logs)
        index.signals = checkpoint.signals
        index.consumed_signals = set(checkpoint.consumed_signals)
        index.started = checkpoint.started
        index.last_event = checkpoint.last_event
        index.events = checkpoint.events
        index.head = checkpoint.head
        return index


class _EncodedCheckpoint(msgspec.Struct, omit_defaults=True, gc=False):
    """``jf.Checkpoint`` with its call states left encoded (``msgspec.Raw``).

    Decoding a long run's checkpoint into ``CallEntry`` objects (with a bytes
    object for each key, args and result) costs about 0.3 µs and 300 bytes a
    call; most of its calls are only copied into the next checkpoint, and a
    ``Raw`` is copied into the next encoding as it is: the same bytes as
    encoding the entry again (the encoder is deterministic). The few a fold
    reads are decoded then (:class:`_EncodedCalls`).
    """

    v: int
    run_id: str
    events: int
    head: bytes
    keys: list[bytes]
    calls: list[msgspec.Raw]
    logs: list[tuple[bytes, int]] = msgspec.field(default_factory=list)
    signals: list[tuple[int, str, bytes]] = msgspec.field(default_factory=list)
    consumed_signals: list[int] = msgspec.field(default_factory=list)
    started: jf.RunStarted | None = None
    last_event: jf.Event | None = None


_encoded_decoder = msgspec.msgpack.Decoder(_EncodedCheckpoint)
_entry_decoder = msgspec.msgpack.Decoder(jf.CallEntry)


class _EncodedCalls(dict[bytes, jf.CallEntry]):
    """A checkpoint's calls, encoded, under the calls a fold changed or added.

    ``sorted_keys`` are the checkpoint's, in byte order (JF-103), ``raws`` their
    encoded states. The dict itself holds what a fold set or read: a fold
    reads an entry to change it only through ``get`` (as for ``_TailCalls``),
    which decodes it from ``raws`` into the dict first.
    """

    __slots__ = ("raws", "sorted_keys")

    def __init__(self, keys: list[bytes], raws: list[msgspec.Raw]) -> None:
        super().__init__()
        self.sorted_keys = keys
        self.raws = raws

    def get(  # type: ignore[override]
        self, key: bytes, default: jf.CallEntry | None = None
    ) -> jf.CallEntry | None:
        entry = dict.get(self, key)
        if entry is None:
            keys = self.sorted_keys
            at = bisect.bisect_left(keys, key)
            if at == len(keys) or keys[at] != key:
                return default
            entry = self[key] = _entry_decoder.decode(self.raws[at])
        return entry

    def merged(self) -> tuple[list[bytes], list[Any]]:
        """Every key in byte order, and its state: a ``CallEntry`` or a ``Raw``."""
        keys, calls = self.sorted_keys, list[Any](self.raws)
        own = dict.keys(self)
        last = keys[-1] if keys else b""
        # Most of a fan-out's calls are new and after every old key: one C
        # comparison each sorts them out (``filter`` of a bound comparison:
        # no Python frame per key); only the rest are looked up.
        added = list(filter(last.__lt__, own))
        if len(added) != len(own):
            bisect_left, place = bisect.bisect_left, dict.__getitem__
            for key in list(filter(last.__ge__, own)):
                at = bisect_left(keys, key)
                if keys[at] == key:
                    calls[at] = place(self, key)
                else:
                    added.append(key)
        if not added:
            return keys, calls
        added.sort()
        if not keys or added[0] > last:
            # New calls after every old one (a fan-out's, in key order); their
            # entries in one C call (a Python call per key cost ~120 ns).
            entries = operator.itemgetter(*added)(self)
            if len(added) == 1:
                entries = (entries,)
            calls.extend(entries)
            return keys + added, calls
        states = dict(zip(keys, calls, strict=True))
        states.update(dict.items(self))
        merged = sorted(states)
        return merged, list(map(states.__getitem__, merged))


def fold_own(index: jf.CallIndex, events: Iterable[jf.Event]) -> None:
    """``index.fold(index.events, events)``, the two most frequent rules inlined.

    The events are this execution's own, committed in this order right after
    what ``index`` covers. The same rules as ``CallIndex._fold_one`` (JF-102);
    a fresh fan-out's events are all requests and completions.

    Raises:
        OrphanOutcome: an outcome at a key with no request before it.
    """
    calls = index.calls
    own = dict.get  # the calls' own dict first: a C call, no Python frame
    # Past it, an overlay's ``get`` (its base's entry, copied) for a plain
    # dict answers None again.
    get = calls.get
    requested, completed = jf.EffectRequested, jf.EffectCompleted
    entry_of, effect = jf.CallEntry, jf.EFFECT
    seq = index.events
    last = index.last_event
    try:
        for event in events:
            kind = type(event)
            if kind is requested:
                entry = calls[event.key] = entry_of(  # type: ignore[union-attr]
                    effect,
                    seq,
                    event.task,  # type: ignore[union-attr]
                    event.kind,  # type: ignore[union-attr]
                    event.args,  # type: ignore[union-attr]
                )
                # Set only when there is one: a keyword argument per request
                # costs more than this test.
                if event.deadline_ns is not None:  # type: ignore[union-attr]
                    entry.deadline_ns = event.deadline_ns  # type: ignore[union-attr]
            elif kind is completed:
                call = own(calls, event.key) or get(event.key)  # type: ignore[union-attr]
                if call is None or call.kind != effect:
                    raise jf.OrphanOutcome(seq, event.key)  # type: ignore[union-attr]
                call.result = event.result  # type: ignore[union-attr]
                if event.signal_seq is not None:  # type: ignore[union-attr]
                    index.consumed_signals.add(event.signal_seq)  # type: ignore[union-attr]
            else:
                index._fold_other(seq, event)
            last, seq = event, seq + 1
    finally:
        # Up to the last event folded whole (a failure resets the index).
        index.events = seq
        index.last_event = last


def write_checkpoint(
    txn: Any,
    dbs: dict[bytes, Any],
    run_id: str,
    checkpoint: jf.CallIndex | RunningCheckpoints,
    events: Sequence[jf.Event],
    result: AppendResult,
) -> int:
    """The checkpoint an append asked for, in its transaction; events covered."""
    if isinstance(checkpoint, RunningCheckpoints):
        return checkpoint.write(txn, dbs, run_id, events, result)
    return put_checkpoint(txn, dbs, run_id, checkpoint)
