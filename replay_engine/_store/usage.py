"""What a journal holds, journal-wide: runs by status, entries and bytes.

Read in one read transaction, for ``Engine.statistics()``. Runs by status
come from the run records (every record is read: a journal's run count is
small next to its events); sizes come from LMDB's own page counts, so the
events and blobs are never read.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import journal_format as jf

from . import env as _env
from .records import decode_run

if TYPE_CHECKING:
    from .store import Store


@dataclass
class Usage:
    """A journal's contents as LMDB counts them."""

    runs_by_status: dict[str, int] = field(default_factory=dict)
    entries: dict[str, int] = field(default_factory=dict)
    """Entries per database (``events``, ``blobs`` …)."""
    used_bytes: int = 0
    """Pages in use (up to the last one written) times the page size."""
    map_size: int = 0
    """The size LMDB has mapped (the file may be sparse up to it)."""
    running: list[str] = field(default_factory=list)
    """The runs stored ``running`` (the caller tells live from interrupted)."""


def journal_usage(store: Store) -> Usage:
    """Runs by stored status, entries per database and bytes in use."""
    handle = store._handle
    dbs = store._dbs
    runs_db = dbs[jf.DB_RUNS]

    def body(txn: Any) -> Usage:
        statuses: Counter[str] = Counter()
        running: list[str] = []
        for key, raw in txn.cursor(db=runs_db):
            record = decode_run(bytes(key).decode(), raw)
            statuses[record.status] += 1
            if record.status == "running":
                running.append(record.run_id)
        entries = {
            name.decode(): int(txn.stat(db)["entries"]) for name, db in dbs.items()
        }
        info = handle.env.info()
        page = int(handle.env.stat()["psize"])
        return Usage(
            runs_by_status=dict(sorted(statuses.items())),
            entries=dict(sorted(entries.items())),
            used_bytes=(int(info["last_pgno"]) + 1) * page,
            map_size=int(info["map_size"]),
            running=running,
        )

    return _env.read(handle, body)
