"""The public surface of ``replay_engine.testing`` is exactly its ``__all__``."""

from __future__ import annotations

import types

import replay_engine.testing as testing
import replay_engine.testing.strategies as strategies


def public_names(module: types.ModuleType) -> list[str]:
    return sorted(
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and getattr(value, "__module__", module.__name__).startswith(module.__name__)
    )


def test_testing_exports_exactly_its_all() -> None:
    assert testing.__all__ == sorted(testing.__all__)
    assert public_names(testing) == testing.__all__
    assert testing.__all__ == [
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


def test_strategies_exports() -> None:
    assert strategies.__all__ == [
        "Plan",
        "crash_points",
        "delays",
        "failures",
        "plans",
        "schedules",
    ]


def test_every_export_is_documented() -> None:
    objects = [(testing, n) for n in testing.__all__]
    objects += [(strategies, n) for n in strategies.__all__]
    for module, name in objects:
        doc = getattr(module, name).__doc__
        assert doc and doc.strip(), name


def test_importing_testing_does_not_import_hypothesis() -> None:
    import subprocess
    import sys

    code = (
        "import sys, replay_engine.testing, replay_engine.pytest_plugin;"
        " print('hypothesis' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
