"""Values in and out of the CLI: strict JSON input, JSON-ready output, option types.

JSON has no NaN or Infinity, but Python's ``json`` reads and writes them: the
input side refuses them (and numbers past a float's range, and nesting past
the parser's limit), the output side shows a task's non-finite float as a
string, so every ``--json`` document is JSON any parser reads.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from typing import Any

import click
import msgspec


class BadJson(ValueError):
    """JSON input that Python's json would accept but JSON does not (or too deep)."""


def _refuse_constant(name: str) -> Any:
    raise BadJson(f"is not valid JSON: {name} is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e400 overflows to inf
        raise BadJson(
            f"is not valid JSON: {text} is too large for a JSON number (a 64-bit float)"
        )
    return number


def parse_json(text: str) -> Any:
    """Parse strict JSON.

    Raises:
        json.JSONDecodeError: it is not JSON.
        BadJson: NaN, Infinity, an overflowing number, or nesting too deep.
    """
    try:
        return json.loads(
            text, parse_constant=_refuse_constant, parse_float=_finite_float
        )
    except RecursionError:
        raise BadJson("is nested too deeply: give a flatter JSON value") from None


# JSON escapes C0 controls itself but leaves DEL and C1 raw; outside strings a
# JSON text holds only ASCII, so replacing them everywhere keeps it valid.
RAW_CONTROLS = {c: f"\\u{c:04x}" for c in range(0x7F, 0xA0)}


def dumps(document: Any) -> str:
    """One JSON document: non-ASCII kept, every control character escaped."""
    return json.dumps(plain(document), indent=2, ensure_ascii=False).translate(
        RAW_CONTROLS
    )


def plain(value: Any) -> Any:
    """A JSON-ready form: bytes as hex, datetimes as ISO 8601, structs as objects."""
    if isinstance(value, float) and not math.isfinite(value):
        # JSON has no NaN/Infinity (json.dumps would print invalid JSON): a
        # task may still return one, so show it as the name JavaScript uses.
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [plain(v) for v in value]
        if isinstance(value, set | frozenset):
            items.sort(key=repr)
        return items
    if isinstance(value, msgspec.Struct):
        return {f: plain(getattr(value, f)) for f in value.__struct_fields__}
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in fields(value)}
    return str(value)


MAX_LEASE_SECONDS = 366 * 24 * 3600.0
"""The longest lease (``Engine.claim`` and ``heartbeat`` refuse longer ones too)."""


class LeaseSeconds(click.ParamType):  # type: ignore[type-arg]
    """``--lease``: a finite number of seconds in (0, 366 days].

    ``click.FloatRange`` lets ``nan`` through (every comparison with it is
    false) and ``inf``/``1e300`` overflow the lease's expiry time.
    """

    name = "seconds"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not math.isfinite(seconds) or not 0 < seconds <= MAX_LEASE_SECONDS:
            self.fail(
                f"{value!r} is not a lease: give seconds above 0 and at most"
                f" {MAX_LEASE_SECONDS:.0f} (366 days)",
                param,
                ctx,
            )
        return seconds
