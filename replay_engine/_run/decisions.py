"""Deciding each replayed call against the journal, and the divergence checks.

:class:`ReplayDecisions` is the read side of :class:`~.journal.RunJournal`
(which inherits it): every ctx call that may have been recorded asks
:meth:`ReplayDecisions.answer`, and calls past the frontier ask
:meth:`ReplayDecisions.check_new_key`. Kept apart from the journal's loading
and commit buffer so that "what counts as the same call" reads on its own.

Telling the user where and how a process diverged (the functions at the end of
this module, from ``describe_entry``): they build :class:`NonDeterminismError`
messages: what the journal recorded, what the process did instead, the call
site in the user's code, the likely causes, and the fork command that branches
from the last agreeing event.

:class:`Reached` (below) is which recorded calls a resumed execution has
reached, one byte per event. ``RunJournal.visited`` was a set of the keys a
re-execution reached: on a long run's resume it held every replayed call's key
object (made by the re-execution, not the index's own) plus a set slot, about
100 bytes a call, all kept until the execution ended (issue 17: the resume's
peak memory). ``Reached`` marks the seq of each reached call's entry (its
creating event) in a byte array instead, one byte per event, as
``_store/keyed.py``'s ``Visited`` does for a keyed replay with bits.

A byte, not a bit: the replay of ``ctx.task`` marks a reached call with one
store, ``marks[entry.seq] = 1``, without a Python call (it has the entry in
hand; ``Reached.add`` would look the key up again and cost about 0.25 µs a
call, more than the ``set.add`` it replaced). So every loaded resume uses
it, short or long: it is both cheaper and smaller than the set. (Here rather
than in a module of its own: each module is an import a first resume pays.)
"""

from __future__ import annotations

import bisect
import sys
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TYPE_CHECKING

import journal_format as jf

from ..errors import NonDeterminismError

if TYPE_CHECKING:
    from .._store.keyed import KeyedCalls, Visited

__all__ = ["Reached", "ReplayDecisions", "reached_for"]


