"""SIGKILL a real process at every point of a run; the resume must be exact.

The process (``flows.mixed_process``) mixes sequential calls, parallel.all, a
nested parallel.map with a limit, a failing branch caught by try/except and a
retried task. An uninterrupted reference run fixes what the journal must end
up holding. Then, for every crash point ``k = 1..K`` (K = events of the
reference run), a child interpreter runs the process and SIGKILLs itself
right after the journal first reaches ``k`` events; the run is resumed here.

After every resume:

* the result equals the reference's, and so does the journal content (keys,
  task names, args and result addresses, errors, logs, values: as a
  multiset, since completion order may differ), and ``verify`` passes;
* the crashed journal is a prefix of the final one (resume only appends);
* write-ahead: every effect the child dispatched had its request committed;
* no effect whose completion was committed before the crash ran again; every
  effect in flight at the crash ran again, under the same idempotency key.

Dispatches are counted on the side channel (``flows.note``), outside the
journal.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import journal_format as jf
from replay_engine import Engine, RunLockedError
from tests.children import crash_child, finish_child, start_child
from tests.engine import flows
from tests.engine.flows import (
    KILL_AT_START_ENV,
    KILL_FLAG_ENV,
    SIDE_ENV,
    read_side,
    starts,
)
from tests.journal_views import content, requested_keys, settled_keys

MakeEngine = Callable[..., Engine]

RUN_ID = "crash"
MIXED = "tests.engine.flows:mixed_process"
MIXED_INPUTS = {"x": 3, "items": [0, 1, 2]}


@dataclass
class Reference:
    result: Any
    content: list[Any]
    events: int
    effect_keys: set[str]


def reference_run(
    make_engine: MakeEngine, process: Callable[..., Any], inputs: Any, **options: Any
) -> Reference:
    engine = make_engine("reference", **options)
    run = engine.run(process, inputs, run_id=RUN_ID)
    assert run.status == "completed", run.error
    events = engine.events(RUN_ID)
    return Reference(
        result=run.result,
        content=content(engine, RUN_ID),
        events=len(events),
        effect_keys=requested_keys(events),
    )


@dataclass
class Crash:
    journal: Path
    side: Path
    pid: int


def check_resume(
    crash: Crash,
    reference: Reference,
    monkeypatch: pytest.MonkeyPatch,
    *,
    durability: str,
    earlier_pids: frozenset[int] = frozenset(),
) -> None:
    """Resume a crashed run here and check everything the module doc lists."""
    monkeypatch.setenv(SIDE_ENV, str(crash.side))
    with Engine(str(crash.journal), durability=durability) as engine:
        at_crash = engine.events(RUN_ID)
        crashed_digests = [s.digest for s in at_crash]
        settled = settled_keys(at_crash)
        requested = requested_keys(at_crash)
        in_flight = requested - settled
        finished = any(isinstance(s.event, jf.RunCompleted) for s in at_crash)

        run = engine.resume(RUN_ID)
        assert run.status == "completed", run.error
        assert run.result == reference.result
        assert content(engine, RUN_ID) == reference.content
        final = engine.events(RUN_ID)
        assert [s.digest for s in final[: len(at_crash)]] == crashed_digests
        assert engine.verify(RUN_ID).ok

    lines = starts(read_side(crash.side))
    child = [x for x in lines if x["pid"] == crash.pid]
    here = [x for x in lines if x["pid"] == os.getpid()]
    assert len(child) + len(here) + sum(
        1 for x in lines if x["pid"] in earlier_pids
    ) == len(lines)
    child_keys = {x["key"] for x in child}
    here_keys = {x["key"] for x in here}
    # Write-ahead: nothing ran before its request was committed.
    assert child_keys <= requested, child_keys - requested
    # Completed before the crash: never again.
    assert not here_keys & settled, here_keys & settled
    # In flight at the crash: dispatched again, under the same key.
    assert in_flight <= here_keys, in_flight - here_keys
    assert child_keys & here_keys <= in_flight
    assert all(x["idem"] == f"{RUN_ID}/{x['key']}" for x in lines)
    every = (
        child_keys | here_keys | {x["key"] for x in lines if x["pid"] in earlier_pids}
    )
    assert every == reference.effect_keys
    if finished:
        assert run.stats.dispatched == 0 and not here
    else:
        assert run.stats.replayed == len(settled)
        assert run.stats.dispatched == len(here_keys)


def crash_at(
    tmp_path: Path, k: int, *, durability: str, process: str = MIXED, inputs: Any = None
) -> Crash:
    journal = tmp_path / f"crash-{k}"
    side = tmp_path / f"side-{k}.jsonl"
    pid = crash_child(
        "run",
        journal,
        RUN_ID,
        ref=process,
        inputs=MIXED_INPUTS if inputs is None else inputs,
        durability=durability,
        kill_at=k,
        side=side,
    )
    return Crash(journal, side, pid)


@pytest.mark.parametrize(
    "durability", ["fsync", pytest.param("process", marks=pytest.mark.slow)]
)
def test_sigkill_at_every_event_then_resume(
    make_engine: MakeEngine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    durability: str,
) -> None:
    reference = reference_run(
        make_engine, flows.mixed_process, MIXED_INPUTS, durability=durability
    )
    assert 25 <= reference.events <= 45
    points = range(1, reference.events + 1)
    # Children run two at a time; each has its own journal and side channel.
    with cf.ThreadPoolExecutor(2) as pool:
        crashes = list(
            pool.map(lambda k: crash_at(tmp_path, k, durability=durability), points)
        )
    sizes = set()
    for k, crash in zip(points, crashes, strict=True):
        with Engine(str(crash.journal), durability=durability) as engine:
            sizes.add(len(engine.events(RUN_ID)))
        try:
            check_resume(crash, reference, monkeypatch, durability=durability)
        except AssertionError as exc:
            raise AssertionError(f"crash point k={k}: {exc}") from exc
    # The run commits as it goes (group commits), so the crashes left many
    # different journals behind: the sweep did test intermediate states.
    assert len(sizes) >= reference.events // 3, sorted(sizes)


def test_sigkill_inside_every_task_attempt_then_resume(
    make_engine: MakeEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Die inside the n-th dispatched attempt, for every n: the effect running at
    the crash must have its request committed (write-ahead) and run again."""
    reference = reference_run(
        make_engine, flows.mixed_process, MIXED_INPUTS, durability="process"
    )
    monkeypatch.setenv(SIDE_ENV, str(tmp_path / "reference-side.jsonl"))
    attempts = len(reference.effect_keys) + 1  # flaky runs twice

    def crash_in_attempt(n: int) -> Crash:
        journal = tmp_path / f"attempt-{n}"
        side = tmp_path / f"attempt-side-{n}.jsonl"
        pid = crash_child(
            "run",
            journal,
            RUN_ID,
            ref=MIXED,
            inputs=MIXED_INPUTS,
            durability="process",
            side=side,
            env={KILL_AT_START_ENV: str(n)},
        )
        return Crash(journal, side, pid)

    points = range(1, attempts + 1)
    with cf.ThreadPoolExecutor(2) as pool:
        crashes = list(pool.map(crash_in_attempt, points))
    for n, crash in zip(points, crashes, strict=True):
        dying = starts(read_side(crash.side))
        assert len(dying) >= n
        try:
            check_resume(crash, reference, monkeypatch, durability="process")
        except AssertionError as exc:
            raise AssertionError(f"killed in attempt n={n}: {exc}") from exc


