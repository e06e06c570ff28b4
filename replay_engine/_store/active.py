"""The ``active`` index: the runs a worker may have to act on, without a scan.

It holds exactly the runs whose status is ``queued``, ``running`` or
``waiting`` (``journal_format.ACTIVE_STATUSES``), each under its run id with
its created time, status and queue (``jf.pack_active``). It is derived data:
every run-record write updates it in the same write transaction
(:func:`note_status`, called by ``chain.append_events`` and :func:`claim`),
and a journal written before it existed gets it built on its first writable
open (:func:`fill`). A read-only open of such a journal has no index; the
readers here then fall back to reading every run record.

Keys starting with ``00`` are not runs (a run id starts with a letter or
digit): ``00 "queue:" NAME`` holds the start times a queue's rate limit counts,
so that limit holds across every worker on the journal.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from typing import Any, Literal

import msgspec

import journal_format as jf

from .records import decode_run

ClaimOutcome = Literal["claimed", "gone", "limited"]

_QUEUE_KEY = b"\x00queue:"
_NS = struct.Struct(">Q")


def note_status(
    txn: Any, dbs: dict[bytes, Any], old: jf.RunRecord | None, new: jf.RunRecord
) -> None:
    """Keep ``new``'s entry in the index right (``old``: the record it replaces).

    Costs nothing when the status and queue did not change (most appends).
    """
    db = dbs.get(jf.DB_ACTIVE)
    if db is None:
        return  # a read-only open of an old journal never writes
    if old is not None and old.status == new.status and old.queue == new.queue:
        return
    key = new.run_id.encode()
    if new.status in jf.ACTIVE_STATUSES:
        txn.put(key, jf.pack_active(new.status, new.queue, new.created_ns), db=db)
    elif old is not None and old.status in jf.ACTIVE_STATUSES:
        txn.delete(key, db=db)


def fill(txn: Any, db: Any, runs_db: Any) -> int:
    """Build the index of a journal that has none from its run records."""
    count = 0
    for key, raw in txn.cursor(db=runs_db):
        try:
            record = decode_run(key.decode(), raw)
        except Exception:  # verify reports damage; the index just skips it
            continue
        if record.status in jf.ACTIVE_STATUSES:
            txn.put(
                key,
                jf.pack_active(record.status, record.queue, record.created_ns),
                db=db,
            )
            count += 1
    return count


class ActiveRun:
    """One active run as the index and its record show it.

    ``record``: the run record (None: the index names a run with no record).
    """

    # A plain class, not a dataclass: made at every CLI start, where a
    # dataclass costs about 0.4 ms to create (issue 16's start-up budget).

    __slots__ = ("entry", "record", "run_id")

    def __init__(
        self, run_id: str, entry: jf.ActiveEntry, record: jf.RunRecord | None
    ) -> None:
        self.run_id = run_id
        self.entry = entry
        self.record = record

    def __repr__(self) -> str:
        return f"ActiveRun({self.run_id!r}, {self.entry!r}, {self.record!r})"


def read(
    txn: Any,
    dbs: dict[bytes, Any],
    *,
    records: bool,
    queued_heads: int | None = None,
    accept: Callable[[jf.RunRecord], bool] | None = None,
) -> list[ActiveRun]:
    """Every active run, with its record when ``records`` (else only the entry).

    With ``queued_heads``, queued runs are read oldest first per queue and
    only until ``queued_heads`` of them pass ``accept`` (a worker with three
    free slots reads three queued records, not the whole backlog); the others
    are left out.
    """
    runs_db = dbs[jf.DB_RUNS]
    db = dbs.get(jf.DB_ACTIVE)
    out: list[ActiveRun] = []
    if db is None:  # an old journal opened read-only: read every record
        for key, raw in txn.cursor(db=runs_db):
            record = decode_run(key.decode(), raw)
            if record.status in jf.ACTIVE_STATUSES:
                entry = jf.ActiveEntry(record.created_ns, record.status, record.queue)
                out.append(ActiveRun(record.run_id, entry, record))
        return out
    cursor = txn.cursor(db=db)
    if not cursor.set_range(b"\x01"):  # past the queue-state keys
        return out
    queued: dict[str | None, list[tuple[int, str, jf.ActiveEntry]]] = {}
    for key, value in cursor:
        try:
            entry = jf.unpack_active(value)
            run_id = key.decode()
        except (jf.FormatError, UnicodeDecodeError):
            continue  # derived data: a damaged entry is skipped, the record rules
        if queued_heads is not None and entry.status == "queued":
            queued.setdefault(entry.queue, []).append((entry.created_ns, run_id, entry))
            continue
        out.append(ActiveRun(run_id, entry, _record(txn, runs_db, run_id, records)))
    for backlog in queued.values():
        backlog.sort()
        taken = 0
        for _, run_id, entry in backlog:
            if queued_heads is None or taken >= queued_heads:
                break
            head = _record(txn, runs_db, run_id, True)
            out.append(ActiveRun(run_id, entry, head))
            if head is not None and (accept is None or accept(head)):
                taken += 1
    return out


def _record(txn: Any, runs_db: Any, run_id: str, wanted: bool) -> jf.RunRecord | None:
    if not wanted:
        return None
    raw = txn.get(run_id.encode(), db=runs_db)
    return None if raw is None else decode_run(run_id, raw)


class Limits:
    """A queue's limits, as the claiming worker was given them.

    ``rate``: starts per second.
    """

    # A plain class, not a dataclass: made at every CLI start, where a
    # dataclass costs about 0.4 ms to create (issue 16's start-up budget).

    __slots__ = ("concurrency", "rate")

    def __init__(
        self, concurrency: int | None = None, rate: float | None = None
    ) -> None:
        self.concurrency = concurrency
        self.rate = rate

    def __repr__(self) -> str:
        return f"Limits(concurrency={self.concurrency}, rate={self.rate})"


def claim(
    txn: Any,
    dbs: dict[bytes, Any],
    run_id: str,
    limits: Limits,
    *,
    now_ns: int | None = None,
) -> ClaimOutcome:
    """Mark the queued ``run_id`` running if its queue's limits allow.

    One write transaction decides, so two workers cannot both take a queue's
    last slot: the count of the queue's ``running`` and ``waiting`` runs and
    its recent starts are read in the same transaction that marks the run.
    Returns ``"claimed"``; ``"gone"`` (no longer queued) or ``"limited"`` (a
    limit is reached), writing nothing.
    """
    runs_db = dbs[jf.DB_RUNS]
    raw = txn.get(run_id.encode(), db=runs_db)
    if raw is None:
        return "gone"
    record = decode_run(run_id, raw)
    if record.status != "queued":
        return "gone"
    queue = record.queue
    if limits.concurrency is not None:
        busy = sum(
            1
            for run in read(txn, dbs, records=False)
            if run.entry.queue == queue and run.entry.status in ("running", "waiting")
        )
        if busy >= limits.concurrency:
            return "limited"
    now = time.time_ns() if now_ns is None else now_ns
    if limits.rate is not None and not _rate_allows(txn, dbs, queue, limits.rate, now):
        return "limited"
    updated = msgspec.structs.replace(record, status="running", updated_ns=now)
    txn.put(run_id.encode(), jf.seal(jf.encode_record(updated)), db=runs_db)
    note_status(txn, dbs, record, updated)
    return "claimed"


def _rate_allows(
    txn: Any, dbs: dict[bytes, Any], queue: str | None, rate: float, now: int
) -> bool:
    """Whether one more start fits ``rate`` per second; if so, count it.

    The window is one second (``rate`` >= 1) or ``1/rate`` seconds (one start
    per window): at most ``round(rate * window)`` starts in any window.
    """
    db = dbs.get(jf.DB_ACTIVE)
    if db is None:
        return True
    window_ns = int(1e9 if rate >= 1 else 1e9 / rate)
    allowed = max(1, round(rate * window_ns / 1e9))
    key = _QUEUE_KEY + (queue or "").encode()
    raw = txn.get(key, db=db) or b""
    stamps = [_NS.unpack_from(raw, i)[0] for i in range(0, len(raw) - len(raw) % 8, 8)]
    recent = [s for s in stamps if now - window_ns < s <= now]
    if len(recent) >= allowed:
        return False
    recent.append(now)
    txn.put(key, b"".join(_NS.pack(s) for s in recent), db=db)
    return True
