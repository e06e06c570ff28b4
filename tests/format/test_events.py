"""Envelopes and event bodies: JF-030 to JF-039, JF-080."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings, strategies as st

import journal_format as jf
from tests.strategies import EVENT_STRATEGIES, envelopes, events, run_records

#: The tag of every event type, as in the spec's event-type table. A tag may
#: never change (JF-030): a change here is a format change.
TAGS = {
    "run_started": jf.RunStarted,
    "requested": jf.EffectRequested,
    "completed": jf.EffectCompleted,
    "failed": jf.EffectFailed,
    "claimed": jf.EffectClaimed,
    "abandoned": jf.EffectAbandoned,
    "attempt_failed": jf.AttemptFailed,
    "log": jf.LogLine,
    "value": jf.ValueRecorded,
    "timer_started": jf.TimerStarted,
    "timer_fired": jf.TimerFired,
    "signal": jf.SignalReceived,
    "run_completed": jf.RunCompleted,
    "run_failed": jf.RunFailed,
    "run_waiting": jf.RunWaiting,
    "cancel_requested": jf.CancelRequested,
    "run_cancelled": jf.RunCancelled,
    "run_timed_out": jf.RunTimedOut,
    "execution": jf.ExecutionStarted,
    "patched": jf.PatchMarker,
    "race_won": jf.RaceWon,
    "failed_fast": jf.FailedFast,
}

#: Field names of every event type in the order writers emit them (JF-038).
FIELDS = {
    jf.RunStarted: (
        "process",
        "fingerprint",
        "inputs",
        "parent",
        "fork_at",
        "seed",
        "pid",
        "host",
        "code",
    ),
    jf.EffectRequested: ("key", "task", "kind", "args", "deadline_ns"),
    jf.EffectCompleted: ("key", "result", "signal_seq", "by"),
    jf.EffectFailed: ("key", "error", "attempts", "by", "signal_seq"),
    jf.EffectClaimed: ("key", "worker", "lease_until_ns"),
    jf.EffectAbandoned: ("key", "reason"),
    jf.AttemptFailed: ("key", "attempt", "error", "retry_in"),
    jf.LogLine: ("key", "ordinal", "message", "fields"),
    jf.ValueRecorded: ("key", "kind", "value"),
    jf.TimerStarted: ("key", "due_ns"),
    jf.TimerFired: ("key",),
    jf.SignalReceived: ("name", "payload", "error"),
    jf.RunCompleted: ("result",),
    jf.RunFailed: ("error",),
    jf.RunWaiting: ("pending", "next_due_ns"),
    jf.CancelRequested: ("reason",),
    jf.RunCancelled: ("reason", "abandoned"),
    jf.RunTimedOut: ("deadline_ns",),
    jf.ExecutionStarted: ("pid", "host", "why", "fingerprint", "code"),
    jf.PatchMarker: ("key", "patch"),
    jf.RaceWon: ("key", "winner", "cancelled"),
    jf.FailedFast: ("key", "branch", "cancelled"),
}


#: Required fields as first released; fields added later must have defaults.
FIRST_FIELDS = {
    jf.RunStarted: ("process", "fingerprint", "inputs"),
    jf.EffectRequested: ("key", "task", "kind", "args"),
    jf.EffectCompleted: ("key", "result"),
    jf.EffectFailed: ("key", "error"),
    jf.EffectClaimed: ("key", "worker", "lease_until_ns"),
    jf.EffectAbandoned: ("key", "reason"),
    jf.AttemptFailed: ("key", "attempt", "error"),
    jf.LogLine: ("key", "ordinal", "message"),
    jf.ValueRecorded: ("key", "kind", "value"),
    jf.TimerStarted: ("key", "due_ns"),
    jf.TimerFired: ("key",),
    jf.SignalReceived: ("name", "payload"),
    jf.RunCompleted: ("result",),
    jf.RunFailed: ("error",),
    jf.RunWaiting: (),
    jf.CancelRequested: (),
    jf.RunCancelled: (),
    jf.RunTimedOut: ("deadline_ns",),
    jf.ExecutionStarted: ("pid", "host", "why"),
    jf.PatchMarker: ("key", "patch"),
    jf.RaceWon: ("key", "winner"),
    jf.FailedFast: ("key", "branch"),
}


def _envelope_map(event: Any) -> dict[str, Any]:
    return {"v": 1, "seq": 0, "prev": b"\x00" * 32, "at": 0, "event": event}


def test_every_event_type_has_a_strategy() -> None:
    assert set(EVENT_STRATEGIES) == set(jf.EVENT_TYPES)


@pytest.mark.spec("JF-030")
def test_tags_are_explicit_and_stable() -> None:
    assert {t: cls for t, cls in TAGS.items()} == {
        cls.__struct_config__.tag: cls for cls in jf.EVENT_TYPES
    }
    for cls in jf.EVENT_TYPES:
        config = cls.__struct_config__
        assert config.tag_field == "t"
        assert config.tag != cls.__name__  # never the class-name default
        assert config.frozen
        assert config.omit_defaults


@pytest.mark.spec("JF-030", "JF-034")
@pytest.mark.parametrize("event_type", jf.EVENT_TYPES, ids=lambda t: t.__name__)
@settings(max_examples=40)
@given(data=st.data())
def test_every_event_type_round_trips_in_an_envelope(
    event_type: type[Any], data: st.DataObject
) -> None:
    event = data.draw(EVENT_STRATEGIES[event_type])
    envelope = data.draw(
        envelopes.map(lambda e: msgspec.structs.replace(e, event=event))
    )
    encoded = jf.encode_record(envelope)
    decoded = jf.decode_envelope(encoded)
    assert decoded == envelope
    assert type(decoded.event) is event_type
    assert jf.event_tag(decoded.event) == event_type.__struct_config__.tag
    raw = msgspec.msgpack.decode(encoded)
    assert raw["event"]["t"] == jf.event_tag(event)


@pytest.mark.spec("JF-034", "JF-038")
@given(envelopes)
def test_envelope_is_a_map_in_field_order(envelope: jf.Envelope) -> None:
    raw = msgspec.msgpack.decode(jf.encode_record(envelope))
    assert list(raw) == ["v", "seq", "prev", "at", "event"]
    body = list(raw["event"])
    assert body[0] == "t"
    order = FIELDS[type(envelope.event)]
    assert body[1:] == [f for f in order if f in body[1:]]  # table order


@pytest.mark.spec("JF-038")
def test_field_table_matches_the_structs() -> None:
    assert {cls: cls.__struct_fields__ for cls in jf.EVENT_TYPES} == FIELDS


def _default(field: msgspec.structs.FieldInfo) -> Any:
    if field.default_factory is not msgspec.NODEFAULT:
        return field.default_factory()
    return field.default


@pytest.mark.spec("JF-031")
@given(events)
def test_fields_left_at_their_default_are_omitted(event: Any) -> None:
    fields = msgspec.structs.fields(event)
    required = {f.name: getattr(event, f.name) for f in fields if f.required}
    bare = type(event)(**required)  # every optional field left unset
    body = msgspec.msgpack.decode(jf.encode_record(jf.Envelope(1, 0, b"", 0, bare)))
    assert set(body["event"]) == {"t", *required}
    # A field set to a value other than its default is written.
    full = msgspec.msgpack.decode(jf.encode_record(jf.Envelope(1, 0, b"", 0, event)))
    for field in fields:
        if getattr(event, field.name) != _default(field):
            assert field.name in full["event"], field.name
    error = getattr(event, "error", None)
    if error is not None:
        assert ("traceback" in full["event"]["error"]) == (error.traceback != "")


@pytest.mark.spec("JF-031")
def test_reader_treats_absent_and_default_alike() -> None:
    written = {"t": "attempt_failed", "key": b"\x00", "attempt": 1, "retry_in": 0.0}
    written["error"] = {"type": "E", "message": "m"}
    absent = {k: v for k, v in written.items() if k != "retry_in"}
    decode = jf.decode_envelope
    assert decode(msgspec.msgpack.encode(_envelope_map(written))) == decode(
        msgspec.msgpack.encode(_envelope_map(absent))
    )


@pytest.mark.spec("JF-031")
def test_every_field_added_after_the_first_has_a_default() -> None:
    # The fields of format version 1's first release: all later ones are optional.
    for cls in jf.EVENT_TYPES:
        for field in msgspec.structs.fields(cls):
            if field.name not in FIRST_FIELDS.get(cls, ()):
                assert not field.required, f"{cls.__name__}.{field.name}"


class TimerFiredV2(
    msgspec.Struct,
    frozen=True,
    omit_defaults=True,
    tag_field="t",
    tag="timer_fired",
    kw_only=True,
):
    """A later format's TimerFired with an optional field added (JF-080)."""

    key: bytes
    late_by_ns: int = 0