def test_sigkill_inside_a_task_redispatches_it_with_the_same_idempotency_key(
    make_engine: MakeEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flag = tmp_path / "killed-once"
    flag.write_text("the reference run must not die")
    monkeypatch.setenv(KILL_FLAG_ENV, str(flag))
    reference = reference_run(
        make_engine, flows.suicide_process, None, durability="process"
    )
    flag.unlink()

    journal = tmp_path / "crashed"
    side = tmp_path / "side.jsonl"
    child = crash_child(
        "run",
        journal,
        RUN_ID,
        ref="tests.engine.flows:suicide_process",
        inputs=None,
        durability="process",
        side=side,
        env={KILL_FLAG_ENV: str(flag)},
    )
    assert flag.exists(), "the task never ran in the child"
    check_resume(
        Crash(journal, side, child), reference, monkeypatch, durability="process"
    )
    lines = starts(read_side(side), task="suicide")
    assert [(x["pid"], x["idem"], x["attempt"]) for x in lines] == [
        (child, f"{RUN_ID}/2.0.0", 1),
        (os.getpid(), f"{RUN_ID}/2.0.0", 1),
    ]
    assert reference.result["both"][0] == 1003


@pytest.mark.parametrize(
    ("first", "later"),
    [(4, 3), pytest.param(9, 6, marks=pytest.mark.slow), (15, 1), (20, 5)],
)
def test_sigkill_during_resume_then_resume_again(
    make_engine: MakeEngine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    first: int,
    later: int,
) -> None:
    reference = reference_run(
        make_engine, flows.mixed_process, MIXED_INPUTS, durability="process"
    )
    crash1 = crash_at(tmp_path, first, durability="process")
    with Engine(str(crash1.journal), durability="process") as engine:
        at_crash1 = engine.events(RUN_ID)
    assert len(at_crash1) < reference.events
    settled1 = settled_keys(at_crash1)

    # The resume is killed too, a few events further on.
    second_pid = crash_child(
        "resume",
        crash1.journal,
        RUN_ID,
        durability="process",
        kill_at=len(at_crash1) + later,
        side=crash1.side,
    )
    with Engine(str(crash1.journal), durability="process") as engine:
        at_crash2 = engine.events(RUN_ID)
    assert len(at_crash2) >= len(at_crash1) + later
    assert [s.digest for s in at_crash2[: len(at_crash1)]] == [
        s.digest for s in at_crash1
    ]
    lines = starts(read_side(crash1.side))
    resumed_keys = {x["key"] for x in lines if x["pid"] == second_pid}
    assert not resumed_keys & settled1

    check_resume(
        Crash(crash1.journal, crash1.side, second_pid),
        reference,
        monkeypatch,
        durability="process",
        earlier_pids=frozenset({crash1.pid}),
    )


def test_a_lock_held_by_another_process_refuses_then_recovers_after_sigkill(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = tmp_path / "journal"
    side = tmp_path / "side.jsonl"
    opener = tmp_path / "open"
    inputs = {"open": str(opener)}
    child = start_child(
        "run",
        journal,
        RUN_ID,
        ref="tests.engine.flows:locked_process",
        inputs=inputs,
        durability="process",
        side=side,
    )
    try:
        deadline = time.monotonic() + 30
        while not starts(read_side(side), task="wait_file"):
            assert child.poll() is None, finish_child(child)
            assert time.monotonic() < deadline, "the child never reached its task"
            time.sleep(0.01)
        with Engine(str(journal), durability="process") as engine:
            with pytest.raises(RunLockedError) as info:
                engine.resume(RUN_ID)
            assert info.value.pid == child.pid
            assert info.value.run_id == RUN_ID
            child.send_signal(signal.SIGKILL)
            code, _ = finish_child(child)
            assert code == -signal.SIGKILL
            opener.write_text("go")
            monkeypatch.setenv(SIDE_ENV, str(side))
            run = engine.resume(RUN_ID)
            assert run.status == "completed"
            assert run.result == "opened"
            assert run.stats.replayed == 1
            assert run.stats.dispatched == 1
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    lines = starts(read_side(side))
    assert [(x["task"], x["pid"] == child.pid) for x in lines] == [
        ("add", True),
        ("wait_file", True),
        ("wait_file", False),
    ]
