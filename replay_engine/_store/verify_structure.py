"""``verify``'s structural checks: damage with every seal intact.

Digests and chain links say a record is the one that was written; they say
nothing about records that should not be there at all, or that contradict
each other. This module finds those (issue 12):

* records under a run prefix with no run record (events, index entries or a
  checkpoint of a run that does not exist), and records whose key is not a
  well-formed run-prefixed key;
* a run record whose ``run_id`` is not the key it is stored under;
* an invocation key with two outcomes (``completed``/``failed``);
* an ending event (``run_completed``, ``run_cancelled``, ``run_timed_out``)
  followed by another terminal event (an ended run changes no more; a failed
  run may be resumed, so ``run_failed`` may repeat and may be followed by any
  ending). ``cancel_requested`` is not terminal: it asks the executor to end
  the run.

Every check is linear: the orphan scan visits one key per distinct run prefix
(LMDB seeks past each run's records), and the per-run checks ride along the
single pass over the run's events.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import journal_format as jf

from . import env as _env

_ENDING = (jf.RunCompleted, jf.RunCancelled, jf.RunTimedOut)
"""Events that end a run for good."""
_TERMINAL = (*_ENDING, jf.RunFailed)


@dataclass(frozen=True)
class Problem:
    """One damaged record."""

    message: str
    run_id: str | None = None
    seq: int | None = None
    key: str | None = None

    def __str__(self) -> str:
        where = []
        if self.run_id is not None:
            where.append(f"run {self.run_id!r}")
        if self.seq is not None:
            where.append(f"seq {self.seq}")
        if self.key is not None:
            where.append(f"key {self.key}")
        return f"{', '.join(where) or 'journal'}: {self.message}"


def safe_key(key_bytes: bytes) -> str:
    """An invocation key as text, or its hex when it does not decode."""
    try:
        return jf.key_bytes_to_text(key_bytes)
    except jf.FormatError:
        return f"<bytes {key_bytes.hex()}>"


def record_id_problem(run_id: str, record: jf.RunRecord) -> Problem | None:
    """A run record stored under one run's key but naming another run."""
    if record.run_id == run_id:
        return None
    return Problem(
        f"the run record stored under this run's key names run {record.run_id!r}",
        run_id=run_id,
    )


class EventChecks:
    """Per-run checks fed one decoded event at a time, in seq order."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.outcomes: dict[bytes, int] = {}  # key -> seq of its first outcome
        self.completed_at: int | None = None
        """The seq of the event that ended the run (no terminal may follow)."""
        self.ended_by = ""
        self.problems: list[Problem] = []

    def see(self, seq: int, event: jf.Event, key_text: str | None) -> None:
        """Check ``event`` (event ``seq``) against the events before it."""
        if isinstance(event, jf.EffectCompleted | jf.EffectFailed):
            first = self.outcomes.setdefault(event.key, seq)
            if first != seq:
                self.problems.append(
                    Problem(
                        f"a second outcome for this key (the first is at seq {first})",
                        run_id=self.run_id,
                        seq=seq,
                        key=key_text,
                    )
                )
        elif isinstance(event, _TERMINAL):
            if self.completed_at is not None:
                self.problems.append(
                    Problem(
                        f"a second terminal event: {jf.event_tag(event)} after the"
                        f" {self.ended_by} at seq {self.completed_at}",
                        run_id=self.run_id,
                        seq=seq,
                    )
                )
            elif isinstance(event, _ENDING):
                self.completed_at = seq
                self.ended_by = jf.event_tag(event)


def index_problems(
    store: Any,
    run_id: str,
    keyed: dict[int, bytes],
    damaged: set[int],
) -> list[Problem]:
    """The run's index entries against its events (``seq -> key bytes``)."""
    problems: list[Problem] = []
    indexed: dict[int, bytes] = {}
    for key_bytes, seq in store.scan_index(run_id):
        indexed[seq] = key_bytes
        if seq in damaged:
            continue  # already reported: its bytes are damaged
        if keyed.get(seq) != key_bytes:
            problems.append(
                Problem(
                    "index entry points at an event with another key",
                    run_id=run_id,
                    seq=seq,
                    key=safe_key(key_bytes),
                )
            )
    for seq, key_bytes in keyed.items():
        if seq not in indexed:
            problems.append(
                Problem(
                    "event missing from the invocation-key index",
                    run_id=run_id,
                    seq=seq,
                    key=safe_key(key_bytes),
                )
            )
    return problems


_PREFIXED = (
    (jf.DB_EVENTS, "events"),
    (jf.DB_KEYS, "invocation-key index entries"),
    (jf.DB_CHECKPOINTS, "a checkpoint"),
)


