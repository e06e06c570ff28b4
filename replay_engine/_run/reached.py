"""Which recorded calls a resumed execution has reached: one byte per event.

``RunJournal.visited`` was a set of the keys a re-execution reached: on a
long run's resume it held every replayed call's key object (made by the
re-execution, not the index's own) plus a set slot, about 100 bytes a call,
all kept until the execution ended (issue 17: the resume's peak memory).
This marks the seq of each reached call's entry (its creating event) in a
byte array instead, one byte per event, as ``_store/keyed.py``'s
``Visited`` does for a keyed replay with bits.

A byte, not a bit: the replay of ``ctx.task`` marks a reached call with one
store, ``marks[entry.seq] = 1``, without a Python call (it has the entry in
hand; ``Reached.add`` would look the key up again and cost about 0.25 µs a
call, more than the ``set.add`` it replaced). So every loaded resume uses
it, short or long: it is both cheaper and smaller than the set.
"""

from __future__ import annotations

import journal_format as jf


def reached_for(entries: dict[bytes, jf.CallEntry], events: int) -> Reached:
    """What a resume of ``events`` loaded events marks its reached calls in."""
    return Reached(entries, events)


class Reached:
    """The recorded calls an execution has reached, by their entries' seqs.

    ``marks[seq]`` is 1 once the call whose entry was created by event
    ``seq`` is reached. ``add(key)`` follows ``entries.get(key)`` in
    ``RunJournal.answer``; the second lookup of the same key is a hit of its
    cached hash. A key without an entry is not a recorded call and is not
    counted. The hot path (``ctx.task``) stores into ``marks`` itself.
    """

    __slots__ = ("_entries", "marks")

    def __init__(self, entries: dict[bytes, jf.CallEntry], events: int) -> None:
        self._entries = entries
        self.marks = bytearray(events)

    def __len__(self) -> int:
        return self.marks.count(1)

    def add(self, key: bytes) -> None:
        """Mark the call at ``key`` reached (if it holds an entry)."""
        entry = self._entries.get(key)
        if entry is None:
            return
        seq, marks = entry.seq, self.marks
        if seq >= len(marks):
            # An entry recorded by this execution (past the events loaded):
            # grown in place, so a holder of ``marks`` keeps the same array.
            marks.extend(bytes(seq + 1 - len(marks)))
        marks[seq] = 1

    def __contains__(self, key: object) -> bool:
        entry = self._entries.get(key) if isinstance(key, bytes) else None
        if entry is None:
            return False
        seq, marks = entry.seq, self.marks
        return seq < len(marks) and marks[seq] == 1
