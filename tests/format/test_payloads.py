"""Payloads, content addresses and sealed records: JF-020 to JF-024, JF-060/061."""

from __future__ import annotations

import datetime
import random
from typing import Any

import blake3
import msgspec
import pytest
from hypothesis import given, strategies as st

import journal_format as jf
from tests.strategies import INT64_MAX, INT64_MIN, UINT64_MAX, envelopes, payloads

# -- canonical payloads ----------------------------------------------------------


@pytest.mark.spec("JF-021")
@given(payloads())
def test_any_payload_round_trips(value: Any) -> None:
    assert jf.decode_payload(jf.encode_payload(value)) == value


@pytest.mark.spec("JF-021")
@pytest.mark.parametrize("value", [INT64_MIN, INT64_MAX, UINT64_MAX, 0, -1])
def test_integer_range(value: int) -> None:
    assert jf.decode_payload(jf.encode_payload(value)) == value


def _shuffled(value: Any, rnd: random.Random) -> Any:
    """The same value with every dict built in another insertion order."""
    if isinstance(value, dict):
        items = [(k, _shuffled(v, rnd)) for k, v in value.items()]
        rnd.shuffle(items)
        return dict(items)
    if isinstance(value, list):
        return [_shuffled(v, rnd) for v in value]
    return value


@pytest.mark.spec("JF-022")
@given(payloads(), st.randoms(use_true_random=False))
def test_equal_values_give_equal_bytes(value: Any, rnd: random.Random) -> None:
    other = _shuffled(value, rnd)
    assert other == value
    assert jf.encode_payload(other) == jf.encode_payload(value)


@pytest.mark.spec("JF-022")
@given(payloads())
def test_encoding_is_canonical(value: Any) -> None:
    data = jf.encode_payload(value)
    assert jf.encode_payload(jf.decode_payload(data)) == data


@pytest.mark.spec("JF-022")
@given(st.dictionaries(st.text(), st.integers(0, 9), min_size=2))
def test_map_keys_sorted_by_utf8_bytes(value: dict[str, int]) -> None:
    decoded = msgspec.msgpack.decode(jf.encode_payload(value))
    keys = list(decoded)  # msgspec keeps the order found in the bytes
    assert keys == sorted(keys, key=lambda k: k.encode())


@pytest.mark.spec("JF-022")
@pytest.mark.parametrize(
    ("value", "hex_bytes"),
    [
        (None, "c0"),
        (False, "c2"),
        (True, "c3"),
        (0, "00"),
        (127, "7f"),
        (128, "cc80"),
        (256, "cd0100"),
        (65536, "ce00010000"),
        (2**32, "cf0000000100000000"),
        (-1, "ff"),
        (-32, "e0"),
        (-33, "d0df"),
        (-129, "d1ff7f"),
        (-(2**31) - 1, "d3ffffffff7fffffff"),
        (1.0, "cb3ff0000000000000"),  # floats are always float64
        (0.5, "cb3fe0000000000000"),
        ("", "a0"),
        ("a" * 31, "bf" + "61" * 31),
        ("a" * 32, "d920" + "61" * 32),
        (b"", "c400"),
        (b"\x01", "c40101"),
        ([], "90"),
        ([1, [2]], "92019102"),
        ({}, "80"),
        ({"b": 1, "a": 2}, "82a16102a16201"),
        ({"\u00e9": 1, "z": 2, "\U0001f600": 3}, "83a17a02a2c3a901a4f09f988003"),
    ],
)
def test_canonical_bytes(value: Any, hex_bytes: str) -> None:
    assert jf.encode_payload(value).hex() == hex_bytes


@pytest.mark.spec("JF-021")
def test_other_python_values_map_onto_the_model() -> None:
    # tuples and sets are arrays, bytearrays are bin: they come back as list/bytes.
    assert jf.decode_payload(jf.encode_payload((1, 2))) == [1, 2]
    assert jf.encode_payload({3, 1, 2}) == jf.encode_payload([1, 2, 3])
    assert jf.decode_payload(jf.encode_payload(bytearray(b"ab"))) == b"ab"
    when = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    data = jf.encode_payload(when)
    assert data[:2] == b"\xd6\xff"  # fixext 4, type -1: the msgpack timestamp
    assert jf.decode_payload(data) == when


class Opaque:
    pass


@pytest.mark.spec("JF-023")
@pytest.mark.parametrize(
    ("value", "named"),
    [
        (Opaque(), "Opaque"),
        ({"x": [1, Opaque()]}, "Opaque"),
        (object(), "object"),
        (1j, "complex"),
    ],
)
def test_non_encodable_value_names_its_type(value: Any, named: str) -> None:
    with pytest.raises(jf.FormatError, match=named):
        jf.encode_payload(value)


