"""Checkpoints and the call index: JF-101, JF-102, JF-104 (no runtime involved)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, strategies as st

import journal_format as jf
from tests.strategies import histories

K0 = jf.encode_key((0,))
K1 = jf.encode_key((1,))
K2 = jf.encode_key((2,))
K3 = jf.encode_key((3,))
K4 = jf.encode_key((4, 0))
ERR = jf.ErrorInfo(type="ValueError", message="boom")
STARTED = jf.RunStarted(process="m:f", fingerprint="ab", inputs=b"\x90")


def _fold(events: list[Any], start: int = 0) -> jf.CallIndex:
    index = jf.CallIndex()
    index.fold(start, events)
    return index


def _roundtrip(index: jf.CallIndex, run_id: str = "r1") -> jf.CallIndex:
    """Through the bytes a checkpoint is stored as."""
    data = jf.encode_checkpoint(index.to_checkpoint(run_id, jf.FORMAT_VERSION))
    return jf.CallIndex.from_checkpoint(jf.decode_checkpoint(data))


@pytest.mark.spec("JF-104")
@given(histories(), st.data())
def test_checkpoint_then_tail_equals_folding_everything(
    history: list[Any], data: st.DataObject
) -> None:
    split = data.draw(st.integers(0, len(history)))
    whole = _fold(history)
    resumed = _roundtrip(_fold(history[:split]))
    resumed.fold(split, history[split:])
    assert resumed.events == whole.events == len(history)
    assert resumed.to_checkpoint("r1", 1) == whole.to_checkpoint("r1", 1)


@pytest.mark.spec("JF-101", "JF-102")
def test_the_stored_checkpoint_has_the_specified_layout() -> None:
    history = [
        STARTED,  # 0
        jf.EffectRequested(key=K1, task="lint", kind="task", args=b"\xa1a"),  # 1
        jf.ValueRecorded(key=K0, kind="now", value=123),  # 2
        jf.EffectCompleted(key=K1, result=b"\x07"),  # 3
        jf.TimerStarted(key=K2, due_ns=99),  # 4
        jf.TimerFired(key=K2),  # 5
        jf.EffectRequested(key=K3, task="t", kind="agent", args=b"", deadline_ns=7),
        jf.AttemptFailed(key=K3, attempt=1, error=ERR),  # 7
        jf.EffectFailed(key=K3, error=ERR),  # 8
        jf.LogLine(key=K4, ordinal=0, message="hello"),  # 9
        jf.SignalReceived(name="go", payload=b"\x01"),  # 10
        jf.EffectRequested(key=K4, task="w", kind="signal", args=b"\x80"),  # 11
        jf.EffectCompleted(key=K4, result=b"\x01", signal_seq=10),  # 12
        jf.EffectAbandoned(key=K4, reason="sibling failed"),  # 13
        jf.TimerFired(key=K1),  # 14: not a timer, so it changes nothing
    ]
    index = _fold(history)
    index.head = b"\x11" * 32
    raw = msgspec.msgpack.decode(
        jf.encode_checkpoint(index.to_checkpoint("r1", jf.FORMAT_VERSION))
    )
    # Map entries in the specified order; defaults omitted (none here).
    assert list(raw) == [
        "v",
        "run_id",
        "events",
        "head",
        "keys",
        "calls",
        "logs",
        "signals",
        "consumed_signals",
        "started",
        "last_event",
    ]
    assert raw["v"] == jf.FORMAT_VERSION and raw["run_id"] == "r1"
    assert raw["events"] == 15 and raw["head"] == b"\x11" * 32
    assert raw["keys"] == sorted([K0, K1, K2, K3, K4]) == [K0, K1, K2, K3, K4]
    error = {"type": "ValueError", "message": "boom"}  # traceback at its default
    assert raw["calls"] == [
        [1, 2, "now", "", b"", None, None, 0, 123, 0, False, False, None],  # value
        [0, 1, "lint", "task", b"\xa1a", b"\x07", None, 0, None, 0, False, False, None],
        [2, 4, "", "", b"", None, None, 0, None, 99, True, False, None],  # fired timer
        [0, 6, "t", "agent", b"", None, error, 1, None, 0, False, False, 7],
        [0, 11, "w", "signal", b"\x80", b"\x01", None, 0, None, 0, False, True, None],
    ]
    assert raw["logs"] == [[K4, 0]]
    assert raw["signals"] == [[10, "go", b"\x01"]]
    assert raw["consumed_signals"] == [10]
    assert raw["started"]["t"] == "run_started"
    assert raw["last_event"] == {"t": "timer_fired", "key": K1}


@pytest.mark.spec("JF-102")
@pytest.mark.parametrize(
    "outcome",
    [
        jf.EffectCompleted(key=K1, result=b""),
        jf.EffectFailed(key=K1, error=ERR),
        jf.AttemptFailed(key=K1, attempt=1, error=ERR),
        jf.EffectAbandoned(key=K1, reason="x"),
    ],
    ids=jf.event_tag,
)
def test_an_outcome_without_a_request_is_refused(outcome: Any) -> None:
    with pytest.raises(jf.OrphanOutcome) as caught:
        _fold([STARTED, jf.ValueRecorded(key=K1, kind="now", value=1), outcome])
    assert caught.value.seq == 2 and caught.value.key == K1


@pytest.mark.spec("JF-102")
def test_a_call_state_missing_trailing_entries_takes_their_defaults() -> None:
    data = msgspec.msgpack.encode([0, 5, "lint", "task", b"\x01"])
    state = msgspec.msgpack.decode(data, type=jf.CallEntry)
    assert state == jf.CallEntry(jf.EFFECT, 5, "lint", "task", b"\x01")
    assert state.result is None and state.deadline_ns is None and not state.fired


@pytest.mark.spec("JF-101")
def test_a_checkpoint_whose_keys_and_calls_disagree_does_not_decode() -> None:
    index = _fold([STARTED, jf.TimerStarted(key=K1, due_ns=1)])
    checkpoint = index.to_checkpoint("r1", 1)
    bad = msgspec.structs.replace(checkpoint, keys=[*checkpoint.keys, K2])
    with pytest.raises(jf.FormatError, match="1 call states"):
        jf.decode_checkpoint(jf.encode_checkpoint(bad))
    with pytest.raises(jf.FormatError, match="does not decode"):
        jf.decode_checkpoint(b"\x93\x01\x02")


def _records(run_id: str, history: list[Any]) -> list[tuple[bytes, bytes]]:
    """The history as stored: sealed envelopes on a chain, under their keys."""
    prefix = jf.run_prefix(run_id)
    prev = jf.genesis_digest(run_id)
    out = []
    for seq, event in enumerate(history):
        sealed = jf.seal(
            jf.encode_record(jf.Envelope(v=1, seq=seq, prev=prev, at=0, event=event))
        )
        prev = sealed[:32]
        out.append((jf.event_key(prefix, seq), sealed))
    return out


@pytest.mark.spec("JF-104", "JF-063", "JF-064")
@given(histories(), st.data())
def test_folding_stored_records_equals_folding_the_events(
    history: list[Any], data: st.DataObject
) -> None:
    records = _records("r1", history)
    # Another run's records follow in key order; reading must stop before them.
    records += _records("r10", history[:2])
    split = data.draw(st.integers(0, len(history)))
    index = jf.CallIndex()
    index.fold_records("r1", records[:split])  # a checkpoint's worth, then the rest
    index = _roundtrip(index) if split else index
    index.fold_records("r1", records[split:])
    whole = _fold(history)
    whole.head = records[len(history) - 1][1][:32]
    assert index.events == len(history) and index.head == whole.head
    assert index.to_checkpoint("r1", 1) == whole.to_checkpoint("r1", 1)


@pytest.mark.spec("JF-061", "JF-064", "JF-066")
def test_folding_stored_records_stops_at_the_first_damaged_one() -> None:
    history = [STARTED, *(jf.TimerStarted(key=K1, due_ns=i) for i in range(5))]
    records = _records("r1", history)
    flipped = bytearray(records[3][1])
    flipped[-1] ^= 1
    broken = [*records[:3], (records[3][0], bytes(flipped)), *records[4:]]
    with pytest.raises(jf.DamagedEvent, match="blake3 digest") as caught:
        jf.CallIndex().fold_records("r1", broken)
    assert caught.value.seq == 3
    other = _records("r1", [STARTED, jf.TimerStarted(key=K1, due_ns=9)])
    spliced = [*records[:2], other[1], *records[2:]]  # seq 1 twice: the chain breaks
    with pytest.raises(jf.DamagedEvent) as caught:
        jf.CallIndex().fold_records("r1", spliced)
    assert caught.value.seq == 2 and "expected seq 2, found 1" in caught.value.what
    relinked = [*records[:2], *records[3:]]  # seq 2 missing
    with pytest.raises(jf.DamagedEvent) as caught:
        jf.CallIndex().fold_records("r1", relinked)
    assert caught.value.seq == 2 and caught.value.key == K1
    index = jf.CallIndex()
    index.fold_records("r1", records, stop=4)
    assert index.events == 4 and index.head == records[3][1][:32]


@pytest.mark.spec("JF-100", "JF-101")
@given(histories())
def test_sealing_in_place_gives_the_bytes_of_seal_of_the_encoding(
    history: list[Any],
) -> None:
    # seal_checkpoint writes the encoding after room for its digest (no
    # second copy of a large checkpoint): the stored bytes must not change.
    checkpoint = _fold(history).to_checkpoint("r1", jf.FORMAT_VERSION)
    sealed = jf.seal_checkpoint(checkpoint)
    assert bytes(sealed) == jf.seal(jf.encode_checkpoint(checkpoint))
    assert jf.unseal_checkpoint(bytes(sealed)) == checkpoint


@pytest.mark.spec("JF-100")
def test_unsealing_a_checkpoint_checks_its_digest() -> None:
    checkpoint = _fold([STARTED, jf.TimerStarted(key=K1, due_ns=1)]).to_checkpoint(
        "r1", 1
    )
    sealed = bytearray(jf.seal_checkpoint(checkpoint))
    sealed[-1] ^= 1
    with pytest.raises(jf.FormatError, match="digest"):
        jf.unseal_checkpoint(bytes(sealed))
    with pytest.raises(jf.FormatError, match="truncated"):
        jf.unseal_checkpoint(bytes(sealed[:5]))
