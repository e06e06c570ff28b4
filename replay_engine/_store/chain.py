"""A run's chain of events inside one transaction: appending, and checked reads.

A module of its own because two things open transactions on a run, ``Store``
(one per call) and ``RunTxn`` (a post's read-check-append), and what they do
to the chain must be the same code. Every function here works inside the
caller's transaction and opens none.

Every read checks what it reads (each event's digest and place, the link to
the event before it) and turns damage into ``JournalCorruptError`` naming the
run, seq and key. The chain cannot show events cut off its end, so a read that
reaches the last event also checks it against the run record (``check_end``).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from blake3 import blake3 as _blake3

import journal_format as jf

from ..errors import JournalCorruptError
from .active import note_status
from .records import decode_run

_SEQ = struct.Struct(">Q")

# Keys append_events has found valid lately. A fresh effect's key is checked
# twice, in its request and in its completion a commit or more later; the
# second check is a set lookup instead of the regex (about 2,500 instructions,
# 2% of a fan-out's effect). Valid or not is a pure function of the bytes, so
# a remembered key needs no re-check. Two generations of at most
# ``_VALID_KEYS_MAX`` keys each: when the newer is full it becomes the older
# (the older is dropped), so a key requested just before the turn is still
# found when its completion comes (a window of in-flight effects is smaller).
_valid_keys: list[set[bytes]] = [set(), set()]
_VALID_KEYS_MAX = 8192


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One event as read back: its seq, its digest and its envelope."""

    seq: int
    digest: bytes
    envelope: jf.Envelope

    @property
    def event(self) -> jf.Event:
        """The event itself (the envelope's payload)."""
        return self.envelope.event


# A frozen dataclass's __init__ sets each field through object.__setattr__:
# about twice what building one through its slots costs, and a read of a
# 100k-event run builds 100k of them (issue 17). Same object, same checks.
_new_stored = object.__new__
_set_seq = vars(StoredEvent)["seq"].__set__
_set_digest = vars(StoredEvent)["digest"].__set__
_set_envelope = vars(StoredEvent)["envelope"].__set__


