"""Pieces of ``ctx.task``'s replay path, kept beside ``context`` (issue 17).

``resolved`` is the awaitable a replayed call returns; ``encode_args`` the
slow path of encoding a call's args, taken only when the fast one raised.
"""

from __future__ import annotations

import types
from collections.abc import Generator, Mapping
from typing import Any, TypeVar

import journal_format as jf

from ..errors import PayloadError
from .divergence import call_site
from .tasks import TaskDef

T = TypeVar("T")

__all__ = ["encode_args", "resolved"]


@types.coroutine
def resolved(value: T) -> Generator[Any, Any, T]:
    """An awaitable that returns ``value`` at once: a replayed ``ctx.task``.

    A generator-based coroutine: ``await`` runs it straight away (no
    ``__await__`` lookup and call, as a :class:`Resolved` needs; about 80 ns
    less per replayed call). Like a coroutine, it is awaited once: live code
    cannot await a ``ctx.task`` twice either.
    """
    return value
    yield  # type: ignore[unreachable]  # a generator that never suspends


def encode_args(tdef: TaskDef[..., Any], args: Mapping[str, Any]) -> bytes:
    """``args`` encoded, or the ``PayloadError`` saying why they cannot be."""
    try:
        return jf.encode_payload(args)
    except jf.FormatError as exc:
        raise PayloadError(
            f"ctx.task({tdef.name}, ...) at {call_site()}: its args cannot be"
            f" encoded: {exc}. Pass only msgspec-encodable values (dicts, lists,"
            " str, int, float, bool, None, bytes, msgspec Structs); nothing was"
            " recorded."
        ) from None
