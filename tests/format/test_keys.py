"""The invocation-key codec: JF-010 to JF-016."""

from __future__ import annotations

import pytest
from hypothesis import example, given, strategies as st

import journal_format as jf
from tests.strategies import UINT64_MAX, components, key_tuples


@pytest.mark.spec("JF-010")
@given(key_tuples(max_size=10))
def test_any_key_round_trips(key: tuple[int, ...]) -> None:
    data = jf.encode_key(key)
    assert jf.decode_key(data) == key
    assert jf.key_bytes_to_text(data) == jf.format_key(key)


@pytest.mark.spec("JF-010")
@pytest.mark.parametrize(
    ("key", "hex_bytes"),
    [
        ((), ""),
        ((0,), "00"),
        ((1,), "0101"),
        ((255,), "01ff"),
        ((256,), "020100"),
        ((3, 1, 0), "0103010100"),
        ((3, 10, 0), "0103010a00"),
        ((65536,), "03010000"),
        # The edges of the encoder's table and three-byte paths (issue 17).
        ((65535,), "02ffff"),
        ((16777215,), "03ffffff"),
        ((16777216,), "0401000000"),
    ],
)
def test_component_layout(key: tuple[int, ...], hex_bytes: str) -> None:
    assert jf.encode_key(key).hex() == hex_bytes


@pytest.mark.spec("JF-010")
@given(components)
def test_component_is_length_then_minimal_big_endian(index: int) -> None:
    data = jf.encode_component(index)
    length = data[0]
    assert len(data) == 1 + length
    assert int.from_bytes(data[1:], "big") == index
    if index == 0:
        assert data == b"\x00"
    else:
        assert data[1] != 0  # minimal: no leading zero byte


@pytest.mark.spec("JF-011")
def test_component_range_is_64_bits() -> None:
    assert jf.encode_component(UINT64_MAX) == b"\x08" + b"\xff" * 8
    for bad in (UINT64_MAX + 1, -1):
        with pytest.raises(jf.FormatError, match="outside"):
            jf.encode_component(bad)
    with pytest.raises(jf.FormatError):
        jf.encode_key((1, UINT64_MAX + 1))


@pytest.mark.spec("JF-013")
@given(st.lists(key_tuples(max_size=5), min_size=2, max_size=30))
@example([(2, 0), (10,), (2,), (1, 300), (1, 255)])
@example([(256,), (255, 0)])
def test_byte_order_equals_tuple_order(keys: list[tuple[int, ...]]) -> None:
    by_tuple = sorted(set(keys))
    by_bytes = sorted({jf.encode_key(k) for k in keys})
    assert [jf.decode_key(b) for b in by_bytes] == by_tuple


@pytest.mark.spec("JF-013")
def test_3_10_0_sorts_after_3_2_0() -> None:
    assert jf.encode_key((3, 10, 0)) > jf.encode_key((3, 2, 0))
    assert jf.encode_key((3, 2, 0)) > jf.encode_key((3, 1, 99))


@pytest.mark.spec("JF-014")
@given(key_tuples(max_size=4), key_tuples(max_size=4))
def test_prefix_iff_descendant(a: tuple[int, ...], b: tuple[int, ...]) -> None:
    is_descendant = b[: len(a)] == a
    assert jf.encode_key(b).startswith(jf.encode_key(a)) == is_descendant


@pytest.mark.spec("JF-014")
@given(
    key_tuples(min_size=1, max_size=3), st.lists(key_tuples(max_size=5), max_size=40)
)
def test_prefix_scan_returns_exactly_the_subtree(
    root: tuple[int, ...], others: list[tuple[int, ...]]
) -> None:
    # Half the keys are made descendants of root so that subtrees are not empty.
    keys = set(others) | {root + k for k in others[::2]}
    encoded = sorted(jf.encode_key(k) for k in keys)
    prefix = jf.encode_key(root)
    # A range scan as LMDB does it: seek to the prefix, stop at the first miss.
    start = next((i for i, e in enumerate(encoded) if e >= prefix), len(encoded))
    scanned = []
    for e in encoded[start:]:
        if not e.startswith(prefix):
            break
        scanned.append(jf.decode_key(e))
    assert sorted(scanned) == sorted(k for k in keys if k[: len(root)] == root)


