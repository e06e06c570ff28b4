"""SIGKILL during ``post`` and during ``iterate``: nothing lost, nothing doubled.

Posting: a process claims, posts results and sends signals in a tight loop
and is killed at a random moment, over and over (40 times; and a few real
``replay-engine post`` CLI processes too). After every kill the
journal verifies, no key has more than one outcome, and the journal as it was
before the kill is a prefix of the journal after it.

Iterating: a CLI ``iterate`` subprocess executing slow in-process steps is
killed midway; the next ``iterate`` completes the work. Every step whose
completion was committed before the kill never runs again (counted on the
side channel, outside the journal); only the step in flight may run twice.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import journal_format as jf
from replay_engine import Engine
from tests.helpers import child_env
from tests.journal_views import outcomes_per_key, stored_record

from . import ext_flows as f
from .ext_flows import SIDE_ENV, read_side
from .workers import start_post_loop


def check_journal(engine: Engine, run_id: str, earlier: list[bytes]) -> list[bytes]:
    # First: opening a Store begins a write transaction, and LMDB shows readers
    # a SIGKILLed writer's last commit only once the next writer has begun.
    record = stored_record(engine, run_id)
    report = engine.verify(run_id)
    assert report.ok, report.problems
    digests = [s.digest for s in engine.events(run_id)]
    assert digests[: len(earlier)] == earlier  # only appended, nothing rewritten
    outcomes = outcomes_per_key(engine, run_id)
    assert all(count == 1 for count in outcomes.values()), outcomes
    assert record.events == len(digests) and record.head == digests[-1]
    return digests


def test_sigkill_during_posts_loses_and_duplicates_nothing(
    engine: Engine, journal: Path
) -> None:
    n = 150
    engine.run(f.fan, {"n": n}, run_id="k")
    rng = random.Random(20261129)
    digests = check_journal(engine, "k", [])
    kills = 0
    for _ in range(40):
        proc = start_post_loop(str(journal), "k", n, rounds=1000)
        time.sleep(rng.uniform(0.0, 0.2))
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(timeout=60)
        kills += proc.exitcode == -signal.SIGKILL
        grown = check_journal(engine, "k", digests)
        assert len(grown) >= len(digests)
        digests = grown
    assert kills >= 35  # killed mid-loop, not finished
    posted_before_last = sum(outcomes_per_key(engine, "k").values())
    assert posted_before_last > 0, "no kill landed after a commit"
    # A last, uninterrupted process posts whatever is left.
    proc = start_post_loop(str(journal), "k", n, rounds=1)
    proc.join(timeout=300)
    assert proc.exitcode == 0
    check_journal(engine, "k", digests)
    assert engine.pending("k") == []
    assert outcomes_per_key(engine, "k") == Counter({f"0.{i}.0": 1 for i in range(n)})
    run = engine.iterate("k")
    assert run.status == "completed", run.error
    assert run.result["outs"] == [3 * i + 1 for i in range(n)]


def cli_post(journal: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "replay_engine._cli",
            "--journal",
            str(journal),
            "post",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )


def test_sigkill_of_cli_post_processes(engine: Engine, journal: Path) -> None:
    """Killed ``replay-engine post`` processes leave at most one outcome per key."""
    n = 8
    engine.run(f.fan, {"n": n}, run_id="c")
    started = time.perf_counter()
    proc = cli_post(journal, "c", "0.0.0", "--result", "0")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    took = time.perf_counter() - started
    rng = random.Random(7)
    digests = check_journal(engine, "c", [])
    for i in range(1, n):
        # Kill late in the command's life, when it is opening or writing.
        proc = cli_post(journal, "c", f"0.{i}.0", "--result", str(i))
        time.sleep(rng.uniform(0.6, 1.05) * took)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        digests = check_journal(engine, "c", digests)
    # Every key ends with exactly one outcome, whether its post survived or not.
    for i in range(n):
        key = f"0.{i}.0"
        if outcomes_per_key(engine, "c")[key] == 0:
            proc = cli_post(journal, "c", key, "--result", str(i))
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
    check_journal(engine, "c", digests)
    run = engine.iterate("c")
    assert run.status == "completed" and run.result["outs"] == list(range(n))


def cli_iterate(journal: Path, side: Path, run_id: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "replay_engine._cli",
            "--journal",
            str(journal),
            "iterate",
            run_id,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(**{SIDE_ENV: str(side)}),
    )


def completed_steps(engine: Engine, run_id: str) -> set[str]:
    return {
        jf.key_bytes_to_text(s.event.key)
        for s in engine.events(run_id)
        if isinstance(s.event, jf.EffectCompleted)
    }


def wait_for_side(side: Path, count: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while len(read_side(side)) < count:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the iterate child made no progress"
        time.sleep(0.005)


@pytest.mark.parametrize("kill_after", [1, 3, 6])
def test_sigkill_during_iterate(
    engine: Engine, journal: Path, side: Path, kill_after: int
) -> None:
    n = 8
    run = engine.run(f.crashy, {"n": n, "delay": 0.15}, run_id="it")
    assert run.status == "waiting" and run.pending == ["0"]
    engine.post("it", "0", result="go")
    proc = cli_iterate(journal, side, "it")
    wait_for_side(side, kill_after, proc)
    time.sleep(random.Random(kill_after).uniform(0.0, 0.15))
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert engine.verify("it").ok
    done_at_kill = completed_steps(engine, "it") - {"0"}
    ran_at_kill = Counter(x["key"] for x in read_side(side))
    assert done_at_kill <= set(ran_at_kill)  # write-ahead: nothing phantom
    # The kill left it mid-way: stored running, and no executor holds it.
    info = engine.status("it")
    assert (info.stored_status, info.status) == ("running", "interrupted")

    proc = cli_iterate(journal, side, "it")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err  # waiting for the last external
    doc: dict[str, Any] = json.loads(out)
    assert [p["key"] for p in doc["pending"]] == [str(n + 1)]
    assert doc["stats"]["dispatched"] == n - len(done_at_kill)
    engine.post("it", str(n + 1), result="end")
    proc = cli_iterate(journal, side, "it")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert json.loads(out)["result"] == {
        "outs": [i * i for i in range(n)],
        "last": "end",
    }

    runs = Counter(x["key"] for x in read_side(side))
    assert set(runs) == {str(k) for k in range(1, n + 1)}
    for key in done_at_kill:
        assert runs[key] == 1, f"step {key} completed before the kill but ran again"
    twice = [k for k, c in runs.items() if c > 1]
    assert len(twice) <= 1 and all(k not in done_at_kill for k in twice)
    assert outcomes_per_key(engine, "it") == Counter({str(k): 1 for k in range(n + 2)})
    assert engine.verify("it").ok
