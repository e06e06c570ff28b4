"""The invocation-key codec.

An invocation key names one call by its place in the program: a tuple of
non-negative integers such as ``(3, 1, 0)``, written ``3.1.0`` for people.

Each component is written as one length byte ``L`` (0..8) followed by the
integer in ``L`` big-endian bytes, with no leading zero byte (``0`` is the
single byte ``00``). This encoding was chosen over fixed-width integers
because it is

* order-preserving: for minimal encodings a longer ``L`` means a larger
  number, and equal ``L`` compares big-endian bytes, so byte order of one
  component equals numeric order;
* prefix-free: the length byte says where a component ends, so the bytes of
  a tuple sort exactly like the tuple (depth-first tree order) and the bytes
  of a key are a prefix of the bytes of every key in its subtree;
* compact: indexes below 256 take two bytes, which keeps deep keys well
  inside LMDB's 511-byte key limit.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ._errors import FormatError

MAX_COMPONENT = (1 << 64) - 1
"""The largest integer one key component can hold (JF-011)."""

# ASCII digits only: int() would also take "1_0", "+1", " 1" and other scripts' digits.
_KEY_TEXT = re.compile(r"[0-9]+(?:\.[0-9]+)*")

# Components below 65,536 (below 256: every scope's first calls; up to 65,535:
# the branches of a large parallel.map and a long sequential run) come from
# one table, so key construction on the replay hot path is a list index and a
# concat. The one-byte row is built at import; the two-byte ones (256 ..< 65536)
# on first use, one row of 256 at a time: building all 65,536 at once cost
# ~15 ms, as much as the whole get + decode floor of a 10k-effect cold resume
# (issue 17).
COMPONENTS: list[bytes | None] = [
    b"\x00",
    *(bytes((1, i)) for i in range(1, 256)),
    *([None] * (65536 - 256)),
]
"""``COMPONENTS[i]`` is ``encode_component(i)`` for ``i < 65536``, or ``None``
for a two-byte row not built yet (then call :func:`encode_component`)."""
_LOW: tuple[bytes, ...] = tuple(bytes((i,)) for i in range(256))


def _medium(index: int) -> bytes:
    high = index >> 8
    head = bytes((2, high))
    start = high << 8
    row = [head + low for low in _LOW]
    COMPONENTS[start : start + 256] = row
    return row[index & 0xFF]


def encode_component(index: int) -> bytes:
    """Encode one key component.

    Raises:
        FormatError: the index is negative or needs more than 64 bits.
    """
    if 0 <= index < 65536:
        part = COMPONENTS[index]
        return part if part is not None else _medium(index)
    if 65536 <= index < 16777216:
        # Three bytes (a map of more than 65,536 branches, a long run): the
        # length byte and the index in one int.to_bytes, a quarter of the
        # general path's cost below.
        return (0x3000000 | index).to_bytes(4, "big")
    if index < 0 or index > MAX_COMPONENT:
        raise FormatError(
            f"invocation key component {index} is outside 0..{MAX_COMPONENT}"
        )
    length = (index.bit_length() + 7) // 8
    return bytes((length,)) + index.to_bytes(length, "big")


def encode_key(key: Sequence[int]) -> bytes:
    """Encode a key tuple to bytes whose byte order equals the tuple order."""
    return b"".join([encode_component(i) for i in key])


# The whole grammar of key bytes, for checking without decoding: each component
# is 00, or a length byte L in 1..8 and L big-endian bytes, the first non-zero.
_VALID_KEY = re.compile(
    rb"(?:\x00"
    + b"".join(
        b"|" + bytes((n,)) + rb"[\x01-\xff][\x00-\xff]{" + str(n - 1).encode() + b"}"
        for n in range(1, 9)
    )
    + rb")+",
    re.DOTALL,
)


match_valid_key = _VALID_KEY.fullmatch
"""``match_valid_key(data)`` is not None iff ``data`` is a valid, minimal,
non-empty key encoding: a check without decoding, fast enough for hot loops."""


def decode_key(data: bytes) -> tuple[int, ...]:
    """Decode key bytes back to the tuple.

    Raises:
        FormatError: the bytes are not a valid, minimal key encoding.
    """
    out: list[int] = []
    pos = 0
    end = len(data)
    while pos < end:
        length = data[pos]
        pos += 1
        if length > 8 or pos + length > end:
            raise FormatError(f"malformed invocation key bytes {data.hex()}")
        if length and data[pos] == 0:
            raise FormatError(f"non-minimal invocation key bytes {data.hex()}")
        out.append(int.from_bytes(data[pos : pos + length], "big"))
        pos += length
    return tuple(out)


def format_key(key: Sequence[int]) -> str:
    """The human form of a key: ``(3, 1, 0)`` -> ``"3.1.0"``."""
    return ".".join(map(str, key))


def parse_key(text: str) -> tuple[int, ...]:
    """Parse the human form of a key: ``"3.1.0"`` -> ``(3, 1, 0)``.

    Raises:
        FormatError: the text is not dot-separated non-negative integers.
    """
    stripped = text.strip()
    if not _KEY_TEXT.fullmatch(stripped):
        raise FormatError(
            f"{text!r} is not an invocation key (expected a form like 3.1.0)"
        )
    key = tuple(int(part) for part in stripped.split("."))
    if any(i < 0 or i > MAX_COMPONENT for i in key):
        raise FormatError(f"{text!r} has a component outside 0..{MAX_COMPONENT}")
    return key


def key_bytes_to_text(data: bytes) -> str:
    """Human form of encoded key bytes (``01 03 01 01 00`` -> ``3.1.0``)."""
    return format_key(decode_key(data))
