r"""Code that runs where effects execute, and the retry policy of what it reports.

Pool threads, pool processes and workers run it. Arguments and results cross as
msgspec bytes; a remote worker gets a task by reference (``module:qualname``),
never a pickled function.

Retry policies (the end of this module): which failures are retried, and how
long to wait first. An attempt's failure reaches the runtime as names, not as
an exception object (it may have been raised in a pool process or on a Dask
worker), so the policy is matched by name: the worker records the
module-qualified name of every class in the exception's MRO
(:func:`exception_names`), and ``isinstance`` against a policy's types is "one
of the policy's names is in that list".

The wait before retry ``n`` (``n`` = the attempt that failed, from 1)::

    base  = backoff * 2 ** (n - 1)
    delay = min(base, max_backoff)
    if jitter:
        digest = blake3(f"{run_id}\x00{key}\x00{n}".encode()).digest()
        u = int.from_bytes(digest[:8], "big") / 2**64   # in [0, 1)
        delay = delay * (0.5 + u / 2)                    # a factor in [0.5, 1)

``u`` depends only on the run id, the call's key and the attempt number, so a
replay, a resume and a test all compute the same delays (the one recorded in
``attempt_failed.retry_in``).

(One module with the attempts: a first resume imports both, and each module
is an import it pays, issue 17.)
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from blake3 import blake3

import journal_format as jf

from .tasks import TaskContext, TaskDef, _task_context, as_task
from .typed import convert_args

Converts = tuple[tuple[str, Any], ...]
"""The parameters to convert to their annotations (``typed.Plan.converts``)."""

OK = 0
ERROR = 1
PAYLOAD_ERROR = 2
INTERRUPTED = 3
NOT_RUN = 4

# (status, payload): OK -> result bytes; ERROR -> (type, message, traceback,
# names), names being the qualified names of the exception's classes, which
# the retry policy matches (retryable, below);
# PAYLOAD_ERROR -> message; INTERRUPTED -> the BaseException the attempt raised
# (KeyboardInterrupt, SystemExit …: not the task's failure, nothing is
# recorded for it); NOT_RUN -> None (a later attempt of the same pool job,
# skipped once the job was interrupted). Plain tuples, so any executor can
# carry them.
Outcome = tuple[int, Any]

_new_tuple = tuple.__new__


def error_outcome(exc: BaseException) -> Outcome:
    """The outcome of an attempt that raised ``exc``."""
    cls = type(exc)
    name = (
        cls.__qualname__
        if cls.__module__ == "builtins"
        else (f"{cls.__module__}.{cls.__qualname__}")
    )
    tb = "".join(traceback.format_exception(exc))
    return (ERROR, (name, str(exc), tb, exception_names(cls)))


def run_call(
    fn: Callable[..., Any],
    args_bytes: bytes,
    run_id: str,
    key: str,
    attempt: int,
    max_attempts: int = 1,
    converts: Converts = (),
) -> Outcome:
    """Execute one sync task attempt and encode its result."""
    # tuple.__new__: the named tuple without its Python-level __new__ (one
    # call less per attempt; the fields are the same four, in order).
    context = _new_tuple(TaskContext, (run_id, key, attempt, max_attempts))
    token = _task_context.set(context)
    try:
        return run_attempt(fn, args_bytes, converts)
    finally:
        _task_context.reset(token)


def run_attempt(
    fn: Callable[..., Any], args_bytes: bytes, converts: Converts
) -> Outcome:
    """``run_call`` without its task context, which the caller has set."""
    try:
        args = jf.decode_payload(args_bytes)
        if converts:
            args = convert_args(converts, args)
        result = fn(**args)
    except Exception as exc:
        return error_outcome(exc)
    try:
        return (OK, jf.encode_payload(result))
    except jf.FormatError as exc:
        return (PAYLOAD_ERROR, f"the task's result cannot be journaled: {exc}")


def run_local_chunk(
    items: list[tuple[Callable[..., Any], bytes, str, int, int, Converts]],
    run_id: str,
) -> tuple[list[Outcome], float]:
    """Execute several sync attempts in one pool job (amortises submission).

    Returns their outcomes and the seconds they took together, from which
    the dispatcher sizes later chunks.
    """
    started = time.perf_counter()
    outcomes: list[Outcome] = []
    append = outcomes.append
    set_context = _task_context.set
    # run_call, inline, with the task context set for each attempt but put
    # back once, after the job (a reset per attempt and a frame per attempt
    # were a tenth of a measured-tiny attempt's cost).
    token = set_context(None)
    try:
        for fn, a, k, n, most, c in items:
            set_context(_new_tuple(TaskContext, (run_id, k, n, most)))
            try:
                args = jf.decode_payload(a)
                if c:
                    args = convert_args(c, args)
                result = fn(**args)
            except Exception as exc:
                append(error_outcome(exc))
                continue
            try:
                append((OK, jf.encode_payload(result)))
            except jf.FormatError as exc:
                append((PAYLOAD_ERROR, f"the task's result cannot be journaled: {exc}"))
    except BaseException as exc:  # only what is not an Exception gets here
        _interrupted(outcomes, exc, len(items))
    finally:
        _task_context.reset(token)
    return outcomes, time.perf_counter() - started


def _interrupted(outcomes: list[Outcome], exc: BaseException, total: int) -> None:
    """An attempt raised ``exc`` (not an ``Exception``): stop the job there.

    The attempts before it keep their outcomes; it and the ones after it are
    not the tasks' outcomes, so nothing is recorded for them.
    """
    outcomes.append((INTERRUPTED, exc))
    outcomes.extend([(NOT_RUN, None)] * (total - len(outcomes)))


_resolved: dict[str, tuple[Callable[..., Any], Converts]] = {}


def resolve(ref: str) -> tuple[Callable[..., Any], Converts]:
    """Import a task function from its ``module:qualname`` reference.

    Returns the function and the parameters to convert to its annotations.
    """
    found = _resolved.get(ref)
    if found is None:
        module_name, _, qualname = ref.partition(":")
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        tdef = obj if isinstance(obj, TaskDef) else as_task(obj)
        found = (tdef.fn, tdef.plan.converts)
        _resolved[ref] = found
    return found


def run_remote_chunk(
    items: list[tuple[str, bytes, str, int, int]], run_id: str
) -> list[Outcome]:
    """Execute several attempts by reference, in a pool process or a worker."""
    out: list[Outcome] = []
    try:
        for ref, args_bytes, key, attempt, most in items:
            try:
                fn, converts = resolve(ref)
            except Exception as exc:
                out.append(error_outcome(exc))
                continue
            out.append(run_call(fn, args_bytes, run_id, key, attempt, most, converts))
    except BaseException as exc:  # run_call returns every Exception
        _interrupted(out, exc, len(items))
    return out


def run_traced_chunk(
    items: list[tuple[str, bytes, str, int, int]],
    run_id: str,
    carriers: list[dict[str, str] | None],
) -> list[Outcome]:
    """:func:`run_remote_chunk`, each attempt inside its attempt span's context.

    Sent instead of it only when tracing is on. ``carriers`` holds, per
    item, the W3C trace context (``traceparent``, ``tracestate``) of the
    attempt's span in the engine: attached here, so the task's own spans
    (and ``trace.get_current_span()``) have that span as parent. A worker
    without OpenTelemetry runs the attempts untraced.
    """
    try:
        from opentelemetry import context
        from opentelemetry.trace.propagation.tracecontext import (
            TraceContextTextMapPropagator,
        )
    except ImportError:
        return run_remote_chunk(items, run_id)
    propagator = TraceContextTextMapPropagator()
    out: list[Outcome] = []
    for item, carrier in zip(items, carriers, strict=True):
        token = context.attach(propagator.extract(carrier)) if carrier else None
        try:
            out.extend(run_remote_chunk([item], run_id))
        finally:
            if token is not None:
                context.detach(token)
        if out[-1][0] == INTERRUPTED:  # the rest of the job is not run
            out.extend([(NOT_RUN, None)] * (len(items) - len(out)))
            break
    return out


# -- pool processes --------------------------------------------------------------

_PR_SET_PDEATHSIG = 1
_WATCH_SECONDS = 0.5


def worker_init(engine_pid: int) -> None:
    """First thing in every pool process the engine starts.

    A worker must not outlive the engine (SIGKILLed, it cannot clean up), nor
    hold the stdout/stderr it inherited: ``$(replay-engine run ...)`` waits
    until every holder of its pipe has closed it.
    """
    _detach_stdio()
    parent = os.getppid()
    if parent != engine_pid:
        # Forked by the forkserver, which exits when the engine dies (its
        # "alive" pipe reaches EOF): die with it. Not for a worker the engine
        # spawned itself, whose parent *thread* may end before the engine.
        _die_with_parent()
    if not _alive(engine_pid) or os.getppid() != parent:
        os._exit(1)  # the engine died before we got here
    # Fallback where there is no prctl (or the parent is a subreaper).
    threading.Thread(
        target=_watch, args=(engine_pid, parent), name="engine-watch", daemon=True
    ).start()


def _detach_stdio() -> None:
    """Point fds 0, 1 and 2 at /dev/null (task output is not the CLI's output)."""
    fd = os.open(os.devnull, os.O_RDWR)
    try:
        for target in (0, 1, 2):
            os.dup2(fd, target)
    finally:
        if fd > 2:
            os.close(fd)


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def _watch(engine_pid: int, parent: int) -> None:
    while os.getppid() == parent and _alive(engine_pid):
        time.sleep(_WATCH_SECONDS)
    os._exit(1)


NON_RETRYABLE = "replay_engine.NonRetryable"
"""The qualified name :class:`~replay_engine.NonRetryable` records under."""


def qualified_name(cls: type) -> str:
    """``module.qualname`` of a class, ``builtins.`` included.

    ``__mp_main__`` (the name a process pool gives the parent's main module)
    reads as ``__main__``, so a class defined in a script matches in the pool too.
    """
    module = cls.__module__
    if module == "__mp_main__":
        module = "__main__"
    return f"{module}.{cls.__qualname__}"


def exception_names(cls: type) -> tuple[str, ...]:
    """Qualified names of ``cls`` and its bases, ``object`` left out."""
    return tuple(qualified_name(c) for c in cls.__mro__ if c is not object)


def _names(types: tuple[type[BaseException], ...]) -> frozenset[str]:
    return frozenset(qualified_name(t) for t in types)


def retryable(tdef: TaskDef[..., Any], names: Sequence[str]) -> bool:
    """Whether a failure whose MRO is ``names`` may be retried under ``tdef``.

    ``NonRetryable`` and ``non_retryable`` win over ``retry_on``.
    """
    if NON_RETRYABLE in names:
        return False
    if tdef.non_retryable and not _names(tdef.non_retryable).isdisjoint(names):
        return False
    if tdef.retry_on is None:
        return True
    return not _names(tdef.retry_on).isdisjoint(names)


def jitter_factor(run_id: str, key: str, attempt: int) -> float:
    """A factor in ``[0.5, 1)`` fixed by ``(run_id, key, attempt)``."""
    digest = blake3(f"{run_id}\x00{key}\x00{attempt}".encode()).digest()
    return 0.5 + int.from_bytes(digest[:8], "big") / 2**65


def backoff_delay(
    tdef: TaskDef[..., Any], run_id: str, key: str, attempt: int
) -> float:
    """Seconds to wait after failed attempt ``attempt`` (see the module doc)."""
    if tdef.backoff <= 0:
        return 0.0
    # The exponent is capped so a very long retry series cannot overflow.
    delay = min(tdef.backoff * 2.0 ** min(attempt - 1, 64), tdef.max_backoff)
    if tdef.jitter:
        delay *= jitter_factor(run_id, key, attempt)
    return delay
