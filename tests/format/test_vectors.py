"""Test vectors: fixed records and the exact bytes format version 1 gives them.

The hex below pins the on-disk format. A change to any of these bytes is a
FORMAT CHANGE: existing journals would no longer verify or decode the same. It
needs a new format version and an entry in docs/journal-format.md, never a
quiet update of the expected hex. The same vectors are printed in the spec
(section "Test vectors"); ``test_spec_shows_the_same_vectors`` keeps the two
identical.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
import pytest

import journal_format as jf

SPEC = Path(__file__).resolve().parents[2] / "docs" / "journal-format.md"

# EVIDENCE-OF: JF-090
VECTORS = {
    "key-3.1.0": "0103010100",
    "key-3.10.0": "0103010a00",
    "key-256.0": "02010000",
    "key-max": "08ffffffffffffffff",
    "genesis-r1": "349ddf59797467d0795bd860136b5f69375da9c88aad81073bb1fe51417cb7ee",
    "payload-inputs": "82a766656174757265a178a566696c657392a4612e7079a4622e7079",
    "address-inputs": (
        "e9e043566766bef2408d89ab12a1f02c9aa395304d54939d92463d290ad47b1e"
    ),
    "payload-args": "81a566696c657391a4612e7079",
    "address-args": "88335e63ac49f13d1b350904c4f9540c9c26704fe95b2580649e7d0428ed03a7",
    "payload-result": "82a26f6bc3a87761726e696e677300",
    "address-result": (
        "b90f94ce5d6f3645588b96afa723b7322a139a55777fa795d0df5a957043b368"
    ),
    "event-0": (
        "cb832b946502bd46f8ae616ea443bb9e1ec3069c6f0945a8c5ac438a80d80da4"
        "85a17601a373657100a470726576c420349ddf59797467d0795bd860136b5f69"
        "375da9c88aad81073bb1fe51417cb7eea26174cf17979cfe362a0000a5657665"
        "6e7484a174ab72756e5f73746172746564a770726f63657373aa63693a70726f"
        "63657373ab66696e6765727072696e74a466303064a6696e70757473c420e9e0"
        "43566766bef2408d89ab12a1f02c9aa395304d54939d92463d290ad47b1e"
    ),
    "event-1": (
        "40fa0d39cfaefae8f12c6a64fbb0193d7744c90bc73e86ee0bd00ea42a52699b"
        "85a17601a373657101a470726576c420cb832b946502bd46f8ae616ea443bb9e"
        "1ec3069c6f0945a8c5ac438a80d80da4a26174cf17979cfe362a0001a5657665"
        "6e7485a174a9726571756573746564a36b6579c4050103010100a47461736ba7"
        "63692e6c696e74a46b696e64a47461736ba461726773c42088335e63ac49f13d"
        "1b350904c4f9540c9c26704fe95b2580649e7d0428ed03a7"
    ),
    "event-2": (
        "c51236eb2401af407c4d70db1f01999730346f86d2837b96a189e213552f479b"
        "85a17601a373657102a470726576c42040fa0d39cfaefae8f12c6a64fbb0193d"
        "7744c90bc73e86ee0bd00ea42a52699ba26174cf17979cfe362a0002a5657665"
        "6e7483a174a9636f6d706c65746564a36b6579c4050103010100a6726573756c"
        "74c420b90f94ce5d6f3645588b96afa723b7322a139a55777fa795d0df5a9570"
        "43b368"
    ),
    "event-3": (
        "1e84e6b527c030334a037272478c89651229599e1a40dacaa5f29ae28f780b34"
        "85a17601a373657103a470726576c420c51236eb2401af407c4d70db1f019997"
        "30346f86d2837b96a189e213552f479ba26174cf17979cfe362a0003a5657665"
        "6e7484a174a66661696c6564a36b6579c4020104a56572726f7282a474797065"
        "aa56616c75654572726f72a76d657373616765a962616420696e707574a86174"
        "74656d70747303"
    ),
    "run-r1": (
        "7e9a3317fd54889cc1d521ace827bc886d611bebad5b113c9a5c12e8ec79b2c4"
        "de0009a17601a672756e5f6964a27231a770726f63657373aa63693a70726f63"
        "657373ab66696e6765727072696e74a466303064a6737461747573a66661696c"
        "6564aa637265617465645f6e73cf17979cfe362a0000aa757064617465645f6e"
        "73cf17979cfe362a0003a66576656e747304a468656164c4201e84e6b527c030"
        "334a037272478c89651229599e1a40dacaa5f29ae28f780b34"
    ),
    "meta": (
        "83a56d61676963b57265706c61792d656e67696e652d6a6f75726e616cac7265"
        "61645f76657273696f6e01ad77726974655f76657273696f6e01"
    ),
    "events-key-r1-1": "0272310000000000000001",
    "keys-key-r1-3.1.0": "0272310103010100",
}

T0 = 1_700_000_000_000_000_000
"""``at`` of event 0: 2023-11-14T22:13:20Z in UTC nanoseconds."""

INPUTS = {"feature": "x", "files": ["a.py", "b.py"]}
ARGS = {"files": ["a.py"]}
RESULT = {"ok": True, "warnings": 0}


def _events() -> list[Any]:
    key = jf.encode_key((3, 1, 0))
    return [
        jf.RunStarted(
            process="ci:process",
            fingerprint="f00d",
            inputs=jf.address_of(jf.encode_payload(INPUTS)),
        ),
        jf.EffectRequested(
            key=key,
            task="ci.lint",
            kind="task",
            args=jf.address_of(jf.encode_payload(ARGS)),
        ),
        jf.EffectCompleted(key=key, result=jf.address_of(jf.encode_payload(RESULT))),
        jf.EffectFailed(
            key=jf.encode_key((4,)),
            error=jf.ErrorInfo(type="ValueError", message="bad input"),
            attempts=3,
        ),
    ]


def _envelopes() -> list[jf.Envelope]:
    return [
        jf.Envelope(v=1, seq=seq, prev=b"", at=T0 + seq, event=event)
        for seq, event in enumerate(_events())
    ]


def _compute() -> dict[str, str]:
    out = {
        "key-3.1.0": jf.encode_key((3, 1, 0)).hex(),
        "key-3.10.0": jf.encode_key((3, 10, 0)).hex(),
        "key-256.0": jf.encode_key((256, 0)).hex(),
        "key-max": jf.encode_key((2**64 - 1,)).hex(),
        "genesis-r1": jf.genesis_digest("r1").hex(),
    }
    for name, value in (("inputs", INPUTS), ("args", ARGS), ("result", RESULT)):
        data = jf.encode_payload(value)
        out[f"payload-{name}"] = data.hex()
        out[f"address-{name}"] = jf.address_of(data).hex()
    prev = jf.genesis_digest("r1")
    for envelope in _envelopes():
        sealed = jf.seal(jf.encode_record(msgspec.structs.replace(envelope, prev=prev)))
        out[f"event-{envelope.seq}"] = sealed.hex()
        prev = sealed[: jf.ADDRESS_SIZE]
    record = jf.RunRecord(
        v=1,
        run_id="r1",
        process="ci:process",
        fingerprint="f00d",
        status="failed",
        created_ns=T0,
        updated_ns=T0 + 3,
        events=4,
        head=prev,
    )
    out["run-r1"] = jf.seal(jf.encode_record(record)).hex()
    meta = jf.FormatMeta(magic=jf.MAGIC, read_version=1, write_version=1)
    out["meta"] = jf.encode_record(meta).hex()
    out["events-key-r1-1"] = jf.event_key(jf.run_prefix("r1"), 1).hex()
    out["keys-key-r1-3.1.0"] = (jf.run_prefix("r1") + jf.encode_key((3, 1, 0))).hex()
    return out


@pytest.mark.spec("JF-090", "JF-010", "JF-022", "JF-034", "JF-038", "JF-063")
@pytest.mark.parametrize("name", list(VECTORS))
def test_writer_produces_the_vector(name: str) -> None:
    assert _compute()[name] == VECTORS[name]


def test_every_vector_is_checked() -> None:
    assert set(_compute()) == set(VECTORS)


@pytest.mark.spec("JF-090", "JF-061", "JF-064")
def test_reader_decodes_the_vectors() -> None:
    prev = bytes.fromhex(VECTORS["genesis-r1"])
    for seq, envelope in enumerate(_envelopes()):
        digest, data = jf.unseal(bytes.fromhex(VECTORS[f"event-{seq}"]))
        decoded = jf.decode_envelope(data)
        assert decoded == msgspec.structs.replace(envelope, prev=prev)
        prev = digest
    _, data = jf.unseal(bytes.fromhex(VECTORS["run-r1"]))
    assert jf.decode_run_record(data).head == prev
    for name, value in (("inputs", INPUTS), ("args", ARGS), ("result", RESULT)):
        blob = bytes.fromhex(VECTORS[f"payload-{name}"])
        address = bytes.fromhex(VECTORS[f"address-{name}"])
        assert jf.decode_payload(jf.check_blob(address, blob)) == value


def _spec_vectors() -> dict[str, str]:
    """The ``vector NAME`` code blocks of the spec, hex with whitespace removed."""
    text = SPEC.read_text(encoding="utf-8")
    found: dict[str, str] = {}
    for block in re.findall(r"```text\n(vector [^\n]+\n.*?)```", text, flags=re.S):
        head, _, body = block.partition("\n")
        name = head.removeprefix("vector ").strip()
        assert name not in found, f"vector {name} appears twice in the spec"
        found[name] = "".join(body.split())
    return found


@pytest.mark.spec("JF-090")
def test_spec_shows_the_same_vectors() -> None:
    assert _spec_vectors() == VECTORS


@pytest.mark.spec("JF-070")
def test_run_record_written_with_a_fixmap_header_still_reads() -> None:
    # Before RunRecord had 16 fields the writer used a fixmap header (0x89);
    # journals holding such records must keep reading.
    old = bytes.fromhex(VECTORS["run-r1"])
    _, data = jf.unseal(old)
    assert data[:3] == bytes.fromhex("de0009")
    fixmap = b"\x89" + data[3:]
    record = jf.decode_run_record(fixmap)
    assert record == jf.decode_run_record(data)
    assert record.queue is None and record.waiting_seq is None
