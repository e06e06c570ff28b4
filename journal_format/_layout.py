"""The LMDB layout: database names and how their keys are built.

One LMDB environment holds many runs. All integers in keys are big-endian so
that LMDB's lexicographic key order equals numeric order (JF-050).

======== =========================================== ======================
database key                                         value
======== =========================================== ======================
meta     ``b"format"``                               FormatMeta (msgpack)
runs     run id (UTF-8)                              sealed RunRecord
events   run prefix + seq (u64 big-endian)           sealed Envelope
keys     run prefix + invocation key bytes           seq (u64 BE), dupsort
blobs    blake3 address (32 bytes)                   payload bytes
checkpo… run prefix                                  sealed Checkpoint
active   run id (UTF-8)                              ActiveEntry (packed)
======== =========================================== ======================

(``checkpo…`` is the ``checkpoints`` database: derived, optional, JF-100.)
``active`` is derived too: exactly the runs whose status is ``queued``,
``running`` or ``waiting``, rewritten in the transaction that changes a run's
status, so a worker finds its work without reading every run record. A
journal written before it existed has none; a writable open builds it.

The run prefix is one byte holding the length of the run id's UTF-8 bytes,
then those bytes: prefix-free, so one run's records are contiguous.
"""

from __future__ import annotations

import re
import struct
from typing import Final, NamedTuple

from ._codec import address_of
from ._errors import FormatError

DB_META: Final = b"meta"
DB_RUNS: Final = b"runs"
DB_EVENTS: Final = b"events"
DB_KEYS: Final = b"keys"
DB_BLOBS: Final = b"blobs"
DB_CHECKPOINTS: Final = b"checkpoints"
DB_ACTIVE: Final = b"active"

ACTIVE_STATUSES: Final = frozenset({"queued", "running", "waiting"})
"""The statuses a run has while something may still execute it."""
ENDED_STATUSES: Final = frozenset({"completed", "cancelled", "timed_out"})
"""The statuses no execution changes again (a ``failed`` run can be resumed)."""
FINISHED_STATUSES: Final = ENDED_STATUSES | {"failed"}
"""The statuses of runs nothing continues on its own: what ``gc`` may delete."""

META_FORMAT_KEY: Final = b"format"

MAX_RUN_ID_LENGTH: Final = 128
RUN_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
"""Run ids: letters, digits, ``.``, ``_`` and ``-``, starting alphanumeric."""

LMDB_MAX_KEY: Final = 511
MAX_INVOCATION_KEY_BYTES: Final = LMDB_MAX_KEY - 1 - MAX_RUN_ID_LENGTH
"""382 bytes: at least 42 components of any size, 191 of indexes below 256."""

_SEQ = struct.Struct(">Q")
_ACTIVE = struct.Struct(">QB")
_STATUS_CODES: Final = {"queued": 1, "running": 2, "waiting": 3}
_CODE_STATUSES: Final = {v: k for k, v in _STATUS_CODES.items()}


class ActiveEntry(NamedTuple):
    """An ``active`` value: what a worker needs before reading the run record."""

    created_ns: int
    status: str
    queue: str | None


def pack_active(status: str, queue: str | None, created_ns: int) -> bytes:
    """The ``active`` value of a run: created time (u64 BE), status code, queue."""
    head = _ACTIVE.pack(created_ns, _STATUS_CODES[status])
    return head if queue is None else head + queue.encode()


def unpack_active(data: bytes) -> ActiveEntry:
    """Inverse of :func:`pack_active`.

    Raises:
        FormatError: the bytes are not an ``active`` value.
    """
    if len(data) < _ACTIVE.size:
        raise FormatError(f"active entry of {len(data)} bytes (expected >= 9)")
    created_ns, code = _ACTIVE.unpack_from(data)
    status = _CODE_STATUSES.get(code)
    if status is None:
        raise FormatError(f"active entry with unknown status code {code}")
    rest = data[_ACTIVE.size :]
    try:
        queue = rest.decode() if rest else None
    except UnicodeDecodeError:
        raise FormatError("active entry with a queue name that is not UTF-8") from None
    return ActiveEntry(created_ns, status, queue)


def check_run_id(run_id: str) -> str:
    """Return ``run_id`` if it is a valid run id.

    Raises:
        FormatError: it is not.
    """
    if not RUN_ID_PATTERN.fullmatch(run_id):
        raise FormatError(
            f"invalid run id {run_id!r}: use 1-128 letters, digits, '.', '_' or '-',"
            " starting with a letter or digit"
        )
    return run_id


def run_prefix(run_id: str) -> bytes:
    """The prefix under which all of one run's events and index entries sit."""
    raw = run_id.encode()
    return bytes((len(raw),)) + raw


def event_key(prefix: bytes, seq: int) -> bytes:
    """Key of event ``seq`` of the run with ``prefix``."""
    return prefix + _SEQ.pack(seq)


def seq_of_event_key(prefix: bytes, key: bytes) -> int:
    """The seq encoded in an ``events`` key."""
    value: int = _SEQ.unpack_from(key, len(prefix))[0]
    return value


def pack_seq(seq: int) -> bytes:
    """A seq as stored in the ``keys`` index."""
    return _SEQ.pack(seq)


def unpack_seq(data: bytes) -> int:
    """Inverse of :func:`pack_seq`.

    Raises:
        FormatError: the bytes are not 8 long.
    """
    if len(data) != 8:
        raise FormatError(f"index entry of {len(data)} bytes (expected 8)")
    value: int = _SEQ.unpack(data)[0]
    return value


def genesis_digest(run_id: str) -> bytes:
    """The ``prev`` of a run's first event: blake3 of ``b"replay-engine/run/" + id``."""
    return address_of(b"replay-engine/run/" + run_id.encode())