@pytest.mark.spec("JF-012")
@pytest.mark.parametrize(
    "hex_bytes",
    [
        "09" + "01" * 9,  # length byte above 8
        "ff",  # length byte far above 8
        "01",  # truncated: promises one byte, has none
        "02ff",  # truncated
        "0100",  # non-minimal zero (0 is the single byte 00)
        "020001",  # non-minimal: leading zero byte
        "01030200ff",  # a good component, then a non-minimal one
    ],
)
def test_malformed_key_bytes_are_rejected(hex_bytes: str) -> None:
    with pytest.raises(jf.FormatError):
        jf.decode_key(bytes.fromhex(hex_bytes))
    with pytest.raises(jf.FormatError):
        jf.key_bytes_to_text(bytes.fromhex(hex_bytes))


@pytest.mark.spec("JF-012")
@given(st.binary(max_size=12))
def test_decode_accepts_only_canonical_bytes(data: bytes) -> None:
    # Whatever decodes must re-encode to the same bytes: one key, one encoding.
    try:
        key = jf.decode_key(data)
    except jf.FormatError:
        return
    assert jf.encode_key(key) == data


@pytest.mark.spec("JF-015")
@pytest.mark.parametrize(
    ("text", "key"),
    [("0", (0,)), ("3.1.0", (3, 1, 0)), ("3.10.0", (3, 10, 0)), (" 7.2 ", (7, 2))],
)
def test_parse_and_format_text_form(text: str, key: tuple[int, ...]) -> None:
    assert jf.parse_key(text) == key
    assert jf.format_key(key) == text.strip()


@pytest.mark.spec("JF-015")
@given(key_tuples(min_size=1))
def test_text_form_round_trips(key: tuple[int, ...]) -> None:
    assert jf.parse_key(jf.format_key(key)) == key


@pytest.mark.spec("JF-015")
@pytest.mark.parametrize(
    "text", ["", "3.", ".3", "3..1", "a.1", "-1", "1.-2", "1e3", str(UINT64_MAX + 1)]
)
def test_parse_rejects_non_keys(text: str) -> None:
    with pytest.raises(jf.FormatError):
        jf.parse_key(text)


@pytest.mark.spec("JF-015")
@pytest.mark.parametrize("text", ["1_0", "+1", "1. 2", "\u0663", "1.\u0662"])
def test_parse_accepts_only_ascii_decimal(text: str) -> None:
    with pytest.raises(jf.FormatError):
        jf.parse_key(text)


@pytest.mark.spec("JF-016")
def test_max_key_bytes_fits_lmdb_key_limit() -> None:
    assert jf.MAX_INVOCATION_KEY_BYTES == 511 - 1 - 128
    # 42 components of any size, or 191 below 256, fit.
    assert len(jf.encode_key([UINT64_MAX] * 42)) <= jf.MAX_INVOCATION_KEY_BYTES
    assert len(jf.encode_key([255] * 191)) == jf.MAX_INVOCATION_KEY_BYTES
    assert len(jf.encode_key([UINT64_MAX] * 43)) > jf.MAX_INVOCATION_KEY_BYTES


@pytest.mark.spec("JF-010")
@given(st.binary(max_size=24))
@example(b"\x01\x00")  # non-minimal
@example(b"\x09" + b"\x01" * 9)  # length byte above 8
@example(b"\x02\x01")  # truncated
def test_fast_key_check_agrees_with_the_decoder(data: bytes) -> None:
    try:
        decodes = bool(jf.decode_key(data))
    except jf.FormatError:
        decodes = False
    assert (jf.match_valid_key(data) is not None) is decodes


@given(key_tuples(min_size=1))
def test_every_encoded_key_passes_the_fast_check(key: tuple[int, ...]) -> None:
    assert jf.match_valid_key(jf.encode_key(key)) is not None
