"""Signals (issue 12, item 13).

SIGTERM stops dispatching, lets in-flight effects finish, commits, releases
the lock and exits 143 with a one-line message; SIGINT exits 130 the same
way, with a JSON error document under ``--json`` and a "resume with" hint.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from replay_engine import Engine, RunInterrupted
from tests.adversarial import Done, cli, env_for, finish, kill_group, spawn, wait_for
from tests.faults import fault_flows
from tests.faults._support import HERE, counts

SLOW = '{"n": 40, "delay": 0.1}'


def interrupted_run(
    tmp_path: Path, sig: signal.Signals, *extra: str
) -> tuple[Path, Path, Done]:
    journal = tmp_path / "journal"
    side = tmp_path / "side"
    proc = spawn(
        journal,
        "run",
        "fault_flows:slow",
        "--run-id",
        "r1",
        "--input",
        SLOW,
        *extra,
        paths=[HERE],
        extra_env={"FAULT_SIDE": str(side)},
    )
    try:
        wait_for(lambda: len(counts(side, "end")) >= 2, what="two steps done")
        os.kill(proc.pid, sig)
        done = finish(proc, timeout=15)
    finally:
        kill_group(proc)
    return journal, side, done


def assert_recoverable(journal: Path, side: Path) -> None:
    verified = cli(journal, "verify")
    assert verified.returncode == 0, verified.describe()
    resumed = cli(
        journal, "resume", "r1", paths=[HERE], extra_env={"FAULT_SIDE": str(side)}
    )
    assert resumed.returncode == 0, resumed.describe()  # the lock was released
    again = {i: n for i, n in counts(side, "end").items() if n > 1}
    assert not again, f"completed effects ran again on resume: {again}"
    assert len(counts(side, "end")) == 40


CASES = {
    "SIGTERM": (signal.SIGTERM, 143),
    "SIGINT": (signal.SIGINT, 130),
}


@pytest.mark.parametrize("name", CASES)
def test_signal_ends_the_run_cleanly(tmp_path: Path, name: str) -> None:
    sig, code = CASES[name]
    journal, side, done = interrupted_run(tmp_path, sig)
    assert done.returncode == code, done.describe()
    assert "Traceback" not in done.output, done.describe()
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected a one-line message\n{done.describe()}"
    assert_recoverable(journal, side)


def test_sigint_under_json_prints_an_error_document(tmp_path: Path) -> None:
    journal, side, done = interrupted_run(tmp_path, signal.SIGINT, "--json")
    assert done.returncode == 130, done.describe()
    assert "Traceback" not in done.output, done.describe()
    document = json.loads(done.stdout)
    assert document["error"]["exit_code"] == 130, document
    assert "resume with" in done.output.lower(), done.describe()
    assert "r1" in document["error"].get("message", "") + done.stderr
    assert_recoverable(journal, side)


def test_stopped_then_resumed_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    """SIGTERM, then resume: the result of a run never stopped, and no effect
    that completed before the stop runs again."""
    inputs = '{"n": 12, "delay": 0.1}'
    whole = cli(
        tmp_path / "whole",
        *("run", "fault_flows:slow", "--run-id", "r1", "--input", inputs, "--json"),
        paths=[HERE],
    )
    assert whole.returncode == 0, whole.describe()

    journal, side = tmp_path / "journal", tmp_path / "side"
    proc = spawn(
        journal,
        *("run", "fault_flows:slow", "--run-id", "r1", "--input", inputs),
        paths=[HERE],
        extra_env={"FAULT_SIDE": str(side)},
    )
    try:
        wait_for(lambda: len(counts(side, "end")) >= 3, what="three steps done")
        os.kill(proc.pid, signal.SIGTERM)
        done = finish(proc, timeout=15)
    finally:
        kill_group(proc)
    assert done.returncode == 143, done.describe()
    assert "resume with: replay-engine" in done.stderr, done.describe()
    before = counts(side, "end")
    assert len(before) < 12, "the stop came too late to test anything"
    # Graceful: the step in flight finished and was recorded, none abandoned.
    assert counts(side, "start") == before, done.describe()
    assert "0 in flight were abandoned" in done.stderr, done.describe()
    status = cli(journal, "status", "r1", "--json")
    assert json.loads(status.stdout)["status"] in ("running", "interrupted")

    resumed = cli(
        journal,
        *("resume", "r1", "--json"),
        paths=[HERE],
        extra_env={"FAULT_SIDE": str(side)},
    )
    assert resumed.returncode == 0, resumed.describe()
    assert json.loads(resumed.stdout)["result"] == json.loads(whole.stdout)["result"]
    assert json.loads(resumed.stdout)["stats"]["replayed"] == len(before)
    assert counts(side, "start") == counts(side, "end")
    assert set(counts(side, "end").values()) == {1}, counts(side, "end")
    assert len(counts(side, "end")) == 12


@pytest.mark.parametrize("name", CASES)
def test_a_second_signal_stops_at_once(tmp_path: Path, name: str) -> None:
    """The grace period (10 s by default) is cut short by a second signal; the
    effect abandoned in flight is dispatched again by the resume."""
    sig, code = CASES[name]
    journal, side = tmp_path / "journal", tmp_path / "side"
    proc = spawn(
        journal,
        *("run", "fault_flows:holding", "--run-id", "r1", "--json"),
        *("--input", '{"n": 3, "delay": 60}'),
        paths=[HERE],
        extra_env={"FAULT_SIDE": str(side)},
    )
    try:
        wait_for(lambda: len(counts(side, "start")) >= 1, what="a step running")
        os.kill(proc.pid, sig)
        time.sleep(0.5)
        assert proc.poll() is None, "the first signal did not wait for the grace"
        sent = time.monotonic()
        os.kill(proc.pid, sig)
        done = finish(proc, timeout=15)
        took = time.monotonic() - sent
    finally:
        kill_group(proc)
    assert done.returncode == code, done.describe()
    assert took < 5, f"a second signal took {took:.1f}s to stop the run"
    assert "Traceback" not in done.output, done.describe()
    error = json.loads(done.stdout)["error"]
    assert (error["exit_code"], error["completed"], error["abandoned"]) == (code, 0, 1)
    assert error["resume"].endswith("resume r1"), error

    assert cli(journal, "verify").returncode == 0
    resumed = cli(
        journal,
        *("resume", "r1", "--json"),
        paths=[HERE],
        extra_env={"FAULT_SIDE": str(side), "FAULT_VARIANT": "fast"},
    )
    assert resumed.returncode == 0, resumed.describe()
    assert json.loads(resumed.stdout)["result"] == [0, 1, 4]
    assert counts(side, "start") == {"0": 2, "1": 1, "2": 1}


KEYBOARD_INTERRUPT = r"""
import json, sys
import fault_flows
from replay_engine import Engine