class ReplayDecisions:
    """The replay decision and the divergence checks of one run's journal."""

    # Set by RunJournal.__init__ and its loads; declared here for the type checker.
    run_id: str
    entries: dict[bytes, jf.CallEntry] | KeyedCalls
    visited: set[bytes] | Visited | Reached
    diverged: NonDeterminismError | None
    _sorted_keys: list[bytes] | None

    # -- the replay decision -----------------------------------------------------

    def answer(
        self,
        key: bytes,
        kind: int,
        task: str = "",
        args: bytes = b"",
        args_bytes: bytes | None = None,
    ) -> jf.CallEntry | None:
        """What the journal says about the call a process just made at ``key``.

        ``None``: nothing is recorded there, the call is new (at or past the
        frontier; :meth:`check_new_key` decides whether it may be). Otherwise
        the recorded entry, once it is known to be the same call: the same
        kind, task (or value kind) and args address; the key is then marked
        visited. Timers and values compare their empty task/args fields, so
        one comparison serves every kind; a parallel group (:data:`GROUP`)
        records nothing at its key and so diverges on any entry.

        This is the only place a replayed call is decided: every ctx method
        asks here, so what counts as "the same call" cannot drift between them.

        Raises:
            NonDeterminismError: the journal holds another call at ``key``
                (``args_bytes``, when given, is attached for inspection).
        """
        entry = self.entries.get(key)
        if entry is None:
            return None
        if entry.kind != kind or entry.task != task or entry.args != args:
            raise self._diverge(
                divergence(
                    self.run_id,
                    key,
                    entry.seq,
                    recorded=describe_entry(entry),
                    replayed=describe_call(kind, task, args),
                    replayed_args=args_bytes,
                )
            )
        self.visited.add(key)
        return entry

    def _diverge(self, error: NonDeterminismError) -> NonDeterminismError:
        """Remember the first divergence; it is the one raised from now on."""
        if self.diverged is None:
            self.diverged = error
        return self.diverged

    remember = _diverge
    """The same, for divergences found outside this class (``history``)."""

    # -- divergence checks -------------------------------------------------------

    def check_new_key(
        self,
        key: bytes,
        scope_prefix: bytes,
        replayed: str | Callable[[], str] = "a new call",
    ) -> None:
        """Refuse a call the journal has not seen if the journal says it is extra.

        A new call at index ``i`` of a scope diverges when the journal holds a
        later sibling (index > ``i``: a call was inserted) or a descendant of
        ``key`` (a group was recorded there). Only calls past the journal's
        frontier reach this check, so it does not slow replay.
        """
        if not self.entries:
            return
        first = True
        for later in self._sorted_from(key, after=True):
            # Descendants of key: byte strings starting with key, other than
            # key; in key order they come first.
            if first and later.startswith(key):
                self._raise_extra(key, later, "a call nested inside it", replayed)
            first = False
            # Later siblings (or their subtrees) of the same scope that this
            # execution has not reached. One it has already called proves
            # nothing: keys are taken when calls are made, and an earlier call
            # may be awaited (so recorded) after a later one.
            if not later.startswith(scope_prefix):
                break
            if later not in self.visited:
                self._raise_extra(
                    key, later, "a later call of the same scope", replayed
                )

    def recorded_after(self, key: bytes, scope_prefix: bytes) -> bool:
        """Whether the journal holds a call under ``key`` or later in its scope.

        ``ctx.patched`` asks, at a key with nothing recorded, whether the run
        was recorded past it (by code without the patch).
        """
        later = next(self._sorted_from(key, after=True), None)
        return later is not None and later.startswith(scope_prefix)

    def _sorted_from(self, key: bytes, *, after: bool) -> Iterator[bytes]:
        """The recorded keys from ``key`` on (past it with ``after``), in order.

        Byte order, lazily: a caller that stops at the first reads little.
        """
        entries = self.entries
        # Not a dict: the keyed calls of a time-travel replay (tested so, not
        # with isinstance: ``_store/keyed.py`` is imported only by time travel).
        if not isinstance(entries, dict):
            return (k for k, _ in entries.entries_from(key, after=after))
        keys = self._sorted_keys
        if keys is None:
            keys = self._sorted_keys = sorted(entries)
        pos = (bisect.bisect_right if after else bisect.bisect_left)(keys, key)
        return (keys[i] for i in range(pos, len(keys)))

    def _raise_extra(
        self,
        key: bytes,
        recorded_key: bytes,
        what: str,
        replayed: str | Callable[[], str],
    ) -> None:
        entry = self.entries[recorded_key]
        if not isinstance(replayed, str):
            replayed = replayed()  # described only when it is needed
        raise self._diverge(
            divergence(
                self.run_id,
                key,
                entry.seq,
                recorded=f"nothing at {jf.key_bytes_to_text(key)}; {what} at"
                f" {jf.key_bytes_to_text(recorded_key)} ({describe_entry(entry)})",
                replayed=f"{replayed} here",
                headline="the process made a call the journal does not have (an extra"
                " or inserted call)",
            )
        )

    def visit_under(self, prefix: bytes) -> None:
        """Count each recorded call under ``prefix`` as reached (a cancelled branch)."""
        if not self.entries:
            return
        for key in self._sorted_from(prefix, after=False):
            if not key.startswith(prefix):
                break
            self.visited.add(key)

    def unvisited(self) -> list[tuple[bytes, jf.CallEntry]]:
        """Recorded calls this execution has not reached, in key order."""
        visited = self.visited
        entries = self.entries
        # Every key visited holds an entry, and len() of keyed calls is an
        # upper bound of their number: equal counts mean all were reached.
        if len(visited) == len(entries):
            return []
        if not isinstance(entries, dict):  # keyed calls (see _sorted_from)
            from .._store.keyed import Visited  # imported by the keyed replay

            walk = entries.entries_from(b"")
            if isinstance(visited, Visited):
                return [(k, e) for k, e in walk if not visited.has(e)]
            return [(k, e) for k, e in walk if k not in visited]
        return sorted((k, e) for k, e in entries.items() if k not in visited)


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


