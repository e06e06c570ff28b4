"""Determinism testing for replay-engine processes.

A process is re-executed from the start on every resume, so it must make the
same ``ctx`` calls, with the same args, every time. This module checks that
property the way the real world would break it::

    from replay_engine.testing import FakeTasks, assert_deterministic

    def test_release_is_deterministic():
        assert_deterministic(release, {"version": "1.2"},
                             fakes=FakeTasks({"app.deploy": {"ok": True}}))

* :func:`assert_deterministic` runs the process under many schedules (effects
  completing in other orders, injected task failures, crashes after *k*
  journal events followed by a resume), replays every journal, and replays
  the reference journal under other ``PYTHONHASHSEED`` values. On failure it
  names the key and call site, prints the smallest schedule found, and a line
  that reproduces it. A race's winner (``ctx.parallel.any``), and the branch
  a ``fail_fast`` group failed at, are recorded choices: executions are
  compared with one that made the same choices, and each replays its own
  journal.
* :class:`Schedule`, :func:`run_schedule` and :func:`check_schedule`: one
  schedule, by hand. ``replay_engine.testing.strategies`` has the hypothesis
  strategies behind the search, and :class:`ScheduleChecker` checks many
  schedules against cached baselines, for properties of your own.
* :class:`FakeTasks`: answer tasks by name (a value, a failure, a function of
  the args) so a process can be tested without its real effects.
* The pytest plugin (installed with the package) adds an ``engine`` fixture
  and the options ``--replay-seed`` and ``--replay-schedules``.

``assert_deterministic`` and ``strategies`` need hypothesis
(``pip install replay-engine[test]``); the rest does not.

.. versionadded:: 0.1
"""

from ._assert import DeterminismReport, assert_deterministic
from ._check import ScheduleChecker, Stats, check_schedule
from ._fakes import FakeTasks
from ._messages import DeterminismFailure
from ._schedule import Execution, InjectedFailure, Schedule, run_schedule
from ._trace import CallRecord, Trace

__all__ = [
    "CallRecord",
    "DeterminismFailure",
    "DeterminismReport",
    "Execution",
    "FakeTasks",
    "InjectedFailure",
    "Schedule",
    "ScheduleChecker",
    "Stats",
    "Trace",
    "assert_deterministic",
    "check_schedule",
    "run_schedule",
]