class EnvelopeV2(msgspec.Struct, frozen=True, omit_defaults=True):
    v: int
    seq: int
    prev: bytes
    at: int
    event: TimerFiredV2


@pytest.mark.spec("JF-080", "JF-031")
def test_adding_an_optional_field_keeps_old_bytes_and_digests() -> None:
    old = jf.encode_record(jf.Envelope(1, 3, b"p" * 32, 7, jf.TimerFired(key=b"\x00")))
    encoder = msgspec.msgpack.Encoder(order="deterministic")
    new = encoder.encode(EnvelopeV2(1, 3, b"p" * 32, 7, TimerFiredV2(key=b"\x00")))
    assert new == old
    assert jf.address_of(new) == jf.address_of(old)
    # An event that uses the new field is still read by this version (JF-036).
    used = encoder.encode(
        EnvelopeV2(1, 3, b"p" * 32, 7, TimerFiredV2(key=b"\x00", late_by_ns=5))
    )
    assert used != old
    assert jf.decode_envelope(used) == jf.decode_envelope(old)


@pytest.mark.spec("JF-036")
def test_unknown_fields_are_ignored_by_readers() -> None:
    event = {"t": "timer_fired", "key": b"\x00", "late_by_ns": 5}
    raw = msgspec.msgpack.encode({**_envelope_map(event), "zz": [1, 2]})
    assert jf.decode_envelope(raw) == jf.Envelope(
        v=1, seq=0, prev=b"\x00" * 32, at=0, event=jf.TimerFired(key=b"\x00")
    )


