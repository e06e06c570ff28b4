"""``RunTxn``: one run inside one write transaction, for read-check-append.

A module of its own because it is the store's second way in: ``Store`` opens a
transaction per call, while a post, claim or expiry must read the run as it
is, decide, and append in the *same* transaction, so that of two agents racing
to post one key exactly one wins. ``Store.transact`` hands a ``RunTxn`` to its
body; the chain is read and written by the same code as ``Store`` (``chain``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

import journal_format as jf

from .chain import AppendResult, StoredEvent, append_events, events_at, read_chain
from .records import decode_run, refuse_write


class RunTxn:
    """One run inside a write transaction: checked reads and atomic appends."""

    def __init__(
        self,
        txn: Any,
        dbs: dict[bytes, Any],
        record: jf.RunRecord,
        *,
        path: str,
        read_only: bool,
    ) -> None:
        self._txn = txn
        self._dbs = dbs
        self._path = path
        self._read_only = read_only
        self.record = record
        self.run_id = record.run_id

    def events(self) -> list[StoredEvent]:
        """Every event of the run, each checked (digest and chain)."""
        return read_chain(self._txn, self._dbs, self.run_id, 0, None)

    def events_at(self, key: bytes) -> list[StoredEvent]:
        """The run's events at invocation key ``key`` (via the index), checked."""
        return events_at(self._txn, self._dbs, self.run_id, key)

    def append(
        self,
        events: Sequence[jf.Event],
        blobs: dict[bytes, bytes] | None = None,
        status: str | None = None,
    ) -> AppendResult:
        """Append events in this transaction (committed when the body returns).

        Raises:
            FormatVersionError: the journal was opened read-only (JF-044).
        """
        if self._read_only:
            raise refuse_write(self._path)
        result = append_events(
            self._txn, self._dbs, self.record, events, blobs or {}, status, None
        )
        raw = self._txn.get(self.run_id.encode(), db=self._dbs[jf.DB_RUNS])
        self.record = decode_run(self.run_id, raw)
        return result

    def mark(self, **fields: int | None) -> None:
        """Rewrite fields of the run record in this transaction (no event).

        For a record field an event implies but the chain cannot index
        cheaply: ``cancel_requested_ns``, set beside a ``cancel_requested``.

        Raises:
            FormatVersionError: the journal was opened read-only (JF-044).
        """
        if self._read_only:
            raise refuse_write(self._path)
        self.record = msgspec.structs.replace(self.record, **fields)
        self._txn.put(
            self.run_id.encode(),
            jf.seal(jf.encode_record(self.record)),
            db=self._dbs[jf.DB_RUNS],
        )

    def event_at(self, seq: int) -> StoredEvent:
        """The run's event ``seq``, checked (its digest; not the whole chain)."""
        return read_chain(self._txn, self._dbs, self.run_id, seq, seq + 1)[0]

    def keys_under(self, key_prefix: bytes) -> list[bytes]:
        """Invocation keys with events that start with ``key_prefix`` (a subtree).

        Read from the key index, so only the subtree's keys are visited.
        """
        prefix = jf.run_prefix(self.run_id)
        start = prefix + key_prefix
        cursor = self._txn.cursor(db=self._dbs[jf.DB_KEYS])
        out: list[bytes] = []
        if not cursor.set_range(start):
            return out
        while True:
            raw = bytes(cursor.key())
            if not raw.startswith(start):
                break
            out.append(raw[len(prefix) :])
            if not cursor.next_nodup():
                break
        return out
