"""``log``, ``export`` and ``replay`` stream (issue 16): first line at once,
flat memory, a quiet end when the reader goes away.

Real subprocesses (the console script's path, with its forked reading child)
on a real journal holding a run of 100,000 events and one of 10,000, made
once per module by a child interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import FLOWS_DIR, Invoke, child_env

BIG = 100_000
MID = 10_000
FIRST_LINE_BOUND = 30.0  # seconds; a loaded 2-core machine. Before: 76 s for log.

MAKE = """
import sys
import stream_flows
from replay_engine import Engine
with Engine(sys.argv[1], durability="process") as engine:
    for run_id, n in (("big", int(sys.argv[2])), ("mid", int(sys.argv[3]))):
        run = engine.run(stream_flows.long_run, {"n": n}, run_id=run_id)
        assert run.status == "completed"
"""


@pytest.fixture(scope="module")
def long_journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    journal = tmp_path_factory.mktemp("stream") / "journal"
    subprocess.run(
        [sys.executable, "-c", MAKE, str(journal), str(BIG), str(MID)],
        env=child_env(),
        cwd=FLOWS_DIR,
        check=True,
        timeout=600,
    )
    return journal


def _argv(journal: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "replay_engine._cli",
        "--journal",
        str(journal),
        *args,
    ]


def _first_line(proc: subprocess.Popen[bytes], bound: float) -> bytes:
    """The first line of ``proc``'s stdout, or a failure after ``bound`` seconds."""
    got: list[bytes] = []
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: got.append(proc.stdout.readline()))  # type: ignore[union-attr]
    reader.start()
    reader.join(bound)
    if not got:
        proc.kill()
        reader.join(10)
        pytest.fail(f"no line within {bound} s")
    return got[0]


