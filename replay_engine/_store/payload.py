"""Encoding what users hand the engine, refusing what cannot be journaled.

What users hand the engine (run inputs, posted results and signal payloads,
``ctx.log`` fields) must be JSON-representable: the CLI, ``export`` and the
HTTP API show it as JSON, and JSON has no NaN or Infinity (Python's ``json``
would print them, giving documents no other parser reads). So a non-finite
float there is refused with :class:`PayloadError` naming where it is, like
any other value that cannot be journaled. Values tasks produce (args built by
the process, results) are not checked: the CLI shows a non-finite float in
them as the string ``"NaN"``, ``"Infinity"`` or ``"-Infinity"``.
"""

from __future__ import annotations

import math
from typing import Any

import journal_format as jf

from ..errors import PayloadError

# MessagePack float32 / float64 markers: bytes without either hold no float,
# so most payloads skip the walk that looks for NaN and Infinity.
_FLOAT_MARKERS = (b"\xca", b"\xcb")


def encode_or_refuse(value: Any, what: str, then: str) -> bytes:
    """The canonical bytes of ``value``.

    Raises:
        PayloadError: ``"{what} cannot be encoded: {reason}{then}"``, where
            ``then`` says what happened instead (``"; nothing was written"``):
            a type msgspec cannot encode, nesting too deep to encode, or a
            NaN/Infinity (named by its path, as ``["x"][0]``).
    """
    try:
        data = jf.encode_payload(value)
    except jf.FormatError as exc:
        raise PayloadError(f"{what} cannot be encoded: {exc}{then}") from None
    except RecursionError:
        raise PayloadError(
            f"{what} cannot be encoded: it is nested too deeply{then}"
        ) from None
    if any(marker in data for marker in _FLOAT_MARKERS):
        found = non_finite(value)
        if found is not None:
            path, number = found
            raise PayloadError(
                f"{what} cannot be encoded: {path or 'the value'} is {number!r}, and"
                " JSON has no NaN or Infinity (use None or a string){then}"
            )
    return data


def non_finite(value: Any) -> tuple[str, float] | None:
    """The path (``["x"][0]``) and value of the first NaN/Infinity in ``value``.

    Looks through dicts, lists, tuples and sets (what JSON can hold); an
    explicit stack, because the value may be as deep as the encoder allows.
    """
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return path, item
        elif isinstance(item, dict):
            stack.extend((f"{path}[{k!r}]", v) for k, v in reversed(item.items()))
        elif isinstance(item, list | tuple):
            stack.extend(
                (f"{path}[{i}]", v) for i, v in reversed(list(enumerate(item)))
            )
        elif isinstance(item, set | frozenset):
            stack.extend((f"{path}{{…}}", v) for v in item)
    return None
