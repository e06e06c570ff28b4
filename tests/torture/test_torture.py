"""The torture suite: random process shapes under random schedules and crashes.

For each shape hypothesis draws (see ``shapes.py``), the generic interpreter
process runs uninterrupted, then under several schedules (drawn as
``replay_engine.testing.strategies.plans`` before anything runs, then
resolved against the reference execution's keys): effects completing in other
orders, injected task failures, and crashes after *k* journal events followed
by resumes with a fresh engine. Every execution must record exactly what the
uninterrupted run under the same injected failures records (keys, task names,
args, outcomes, log lines, final result), and replaying any finished journal
must agree with it (``ScheduleChecker`` does both).

Two profiles, chosen by ``REPLAY_ENGINE_PROFILE``:

* ``quick`` (every test run): a few dozen shapes, well under a minute;
* ``long`` (``bash scripts/test-slow.sh``): hundreds of larger shapes; it
  prints a summary line and writes it to ``bench/torture-last.txt``.
  ``REPLAY_ENGINE_TORTURE_SHAPES`` overrides its number of shapes.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from replay_engine.testing import ScheduleChecker, Stats
from replay_engine.testing.strategies import plans

from .shapes import interpret, shapes, size

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Profile:
    name: str
    shapes: int
    schedules: int
    max_leaves: int


QUICK = Profile("quick", shapes=25, schedules=4, max_leaves=10)
LONG = Profile(
    "long",
    shapes=int(os.environ.get("REPLAY_ENGINE_TORTURE_SHAPES", "1000")),
    schedules=6,
    max_leaves=30,
)


@dataclass
class Totals:
    shapes: int = 0
    leaves: int = 0
    largest: int = 0
    keys: int = 0
    stats: Stats = field(default_factory=Stats)

    def add(self, shape: Any, keys: int, stats: Stats) -> None:
        self.shapes += 1
        self.leaves += size(shape)
        self.largest = max(self.largest, keys)
        self.keys += keys
        for name in (
            "schedules",
            "executions",
            "crash_points",
            "crashes",
            "resumes",
            "injected",
            "replays",
        ):
            setattr(self.stats, name, getattr(self.stats, name) + getattr(stats, name))

    def summary(self, profile: Profile, seconds: float) -> str:
        s = self.stats
        return (
            f"torture[{profile.name}]: {self.shapes} process shapes"
            f" ({self.keys} invocation keys, largest {self.largest}),"
            f" {s.schedules} schedules, {s.executions} executions,"
            f" {s.crash_points} crash points ({s.crashes} crashes, each resumed),"
            f" {s.injected} injected failures, {s.replays} replays,"
            f" in {seconds:.1f} s"
        )


def torture(profile: Profile) -> tuple[Totals, float]:
    totals = Totals()

    @settings(
        max_examples=profile.shapes,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    )
    @given(shape=shapes(profile.max_leaves), data=st.data())
    def property_(shape: Any, data: st.DataObject) -> None:
        # Draw before running anything: a failure that shows only sometimes
        # (timing) must not change what hypothesis draws when it replays.
        drawn = [data.draw(plans()) for _ in range(profile.schedules)]
        with ScheduleChecker(interpret, {"shape": shape}) as checker:
            reference = checker.reference
            for plan in drawn:
                checker.check(plan.schedule(reference.task_keys, reference.events))
            totals.add(shape, len(reference.order), checker.stats)

    started = time.perf_counter()
    property_()
    return totals, time.perf_counter() - started


def test_torture_quick() -> None:
    totals, _ = torture(QUICK)
    assert totals.shapes >= QUICK.shapes // 2
    assert totals.stats.crashes > 0
    assert totals.stats.injected > 0


@pytest.mark.slow
def test_torture_long(capsys: pytest.CaptureFixture[str]) -> None:
    totals, seconds = torture(LONG)
    line = totals.summary(LONG, seconds)
    with capsys.disabled():
        print("\n" + line)
    bench = ROOT / "bench"
    bench.mkdir(exist_ok=True)
    (bench / "torture-last.txt").write_text(line + "\n", encoding="utf-8")
    assert totals.stats.crashes > 0