@pytest.mark.parametrize(
    "args",
    [
        ("log", "big"),
        ("log", "big", "--format", "jsonl"),
        ("export", "big"),
        ("replay", "big", "--process", "stream_flows:long_run"),
    ],
)
def test_the_first_line_comes_while_the_command_still_runs(
    long_journal: Path, args: tuple[str, ...]
) -> None:
    started = time.monotonic()
    with subprocess.Popen(
        _argv(long_journal, *args),
        env=child_env(),
        cwd=FLOWS_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        try:
            line = _first_line(proc, FIRST_LINE_BOUND)
            assert time.monotonic() - started < FIRST_LINE_BOUND
            # 100,000 lines do not fit in a pipe: the command is still writing.
            assert proc.poll() is None, (
                "the command ended before its first line was read"
            )
            assert line.strip()
        finally:
            proc.kill()
            proc.communicate(timeout=60)


@pytest.mark.parametrize(
    "args",
    [
        ("log", "big"),
        ("export", "big"),
        ("log", "big", "--format", "jsonl"),
        ("replay", "big", "--process", "stream_flows:long_run"),
        ("replay", "big", "--process", "stream_flows:long_run", "--format", "jsonl"),
    ],
)
def test_a_closed_pipe_ends_the_command_quietly(
    long_journal: Path, args: tuple[str, ...]
) -> None:
    """``replay-engine log big | head -3``: exit 0, nothing on stderr, promptly."""
    with subprocess.Popen(
        _argv(long_journal, *args),
        env=child_env(),
        cwd=FLOWS_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        for _ in range(3):
            assert proc.stdout.readline()
        proc.stdout.close()
        try:
            code = proc.wait(timeout=60)
        finally:
            proc.kill()
        err = proc.stderr.read()
    assert code == 0, err
    assert err == b""


MAXRSS = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def _max_rss_kib(journal: Path, *args: str) -> int:
    proc = subprocess.run(
        [sys.executable, "-c", MAXRSS, *_argv(journal, *args)],
        env=child_env(),
        cwd=FLOWS_DIR,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return int(proc.stdout)


@pytest.mark.parametrize(
    "command", [("log",), ("log", "--format", "jsonl"), ("export",)]
)
def test_memory_does_not_grow_with_the_run(
    long_journal: Path, command: tuple[str, ...]
) -> None:
    name, *rest = command
    mid = _max_rss_kib(long_journal, name, "mid", *rest)
    big = _max_rss_kib(long_journal, name, "big", *rest)
    # Ten times the events: holding them all costs hundreds of MiB more.
    assert big < mid + 40 * 1024, (mid, big)


@pytest.mark.parametrize("fmt", ["lines", "jsonl"])
def test_replay_memory_grows_no_more_than_reading_the_events(
    long_journal: Path, fmt: str
) -> None:
    """``replay`` (the calls streamed, then the re-execution) of 10x the events.

    Reading a journal maps its pages, so even ``export`` grows with the run
    (about 20 MiB from 10k to 100k events here). The re-execution looks each
    call up by its key instead of holding the run's call index, so ``replay``
    grows by little more; holding the index and every log line's key cost
    about 20 MiB more than ``export`` (40 MiB in all).
    """
    replay = ("--process", "stream_flows:long_run", "--format", fmt)
    grown = {
        name: _max_rss_kib(long_journal, *command, "big", *rest)
        - _max_rss_kib(long_journal, *command, "mid", *rest)
        for name, command, rest in (
            ("export", ("export",), ()),
            ("replay", ("replay",), replay),
        )
    }
    assert grown["replay"] < grown["export"] + 10 * 1024, grown


@pytest.mark.parametrize("fmt", ["lines", "jsonl"])
def test_replay_prints_calls_before_it_re_executes(
    long_journal: Path, tmp_path: Path, fmt: str
) -> None:
    """The calls stream from the journal; the re-execution comes after them.

    ``long_run_marked`` touches a file when the replay starts executing it:
    a replay that built its snapshot first would have done so before its
    first call line.
    """
    mark = tmp_path / "executing"
    with subprocess.Popen(
        _argv(
            long_journal,
            "replay",
            "big",
            "--until",
            "90000",
            "--process",
            "stream_flows:long_run_marked",
            "--format",
            fmt,
        ),
        env=child_env(STREAM_MARK=str(mark)),
        cwd=FLOWS_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        try:
            lines = [_first_line(proc, FIRST_LINE_BOUND) for _ in range(3)]
            assert not mark.exists(), "the process was re-executed before streaming"
            assert proc.poll() is None
            assert all(line.strip() for line in lines)
            rest = proc.communicate(timeout=600)[0].decode().splitlines()
        finally:
            proc.kill()
    assert mark.exists()  # then it was, for the frontier and the outcome
    if fmt == "jsonl":
        assert json.loads(rest[-1])["snapshot"]["process_status"] == "frontier"
        calls = [json.loads(r)["call"] for r in rest if r.startswith('{"call"')]
        assert len(calls) == BIG * 3 // 8  # every call once, none held back
    else:
        assert rest[-1].startswith("process stopped at ")


REPLAY_CALLS_RSS = """
import resource, sys
from replay_engine import Engine
with Engine(sys.argv[1]) as engine:
    assert sum(1 for _ in engine.replay_calls(sys.argv[2], int(sys.argv[3])))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def test_replay_calls_memory_does_not_grow_with_the_run(long_journal: Path) -> None:
    """The streamed part of ``replay`` (its calls and logs) holds memory flat.

    The re-execution after it holds whatever the process holds, which may
    grow with the run (docs/cli-json.md says so).
    """

    def rss(run_id: str, until: int) -> int:
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                REPLAY_CALLS_RSS,
                str(long_journal),
                run_id,
                str(until),
            ],
            env=child_env(),
            cwd=FLOWS_DIR,
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        ).stdout
        return int(out)

    mid, big = rss("mid", MID // 2), rss("big", BIG // 2)
    # Ten times the calls: holding them (a snapshot) costs about 100 MiB more.
    assert big < mid + 40 * 1024, (mid, big)


# -- formats, in-process ------------------------------------------------------


def run_small(invoke: Invoke) -> None:
    invoke(
        "run",
        "cli_flows:fanout",
        "--input",
        '{"items": [1, 2, 3]}',
        "--run-id",
        "f1",
        code=0,
    )


def test_log_lines_and_jsonl_hold_every_event(
    invoke: Invoke, invoke_json: Callable[..., Any]
) -> None:
    run_small(invoke)
    docs = invoke_json("log", "f1")
    lines = invoke("log", "f1", "--format", "lines", code=0).stdout.splitlines()
    assert [int(line.split()[0]) for line in lines] == [d["seq"] for d in docs]
    assert all(d["digest"][:12] in line for d, line in zip(docs, lines, strict=True))
    streamed = [
        json.loads(line)
        for line in invoke("log", "f1", "--format", "jsonl", code=0).stdout.splitlines()
    ]
    for doc in docs:
        doc.pop("redispatched", None)  # jsonl names re-dispatches on `execution`
    assert streamed == docs


def test_log_filters_apply_to_streamed_lines(invoke: Invoke) -> None:
    run_small(invoke)
    out = invoke("log", "f1", "--type", "requested", "--format", "lines", code=0).stdout
    assert out.splitlines() and all(" requested " in line for line in out.splitlines())


def test_json_and_format_together_are_a_usage_error(invoke: Invoke) -> None:
    run_small(invoke)
    result = invoke("log", "f1", "--json", "--format", "lines", code=2)
    assert "--json or --format" in result.stderr


def test_replay_formats(invoke: Invoke, invoke_json: Callable[..., Any]) -> None:
    run_small(invoke)
    doc = invoke_json("replay", "f1")
    records = [
        json.loads(line)
        for line in invoke(
            "replay", "f1", "--format", "jsonl", code=0
        ).stdout.splitlines()
    ]
    streamed = [r["call"] for r in records if "call" in r]
    by_key = sorted(streamed, key=lambda c: [int(p) for p in c["key"].split(".")])
    assert by_key == doc["calls"]  # streamed in journal order, not key order
    assert [r["log"] for r in records if "log" in r] == doc["logs"]
    assert records[-1]["snapshot"]["process_status"] == doc["process_status"]
    lines = invoke("replay", "f1", code=0).stdout.splitlines()
    assert lines[0].startswith("replaying run f1")
    assert lines[1].startswith("run f1  after")
    assert lines[-1].startswith("result: ")


def test_reads_start_small_and_grow_to_a_batch(invoke: Invoke, journal: Path) -> None:
    """The first line waits only for a small first read (issue 16: first line)."""
    from replay_engine import Engine
    from replay_engine._cli.streaming import BATCH, FIRST_BATCH, iter_events

    items = list(range(400))  # a request and a completion each: 800+ events
    flags = ("--input", json.dumps({"items": items}), "--run-id", "f1")
    invoke("run", "cli_flows:fanout", *flags, code=0)
    with Engine(journal, read_only=True) as engine:
        whole = engine.events("f1")
        reads: list[tuple[int, int | None]] = []
        read = engine.events

        def events(run_id: str, start: int = 0, stop: int | None = None) -> Any:
            reads.append((start, stop))
            return read(run_id, start, stop)

        engine.events = events  # type: ignore[method-assign]  # counts, still reads
        for start in (0, 1, FIRST_BATCH, 333):
            reads.clear()
            got = [(s.seq, s.digest) for s in iter_events(engine, "f1", start)]
            assert got == [(s.seq, s.digest) for s in whole[start:]], start
            sizes = [stop - begin for begin, stop in reads if stop is not None]
            assert sizes[0] == FIRST_BATCH
            assert sizes == [min(FIRST_BATCH * 4**i, BATCH) for i in range(len(sizes))]
        stop = len(whole) - 7
        got = [s.seq for s in iter_events(engine, "f1", 5, stop)]
        assert got == list(range(5, stop))
