"""The LMDB event store: many runs in one environment, appended in group commits.

Layout and encodings are defined by ``journal_format``; this module owns the
transactions. Every read checks what it reads (a sealed record's digest, a
blob's content address, the chain link of each event scanned) and turns any
damage into ``JournalCorruptError`` naming the run, seq and key.

Caveats (see docs/store.md):
* read transactions are short and never held across an ``await``;
* one LMDB handle per path per process (``_env``'s registry); none after fork;
* writes to one run's chain are serialised by LMDB's writer lock, so an append
  from another process (a posted result) can never fork the chain.
"""

from __future__ import annotations

import dataclasses
import logging
import struct
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import msgspec
from blake3 import blake3 as _blake3

import journal_format as jf

from ..errors import (
    FormatVersionError,
    JournalCorruptError,
    JournalWriteError,
    NotAJournalError,
    ReplayRangeError,
    RunExistsError,
    RunNotFoundError,
)
from . import env as _env
from .files import Access

Durability = Literal["fsync", "process"]
T = TypeVar("T")

_SEQ_BYTES = 8
_log = logging.getLogger("replay_engine")
_envelope_decoder = msgspec.msgpack.Decoder(jf.Envelope)
_SEQ = struct.Struct(">Q")


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One event as read back: its seq, its digest and its envelope."""

    seq: int
    digest: bytes
    envelope: jf.Envelope

    @property
    def event(self) -> jf.Event:
        return self.envelope.event


@dataclass(frozen=True, slots=True)
class AppendResult:
    first_seq: int
    count: int
    head: bytes
    checkpointed: int = 0
    """Events the checkpoint written with this append covers (0: none written)."""


class Store:
    """A journal directory: an LMDB environment holding many runs."""

    def __init__(
        self,
        path: str,
        *,
        durability: Durability = "fsync",
        map_size: int = _env.DEFAULT_MAP_SIZE,
        access: Access = "create",
        file_mode: int = _env.FILE_MODE,
    ) -> None:
        if durability not in ("fsync", "process"):
            raise ValueError(
                f"durability must be 'fsync' or 'process', not {durability!r}"
            )
        self.path = path
        self.durability = durability
        self._handle = _env.acquire(
            path,
            sync=durability == "fsync",
            map_size=map_size,
            access=access,
            file_mode=file_mode,
        )
        self.access = access
        self._dbs = self._handle.dbs
        self.commits = 0
        self.read_only = False
        """True when the journal needs a newer format to write (JF-044)."""
        try:
            self._check_format()
        except BaseException:
            self.close()
            raise

    # -- lifecycle ---------------------------------------------------------------

    def close(self) -> None:
        """Release this store's share of the LMDB handle (idempotent)."""
        handle = getattr(self, "_handle", None)
        if handle is not None:
            self._handle = None  # type: ignore[assignment]
            _env.release(handle)

    @property
    def real_path(self) -> str:
        return self._handle.path

    def _check_format(self) -> None:
        meta_db = self._dbs[jf.DB_META]

        def body(txn: Any) -> None:
            raw = txn.get(jf.META_FORMAT_KEY, db=meta_db)
            if raw is None and self.access != "create":
                raise NotAJournalError(
                    f"{self.real_path} is not a replay-engine journal (it has no"
                    " format record). Only `replay-engine run` (or Engine(path))"
                    " creates a journal; nothing was written.",
                    path=self.real_path,
                )
            if raw is None:
                meta = jf.FormatMeta(
                    magic=jf.MAGIC,
                    read_version=jf.FORMAT_VERSION,
                    write_version=jf.FORMAT_VERSION,
                )
                txn.put(jf.META_FORMAT_KEY, jf.encode_record(meta), db=meta_db)
                return
            try:
                meta = jf.decode_meta(raw)
            except jf.FormatError as exc:
                raise JournalCorruptError(
                    f"journal {self.real_path}: format record is damaged ({exc})"
                ) from None
            if meta.magic != jf.MAGIC:
                raise JournalCorruptError(
                    f"{self.real_path} is not a replay-engine journal"
                    f" (magic {meta.magic!r})"
                )
            if meta.read_version > jf.FORMAT_VERSION:
                raise FormatVersionError(
                    f"journal {self.real_path} needs format version"
                    f" {meta.read_version} to read; this replay-engine reads up to"
                    f" {jf.FORMAT_VERSION}. Upgrade replay-engine to open it."
                )
            if meta.write_version > jf.FORMAT_VERSION:
                self.read_only = True

        if self.access == "read":
            _env.read(self._handle, body)
        else:
            _env.write(self._handle, body)

    def _check_writable(self) -> None:
        if self.access == "read":
            raise JournalWriteError(
                f"the journal {self.real_path} was opened read-only, for"
                " inspection; nothing was written",
                path=self.real_path,
            )
        if self.read_only:
            raise FormatVersionError(
                f"journal {self.real_path} needs a newer format version to write;"
                f" this replay-engine writes version {jf.FORMAT_VERSION}, so it"
                " opened the journal read-only. Upgrade replay-engine to change it."
            )

    # -- runs --------------------------------------------------------------------

    def create_run(
        self, run_id: str, started: jf.RunStarted, blobs: dict[bytes, bytes]
    ) -> None:
        """Create a run whose first event is ``started``, atomically.

        Raises:
            RunExistsError: a run with this id exists.
        """
        jf.check_run_id(run_id)

        def body(txn: Any) -> None:
            record = self._new_record(
                txn,
                run_id,
                started,
                "running",
                f"resume it with `replay-engine resume {run_id}`, or choose another"
                " run id",
            )
            self._append_in(txn, record, [started], blobs, None, None)

        _env.write(self._handle, body)
        self.commits += 1

    def _new_record(
        self,
        txn: Any,
        run_id: str,
        started: jf.RunStarted,
        status: str,
        if_taken: str,
    ) -> jf.RunRecord:
        """The record of a run about to be created, with no events yet.

        Raises:
            RunExistsError: the id is taken (the message ends with ``if_taken``).
        """
        if txn.get(run_id.encode(), db=self._dbs[jf.DB_RUNS]) is not None:
            raise RunExistsError(
                f"a run named {run_id!r} already exists in {self.real_path}; {if_taken}"
            )
        now = time.time_ns()
        return jf.RunRecord(
            v=jf.FORMAT_VERSION,
            run_id=run_id,
            process=started.process,
            fingerprint=started.fingerprint,
            status=status,
            created_ns=now,
            updated_ns=now,
            events=0,
            head=jf.genesis_digest(run_id),
            parent=started.parent,
            fork_at=started.fork_at,
        )

    def get_run(self, run_id: str) -> jf.RunRecord | None:
        """The run's record, or None if there is no such run."""
        runs_db = self._dbs[jf.DB_RUNS]
        raw = _env.read(self._handle, lambda txn: txn.get(run_id.encode(), db=runs_db))
        return None if raw is None else self._decode_run(run_id, raw)

    def require_run(self, run_id: str) -> jf.RunRecord:
        """The run's record.

        Raises:
            RunNotFoundError: there is no such run (with close matches named).
        """
        record = self.get_run(run_id)
        if record is None:
            import difflib

            ids = [r.run_id for r in self.list_runs()]
            close = difflib.get_close_matches(run_id, ids, n=3)
            hint = (
                f" Closest matches: {', '.join(close)}."
                if close
                else " List runs with `replay-engine runs`."
            )
            raise RunNotFoundError(
                run_id, f"no run {run_id!r} in journal {self.real_path}.{hint}"
            )
        return record

    def list_runs(self) -> list[jf.RunRecord]:
        """Every run's record, in run id order."""
        runs_db = self._dbs[jf.DB_RUNS]

        def body(txn: Any) -> list[tuple[bytes, bytes]]:
            return list(txn.cursor(db=runs_db))

        return [
            self._decode_run(k.decode(), v) for k, v in _env.read(self._handle, body)
        ]

    def _decode_run(self, run_id: str, raw: bytes) -> jf.RunRecord:
        try:
            _, data = jf.unseal(raw)
            return jf.decode_run_record(data)
        except jf.FormatError as exc:
            raise JournalCorruptError(
                f"run {run_id!r}: its run record is damaged ({exc}). Run"
                " `replay-engine verify` to see the whole extent of the damage.",
                run_id=run_id,
            ) from None

    # -- appends -----------------------------------------------------------------

    def append(
        self,
        run_id: str,
        events: Sequence[jf.Event],
        blobs: dict[bytes, bytes],
        *,
        status: str | None = None,
        counters: tuple[int, int] | None = None,
        checkpoint: jf.CallIndex | None = None,
    ) -> AppendResult:
        """Append events (and the blobs they refer to) in one commit.

        With durability ``fsync`` the commit is on disk when this returns. The
        run's head is read inside the write transaction, so appends from
        several processes chain correctly.

        With ``checkpoint``, an index of the run's first events, the events
        after it (including these) are read back, checked and folded into it,
        and it is stored as the run's checkpoint in the same commit (JF-103).
        """
        runs_db = self._dbs[jf.DB_RUNS]

        def body(txn: Any) -> AppendResult:
            raw = txn.get(run_id.encode(), db=runs_db)
            if raw is None:
                raise RunNotFoundError(run_id, f"no run {run_id!r} in {self.real_path}")
            record = self._decode_run(run_id, raw)
            result = self._append_in(txn, record, events, blobs, status, counters)
            if checkpoint is not None:
                covered = self._put_checkpoint(txn, run_id, checkpoint)
                result = dataclasses.replace(result, checkpointed=covered)
            return result

        result = _env.write(self._handle, body)
        self.commits += 1
        return result

    def _append_in(
        self,
        txn: Any,
        record: jf.RunRecord,
        events: Sequence[jf.Event],
        blobs: dict[bytes, bytes],
        status: str | None,
        counters: tuple[int, int] | None,
        times: Sequence[int] | None = None,
    ) -> AppendResult:
        self._check_writable()
        events_db = self._dbs[jf.DB_EVENTS]
        keys_db = self._dbs[jf.DB_KEYS]
        blobs_db = self._dbs[jf.DB_BLOBS]
        if blobs:
            # overwrite=False: an identical payload is stored once.
            txn.cursor(db=blobs_db).putmulti(blobs.items(), overwrite=False)
        prefix = jf.run_prefix(record.run_id)
        seq = record.events
        head = record.head
        now = time.time_ns()
        # Bare callables: this loop runs once per event of every fresh run.
        envelope_of = jf.Envelope
        encode = jf.RECORD_ENCODER.encode
        pack_seq = _SEQ.pack
        valid_key = jf.match_valid_key
        version = jf.FORMAT_VERSION
        hasher = _blake3()  # reset per record: cheaper than a new hasher each
        update, digest_of, reset = hasher.update, hasher.digest, hasher.reset
        event_items: list[tuple[bytes, bytes]] = []
        index_items: list[tuple[bytes, bytes]] = []
        for index, event in enumerate(events):
            # A fork keeps the times its shared events were first written.
            at = now if times is None else times[index]
            data = encode(envelope_of(version, seq, head, at, event))
            update(data)
            head = digest_of()  # sealed as digest ‖ data (JF-060)
            reset()
            packed = pack_seq(seq)
            event_items.append((prefix + packed, head + data))
            key = getattr(event, "key", None)
            if key is not None:
                if valid_key(key) is None:
                    raise jf.FormatError(
                        f"invocation key bytes {key.hex()} are malformed; nothing was"
                        " written"
                    )
                index_items.append((prefix + key, packed))
            seq += 1
        # One C-level loop per database rather than one Python call per record.
        txn.cursor(db=events_db).putmulti(event_items)
        if index_items:
            txn.cursor(db=keys_db).putmulti(index_items, dupdata=True)
        updated = jf.RunRecord(
            v=jf.FORMAT_VERSION,
            run_id=record.run_id,
            process=record.process,
            fingerprint=record.fingerprint,
            status=status or record.status,
            created_ns=record.created_ns,
            updated_ns=now,
            events=seq,
            head=head,
            parent=record.parent,
            fork_at=record.fork_at,
            dispatched=counters[0] if counters else record.dispatched,
            replayed=counters[1] if counters else record.replayed,
        )
        txn.put(
            record.run_id.encode(),
            jf.seal(jf.encode_record(updated)),
            db=self._dbs[jf.DB_RUNS],
        )
        return AppendResult(first_seq=record.events, count=len(events), head=head)

    def fork_run(self, run_id: str, at: int, new_run_id: str, status: str) -> None:
        """Create ``new_run_id`` sharing the first ``at`` events of ``run_id``.

        The new run's first event is the parent's ``run_started`` with
        ``parent`` and ``fork_at`` set; events 1..at-1 are the parent's, each
        re-linked into the new run's own chain. Blobs are shared, not copied.

        Raises:
            RunExistsError: ``new_run_id`` is taken.
            ReplayRangeError: ``at`` is outside 1..events.
        """
        jf.check_run_id(new_run_id)
        parent = self.require_run(run_id)
        if not 1 <= at <= parent.events:
            raise ReplayRangeError(
                f"fork point {at} is outside 1..{parent.events} (run {run_id!r} has"
                f" {parent.events} events; a fork keeps at least its run_started)"
            )
        stored = self.read_events(run_id, 0, at)
        events = [s.event for s in stored]
        first = events[0]
        if not isinstance(first, jf.RunStarted):
            raise JournalCorruptError(
                f"run {run_id!r}: seq 0 is not run_started", run_id=run_id, seq=0
            )
        started = jf.RunStarted(
            process=first.process,
            fingerprint=first.fingerprint,
            inputs=first.inputs,
            parent=run_id,
            fork_at=at,
            seed=first.seed or run_id,
        )

        def body(txn: Any) -> None:
            record = self._new_record(
                txn, new_run_id, started, status, "choose another id for the fork"
            )
            self._append_in(
                txn,
                record,
                [started, *events[1:]],
                {},
                None,
                None,
                times=[s.envelope.at for s in stored],
            )

        _env.write(self._handle, body)
        self.commits += 1

    def transact(self, run_id: str, body: Callable[[RunTxn], T]) -> T:
        """Run ``body`` with a :class:`RunTxn` in one write transaction.

        Everything ``body`` reads is the latest committed state, and its
        appends commit atomically with that state: LMDB serialises writers
        across processes, so concurrent posters never collide and never fail
        for contention (they wait their turn, for microseconds).
        """
        runs_db = self._dbs[jf.DB_RUNS]

        def txn_body(txn: Any) -> T:
            raw = txn.get(run_id.encode(), db=runs_db)
            if raw is None:
                raise RunNotFoundError(run_id, f"no run {run_id!r} in {self.real_path}")
            view = RunTxn(self, txn, self._decode_run(run_id, raw))
            return body(view)

        result = _env.write(self._handle, txn_body)
        self.commits += 1
        return result

    def set_status(self, run_id: str, status: str) -> None:
        """Change a run's status without appending an event."""
        self.append(run_id, (), {}, status=status)

    # -- reads -------------------------------------------------------------------

    def load_index(
        self,
        run_id: str,
        *,
        stop: int | None = None,
        use_checkpoint: bool = True,
    ) -> tuple[jf.CallIndex, int]:
        """The run's call index, read and checked in one read transaction.

        The hot path of every resume. It starts from the run's checkpoint when
        that is valid and covers no more than ``stop`` events (JF-105), else
        from nothing, then folds every later event up to ``stop``, checking
        each event's digest and chain link on the way. Returns the index and
        the number of events restored from a checkpoint (0 if none).

        Raises:
            JournalCorruptError: a damaged event, naming run and seq.
        """

        def body(txn: Any) -> tuple[jf.CallIndex, int]:
            start = self._read_checkpoint(txn, run_id, stop) if use_checkpoint else None
            restored = start.events if start is not None else 0
            index = start if start is not None else jf.CallIndex()
            self._fold_events(txn, run_id, index, stop)
            return index, restored

        return _env.read(self._handle, body)

    def _fold_events(
        self, txn: Any, run_id: str, index: jf.CallIndex, stop: int | None
    ) -> None:
        """Fold the run's events after ``index.events`` (up to ``stop``) into it."""
        cursor = txn.cursor(db=self._dbs[jf.DB_EVENTS])
        try:
            if cursor.set_range(jf.event_key(jf.run_prefix(run_id), index.events)):
                index.fold_records(run_id, cursor, stop)
        except jf.DamagedEvent as exc:
            raise _damaged(run_id, exc.seq, exc.key, exc.what) from None
        except jf.OrphanOutcome as exc:
            raise JournalCorruptError(
                f"run {run_id!r}: {exc}. `replay-engine verify {run_id}` lists"
                " every damaged record.",
                run_id=run_id,
                seq=exc.seq,
                key=jf.key_bytes_to_text(exc.key),
            ) from None
        if stop is None or index.events < stop:
            self._check_end(txn, run_id, index.events, index.head)

    def _read_checkpoint(
        self, txn: Any, run_id: str, stop: int | None
    ) -> jf.CallIndex | None:
        """The run's checkpoint as an index, if it is valid and usable (JF-105).

        A checkpoint is derived data: one that is damaged or does not match
        the chain is not used (the events are folded instead) and is reported
        by ``verify``.
        """
        raw = txn.get(jf.run_prefix(run_id), db=self._dbs[jf.DB_CHECKPOINTS])
        if raw is None:
            return None
        try:
            checkpoint = jf.decode_checkpoint(jf.unseal(raw)[1])
        except jf.FormatError as exc:
            _log.warning(
                "run %r: its checkpoint is damaged (%s); reading every event"
                " instead. `replay-engine verify %s` reports it.",
                run_id,
                exc,
                run_id,
            )
            return None
        events_db = self._dbs[jf.DB_EVENTS]
        prefix = jf.run_prefix(run_id)

        def digest_of(seq: int) -> bytes | None:
            stored: bytes | None = txn.get(jf.event_key(prefix, seq), db=events_db)
            return None if stored is None else stored[: jf.ADDRESS_SIZE]

        problem = jf.checkpoint_mismatch(checkpoint, run_id, digest_of)
        if problem is not None:
            _log.warning(
                "run %r: its checkpoint %s; reading every event instead",
                run_id,
                problem,
            )
            return None
        if stop is not None and checkpoint.events > stop:
            return None
        return jf.CallIndex.from_checkpoint(checkpoint)

    def _put_checkpoint(self, txn: Any, run_id: str, base: jf.CallIndex) -> int:
        """Checkpoint the run as it stands in ``txn``, from ``base``; events covered.

        ``base`` is left as it is (the runtime may still be using it): a copy,
        through the checkpoint's own encoding, is brought up to date.
        """
        version = jf.FORMAT_VERSION
        index = jf.CallIndex.from_checkpoint(
            jf.decode_checkpoint(
                jf.encode_checkpoint(base.to_checkpoint(run_id, version))
            )
        )
        try:
            self._fold_events(txn, run_id, index, None)
        except JournalCorruptError as exc:
            # Never lose the events being appended over derived data.
            _log.warning("run %r: no checkpoint written: %s", run_id, exc)
            return 0
        txn.put(
            jf.run_prefix(run_id),
            jf.seal(jf.encode_checkpoint(index.to_checkpoint(run_id, version))),
            db=self._dbs[jf.DB_CHECKPOINTS],
        )
        return index.events

    def checkpoint_of(self, run_id: str) -> bytes | None:
        """The run's raw checkpoint record, unchecked (for ``verify``)."""
        checkpoints_db = self._dbs[jf.DB_CHECKPOINTS]
        key = jf.run_prefix(run_id)
        raw: bytes | None = _env.read(
            self._handle, lambda txn: txn.get(key, db=checkpoints_db)
        )
        return raw

    def read_events(
        self, run_id: str, start: int = 0, stop: int | None = None
    ) -> list[StoredEvent]:
        """Events ``start`` up to (not including) ``stop``, each checked.

        The digest of every event is checked; the chain is checked from
        ``start`` on (from genesis when ``start`` is 0).

        Raises:
            JournalCorruptError: a damaged event, naming run, seq and key.
        """
        prefix = jf.run_prefix(run_id)
        events_db = self._dbs[jf.DB_EVENTS]

        def body(txn: Any) -> list[StoredEvent]:
            out: list[StoredEvent] = []
            cursor = txn.cursor(db=events_db)
            if not cursor.set_range(jf.event_key(prefix, start)):
                return out
            expected_prev = jf.genesis_digest(run_id) if start == 0 else None
            expected_seq = start
            plen = len(prefix)
            for k, v in cursor:
                if not k.startswith(prefix) or len(k) != plen + _SEQ_BYTES:
                    break
                seq = jf.seq_of_event_key(prefix, k)
                if stop is not None and seq >= stop:
                    break
                stored = self._check_event(run_id, seq, v, expected_prev, expected_seq)
                out.append(stored)
                expected_prev = stored.digest
                expected_seq = seq + 1
            if (out or start == 0) and (stop is None or expected_seq < stop):
                self._check_end(txn, run_id, expected_seq, expected_prev)
            return out

        return _env.read(self._handle, body)

    def _check_end(self, txn: Any, run_id: str, count: int, head: bytes | None) -> None:
        """A read that reached a run's last event must end where its record says.

        The chain cannot show that events were cut off its end; the run record,
        rewritten by every append, commits to the count and the last digest.
        """
        raw = txn.get(run_id.encode(), db=self._dbs[jf.DB_RUNS])
        if raw is None:
            return
        record = self._decode_run(run_id, raw)
        if record.events != count or (head is not None and record.head != head):
            raise JournalCorruptError(
                f"run {run_id!r}: its run record counts {record.events} events, but"
                f" the journal holds {count} that chain to it: events are missing at"
                f" the end. `replay-engine verify {run_id}` lists every damaged"
                " record.",
                run_id=run_id,
                seq=min(count, record.events),
            )

    def _check_event(
        self,
        run_id: str,
        seq: int,
        raw: bytes,
        expected_prev: bytes | None,
        expected_seq: int,
    ) -> StoredEvent:
        try:
            digest, data = jf.unseal(raw)
            envelope = jf.decode_envelope(data)
        except jf.FormatError as exc:
            raise _damaged(run_id, seq, None, str(exc)) from None
        key = getattr(envelope.event, "key", None)
        if seq != expected_seq or envelope.seq != seq:
            raise _damaged(
                run_id, seq, key, jf.out_of_place(expected_seq, envelope.seq)
            )
        if expected_prev is not None and envelope.prev != expected_prev:
            raise _damaged(run_id, seq, key, jf.CHAIN_BROKEN)
        return StoredEvent(seq=seq, digest=digest, envelope=envelope)

    def get_payload(self, ref: bytes) -> bytes:
        """The payload bytes a reference names: inline, or a checked blob."""
        return ref if jf.ref_is_inline(ref) else self.get_blob(ref)

    def get_blob(self, address: bytes) -> bytes:
        """The payload stored under ``address``, checked against it.

        Raises:
            JournalCorruptError: the blob is missing or damaged.
        """
        return self.get_blobs([address])[address]

    def get_blobs(self, addresses: Iterable[bytes]) -> dict[bytes, bytes]:
        """Several payloads in one read transaction, each checked."""
        blobs_db = self._dbs[jf.DB_BLOBS]
        wanted = list(addresses)

        def body(txn: Any) -> dict[bytes, bytes]:
            return {a: txn.get(a, db=blobs_db) for a in wanted}

        found = _env.read(self._handle, body)
        for address, data in found.items():
            if data is None:
                raise JournalCorruptError(
                    f"blob {address.hex()} is missing from {self.real_path}"
                )
            try:
                jf.check_blob(address, data)
            except jf.FormatError as exc:
                raise JournalCorruptError(str(exc)) from None
        return found

    def seqs_for_key(self, run_id: str, key: bytes) -> list[int]:
        """Seqs of the run's events at invocation key ``key`` (index lookup)."""
        keys_db = self._dbs[jf.DB_KEYS]
        full = jf.run_prefix(run_id) + key

        def body(txn: Any) -> list[int]:
            cursor = txn.cursor(db=keys_db)
            if not cursor.set_key(full):
                return []
            return [jf.unpack_seq(v) for v in cursor.iternext_dup()]

        return _env.read(self._handle, body)

    def scan_index(self, run_id: str) -> Iterator[tuple[bytes, int]]:
        """Every ``(key bytes, seq)`` entry of the run's invocation-key index."""
        keys_db = self._dbs[jf.DB_KEYS]
        prefix = jf.run_prefix(run_id)

        def body(txn: Any) -> list[tuple[bytes, int]]:
            out: list[tuple[bytes, int]] = []
            cursor = txn.cursor(db=keys_db)
            if not cursor.set_range(prefix):
                return out
            for k, v in cursor.iternext(keys=True, values=True):
                if not k.startswith(prefix):
                    break
                out.append((k[len(prefix) :], int.from_bytes(v, "big")))
            return out

        return iter(_env.read(self._handle, body))

    def raw_blobs(self, addresses: Iterable[bytes]) -> dict[bytes, bytes | None]:
        """Stored blobs by address, unchecked (for ``verify``); None if absent."""
        blobs_db = self._dbs[jf.DB_BLOBS]
        wanted = list(addresses)

        def body(txn: Any) -> dict[bytes, bytes | None]:
            return {a: txn.get(a, db=blobs_db) for a in wanted}

        return _env.read(self._handle, body)

    def raw_items(self, db: bytes, prefix: bytes = b"") -> list[tuple[bytes, bytes]]:
        """Every raw record of one database whose key starts with ``prefix``.

        Nothing is checked: this is for ``verify``, which must see damage.
        """
        handle_db = self._dbs[db]

        def body(txn: Any) -> list[tuple[bytes, bytes]]:
            cursor = txn.cursor(db=handle_db)
            if not cursor.set_range(prefix):
                return []
            out: list[tuple[bytes, bytes]] = []
            for k, v in cursor:
                if not k.startswith(prefix):
                    break
                out.append((k, v))
            return out

        return _env.read(self._handle, body)