# -- the words of a divergence (NonDeterminismError) ------------------------------


def describe_entry(entry: jf.CallEntry) -> str:
    """A recorded call for an error message."""
    if entry.kind == jf.EFFECT:
        return f"task {entry.task!r} args {describe_args(entry.args)}"
    if entry.kind == jf.VALUE:
        return f"ctx.{entry.task}()"
    if entry.kind == jf.PATCH:
        return f"ctx.patched({entry.task!r}) (a patch marker)"
    if entry.kind == jf.RACE:
        return f"ctx.parallel.any (won by branch {entry.value!r})"
    if entry.kind == jf.FAIL_FAST:
        return f"a fail-fast parallel group (failed at branch {entry.value!r})"
    return "ctx.sleep()"


def describe_call(kind: int, task: str, args: bytes) -> str:
    """A replayed call for an error message (the mirror of :func:`describe_entry`)."""
    if kind == jf.EFFECT:
        return f"task {task!r} args {describe_args(args)}"
    if kind == jf.VALUE:
        return f"ctx.{task}()"
    if kind == jf.TIMER:
        return "ctx.sleep()"
    if kind == jf.RACE:
        return "ctx.parallel.any"
    if kind == jf.FAIL_FAST:
        return "a fail-fast parallel group (ctx.parallel.all/map, fail_fast=True)"
    return "a parallel group (ctx.parallel.all/map)"


def call_site(depth: int = 2) -> str:
    """``file:line`` of the user code that made the current ctx call."""
    frame: FrameType | None = sys._getframe(depth)
    # Skip the engine's own (private) modules and asyncio's machinery.
    while frame is not None and (
        frame.f_globals.get("__name__", "").startswith(("replay_engine._", "asyncio"))
    ):
        frame = frame.f_back
    if frame is None:
        return "<unknown>"
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


def divergence(
    run_id: str,
    key: bytes,
    seq: int | None,
    *,
    recorded: str,
    replayed: str,
    headline: str = "",
    site: str | None = None,
    replayed_args: bytes | None = None,
    where: str | None = None,
) -> NonDeterminismError:
    """Build the NonDeterminismError for a divergence at ``key``.

    ``where`` replaces "at key K (event seq S)" for a divergence that is not
    at a call (the process's result).
    """
    key_text = jf.key_bytes_to_text(key)
    if where is None:
        where = f"at key {key_text}" + (
            f" (event seq {seq})" if seq is not None else ""
        )
    site = site if site is not None else call_site(3)
    fork_hint = (
        f"\nTo branch from the last agreeing event: replay-engine fork {run_id}"
        f" --at {seq}"
        if seq is not None
        else ""
    )
    message = (
        f"run {run_id!r} diverged from its journal {where}"
        + (f": {headline}" if headline else "")
        + f".\n  recorded: {recorded}\n  replayed: {replayed}\n  call site: {site}\n"
        "The process must make the same ctx calls in the same places on every"
        " resume. Likely causes:\n"
        "  1. a branch on time, randomness or the environment read outside"
        " ctx.now()/ctx.random()/ctx.uuid();\n"
        "  2. iterating a set, or a dict built in an order that changed;\n"
        "  3. the process code changed since the run started." + fork_hint
    )
    return NonDeterminismError(
        message,
        run_id=run_id,
        key=key_text,
        seq=seq,
        recorded=recorded,
        replayed=replayed,
        replayed_args=replayed_args,
    )


def describe_args(ref: bytes) -> str:
    """Args for an error message: the value when inline, else its address prefix."""
    if jf.ref_is_inline(ref):
        try:
            text = repr(jf.decode_payload(ref))
        except jf.FormatError:
            text = f"<bytes {ref.hex()}>"
        return text if len(text) <= 60 else text[:57] + "..."
    return f"b3:{ref.hex()[:12]}"