def _stored_event(seq: int, digest: bytes, envelope: jf.Envelope) -> StoredEvent:
    stored: StoredEvent = _new_stored(StoredEvent)
    _set_seq(stored, seq)
    _set_digest(stored, digest)
    _set_envelope(stored, envelope)
    return stored


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What one append wrote: its first seq, how many events, the new head."""

    first_seq: int
    count: int
    head: bytes
    checkpointed: int = 0
    """Events the checkpoint written with this append covers (0: none written)."""
    moved: bool = False
    """A compare-and-append found the run moved on: nothing was written."""


def append_events(
    txn: Any,
    dbs: dict[bytes, Any],
    record: jf.RunRecord,
    events: Sequence[jf.Event],
    blobs: dict[bytes, bytes],
    status: str | None,
    counters: tuple[int, int] | None,
    times: Sequence[int] | None = None,
) -> AppendResult:
    """Chain ``events`` after ``record``'s head and rewrite the run record.

    ``times`` (one per event) keeps the times a fork's shared events were
    first written; otherwise every event is stamped now.

    Raises:
        FormatError: an event's invocation key bytes are malformed.
    """
    if blobs:
        # overwrite=False: an identical payload is stored once.
        txn.cursor(db=dbs[jf.DB_BLOBS]).putmulti(blobs.items(), overwrite=False)
    prefix = jf.run_prefix(record.run_id)
    seq = record.events
    head = record.head
    now = time.time_ns()
    # Bare callables: this loop runs once per event of every fresh run.
    envelope_of = jf.Envelope
    encode = jf.RECORD_ENCODER.encode
    pack_seq = _SEQ.pack
    valid_key, (newer, older) = jf.match_valid_key, _valid_keys
    version = jf.FORMAT_VERSION
    hasher = _blake3()  # reset per record: cheaper than a new hasher each
    update, digest_of, reset = hasher.update, hasher.digest, hasher.reset
    event_items: list[tuple[bytes, bytes]] = []
    index_items: list[tuple[bytes, bytes]] = []
    for index, event in enumerate(events):
        at = now if times is None else times[index]
        data = encode(envelope_of(version, seq, head, at, event))
        update(data)
        head = digest_of()  # sealed as digest ‖ data (JF-060)
        reset()
        packed = pack_seq(seq)
        event_items.append((prefix + packed, head + data))
        key = getattr(event, "key", None)
        if key is not None:
            if key not in newer and key not in older:
                if valid_key(key) is None:
                    raise jf.FormatError(
                        f"invocation key bytes {key.hex()} are malformed; nothing"
                        " was written"
                    )
                if len(newer) >= _VALID_KEYS_MAX:  # the turn: newer becomes older
                    _valid_keys[:] = newer, older = set(), newer
                newer.add(key)
            index_items.append((prefix + key, packed))
        seq += 1
    # One C-level loop per database rather than one Python call per record.
    txn.cursor(db=dbs[jf.DB_EVENTS]).putmulti(event_items)
    if index_items:
        txn.cursor(db=dbs[jf.DB_KEYS]).putmulti(index_items, dupdata=True)
    new_status = status or record.status
    waiting_seq = next_due_ns = None
    if new_status == "waiting":
        # Where the run started waiting, so a worker sees what came after it
        # without reading events. Looked for only in a waiting commit.
        waiting_seq, next_due_ns = record.waiting_seq, record.next_due_ns
        for index in range(len(events) - 1, -1, -1):
            event = events[index]
            if isinstance(event, jf.RunWaiting):
                waiting_seq, next_due_ns = record.events + index, event.next_due_ns
                break
    executions, last_execution = record.executions, record.last_execution_seq
    if events and _begins_execution(events[0]):
        executions, last_execution = executions + 1, record.events
    updated = jf.RunRecord(
        v=jf.FORMAT_VERSION,
        run_id=record.run_id,
        process=record.process,
        fingerprint=record.fingerprint,
        status=new_status,
        created_ns=record.created_ns,
        updated_ns=now,
        events=seq,
        head=head,
        parent=record.parent,
        fork_at=record.fork_at,
        dispatched=counters[0] if counters else record.dispatched,
        replayed=counters[1] if counters else record.replayed,
        deadline_ns=record.deadline_ns,
        cancel_requested_ns=record.cancel_requested_ns,
        queue=record.queue,
        waiting_seq=waiting_seq,
        next_due_ns=next_due_ns,
        executions=executions,
        last_execution_seq=last_execution,
        child_of=record.child_of,
        child_key=record.child_key,
    )
    txn.put(
        record.run_id.encode(), jf.seal(jf.encode_record(updated)), db=dbs[jf.DB_RUNS]
    )
    note_status(txn, dbs, record if record.events else None, updated)
    return AppendResult(first_seq=record.events, count=len(events), head=head)


def _begins_execution(event: jf.Event) -> bool:
    """Whether ``event``, first of an append, is where an execution began.

    An execution's ``execution`` event (or, for ``run``, the ``run_started``
    it writes with its pid) is always the first event of its first commit,
    so only the first event of each append is looked at.
    """
    if type(event) is jf.ExecutionStarted:
        return True
    return type(event) is jf.RunStarted and event.pid is not None and not event.parent


def read_chain(
    txn: Any, dbs: dict[bytes, Any], run_id: str, start: int, stop: int | None
) -> list[StoredEvent]:
    """Events ``start`` up to (not including) ``stop``, each checked.

    The digest of every event is checked; the chain from ``start`` on (from
    genesis when ``start`` is 0); and, when the read reaches the run's end,
    the run record's count and head.

    Raises:
        JournalCorruptError: a damaged event, naming run, seq and key.
    """
    prefix = jf.run_prefix(run_id)
    out: list[StoredEvent] = []
    cursor = txn.cursor(db=dbs[jf.DB_EVENTS])
    expected_prev = jf.genesis_digest(run_id) if start == 0 else None
    expected_seq = start
    if cursor.set_range(jf.event_key(prefix, start)):
        key_len, size = len(prefix) + _SEQ.size, jf.ADDRESS_SIZE
        # One hasher reset per event (issue 17): a new one per event, as
        # ``unseal`` makes, cost three times as much, and ``log``, ``export``
        # and the CLI's probe before a resume read every event here. A record
        # that fails the digest goes through ``check_event`` for its error.
        hasher = _blake3()
        update, digest_of, reset = hasher.update, hasher.digest, hasher.reset
        decode, append = jf.decode_envelope, out.append
        for k, v in cursor:
            if len(k) != key_len or not k.startswith(prefix):
                break
            seq = jf.seq_of_event_key(prefix, k)
            if stop is not None and seq >= stop:
                break
            digest, data = v[:size], v[size:]
            update(data)
            intact = len(digest) == size and digest_of() == digest
            reset()
            if not intact or seq != expected_seq:
                stored = check_event(run_id, seq, v, expected_prev, expected_seq)
            else:
                try:
                    envelope = decode(data)
                except jf.FormatError as exc:
                    raise damaged(run_id, seq, None, str(exc)) from None
                if envelope.seq != seq or (
                    expected_prev is not None and envelope.prev != expected_prev
                ):
                    stored = check_event(run_id, seq, v, expected_prev, expected_seq)
                else:
                    stored = _stored_event(seq, digest, envelope)
            append(stored)
            expected_prev = stored.digest
            expected_seq = seq + 1
    if (out or start == 0) and (stop is None or expected_seq < stop):
        check_end(txn, dbs, run_id, expected_seq, expected_prev)
    return out


def events_at(
    txn: Any, dbs: dict[bytes, Any], run_id: str, key: bytes
) -> list[StoredEvent]:
    """The run's events at invocation key ``key`` (through the index), checked.

    Raises:
        JournalCorruptError: the index names an event that is missing, damaged
            or at another key.
    """
    prefix = jf.run_prefix(run_id)
    cursor = txn.cursor(db=dbs[jf.DB_KEYS])
    out: list[StoredEvent] = []
    if not cursor.set_key(prefix + key):
        return out
    events_db = dbs[jf.DB_EVENTS]
    for raw_seq in cursor.iternext_dup():
        seq = jf.unpack_seq(raw_seq)
        value = txn.get(jf.event_key(prefix, seq), db=events_db)
        if value is None:
            raise JournalCorruptError(
                f"run {run_id!r}: the index names event seq {seq} at key"
                f" {jf.key_bytes_to_text(key)}, which is missing",
                run_id=run_id,
                seq=seq,
            )
        stored = check_event(run_id, seq, value, None, seq)
        if getattr(stored.event, "key", None) != key:
            raise JournalCorruptError(
                f"run {run_id!r}: the index names event seq {seq} for key"
                f" {jf.key_bytes_to_text(key)}, but that event is elsewhere",
                run_id=run_id,
                seq=seq,
            )
        out.append(stored)
    return out


def check_event(
    run_id: str,
    seq: int,
    raw: bytes,
    expected_prev: bytes | None,
    expected_seq: int,
) -> StoredEvent:
    """One stored event, checked: digest, place, and link (unless ``None``).

    Raises:
        JournalCorruptError: naming run, seq and (when readable) key.
    """
    try:
        digest, data = jf.unseal(raw)
        envelope = jf.decode_envelope(data)
    except jf.FormatError as exc:
        raise damaged(run_id, seq, None, str(exc)) from None
    key = getattr(envelope.event, "key", None)
    if seq != expected_seq or envelope.seq != seq:
        raise damaged(run_id, seq, key, jf.out_of_place(expected_seq, envelope.seq))
    if expected_prev is not None and envelope.prev != expected_prev:
        raise damaged(run_id, seq, key, jf.CHAIN_BROKEN)
    return StoredEvent(seq=seq, digest=digest, envelope=envelope)


def check_end(
    txn: Any, dbs: dict[bytes, Any], run_id: str, count: int, head: bytes | None
) -> None:
    """A read that reached a run's last event must end where its record says.

    The chain cannot show that events were cut off its end; the run record,
    rewritten by every append, commits to the count and the last digest.

    Raises:
        JournalCorruptError: events are missing at the end.
    """
    raw = txn.get(run_id.encode(), db=dbs[jf.DB_RUNS])
    if raw is None:
        return
    record = decode_run(run_id, raw)
    if record.events != count or (head is not None and record.head != head):
        raise JournalCorruptError(
            f"run {run_id!r}: its run record counts {record.events} events, but"
            f" the journal holds {count} that chain to it: events are missing at"
            f" the end. `replay-engine verify {run_id}` lists every damaged"
            " record.",
            run_id=run_id,
            seq=min(count, record.events),
        )


def orphaned(run_id: str, exc: jf.OrphanOutcome) -> JournalCorruptError:
    """The error for an outcome recorded without its request."""
    return JournalCorruptError(
        f"run {run_id!r}: {exc}. `replay-engine verify {run_id}` lists"
        " every damaged record.",
        run_id=run_id,
        seq=exc.seq,
        key=jf.key_bytes_to_text(exc.key),
    )


def damaged(run_id: str, seq: int, key: bytes | None, what: str) -> JournalCorruptError:
    """The error for a damaged event, naming run, seq and key."""
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
