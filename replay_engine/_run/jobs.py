"""Code that runs where effects execute: pool threads, pool processes, workers.

Arguments and results cross as msgspec bytes; a remote worker gets a
task by reference (``module:qualname``), never a pickled function.
"""

from __future__ import annotations

import importlib
import time
import traceback
from collections.abc import Callable
from typing import Any

import journal_format as jf

from .tasks import TaskContext, TaskDef, _task_context

OK = 0
ERROR = 1
PAYLOAD_ERROR = 2
INTERRUPTED = 3
NOT_RUN = 4

# (status, payload): OK -> result bytes; ERROR -> (type, message, traceback);
# PAYLOAD_ERROR -> message; INTERRUPTED -> the BaseException the attempt raised
# (KeyboardInterrupt, SystemExit …: not the task's failure, nothing is
# recorded for it); NOT_RUN -> None (a later attempt of the same pool job,
# skipped once the job was interrupted). Plain tuples, so any executor can
# carry them.
Outcome = tuple[int, Any]


def error_outcome(exc: BaseException) -> Outcome:
    """The outcome of an attempt that raised ``exc``."""
    cls = type(exc)
    name = (
        cls.__qualname__
        if cls.__module__ == "builtins"
        else (f"{cls.__module__}.{cls.__qualname__}")
    )
    tb = "".join(traceback.format_exception(exc))
    return (ERROR, (name, str(exc), tb))


def run_call(
    fn: Callable[..., Any], args_bytes: bytes, run_id: str, key: str, attempt: int
) -> Outcome:
    """Execute one sync task attempt and encode its result."""
    token = _task_context.set(TaskContext(run_id, key, attempt))
    try:
        args = jf.decode_payload(args_bytes)
        result = fn(**args)
    except Exception as exc:
        return error_outcome(exc)
    finally:
        _task_context.reset(token)
    try:
        return (OK, jf.encode_payload(result))
    except jf.FormatError as exc:
        return (PAYLOAD_ERROR, f"the task's result cannot be journaled: {exc}")


def run_local_chunk(
    items: list[tuple[Callable[..., Any], bytes, str, int]], run_id: str
) -> tuple[list[Outcome], float]:
    """Execute several sync attempts in one pool job (amortises submission).

    Returns their outcomes and the seconds they took together, from which
    the dispatcher sizes later chunks.
    """
    started = time.perf_counter()
    outcomes: list[Outcome] = []
    try:
        for fn, a, k, n in items:
            outcomes.append(run_call(fn, a, run_id, k, n))
    except BaseException as exc:  # run_call returns every Exception
        _interrupted(outcomes, exc, len(items))
    return outcomes, time.perf_counter() - started


def _interrupted(outcomes: list[Outcome], exc: BaseException, total: int) -> None:
    """An attempt raised ``exc`` (not an ``Exception``): stop the job there.

    The attempts before it keep their outcomes; it and the ones after it are
    not the tasks' outcomes, so nothing is recorded for them.
    """
    outcomes.append((INTERRUPTED, exc))
    outcomes.extend([(NOT_RUN, None)] * (total - len(outcomes)))


_resolved: dict[str, Callable[..., Any]] = {}


def resolve(ref: str) -> Callable[..., Any]:
    """Import a task function from its ``module:qualname`` reference."""
    fn = _resolved.get(ref)
    if fn is None:
        module_name, _, qualname = ref.partition(":")
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        fn = obj.fn if isinstance(obj, TaskDef) else obj
        _resolved[ref] = fn
    return fn


def run_remote_chunk(
    items: list[tuple[str, bytes, str, int]], run_id: str
) -> list[Outcome]:
    """Execute several attempts by reference, in a pool process or a worker."""
    out: list[Outcome] = []
    try:
        for ref, args_bytes, key, attempt in items:
            try:
                fn = resolve(ref)
            except Exception as exc:
                out.append(error_outcome(exc))
                continue
            out.append(run_call(fn, args_bytes, run_id, key, attempt))
    except BaseException as exc:  # run_call returns every Exception
        _interrupted(out, exc, len(items))
    return out