@pytest.mark.spec("JF-038")
def test_readers_accept_any_field_order() -> None:
    event = {"key": b"\x01\x05", "due_ns": 9, "t": "timer_started"}
    raw = msgspec.msgpack.encode(dict(reversed(list(_envelope_map(event).items()))))
    assert jf.decode_envelope(raw).event == jf.TimerStarted(key=b"\x01\x05", due_ns=9)


@pytest.mark.spec("JF-035")
@pytest.mark.parametrize("tag", ["nope", "TimerFired", "", 7])
def test_unknown_tag_is_rejected(tag: Any) -> None:
    raw = msgspec.msgpack.encode(_envelope_map({"t": tag, "key": b"\x00"}))
    with pytest.raises(jf.FormatError, match="does not decode"):
        jf.decode_envelope(raw)


@pytest.mark.spec("JF-037")
@pytest.mark.parametrize(
    "envelope",
    [
        _envelope_map({"t": "timer_fired"}),  # required field missing
        _envelope_map({"t": "timer_fired", "key": "0"}),  # str, not bin
        _envelope_map({"t": "timer_started", "key": b"\x00", "due_ns": 1.5}),
        {**_envelope_map({"t": "timer_fired", "key": b"\x00"}), "seq": "0"},
        {k: v for k, v in _envelope_map({"t": "run_waiting"}).items() if k != "prev"},
        [1, 0, b"", 0, {"t": "run_waiting"}],  # an array, not a map
    ],
)
def test_missing_or_mistyped_fields_are_rejected(envelope: Any) -> None:
    with pytest.raises(jf.FormatError):
        jf.decode_envelope(msgspec.msgpack.encode(envelope))


@pytest.mark.spec("JF-039")
@given(envelopes)
def test_envelope_records_the_format_version(envelope: jf.Envelope) -> None:
    assert jf.FORMAT_VERSION == 1
    raw = msgspec.msgpack.decode(jf.encode_record(envelope))
    assert raw["v"] == jf.FORMAT_VERSION


@pytest.mark.spec("JF-033")
def test_keys_and_payloads_are_stored_as_bytes() -> None:
    args = jf.address_of(jf.encode_payload({"files": ["a.py"]}))
    event = jf.EffectRequested(
        key=jf.encode_key((3, 1, 0)), task="t", kind="task", args=args
    )
    raw = msgspec.msgpack.decode(jf.encode_record(jf.Envelope(1, 0, b"", 0, event)))
    assert raw["event"]["key"] == bytes.fromhex("0103010100")
    assert raw["event"]["args"] == args
    assert len(raw["event"]["args"]) == jf.ADDRESS_SIZE


@pytest.mark.spec("JF-070")
@given(run_records)
def test_run_record_round_trips(record: jf.RunRecord) -> None:
    data = jf.encode_record(record)
    assert jf.decode_run_record(data) == record
    raw = msgspec.msgpack.decode(data)
    assert list(raw)[:9] == [
        "v", "run_id", "process", "fingerprint", "status",
        "created_ns", "updated_ns", "events", "head",
    ]  # fmt: skip


@pytest.mark.spec("JF-070")
def test_damaged_run_record_is_rejected() -> None:
    with pytest.raises(jf.FormatError, match="run record"):
        jf.decode_run_record(msgspec.msgpack.encode({"v": 1, "run_id": "r"}))


# -- the spec's tables agree with the code -----------------------------------------

SPEC = Path(__file__).resolve().parents[2] / "docs" / "journal-format.md"


def _spec_rows(pattern: str) -> list[tuple[str, ...]]:
    return re.findall(pattern, SPEC.read_text(encoding="utf-8"), flags=re.M)


@pytest.mark.spec("JF-030", "JF-038")
def test_spec_event_table_matches_the_code() -> None:
    rows = _spec_rows(r"^\| `(\w+)` \| `(\w+)` \| (.*) \| (\d+) \|$")
    table = {
        tag: (struct, re.findall(r"`(\w+)`: ", fields))
        for tag, struct, fields, _ in rows
    }
    assert table == {
        tag: (cls.__name__, list(cls.__struct_fields__)) for tag, cls in TAGS.items()
    }
    assert [tag for tag, *_ in rows] == [
        c.__struct_config__.tag for c in jf.EVENT_TYPES
    ]


@pytest.mark.spec("JF-070")
def test_spec_run_record_table_matches_the_code() -> None:
    text = SPEC.read_text(encoding="utf-8")
    section = text[text.index("**JF-070**") : text.index("## 9.")]
    names = re.findall(r"^\| `(\w+)` \|", section, flags=re.M)
    assert names == list(jf.RunRecord.__struct_fields__)
