"""Hostile bytes inside valid seals (issue 12, item 4).

The seal is integrity, not authentication: anyone can write a correctly
sealed record holding 10^6-deep nesting, invalid UTF-8 or an unknown
msgpack ext type. ``verify`` decodes every payload and names the run and
seq; reads raise ``JournalCorruptError``, never ``RecursionError``,
``UnicodeDecodeError`` or a raw decoder error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import example, given, strategies as st

import journal_format as jf
from replay_engine import Engine, JournalCorruptError, task
from tests.adversarial import (
    assert_clean_error,
    cli,
    effect,
    make_journal,
    started,
    write_run,
)

DEEP = b"\x91" * 10**6 + b"\xc0"  # [[[[...None...]]]], a million levels
BAD_UTF8 = b"\xa4ab\xff\xfe"  # a fixstr of 4 bytes that are not UTF-8
UNKNOWN_EXT = b"\xd4\x05\x00"  # fixext 1 of type 5: no such type in the format
HOSTILE = {"deep": DEEP, "utf8": BAD_UTF8, "ext": UNKNOWN_EXT}


def hostile_log(data: bytes) -> Callable[[int, bytes, int], bytes]:
    """A log event whose ``fields`` hold ``data`` (inside the sealed envelope)."""

    def make(seq: int, prev: bytes, at: int) -> bytes:
        placeholder = "PLACEHOLDER-" + "x" * 20
        body = jf.LogLine(
            key=jf.encode_key((1,)), ordinal=0, message="m", fields={"a": placeholder}
        )
        envelope = jf.Envelope(
            v=jf.FORMAT_VERSION, seq=seq, prev=prev, at=at, event=body
        )
        encoded = jf.encode_record(envelope)
        packed = jf.encode_payload(placeholder)
        assert encoded.count(packed) == 1
        return encoded.replace(packed, data)

    return make


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    """Runs ``result-NAME`` (a hostile result payload, seq 2 and 3) and
    ``event-NAME`` (a hostile log event at seq 3), for each hostile bytes."""
    journal = tmp_path / "journal"
    make_journal(journal)
    for name, data in HOSTILE.items():
        start, blobs = started("sec_flows:process")
        pair, more = effect((0,), "sec.step", result_data=data)
        done = jf.RunCompleted(result=pair[1].result)
        write_run(
            journal,
            f"result-{name}",
            [start, *pair, done],
            blobs | more,
            status="completed",
        )
        pair, more = effect((0,), "sec.step", 1)
        events = [
            start,
            *pair,
            hostile_log(data),
            jf.RunCompleted(result=jf.encode_payload(1)),
        ]
        write_run(journal, f"event-{name}", events, blobs | more, status="completed")
    return journal


RUNS = [f"{where}-{name}" for where in ("result", "event") for name in HOSTILE]


@pytest.mark.parametrize("run_id", RUNS)
def test_verify_names_run_and_seq(journal: Path, run_id: str) -> None:
    done = cli(journal, "verify", run_id, "--json")
    assert_clean_error_or_report(done)
    assert run_id in done.stdout, done.describe()
    seq = "3" if run_id.startswith("event") else "2"
    assert f'"seq": {seq}' in done.stdout, done.describe()


def assert_clean_error_or_report(done: Any) -> None:
    assert done.returncode == 1, done.describe()
    assert "Traceback" not in done.output, done.describe()


@pytest.mark.parametrize("command", ["status", "export"])
@pytest.mark.parametrize("run_id", RUNS)
def test_cli_reads_report_a_damaged_journal(
    journal: Path, run_id: str, command: str
) -> None:
    args = [command, run_id, "--json"] + (
        ["--format", "jsonl"] if command == "export" else []
    )
    done = cli(journal, *args)
    assert_clean_error(done, 1)
    assert "JournalCorruptError" in done.stdout, done.describe()


@pytest.mark.parametrize("read", ["result", "replay", "events"])
@pytest.mark.parametrize("run_id", RUNS)
def test_engine_reads_raise_journal_corrupt(
    journal: Path, run_id: str, read: str
) -> None:
    engine = Engine(str(journal))
    try:
        with pytest.raises(JournalCorruptError) as info:
            if read == "result":
                engine.result(run_id)
            elif read == "replay":
                engine.replay(run_id, until=4, process=_replayed)
            else:
                for event in engine.events(run_id):
                    for name in ("result", "args", "inputs"):
                        ref = getattr(getattr(event, "event", event), name, None)
                        if isinstance(ref, bytes):
                            # A payload is content-addressed (runs may share
                            # it): the reader says which run it reads it for.
                            engine.payload(ref, run_id=run_id)
        assert info.value.run_id == run_id
    finally:
        engine.close()


@task(name="sec.step")
def _step(k: list[int]) -> Any:
    raise AssertionError("a replay dispatched a task")


async def _replayed(inputs: Any, ctx: Any) -> Any:
    """Calls what the crafted runs recorded: ``sec.step`` at key 0."""
    return await ctx.task(_step, {"k": [0]})


# -- the decoders themselves ------------------------------------------------------

DECODERS: dict[str, Callable[[bytes], Any]] = {
    "payload": jf.decode_payload,
    "envelope": jf.decode_envelope,
    "run_record": jf.decode_run_record,
    "meta": jf.decode_meta,
    "checkpoint": jf.decode_checkpoint,
    "unseal": jf.unseal,
    "key": jf.decode_key,
}

_NAMED = tuple(
    obj
    for name in jf.__all__
    if isinstance(obj := getattr(jf, name), type) and issubclass(obj, Exception)
)

hostile_bytes = st.one_of(
    st.binary(max_size=256),
    st.builds(
        lambda n, tail: b"\x91" * n + tail,
        st.integers(0, 100_000),
        st.binary(max_size=8),
    ),
    st.builds(
        lambda n, tail: b"\x81\xa1a" * n + tail,
        st.integers(0, 50_000),
        st.binary(max_size=8),
    ),
    st.builds(
        lambda head, tail: head + tail,
        st.sampled_from(list(HOSTILE.values())),
        st.binary(max_size=8),
    ),
    st.builds(
        lambda t, data: bytes([0xC7, len(data), t % 256]) + data,
        st.integers(0, 255),
        st.binary(max_size=40),
    ),
)


@pytest.mark.parametrize("name", list(DECODERS))
@given(data=hostile_bytes)
@example(data=DEEP)
@example(data=b"\x81\xa1a" * 200_000 + b"\xc0")  # {"a": {"a": ...}}: skipped fields
@example(data=jf.seal(b"\x81\xa1a" * 200_000 + b"\xc0"))
def test_decoders_raise_only_format_errors(name: str, data: bytes) -> None:
    with contextlib.suppress(*_NAMED):  # anything else fails the test
        DECODERS[name](data)


@pytest.mark.parametrize(
    "data", [UNKNOWN_EXT, b"\xc7\x02\x63ab", b"\x91\xd5\x7f\x00\x00"]
)
def test_unknown_ext_types_are_format_errors(data: bytes) -> None:
    with pytest.raises(jf.FormatError):
        value = jf.decode_payload(data)
        assert not _holds_ext(value), value


def _holds_ext(value: Any) -> bool:
    if isinstance(value, msgspec.msgpack.Ext):
        return True
    if isinstance(value, list):
        return any(map(_holds_ext, value))
    if isinstance(value, dict):
        return any(map(_holds_ext, value.values()))
    return False


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_replayed_result_ends_the_run_even_if_caught(
    tmp_path: Path, name: str
) -> None:
    """Resume serves a recorded result the process awaits: when its bytes do
    not decode, the run ends with ``JournalCorruptError`` (exit 1), even
    though the process catches every exception its task raises."""
    journal = tmp_path / "journal"
    make_journal(journal)
    start, blobs = started("sec_flows:catching")
    pair, more = effect((0,), "sec.keyed", result_data=HOSTILE[name])
    write_run(journal, "r1", [start, *pair], blobs | more)
    side = tmp_path / "side"
    done = cli(
        journal,
        "resume",
        "r1",
        "--process",
        "sec_flows:catching",
        "--json",
        paths=[Path(__file__).parent],
        extra_env={"SEC_SIDE": str(side)},
    )
    assert_clean_error(done, 1)
    assert "JournalCorruptError" in done.stdout, done.describe()
    assert "caught" not in done.stdout, done.describe()
    assert not side.exists(), "the recorded effect was dispatched again"