def orphan_problems(
    store: Any, run_ids: Iterable[str], *, only: str | None = None
) -> list[Problem]:
    """Records of ``events``, ``keys`` and ``checkpoints`` that belong to no run.

    ``store`` is a :class:`~replay_engine._store.store.Store`; its handle is
    read directly because this scan seeks (one key per run prefix) where the
    store's own readers list every record. ``only`` looks at the records of
    that one run id (which has no record) and no others.
    """
    known = {jf.run_prefix(r) for r in run_ids}
    dbs = store._dbs

    def body(txn: Any) -> list[Problem]:
        problems: list[Problem] = []
        for name, what in _PREFIXED:
            cursor = txn.cursor(db=dbs[name])
            if only is None:
                problems += _orphans_in(cursor, name, what, known)
            elif cursor.set_range(jf.run_prefix(only)):
                prefix = jf.run_prefix(only)
                if cursor.key().startswith(prefix):
                    problems.append(_orphan(prefix, cursor.key(), name, what))
        return problems

    found: list[Problem] = _env.read(store._handle, body)
    return found


def _orphans_in(
    cursor: Any, name: bytes, what: str, known: set[bytes]
) -> list[Problem]:
    problems: list[Problem] = []
    db = name.decode()
    more = cursor.first()
    while more:
        key: bytes = cursor.key()
        size = key[0] if key else 0
        if not key or len(key) <= size or size == 0:
            problems.append(
                Problem(f"a record in `{db}` under a malformed key {key.hex()!r}")
            )
            more = cursor.next_nodup() if name == jf.DB_KEYS else cursor.next()
            continue
        prefix = key[: 1 + size]
        if prefix not in known:
            problems.append(_orphan(prefix, key, name, what))
        after = _after(prefix)
        more = after is not None and cursor.set_range(after)
    return problems


def _orphan(prefix: bytes, key: bytes, name: bytes, what: str) -> Problem:
    try:
        run_id: str = prefix[1:].decode()
    except UnicodeDecodeError:
        run_id = f"<bytes {prefix[1:].hex()}>"
    rest = key[len(prefix) :]
    seq = (
        int.from_bytes(rest, "big") if name == jf.DB_EVENTS and len(rest) == 8 else None
    )
    key_text = safe_key(rest) if name == jf.DB_KEYS else None
    return Problem(
        f"{what} of a run that has no run record (orphan records in `{name.decode()}`)",
        run_id=run_id,
        seq=seq,
        key=key_text,
    )


def _after(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with ``prefix``."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes((trimmed[-1] + 1,))


def active_index_problems(store: Any) -> list[Problem]:
    """Where the ``active`` index (derived) disagrees with the run records.

    A worker looks only at the index: an active run missing from it is never
    started, woken or recovered, and an entry for a run that ended or does not
    exist is work that is not there. Runs whose record does not decode are
    reported by the run checks, not here.
    """
    dbs = store._dbs
    active_db = dbs.get(jf.DB_ACTIVE)
    if active_db is None:
        return []  # a journal from before the index, opened read-only

    def body(txn: Any) -> list[Problem]:
        problems: list[Problem] = []
        entries: dict[bytes, jf.ActiveEntry | None] = {}
        cursor = txn.cursor(db=active_db)
        if cursor.set_range(b"\x01"):  # past the queue-state keys
            for key, value in cursor:
                try:
                    entries[bytes(key)] = jf.unpack_active(value)
                except jf.FormatError:
                    entries[bytes(key)] = None
        for key, raw in txn.cursor(db=dbs[jf.DB_RUNS]):
            try:
                record = jf.decode_run_record(jf.unseal(raw)[1])
            except jf.FormatError:
                entries.pop(bytes(key), None)
                continue
            entry = entries.pop(bytes(key), None)
            active = record.status in jf.ACTIVE_STATUSES
            if active and entry is None:
                problems.append(
                    Problem(
                        f"the run is {record.status} but missing from the active"
                        " index: no worker will start, wake or recover it. Resume"
                        " it by hand",
                        run_id=record.run_id,
                    )
                )
            elif entry is not None and (
                not active
                or (entry.status, entry.queue) != (record.status, record.queue)
            ):
                problems.append(
                    Problem(
                        f"the active index says the run is {entry.status} (queue"
                        f" {entry.queue!r}); its record says {record.status} (queue"
                        f" {record.queue!r})",
                        run_id=record.run_id,
                    )
                )
        for key, entry in entries.items():
            what = (
                "an unreadable entry" if entry is None else f"an {entry.status} entry"
            )
            problems.append(
                Problem(
                    f"the active index holds {what} for a run with no run record",
                    run_id=key.decode(errors="replace"),
                )
            )
        return problems

    found: list[Problem] = _env.read(store._handle, body)
    return found
