"""The records beside the events: the journal's format record and each run's record.

A module of its own because every other part of the store needs them: opening a
journal checks the format record, and both appends and reads check a run's
chain against its run record. The functions work inside a transaction the
caller opened (``Store`` or ``RunTxn``), so they never open one themselves.
"""

from __future__ import annotations

import time
from typing import Any

import journal_format as jf

from ..errors import (
    FormatVersionError,
    JournalCorruptError,
    NotAJournalError,
    RunExistsError,
)
from .files import Access


def check_format(txn: Any, meta_db: Any, path: str, access: Access) -> bool:
    """Check (or write, on a new journal) the format record; True if read-only.

    A journal whose write version is newer than ours is opened read-only
    (JF-044); one whose read version is newer is refused. Only a creating open
    writes the record of a new journal.

    Raises:
        NotAJournalError: no format record, and ``access`` is not ``create``.
        JournalCorruptError: the record is damaged or names another magic.
        FormatVersionError: the journal needs a newer format to be read.
    """
    raw = txn.get(jf.META_FORMAT_KEY, db=meta_db)
    if raw is None and access != "create":
        raise NotAJournalError(
            f"{path} is not a journal (it has no format record)."
            " Only `replay-engine run` (or Engine(path)) creates a journal;"
            " nothing was written.",
            path=path,
        )
    if raw is None:
        meta = jf.FormatMeta(
            magic=jf.MAGIC,
            read_version=jf.FORMAT_VERSION,
            write_version=jf.FORMAT_VERSION,
        )
        txn.put(jf.META_FORMAT_KEY, jf.encode_record(meta), db=meta_db)
        return False
    try:
        meta = jf.decode_meta(raw)
    except jf.FormatError as exc:
        raise JournalCorruptError(
            f"journal {path}: format record is damaged ({exc})"
        ) from None
    if meta.magic != jf.MAGIC:
        raise JournalCorruptError(
            f"{path} is not a replay-engine journal (magic {meta.magic!r})"
        )
    if meta.read_version > jf.FORMAT_VERSION:
        raise FormatVersionError(
            f"journal {path} needs format version {meta.read_version} to read;"
            f" this replay-engine reads up to {jf.FORMAT_VERSION}. Upgrade"
            " replay-engine to open it."
        )
    return meta.write_version > jf.FORMAT_VERSION


def refuse_write(path: str) -> FormatVersionError:
    """The error for a write to a journal opened read-only (JF-044)."""
    return FormatVersionError(
        f"journal {path} needs a newer format version to write; this"
        f" replay-engine writes version {jf.FORMAT_VERSION}, so it opened the"
        " journal read-only. Upgrade replay-engine to change it."
    )


def decode_run(run_id: str, raw: bytes) -> jf.RunRecord:
    """A run record from its sealed bytes.

    Raises:
        JournalCorruptError: the record is damaged.
    """
    try:
        _, data = jf.unseal(raw)
        return jf.decode_run_record(data)
    except jf.FormatError as exc:
        raise JournalCorruptError(
            f"run {run_id!r}: its run record is damaged ({exc}). Run"
            " `replay-engine verify` to see the whole extent of the damage.",
            run_id=run_id,
        ) from None


def new_record(
    txn: Any,
    runs_db: Any,
    path: str,
    run_id: str,
    started: jf.RunStarted,
    status: str,
    if_taken: str,
    deadline_ns: int | None = None,
    queue: str | None = None,
    child_of: tuple[str, str] | None = None,
) -> jf.RunRecord:
    """The record of a run about to be created, with no events yet.

    ``deadline_ns`` (UTC nanoseconds) is the run's deadline, if it has one.
    ``child_of``: (parent run id, key) of a sub-run.

    Raises:
        RunExistsError: the id is taken (the message ends with ``if_taken``).
    """
    if txn.get(run_id.encode(), db=runs_db) is not None:
        raise RunExistsError(
            f"a run named {run_id!r} already exists in {path}; {if_taken}"
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
        deadline_ns=deadline_ns,
        queue=queue,
        child_of=None if child_of is None else child_of[0],
        child_key=None if child_of is None else child_of[1],
    )


def forked_start(parent_id: str, at: int, first: jf.Event) -> jf.RunStarted:
    """The first event of a fork of ``parent_id`` at ``at``: the parent's, re-parented.

    Raises:
        JournalCorruptError: the parent's seq 0 is not its ``run_started``.
    """
    if not isinstance(first, jf.RunStarted):
        raise JournalCorruptError(
            f"run {parent_id!r}: seq 0 is not run_started", run_id=parent_id, seq=0
        )
    return jf.RunStarted(
        process=first.process,
        fingerprint=first.fingerprint,
        inputs=first.inputs,
        parent=parent_id,
        fork_at=at,
        seed=first.seed or parent_id,
    )
