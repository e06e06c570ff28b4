"""Replaying a complete history: the process must end where its journal ended.

A time-travel replay of a prefix may stop at a *frontier* (a call the prefix
cannot answer): the journal simply does not say yet. A journal that ends with
the run's terminal event says more, and a replay against it checks that too,
so that "the replay found nothing wrong" means it:

* ``run_completed`` / ``run_failed`` (*closed*: the process itself ended
  there): every call the replay makes must be recorded (a call past the
  recorded ones, or one waiting for an outcome the journal never got,
  diverges instead of becoming a frontier), and the process must end the same
  way: the same result (same canonical bytes), or the same error type and
  message. Recorded calls a returning process never made diverge as they do
  on ``resume`` (one that raised earlier failed: that is its outcome).
* ``run_cancelled`` / ``run_timed_out`` (*stopped*: ended from outside,
  wherever the process was): the journal is a prefix that will never grow. A
  call past it is a frontier (the process was stopped before making it), but
  a changed call, or recorded calls a returning process never made, diverge.

Key-less events an execution or a canceller may leave after the terminal one
(``execution``, ``cancel_requested``) do not count. Every divergence is the
``NonDeterminismError`` ``resume`` raises, with the same message shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import journal_format as jf

from ..errors import NonDeterminismError
from .decisions import describe_entry, divergence

if TYPE_CHECKING:
    from typing import Protocol

    from .._store.keyed import KeyedCalls

_CLOSED = (jf.RunCompleted, jf.RunFailed)
_STOPPED = (jf.RunCancelled, jf.RunTimedOut)
ENDINGS = _CLOSED + _STOPPED
"""The terminal events a complete history ends with."""
TRAILING = (jf.ExecutionStarted, jf.CancelRequested)
"""Key-less events that may follow a run's terminal event."""

VALUE_TEXT = 120
"""How much of a result's repr a divergence message shows."""


# The Protocols are for the type checker only: building them costs a first
# resume about 50 µs (issue 17).
if TYPE_CHECKING:

    class _Stored(Protocol):
        @property
        def seq(self) -> int: ...
        @property
        def event(self) -> jf.Event: ...

    class RunJournal(Protocol):
        """What this module needs of ``journal.RunJournal`` (which imports it)."""

        run_id: str
        ended: Ending | None
        entries: dict[bytes, jf.CallEntry] | KeyedCalls

        def payload(self, ref: bytes) -> bytes: ...
        def remember(self, error: NonDeterminismError) -> NonDeterminismError: ...


class Ending:
    """The terminal event a complete history ends with.

    A plain class, not a dataclass: building a dataclass costs about 0.7 ms
    at import, which every first resume pays (issue 17).
    """

    __slots__ = ("event", "seq")

    def __init__(self, seq: int, event: jf.Event) -> None:
        self.seq = seq
        self.event = event

    def __repr__(self) -> str:
        return f"Ending(seq={self.seq!r}, event={self.event!r})"

    @property
    def closed(self) -> bool:
        """The process itself ended here (``run_completed``/``run_failed``)."""
        return isinstance(self.event, _CLOSED)

    def describe(self) -> str:
        return f"the run ended at seq {self.seq} ({jf.event_tag(self.event)})"


def ending_of(events: Sequence[_Stored], limit: int) -> Ending | None:
    """The terminal event of a replay of the first ``limit`` of ``events``.

    None unless the replay covers the whole run (``limit`` is every event)
    and the run ended: a replay ``--until`` before the end keeps its frontier.
    """
    if limit != len(events):
        return None
    for stored in reversed(events):
        if isinstance(stored.event, ENDINGS):
            return Ending(stored.seq, stored.event)
        if not isinstance(stored.event, TRAILING):
            return None
    return None


def past_the_end(
    journal: RunJournal, key: bytes, reason: str, replayed: str, site: str
) -> None:
    """A frozen replay reached a call its prefix cannot answer (a frontier).

    Against a closed history that is a divergence, raised (and remembered
    by the journal, so every later ctx call re-raises it); otherwise nothing.
    """
    ending = journal.ended
    if ending is None or not ending.closed:
        return
    entry = journal.entries.get(key)
    key_text = jf.key_bytes_to_text(key)
    if entry is None or reason == "new call":
        error = divergence(
            journal.run_id,
            key,
            ending.seq,
            recorded=f"nothing at {key_text}: {ending.describe()}",
            replayed=f"{replayed} here",
            headline="the process made a call after the end of its complete"
            " history (an extra call)",
            site=site,
        )
    else:
        error = divergence(
            journal.run_id,
            key,
            entry.seq,
            recorded=f"{describe_entry(entry)} with no outcome when"
            f" {ending.describe()}",
            replayed=f"the process waits for it ({reason})",
            headline="the process waits for a call its complete history never finished",
            site=site,
        )
    raise journal.remember(error)


def check_outcome(
    journal: RunJournal,
    result: bytes | None,
    error: jf.ErrorInfo | None,
    site: str,
) -> None:
    """A frozen replay ended: against a closed history, it must end the same way.

    ``result`` is the canonical payload the process returned (None if it
    raised ``error``).

    Raises:
        NonDeterminismError: another result, another error, or one where the
            journal has the other.
    """
    ending = journal.ended
    if ending is None or not ending.closed:
        return
    event = ending.event
    if isinstance(event, jf.RunCompleted):
        if result is not None and jf.payload_ref(result) == event.result:
            return
        recorded = f"returned {_value_text(journal.payload(event.result))}"
    else:
        assert isinstance(event, jf.RunFailed)
        if error is not None and (error.type, error.message) == (
            event.error.type,
            event.error.message,
        ):
            return
        recorded = f"raised {_error_text(event.error)}"
    replayed = (
        f"returned {_value_text(result)}"
        if result is not None
        else f"raised {_error_text(error)}"
    )
    failed = isinstance(event, jf.RunFailed)
    what = (
        ("error" if failed else "result") if (result is None) == failed else "outcome"
    )
    raise journal.remember(
        divergence(
            journal.run_id,
            b"",
            ending.seq,
            recorded=f"the process {recorded} ({ending.describe()})",
            replayed=f"the process {replayed}",
            headline=f"the process ended with a different {what} than its journal"
            " records",
            site=site,
            where=f"at its end (event seq {ending.seq})",
        )
    )


def _value_text(data: bytes | None) -> str:
    try:
        value: Any = jf.decode_payload(data) if data is not None else None
    except jf.FormatError:
        return "<a value that does not decode>"
    text = repr(value)
    return text if len(text) <= VALUE_TEXT else text[: VALUE_TEXT - 3] + "..."


def _error_text(error: jf.ErrorInfo | None) -> str:
    if error is None:
        return "nothing"
    text = f"{error.type}: {error.message}"
    return text if len(text) <= VALUE_TEXT else text[: VALUE_TEXT - 3] + "..."
