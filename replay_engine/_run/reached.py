"""Which recorded calls a resumed execution has reached: one bit per event.

``RunJournal.visited`` was a set of the keys a re-execution reached: on a
long run's resume it held every replayed call's key object (made by the
re-execution, not the index's own) plus a set slot, about 100 bytes a call,
all kept until the execution ended (issue 17: the resume's peak memory).
This marks the seq of each reached call's entry (its creating event) in a
bitmap instead, an eighth of a byte per event, as ``_store/keyed.py``'s
``Visited`` does for a keyed replay.

The bitmap costs a Python call per replayed call (about 0.25 µs more than
``set.add``, some 4% of a resume's CPU), so only a long run's resume uses
it: below :data:`BITMAP_FROM_EVENTS` the set's memory is a few MB and the
set is kept.
"""

from __future__ import annotations

from typing import Final

import journal_format as jf

BITMAP_FROM_EVENTS: Final = 200_000
"""A resume of at least this many events marks reached calls in a bitmap."""


def reached_for(
    entries: dict[bytes, jf.CallEntry], events: int
) -> set[bytes] | Reached:
    """What a resume of ``events`` loaded events marks its reached calls in."""
    return Reached(entries, events) if events >= BITMAP_FROM_EVENTS else set()


class Reached:
    """The recorded calls an execution has reached, by their entries' seqs.

    ``add(key)`` follows ``entries.get(key)`` in ``RunJournal.answer``; the
    second lookup of the same key is a hit of its cached hash, cheaper than
    the set insert it replaces. A key without an entry is not a recorded
    call and is not counted.
    """

    __slots__ = ("_bits", "_count", "_entries")

    def __init__(self, entries: dict[bytes, jf.CallEntry], events: int) -> None:
        self._entries = entries
        self._bits = bytearray((events + 7) // 8)
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, key: bytes) -> None:
        """Mark the call at ``key`` reached (if it holds an entry)."""
        entry = self._entries.get(key)
        if entry is None:
            return
        seq, bits = entry.seq, self._bits
        byte, bit = seq >> 3, 1 << (seq & 7)
        if byte >= len(bits):
            # An entry recorded by this execution (past the events loaded).
            bits.extend(bytes(byte + 1 - len(bits)))
        if not bits[byte] & bit:
            bits[byte] |= bit
            self._count += 1

    def __contains__(self, key: object) -> bool:
        entry = self._entries.get(key) if isinstance(key, bytes) else None
        if entry is None:
            return False
        seq, bits = entry.seq, self._bits
        return (seq >> 3) < len(bits) and bool(bits[seq >> 3] & (1 << (seq & 7)))
