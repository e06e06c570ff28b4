"""The LMDB event store: many runs in one environment, appended in group commits.

Layout and encodings are defined by ``journal_format``. ``Store`` is the one
object the other layers hold: it opens the journal, checks its format, and
opens one short transaction per call. What happens inside a transaction lives
in the modules beside it, by job: ``records`` (format and run records),
``chain`` (appending and checked reads of events), ``checkpoints`` (the call
index), ``run_txn`` (read-check-append in one transaction, for posts); what a worker
reads and claims (the active runs, the change counter) is ``WorkView``, in
``work_view``.

Caveats (see docs/store.md):
* read transactions are short and never held across an ``await``;
* one LMDB handle per path per process (``env``'s registry); none after fork;
* writes to one run's chain are serialised by LMDB's writer lock, so an append
  from another process (a posted result) can never fork the chain.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import journal_format as jf

from ..errors import (
    JournalCorruptError,
    JournalWriteError,
    ReplayRangeError,
    RunNotFoundError,
)
from . import env as _env
from .chain import AppendResult, StoredEvent, append_events, read_chain
from .files import Access
from .group_append import GroupItem, write_group
from .load_batches import load_in_batches
from .records import check_format, decode_run, forked_start, new_record, refuse_write
from .run_txn import RunTxn
from .running import RunningCheckpoints, write_checkpoint
from .work_view import WorkView

if TYPE_CHECKING:
    from .keyed import KeyedCalls

__all__ = [
    "AppendResult",
    "Durability",
    "GroupItem",
    "RunTxn",
    "Store",
    "StoredEvent",
]

Durability = Literal["fsync", "process"]
T = TypeVar("T")


class Store(WorkView):
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
            meta_db = self._dbs[jf.DB_META]

            def check(txn: Any) -> bool:
                return check_format(txn, meta_db, self.real_path, access)

            # An inspection writes nothing, not even the format record.
            rw = _env.read if access == "read" else _env.write
            self.read_only = rw(self._handle, check)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release this store's share of the LMDB handle (idempotent)."""
        handle = getattr(self, "_handle", None)
        if handle is not None:
            self._handle = None  # type: ignore[assignment]
            _env.release(handle)

    @property
    def real_path(self) -> str:
        """The journal directory with symlinks resolved."""
        return self._handle.path

    def pinned(self, body: Callable[[int], T]) -> T:
        """``body(txnid)`` while a read transaction holds the newest commit.

        LMDB reuses no page of that commit while the transaction is open,
        whatever other processes write: ``verify``'s page walk, which reads
        the file itself, is given the commit to walk this way.
        """
        return _env.read(self._handle, lambda txn: body(txn.id()))

    def _check_writable(self) -> None:
        if self.access == "read":
            raise JournalWriteError(
                f"the journal {self.real_path} was opened read-only, for"
                " inspection; nothing was written",
                path=self.real_path,
            )
        if self.read_only:
            raise refuse_write(self.real_path)

    # -- runs --------------------------------------------------------------------

    def create_run(
        self,
        run_id: str,
        started: jf.RunStarted,
        blobs: dict[bytes, bytes],
        *,
        deadline_ns: int | None = None,
        queued: bool = False,
        queue: str | None = None,
        child_of: tuple[str, str] | None = None,
    ) -> None:
        """Create a run whose first event is ``started``, atomically.

        ``deadline_ns`` (UTC nanoseconds) is the run's deadline: past it, the
        run ends ``timed_out`` (kept in the run record, see ``_store.cancel``).
        ``queued``: the run is recorded ``queued`` (on ``queue``) for a worker
        to start, instead of ``running``. ``child_of``: the (parent run id,
        invocation key) of a sub-run, kept in its record.

        Raises:
            RunExistsError: a run with this id exists.
        """
        jf.check_run_id(run_id)
        self._create(
            run_id,
            started,
            (),
            blobs,
            "queued" if queued else "running",
            f"resume it with `replay-engine resume {run_id}`, or choose another run id",
            deadline_ns=deadline_ns,
            queue=queue,
            child_of=child_of,
        )

    def creating(
        self,
        run_id: str,
        started: jf.RunStarted,
        blobs: dict[bytes, bytes],
        *,
        deadline_ns: int | None = None,
    ) -> GroupItem:
        """:meth:`create_run` of a running run, as one item of :meth:`append_group`.

        Its result is the creation's ``AppendResult``, or ``RunExistsError``.
        """
        jf.check_run_id(run_id)
        runs_db = self._dbs[jf.DB_RUNS]

        def create(txn: Any) -> jf.RunRecord:
            return new_record(
                txn,
                runs_db,
                self.real_path,
                run_id,
                started,
                "running",
                f"resume it with `replay-engine resume {run_id}`, or choose"
                " another run id",
                deadline_ns=deadline_ns,
            )

        return GroupItem(run_id, [started], blobs, create=create)

    def fork_run(self, run_id: str, at: int, new_run_id: str, status: str) -> None:
        """Create ``new_run_id`` sharing the first ``at`` events of ``run_id``.

        The new run's first event is the parent's ``run_started`` with
        ``parent`` and ``fork_at`` set; events 1..at-1 are the parent's, each
        re-linked into the new run's own chain and keeping its time. Blobs are
        shared, not copied.

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
        self._create(
            new_run_id,
            forked_start(run_id, at, stored[0].event),
            [s.event for s in stored[1:]],
            {},
            status,
            "choose another id for the fork",
            times=[s.envelope.at for s in stored],
        )

    def _create(
        self,
        run_id: str,
        started: jf.RunStarted,
        later: Sequence[jf.Event],
        blobs: dict[bytes, bytes],
        status: str,
        if_taken: str,
        times: Sequence[int] | None = None,
        deadline_ns: int | None = None,
        queue: str | None = None,
        child_of: tuple[str, str] | None = None,
    ) -> None:
        """Create a run of ``started`` and ``later`` events in one commit."""
        dbs = self._dbs
        runs_db = dbs[jf.DB_RUNS]

        def body(txn: Any) -> None:
            record = new_record(
                txn,
                runs_db,
                self.real_path,
                run_id,
                started,
                status,
                if_taken,
                deadline_ns=deadline_ns,
                queue=queue,
                child_of=child_of,
            )
            self._check_writable()
            append_events(txn, dbs, record, [started, *later], blobs, None, None, times)

        _env.write(self._handle, body)
        self.commits += 1

    def get_run(self, run_id: str) -> jf.RunRecord | None:
        """The run's record, or None if there is no such run."""
        try:
            jf.check_run_id(run_id)
        except jf.FormatError:
            return None  # no run can have it (and LMDB refuses an empty key)
        runs_db = self._dbs[jf.DB_RUNS]
        raw = _env.read(self._handle, lambda txn: txn.get(run_id.encode(), db=runs_db))
        return None if raw is None else decode_run(run_id, raw)

    def require_run(self, run_id: str) -> jf.RunRecord:
        """The run's record.

        Raises:
            RunNotFoundError: there is no such run (with close matches named).
        """
        record = self.get_run(run_id)
        if record is None:
            import difflib

            try:
                jf.check_run_id(run_id)
            except jf.FormatError as exc:
                raise RunNotFoundError(run_id, f"no run: {exc}") from None
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

        return [decode_run(k.decode(), v) for k, v in _env.read(self._handle, body)]

    # -- writes to a run ---------------------------------------------------------

    def append(
        self,
        run_id: str,
        events: Sequence[jf.Event],
        blobs: dict[bytes, bytes],
        *,
        status: str | None = None,
        counters: tuple[int, int] | None = None,
        checkpoint: jf.CallIndex | RunningCheckpoints | None = None,
        expect_events: int | None = None,
    ) -> AppendResult:
        """Append events (and the blobs they refer to) in one commit.

        With durability ``fsync`` the commit is on disk when this returns. The
        run's head is read inside the write transaction, so appends from
        several processes chain correctly.

        With ``checkpoint``, an index of the run's first events, the events
        after it (including these) are read back, checked and folded into it,
        and it is stored as the run's checkpoint in the same commit (JF-103).
        An executing run's :class:`RunningCheckpoints` folds its own events
        from memory instead when nobody else appended (``_store/running.py``).

        With ``expect_events``, a compare-and-append: when the run does not
        have exactly that many events (someone else appended), nothing is
        written and the result says ``moved``.
        """
        dbs = self._dbs

        def body(txn: Any) -> AppendResult:
            record = self._record_in(txn, run_id)
            self._check_writable()
            if expect_events is not None and record.events != expect_events:
                return AppendResult(record.events, 0, record.head, moved=True)
            result = append_events(txn, dbs, record, events, blobs, status, counters)
            if checkpoint is not None:
                covered = write_checkpoint(txn, dbs, run_id, checkpoint, events, result)
                result = dataclasses.replace(result, checkpointed=covered)
            return result

        result = _env.write(self._handle, body)
        self.commits += 1
        return result

    def append_group(
        self, items: Sequence[GroupItem]
    ) -> list[AppendResult | Exception]:
        """Several runs' appends in one commit (one fsync): ``group_append``.

        One result per item: what :meth:`append` would have returned for it,
        or the exception that refused it alone (nothing of it was written).
        An exception raised from here failed them all: nothing was written
        (a lone item's own failure is raised).
        """
        self._check_writable()
        results = write_group(self._handle, self._dbs, self._record_in, items)
        self.commits += 1
        return results

    def transact(self, run_id: str, body: Callable[[RunTxn], T]) -> T:
        """Run ``body`` with a :class:`RunTxn` in one write transaction.

        Everything ``body`` reads is the latest committed state, and its
        appends commit atomically with that state: LMDB serialises writers
        across processes, so concurrent posters never collide and never fail
        for contention (they wait their turn, for microseconds).
        """

        def txn_body(txn: Any) -> T:
            record = self._record_in(txn, run_id)
            view = RunTxn(
                txn, self._dbs, record, path=self.real_path, read_only=self.read_only
            )
            return body(view)

        result = _env.write(self._handle, txn_body)
        self.commits += 1
        return result

    def _record_in(self, txn: Any, run_id: str) -> jf.RunRecord:
        raw = txn.get(run_id.encode(), db=self._dbs[jf.DB_RUNS])
        if raw is None:
            raise RunNotFoundError(run_id, f"no run {run_id!r} in {self.real_path}")
        return decode_run(run_id, raw)

    # -- checked reads -----------------------------------------------------------

    def load_index(
        self,
        run_id: str,
        *,
        stop: int | None = None,
        use_checkpoint: bool = True,
    ) -> tuple[jf.CallIndex, int]:
        """The run's call index, read and checked (``load_batches``).

        The hot path of every resume. It starts from the run's checkpoint when
        that is valid and covers no more than ``stop`` events (JF-105), else
        from nothing, then folds every later event up to ``stop``, checking
        each event's digest and chain link on the way. Returns the index and
        the number of events restored from a checkpoint (0 if none).

        Raises:
            JournalCorruptError: a damaged event, naming run and seq.
        """
        return load_in_batches(self._handle, self._dbs, run_id, stop, use_checkpoint)

    def keyed_index(self, run_id: str, stop: int) -> tuple[jf.CallIndex, KeyedCalls]:
        """A time-travel replay's view of the run's first ``stop`` events.

        The prefix is read and checked once (one read transaction), keeping
        its index without the calls; the calls are then looked up key by key
        (``keyed``), so memory does not grow with the run. Not for resumes:
        their hot path is a dict lookup, and they checkpoint the index.

        Raises:
            JournalCorruptError: a damaged event, naming run and seq.
        """
        from . import keyed  # only time travel uses it: not at start-up

        dbs, handle = self._dbs, self._handle
        index, created = _env.read(
            handle, lambda txn: keyed.scan(txn, dbs, run_id, stop)
        )

        def read(body: Callable[[Any], T]) -> T:
            return _env.read(handle, body)

        return index, keyed.KeyedCalls(read, dbs, run_id, stop, created)

    def read_events(
        self, run_id: str, start: int = 0, stop: int | None = None
    ) -> list[StoredEvent]:
        """Events ``start`` up to (not including) ``stop``, each checked.

        The digest of every event is checked; the chain is checked from
        ``start`` on (from genesis when ``start`` is 0).

        Raises:
            JournalCorruptError: a damaged event, naming run, seq and key.
        """
        dbs = self._dbs
        return _env.read(
            self._handle, lambda txn: read_chain(txn, dbs, run_id, start, stop)
        )

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
        """Several payloads in one read transaction, each checked.

        Raises:
            JournalCorruptError: a blob is missing or damaged.
        """
        checked: dict[bytes, bytes] = {}
        for address, data in self.raw_blobs(addresses).items():
            if data is None:
                raise JournalCorruptError(
                    f"blob {address.hex()} is missing from {self.real_path}"
                )
            try:
                jf.check_blob(address, data)
            except jf.FormatError as exc:
                raise JournalCorruptError(str(exc)) from None
            checked[address] = data
        return checked

    # -- unchecked reads, for verify (which must see damage) ---------------------

    def raw_blobs(self, addresses: Iterable[bytes]) -> dict[bytes, bytes | None]:
        """Stored blobs by address, unchecked; None if absent."""
        blobs_db = self._dbs[jf.DB_BLOBS]
        wanted = list(addresses)

        def body(txn: Any) -> dict[bytes, bytes | None]:
            return {a: txn.get(a, db=blobs_db) for a in wanted}

        return _env.read(self._handle, body)

    def checkpoint_of(self, run_id: str) -> bytes | None:
        """The run's raw checkpoint record, unchecked."""
        checkpoints_db = self._dbs[jf.DB_CHECKPOINTS]
        key = jf.run_prefix(run_id)
        raw: bytes | None = _env.read(
            self._handle, lambda txn: txn.get(key, db=checkpoints_db)
        )
        return raw

    def scan_index(self, run_id: str) -> Iterator[tuple[bytes, int]]:
        """Every ``(key bytes, seq)`` entry of the run's invocation-key index."""
        prefix = jf.run_prefix(run_id)
        # Not unpack_seq: a damaged value of the wrong length must still be listed.
        return iter(
            [
                (k[len(prefix) :], int.from_bytes(v, "big"))
                for k, v in self.raw_items(jf.DB_KEYS, prefix)
            ]
        )

    def raw_items(self, db: bytes, prefix: bytes = b"") -> list[tuple[bytes, bytes]]:
        """Every raw record of one database whose key starts with ``prefix``."""
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