@pytest.mark.spec("JF-023")
@pytest.mark.parametrize("value", [UINT64_MAX + 1, INT64_MIN - 1, {1: "int key"}])
def test_values_outside_the_model_are_format_errors(value: Any) -> None:
    with pytest.raises(jf.FormatError):
        jf.encode_payload(value)


@pytest.mark.spec("JF-023")
def test_lone_surrogate_is_a_format_error() -> None:
    with pytest.raises(jf.FormatError, match="str"):
        jf.encode_payload({"s": "\ud800"})


@pytest.mark.spec("JF-021")
@pytest.mark.parametrize("hex_bytes", ["c1", "92 01", "a5 61", "d9"])
def test_malformed_payload_bytes_are_format_errors(hex_bytes: str) -> None:
    with pytest.raises(jf.FormatError):
        jf.decode_payload(bytes.fromhex(hex_bytes))


# -- content addresses -----------------------------------------------------------


@pytest.mark.spec("JF-020")
@given(st.binary())
def test_address_is_blake3_256_of_the_bytes(data: bytes) -> None:
    address = jf.address_of(data)
    assert len(address) == jf.ADDRESS_SIZE == 32
    assert address == blake3.blake3(data).digest()


@pytest.mark.spec("JF-020")
def test_address_of_empty_is_the_blake3_test_vector() -> None:
    # From the BLAKE3 reference test vectors (input length 0).
    assert jf.address_of(b"").hex() == (
        "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    )


@pytest.mark.spec("JF-024")
@given(payloads(max_leaves=5), st.data())
def test_check_blob_catches_a_flipped_byte(value: Any, data: st.DataObject) -> None:
    blob = jf.encode_payload(value)
    address = jf.address_of(blob)
    assert jf.check_blob(address, blob) == blob
    pos = data.draw(st.integers(0, len(blob) - 1), label="pos")
    mask = data.draw(st.integers(1, 255), label="mask")
    damaged = bytearray(blob)
    damaged[pos] ^= mask
    with pytest.raises(jf.FormatError, match=address.hex()):
        jf.check_blob(address, bytes(damaged))


# -- sealed records --------------------------------------------------------------


@pytest.mark.spec("JF-060")
@given(st.binary())
def test_seal_is_digest_then_data(data: bytes) -> None:
    sealed = jf.seal(data)
    assert sealed == blake3.blake3(data).digest() + data
    assert jf.unseal(sealed) == (sealed[:32], data)


@pytest.mark.spec("JF-061")
@given(envelopes, st.data())
def test_unseal_catches_any_single_flipped_bit(
    envelope: jf.Envelope, data: st.DataObject
) -> None:
    sealed = jf.seal(jf.encode_record(envelope))
    bit = data.draw(st.integers(0, len(sealed) * 8 - 1), label="bit")
    damaged = bytearray(sealed)
    damaged[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(jf.FormatError, match="digest"):
        jf.unseal(bytes(damaged))


@pytest.mark.spec("JF-061")
@pytest.mark.parametrize("length", [0, 1, 31])
def test_unseal_rejects_truncated_records(length: int) -> None:
    with pytest.raises(jf.FormatError, match="truncated"):
        jf.unseal(b"\x00" * length)


@pytest.mark.spec("JF-061")
def test_unseal_of_digest_only_record_checks_the_empty_data() -> None:
    assert jf.unseal(jf.seal(b"")) == (jf.address_of(b""), b"")
    with pytest.raises(jf.FormatError):
        jf.unseal(b"\x00" * 32)


@pytest.mark.spec("JF-026")
@given(payloads())
def test_payload_references_are_inline_below_an_address(value: Any) -> None:
    data = jf.encode_payload(value)
    ref = jf.payload_ref(data)
    if len(data) < jf.ADDRESS_SIZE:
        assert ref == data and jf.ref_is_inline(ref)
        assert jf.blobs_for(ref, data) == {}
    else:
        assert ref == blake3.blake3(data).digest() and not jf.ref_is_inline(ref)
        assert jf.blobs_for(ref, data) == {ref: data}


@pytest.mark.spec("JF-026")
def test_the_reference_length_decides_at_the_boundary() -> None:
    short = jf.encode_payload("x" * 30)  # fixstr: 1 header byte + 30 = 31 bytes
    exact = jf.encode_payload("x" * 31)  # 32 bytes: addressed, not inline
    assert len(short) < 32 and jf.payload_ref(short) == short
    assert len(exact) == 32 and jf.payload_ref(exact) == blake3.blake3(exact).digest()
