"""Deciding each replayed call against the journal, and the divergence checks.

:class:`ReplayDecisions` is the read side of :class:`~.journal.RunJournal`
(which inherits it): every ctx call that may have been recorded asks
:meth:`ReplayDecisions.answer`, and calls past the frontier ask
:meth:`ReplayDecisions.check_new_key`. Kept apart from the journal's loading
and commit buffer so that "what counts as the same call" reads on its own.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator

import journal_format as jf

from .._store.keyed import KeyedCalls, Visited
from ..errors import NonDeterminismError
from .divergence import describe_call, describe_entry, divergence
from .reached import Reached

__all__ = ["ReplayDecisions"]


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
        if isinstance(entries, KeyedCalls):
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
        if isinstance(entries, KeyedCalls):
            walk = entries.entries_from(b"")
            if isinstance(visited, Visited):
                return [(k, e) for k, e in walk if not visited.has(e)]
            return [(k, e) for k, e in walk if k not in visited]
        return sorted((k, e) for k, e in entries.items() if k not in visited)