def _damaged(
    run_id: str, seq: int, key: bytes | None, what: str
) -> JournalCorruptError:
    # Built only on failure: naming the key costs more than checking the event.
    key_text = jf.key_bytes_to_text(key) if key is not None else None
    where = f"run {run_id!r}, event seq {seq}" + (
        f" (key {key_text})" if key_text is not None else ""
    )
    return JournalCorruptError(
        f"{where}: {what}. `replay-engine verify {run_id}` lists every damaged record.",
        run_id=run_id,
        seq=seq,
        key=key_text,
    )


class RunTxn:
    """One run inside a write transaction: checked reads and atomic appends."""

    def __init__(self, store: Store, txn: Any, record: jf.RunRecord) -> None:
        self._store = store
        self._txn = txn
        self.record = record
        self.run_id = record.run_id
        self._prefix = jf.run_prefix(record.run_id)

    def events(self) -> list[StoredEvent]:
        """Every event of the run, each checked (digest and chain)."""
        out: list[StoredEvent] = []
        cursor = self._txn.cursor(db=self._store._dbs[jf.DB_EVENTS])
        prev = jf.genesis_digest(self.run_id)
        seq = 0
        expected_len = len(self._prefix) + _SEQ_BYTES
        if cursor.set_range(jf.event_key(self._prefix, 0)):
            for k, v in cursor:
                if len(k) != expected_len or not k.startswith(self._prefix):
                    break
                stored = self._store._check_event(self.run_id, seq, v, prev, seq)
                out.append(stored)
                prev = stored.digest
                seq += 1
        self._store._check_end(self._txn, self.run_id, seq, prev)
        return out

    def events_at(self, key: bytes) -> list[StoredEvent]:
        """The run's events at invocation key ``key`` (via the index), checked."""
        keys_db = self._store._dbs[jf.DB_KEYS]
        events_db = self._store._dbs[jf.DB_EVENTS]
        cursor = self._txn.cursor(db=keys_db)
        out: list[StoredEvent] = []
        if not cursor.set_key(self._prefix + key):
            return out
        for raw_seq in cursor.iternext_dup():
            seq = jf.unpack_seq(raw_seq)
            value = self._txn.get(jf.event_key(self._prefix, seq), db=events_db)
            if value is None:
                raise JournalCorruptError(
                    f"run {self.run_id!r}: the index names event seq {seq} at key"
                    f" {jf.key_bytes_to_text(key)}, which is missing",
                    run_id=self.run_id,
                    seq=seq,
                )
            stored = self._store._check_event(self.run_id, seq, value, None, seq)
            if getattr(stored.event, "key", None) != key:
                raise JournalCorruptError(
                    f"run {self.run_id!r}: the index names event seq {seq} for key"
                    f" {jf.key_bytes_to_text(key)}, but that event is elsewhere",
                    run_id=self.run_id,
                    seq=seq,
                )
            out.append(stored)
        return out

    def append(
        self,
        events: Sequence[jf.Event],
        blobs: dict[bytes, bytes] | None = None,
        status: str | None = None,
    ) -> AppendResult:
        """Append events in this transaction (committed when the body returns)."""
        result = self._store._append_in(
            self._txn, self.record, events, blobs or {}, status, None
        )
        self.record = self._store._decode_run(
            self.run_id,
            self._txn.get(self.run_id.encode(), db=self._store._dbs[jf.DB_RUNS]),
        )
        return result
