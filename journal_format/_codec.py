"""Canonical payload encoding and content addresses.

Payloads (inputs, task args, results) are encoded as MessagePack with
msgspec, with map keys sorted (``order="deterministic"``), so equal values
always give equal bytes and so the same blake3 content address. A payload is
stored once in the ``blobs`` database under its address, however many events
refer to it.
"""

from __future__ import annotations

from typing import Any

import blake3
import msgspec

from ._errors import FormatError, refuse_extension

ADDRESS_SIZE = 32
"""Content addresses are full 32-byte blake3 digests (JF-020)."""

_encoder = msgspec.msgpack.Encoder(order="deterministic")
_decoder = msgspec.msgpack.Decoder(ext_hook=refuse_extension)


def encode_payload(value: object) -> bytes:
    """Encode a value canonically.

    Raises:
        FormatError: the value holds something msgspec cannot encode; the
            message names the type.
    """
    try:
        return _encoder.encode(value)
    except (TypeError, msgspec.EncodeError, OverflowError) as exc:
        raise FormatError(str(exc)) from None
    except UnicodeEncodeError as exc:
        raise FormatError(
            f"a str holding a lone surrogate cannot be encoded as UTF-8 ({exc})"
        ) from None


def decode_payload(data: bytes) -> Any:
    """Decode canonical payload bytes (lists for arrays, dicts for maps)."""
    try:
        return _decoder.decode(data)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise FormatError(f"payload does not decode: {exc}") from None


def address_of(data: bytes) -> bytes:
    """The content address of stored bytes: their blake3 digest."""
    return blake3.blake3(data).digest()


def payload_ref(data: bytes) -> bytes:
    """The reference an event stores for payload ``data`` (JF-026).

    A payload shorter than an address is its own reference (stored inline in
    the event: smaller than any address, so nothing is gained by a blob);
    a longer one is referred to by its blake3 address and stored as a blob.
    """
    return data if len(data) < ADDRESS_SIZE else blake3.blake3(data).digest()


def ref_is_inline(ref: bytes) -> bool:
    """Whether a payload reference holds the payload itself (shorter than 32)."""
    return len(ref) < ADDRESS_SIZE


def blobs_for(ref: bytes, data: bytes) -> dict[bytes, bytes]:
    """The blob to store with a reference: none for an inline payload."""
    return {} if len(ref) < ADDRESS_SIZE else {ref: data}


def seal(data: bytes) -> bytes:
    """Prefix bytes with their own digest, so damage is caught on every read."""
    return blake3.blake3(data).digest() + data


def unseal(value: bytes) -> tuple[bytes, bytes]:
    """Split a sealed value into ``(digest, data)`` after checking the digest.

    Raises:
        FormatError: the value is too short or its digest does not match.
    """
    if len(value) < ADDRESS_SIZE:
        raise FormatError(f"sealed record of {len(value)} bytes is truncated")
    digest = value[:ADDRESS_SIZE]
    data = value[ADDRESS_SIZE:]
    if blake3.blake3(data).digest() != digest:
        raise FormatError("record bytes do not match their blake3 digest")
    return digest, data


def check_blob(address: bytes, data: bytes) -> bytes:
    """Return ``data`` if it hashes to ``address``.

    Raises:
        FormatError: the blob was damaged.
    """
    if blake3.blake3(data).digest() != address:
        raise FormatError(f"blob {address.hex()} does not match its content address")
    return data


raw_encode = _encoder.encode
"""``encode_payload`` without its error translation, for hot paths.

Gives the same bytes; a caller falls back to :func:`encode_payload` on any
exception to get its :class:`FormatError` (the replay of ``ctx.task`` saves
a Python call per replayed call this way).
"""

raw_decode = _decoder.decode
"""``decode_payload`` without its error translation, for hot paths (the same)."""
