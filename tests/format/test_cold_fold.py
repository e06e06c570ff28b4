"""The fold's shortcuts for a cold resume (issue 17) conclude what the plain rules do.

``CallIndex.fold_records`` tells the run's records from others' by two byte
comparisons instead of ``startswith``, builds each request's ``CallEntry``
from its non-default fields, and shares one str per task name;
``encode_component`` builds its two-byte table a row at a time. Each test
would fail if a shortcut read a record of another run, dropped a field, or
built a wrong key.
"""

from __future__ import annotations

import journal_format as jf

K1 = jf.encode_key((1,))
K2 = jf.encode_key((2,))
STARTED = jf.RunStarted(process="m:f", fingerprint="ab", inputs=b"\x90")


def _records(run_id: str, events: list[jf.Event]) -> list[tuple[bytes, bytes]]:
    """The events as stored: sealed envelopes on a chain, under their keys."""
    prefix, prev, out = jf.run_prefix(run_id), jf.genesis_digest(run_id), []
    for seq, event in enumerate(events):
        envelope = jf.Envelope(v=1, seq=seq, prev=prev, at=0, event=event)
        sealed = jf.seal(jf.encode_record(envelope))
        prev = sealed[: jf.ADDRESS_SIZE]
        out.append((jf.event_key(prefix, seq), sealed))
    return out


def _requests(count: int) -> list[jf.Event]:
    return [
        STARTED,
        *(
            jf.EffectRequested(key=jf.encode_key((i,)), task="t", kind="task", args=b"")
            for i in range(count)
        ),
    ]


def test_the_fold_stops_at_the_next_run_whose_keys_have_the_same_length() -> None:
    # "r1" and "r2" have prefixes of one length: r2's keys follow r1's directly,
    # with the same length, so only the prefix tells them apart.
    records = _records("r1", _requests(3)) + _records("r2", _requests(2))
    index = jf.CallIndex()
    index.fold_records("r1", records)
    assert index.events == 4 and index.head == records[3][1][: jf.ADDRESS_SIZE]
    assert sorted(index.calls) == [jf.encode_key((i,)) for i in range(3)]


def test_the_fold_reads_nothing_from_a_run_before_its_own() -> None:
    records = _records("r0", _requests(2)) + _records("r1", _requests(2))
    index = jf.CallIndex()
    index.fold_records("r1", records)  # not positioned on r1: nothing is r1's
    assert index.events == 0 and not index.calls


def test_the_fold_stops_at_a_key_of_another_length_inside_the_runs_range() -> None:
    records = _records("r1", _requests(3))
    odd = (jf.run_prefix("r1") + b"\x00" * 9, records[2][1])  # 9 seq bytes
    index = jf.CallIndex()
    index.fold_records("r1", [*records[:2], odd, *records[2:]])
    assert index.events == 2


def test_lean_request_entries_keep_every_field_and_share_names() -> None:
    history: list[jf.Event] = [
        STARTED,
        jf.EffectRequested(key=K1, task="m.lint", kind="task", args=b"\xa1a"),
        jf.EffectRequested(
            key=K2, task="m.review", kind="agent", args=b"", deadline_ns=7
        ),
        jf.EffectRequested(
            key=jf.encode_key((3,)), task="m.lint", kind="task", args=b""
        ),
    ]
    stored = jf.CallIndex()
    stored.fold_records("r1", _records("r1", history))
    plain = jf.CallIndex()
    plain.fold(0, history)  # the rules of JF-102, one event at a time
    assert stored.calls == plain.calls
    assert stored.calls[K2].deadline_ns == 7 and stored.calls[K2].effect_kind == "agent"
    first, third = stored.calls[K1], stored.calls[jf.encode_key((3,))]
    assert first.task is third.task  # one str per task name, not one per request


def test_two_byte_key_components_equal_their_arithmetic_in_any_order() -> None:
    # Rows are built on first use: ask for the last row first, then all.
    assert jf.encode_component(65535) == b"\x02\xff\xff"
    for index in (*range(65535, 255, -1), *range(256, 65536)):
        expected = b"\x02" + index.to_bytes(2, "big")
        assert jf.encode_component(index) == expected
