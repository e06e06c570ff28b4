"""Noticing that a run's process changed: the resume warning and divergences.

Every execution records the fingerprint of the code it ran (``run_started``
for the first, then each ``execution`` event, JF-114). A resume compares the
code it is about to run with the latest recorded one and, when they differ,
warns naming the functions that changed; if the resume then diverges, the
``NonDeterminismError`` says first that the code changed.

Runs recorded before code fingerprints hold a hash of the module's source;
they are compared with that, as before (any edit of the module counts).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import msgspec

import journal_format as jf

from .._store.store import Store
from ..errors import NonDeterminismError

_log = logging.getLogger("replay_engine")


class CodeNow:
    """The code about to run: its fingerprint and per-function hashes.

    A plain class: a dataclass costs about 0.6 ms to build at import, which
    every first resume pays (issue 17).
    """

    __slots__ = ("code", "fingerprint")

    def __init__(self, fingerprint: str, code: dict[str, str]) -> None:
        self.fingerprint = fingerprint
        self.code = code

    @classmethod
    def of(cls, fn: Callable[..., Any]) -> CodeNow:
        from .._run import process_ref as _process_ref

        fingerprint, code = _process_ref.code_of(fn)
        return cls(fingerprint, code)

    def stamp(self, event: jf.ExecutionStarted) -> jf.ExecutionStarted:
        """The ``execution`` event, carrying this code's fingerprint."""
        return msgspec.structs.replace(
            event, fingerprint=self.fingerprint, code=self.code or None
        )


def last_recorded(
    store: Store, run_id: str, record: jf.RunRecord, started: jf.RunStarted
) -> tuple[str, dict[str, str] | None]:
    """The fingerprint (and function map) of the latest execution that has one.

    One read of one event (the run record knows its seq), on resume only.
    """
    seq = record.last_execution_seq
    if seq is not None and seq > 0:
        for stored in store.read_events(run_id, seq, seq + 1):
            event = stored.event
            if isinstance(event, jf.ExecutionStarted) and event.fingerprint:
                return event.fingerprint, event.code
    return started.fingerprint, started.code


def describe_change(
    fn: Callable[..., Any],
    now: CodeNow,
    recorded: tuple[str, dict[str, str] | None],
) -> str:
    """What changed in the code since it was recorded ("" when nothing did)."""
    from .._run import process_ref as _process_ref

    fingerprint, code = recorded
    if not fingerprint.startswith(_process_ref.CODE_PREFIX):
        # Written before code fingerprints: compare like with like.
        if _process_ref.module_fingerprint(fn) == fingerprint:
            return ""
        return f"the module of {_process_ref.reference(fn)} changed"
    if fingerprint == now.fingerprint:
        return ""
    if not code:
        return f"the code of {_process_ref.reference(fn)} changed"
    changed = sorted(n for n, h in now.code.items() if code.get(n) not in (None, h))
    added = sorted(n for n in now.code if n not in code)
    removed = sorted(n for n in code if n not in now.code)
    parts = []
    if changed:
        parts.append("changed: " + ", ".join(changed))
    if added:
        parts.append("new: " + ", ".join(added))
    if removed:
        parts.append("gone: " + ", ".join(removed))
    module = _process_ref.reference(fn).partition(":")[0]
    detail = "; ".join(parts) or "its constants or flags"
    return f"functions of {module} ({detail})"


def change_warnings(
    run_id: str, started: jf.RunStarted, fn: Callable[..., Any], change: str
) -> list[str]:
    """The warning (also logged) when the process or its code changed."""
    from .._run import process_ref as _process_ref

    ref = _process_ref.reference(fn)
    if ref != started.process:
        message = (
            f"run {run_id!r} was started with process {started.process!r} and is"
            f" executed with {ref!r} as asked; replay will stop with"
            " NonDeterminismError if it does not make the calls already recorded"
        )
    elif change:
        message = (
            f"the code of process {started.process!r} changed since run"
            f" {run_id!r} last executed ({change}); replay will stop with"
            " NonDeterminismError if the change alters the calls already"
            " recorded (guard such changes with ctx.patched, docs/evolving-code.md)"
        )
    else:
        return []
    _log.warning("%s", message)
    return [message]


def code_changed_first(error: NonDeterminismError, change: str) -> NonDeterminismError:
    """The same divergence, its message saying first that the code changed."""
    message = str(error)
    head, sep, _causes = message.partition(" Likely causes:\n")
    if not sep:
        return error
    fork = message[message.find("\nTo branch") :] if "\nTo branch" in message else ""
    text = (
        f"the code changed since this run last executed ({change}).\n{head}"
        " Likely causes:\n"
        "  1. the code changed: guard the change with ctx.patched(...) so runs"
        " recorded before it keep their path (docs/evolving-code.md), or fork the"
        " run;\n"
        "  2. a branch on time, randomness or the environment read outside"
        " ctx.now()/ctx.random()/ctx.uuid();\n"
        "  3. iterating a set, or a dict built in an order that changed." + fork
    )
    return type(error)(
        text,
        run_id=error.run_id,
        key=error.key,
        seq=error.seq,
        recorded=error.recorded,
        replayed=error.replayed,
        replayed_args=error.replayed_args,
    )
