"""Telling the user where and how a process diverged from its journal.

Builds :class:`NonDeterminismError` messages: what the journal recorded, what
the process did instead, the call site in the user's code, the likely causes,
and the fork command that branches from the last agreeing event.
"""

from __future__ import annotations

import sys
from types import FrameType

import journal_format as jf

from ..errors import NonDeterminismError


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
