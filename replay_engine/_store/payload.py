"""Encoding what users hand the engine, refusing what cannot be journaled."""

from __future__ import annotations

from typing import Any

import journal_format as jf

from ..errors import PayloadError


def encode_or_refuse(value: Any, what: str, then: str) -> bytes:
    """The canonical bytes of ``value``.

    Raises:
        PayloadError: ``"{what} cannot be encoded: {reason}{then}"``, where
            ``then`` says what happened instead (``"; nothing was written"``).
    """
    try:
        return jf.encode_payload(value)
    except jf.FormatError as exc:
        raise PayloadError(f"{what} cannot be encoded: {exc}{then}") from None
