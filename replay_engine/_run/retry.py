r"""Retry policies: which failures are retried, and how long to wait first.

An attempt's failure reaches the runtime as names, not as an exception object
(it may have been raised in a pool process or on a Dask worker), so the policy
is matched by name: the worker records the module-qualified name of every class
in the exception's MRO (:func:`exception_names`), and ``isinstance`` against a
policy's types is "one of the policy's names is in that list".

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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from blake3 import blake3

from .tasks import TaskDef

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
