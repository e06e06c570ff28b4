"""Streaming a run's events: bounded reads, constant memory, quiet on a closed pipe.

``log``, ``export`` and ``replay`` must print their first line at once on a
run of 100,000 events, hold memory flat, and end quietly when the reader goes
away (``| head``). So events are read in batches of :data:`BATCH` by seq, each
batch in its own short read transaction (``Engine.events(run, start, stop)``):
a long-lived read transaction would pin the pages writers free for as long
as the reader is slow (or a pager is open), and the journal would grow under
it. The chain link between two batches is checked here (the store checks it
inside one read), so a stream is as checked as one long read.

What a row needs from earlier events is kept only while it can be needed: the
task of a request until its outcome, the requests in flight at an
``execution`` event (those are dispatched again). See ``docs/cli-json.md``
for the ``--format`` choice.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any

import journal_format as jf

from ..errors import JournalCorruptError
from .common import RAW_CONTROLS, SHORT_DIGEST
from .event_rows import detail, event_document
from .safe_text import end_on_closed_pipe, printable

if TYPE_CHECKING:
    from .. import Engine, StoredEvent

#: Events per read transaction (and per flush of the output).
BATCH = 1000
#: The first read transaction's events: the first line waits for a whole
#: batch to be read and checked (about 15 µs an event), so the batches start
#: small and grow four-fold up to :data:`BATCH`.
FIRST_BATCH = 50
#: The formats of a streamed listing.
FORMATS = ("table", "lines", "jsonl")
FORMAT_HELP = (
    "table: a rich table (default on a terminal when the events fit on it);"
    " lines: one plain line per event, streamed (default otherwise);"
    " jsonl: one JSON object per event, streamed."
)


def iter_events(
    engine: Engine,
    run_id: str,
    start: int = 0,
    stop: int | None = None,
    batch: int = BATCH,
) -> Iterator[StoredEvent]:
    """The run's events ``start`` up to ``stop``, read ``batch`` at a time.

    The first reads are smaller (:data:`FIRST_BATCH`, growing to ``batch``),
    so the first line comes sooner. Each batch is one short read transaction;
    the chain link from one batch to the next is checked here. Ends at the
    run's end as it was when the last batch was read.

    Raises:
        JournalCorruptError: a damaged event or a broken link between batches.
    """
    seq = start
    prev: bytes | None = None
    size = min(FIRST_BATCH, batch)
    while stop is None or seq < stop:
        upper = seq + size if stop is None else min(seq + size, stop)
        size = min(size * 4, batch)
        chunk = engine.events(run_id, seq, upper)
        if not chunk:
            return
        first = chunk[0]
        if prev is not None and first.envelope.prev != prev:
            raise JournalCorruptError(
                f"run {run_id!r}: event {first.seq} does not follow event"
                f" {first.seq - 1} (its prev digest differs): the chain is broken."
                " Run `replay-engine verify` to see the damage."
            )
        yield from chunk
        prev = chunk[-1].digest
        seq = chunk[-1].seq + 1
        if len(chunk) < upper - first.seq:
            return


class EventDocs:
    """Event documents in order, keeping only what later rows can still need.

    ``tasks`` holds the task of each request until its outcome (a completion
    names its task through its request); ``in_flight`` the in-process
    requests without an outcome, which an ``execution`` event dispatches
    again. Both are bounded by the calls in flight, not by the run's length.
    """

    def __init__(self) -> None:
        self.tasks: dict[str, str] = {}
        # request key -> [its text, how many executions dispatched it again]
        self.in_flight: dict[bytes, list[Any]] = {}

    def document(self, stored: StoredEvent) -> dict[str, Any]:
        """The ``log`` document of ``stored``, with what is known of re-dispatches.

        An ``execution`` lists in ``dispatches_again`` the keys it dispatches
        again; the outcome of such an effect carries ``redispatched``, the
        count (the request's line was printed before either was known).
        """
        event = stored.event
        if isinstance(event, jf.EffectRequested):
            text_key = jf.key_bytes_to_text(event.key)
            self.tasks[text_key] = event.task
            if event.kind == "task":
                self.in_flight[event.key] = [text_key, 0]
        doc = event_document(stored, self.tasks)
        if isinstance(event, jf.EffectCompleted | jf.EffectFailed):
            entry = self.in_flight.pop(event.key, None)
            if entry is not None and entry[1]:
                doc["redispatched"] = entry[1]
            if doc["key"] is not None:
                self.tasks.pop(doc["key"], None)
        elif isinstance(event, jf.ExecutionStarted):
            doc["dispatches_again"] = [entry[0] for entry in self.in_flight.values()]
            for entry in self.in_flight.values():
                entry[1] += 1
        return doc


def line_of(doc: dict[str, Any]) -> str:
    """One plain line of a ``log`` document: terminal-safe, columns aligned."""
    text = detail(doc)
    again = doc.get("dispatches_again")
    if again:
        text = f"{text}; dispatches again {', '.join(again)}"
    times = doc.get("redispatched")
    if times and doc["type"] != "requested":  # a request's detail says it
        plural = "s" * (times > 1)
        text = f"{text} (dispatched again by {times} later execution{plural})"
    return (
        f"{doc['seq']:>7}  {doc['type']:<16} {printable(doc['key'] or '-'):<12}"
        f" {printable(doc['task'] or '-'):<24} {doc['digest'][:SHORT_DIGEST]}"
        f" {doc['prev'][:SHORT_DIGEST]}  {printable(text)}"
    ).rstrip()


def json_line(record: dict[str, Any]) -> str:
    """One JSON object on one line, with raw control characters escaped."""
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    return text.translate(RAW_CONTROLS)


def write_lines(lines: Iterable[str], stream: IO[str] | None = None) -> None:
    """Print ``lines`` as they come, flushing every :data:`BATCH` lines.

    The first line is flushed at once (someone is waiting for it). A reader
    that goes away (``| head``) ends the command quietly: see
    :func:`quiet_on_closed_pipe`.
    """
    out = stream or sys.stdout
    with quiet_on_closed_pipe():
        for count, line in enumerate(lines):
            out.write(line + "\n")
            if count % BATCH == 0:
                out.flush()
        out.flush()


@contextlib.contextmanager
def quiet_on_closed_pipe() -> Iterator[None]:
    """End the command with exit 0 and no traceback when stdout's reader left.

    What ``| head`` expects: the command stops promptly. stdout is pointed at
    ``/dev/null`` so that the interpreter's last flush at exit cannot raise
    again (Python's documented recipe for SIGPIPE).
    """
    try:
        yield
    except BrokenPipeError:
        end_on_closed_pipe()


def choose_format(
    fmt: str | None, first: list[StoredEvent], more: bool, fits: int
) -> str:
    """The format to print in: ``fmt`` if given, else table or lines.

    A table when stdout is a terminal and the events (``first``, with
    nothing ``more``) fit on it in ``fits`` rows; plain lines otherwise, so a
    pipe or a long run streams.
    """
    if fmt is not None:
        return fmt
    if sys.stdout.isatty() and not more and len(first) <= fits:
        return "table"
    return "lines"


def screen_rows() -> int:
    """How many table rows fit on the terminal (its height less the header)."""
    import shutil

    return max(shutil.get_terminal_size().lines - 6, 10)