engine = Engine(sys.argv[1])
try:
    engine.run(fault_flows.slow, {"n": 20, "delay": 0.1}, run_id="r1")
except KeyboardInterrupt:
    print("interrupted", flush=True)
# The lock is released: the same process (and so any other) can go on.
run = engine.resume("r1")
print(json.dumps({"status": run.status, "result": run.result}), flush=True)
"""


def test_keyboard_interrupt_in_engine_run_releases_the_lock(tmp_path: Path) -> None:
    """``Engine.run`` under Ctrl-C (no CLI): KeyboardInterrupt, the journal
    consistent, the lock released, nothing completed runs again."""
    journal, side = tmp_path / "journal", tmp_path / "side"
    proc = subprocess.Popen(
        [sys.executable, "-c", KEYBOARD_INTERRUPT, str(journal)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_for(HERE, FAULT_SIDE=str(side)),
        start_new_session=True,
    )
    try:
        wait_for(lambda: len(counts(side, "end")) >= 2, what="two steps done")
        os.kill(proc.pid, signal.SIGINT)
        done = finish(proc, timeout=30)
    finally:
        kill_group(proc)
    assert done.returncode == 0, done.describe()
    lines = done.stdout.splitlines()
    assert lines[0] == "interrupted", done.describe()
    assert json.loads(lines[1]) == {"status": "completed", "result": sum(range(20))}
    assert cli(journal, "verify").returncode == 0
    # A step cut short by the interrupt ran again; none that completed did.
    assert len(counts(side, "end")) == 20
    assert max(counts(side, "end").values()) <= 2


def test_request_stop_from_another_thread(tmp_path: Path) -> None:
    """``Engine.request_stop``: ``RunInterrupted``, the run not failed, resumable."""
    engine = Engine(tmp_path / "journal")
    try:
        timer = threading.Timer(0.3, engine.request_stop, ("test",), {"grace": 5.0})
        timer.start()
        with pytest.raises(RunInterrupted) as caught:
            engine.run(fault_flows.slow, {"n": 40, "delay": 0.05}, run_id="r1")
        timer.join()
        assert caught.value.reason == "test"
        assert caught.value.abandoned == 0
        assert 0 < caught.value.completed < 40
        assert engine.status("r1").status in ("running", "interrupted")
        with pytest.raises(ValueError):
            engine.request_stop("test", grace=float("nan"))
    finally:
        engine.close()
    with Engine(tmp_path / "journal") as again:
        run = again.resume("r1", process=fault_flows.slow)
        assert run.status == "completed"
        assert run.stats.replayed == caught.value.completed
