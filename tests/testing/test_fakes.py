"""FakeTasks: values, failures and functions by task name, and their restoration."""

from __future__ import annotations

from typing import Any

import pytest

from replay_engine import Engine
from replay_engine.testing import FakeTasks, assert_deterministic, run_schedule

from . import fake_flows as ff

INPUTS = {"files": ["a.py"], "services": ["api", "web"]}
MOD = "tests.testing.fake_flows"


def fakes(**overrides: Any) -> FakeTasks:
    answers: dict[str, Any] = {
        f"{MOD}.lint": {"errors": 0},
        f"{MOD}.deploy": lambda service: {"service": service, "ok": True},
        "notify": RuntimeError("pager is down"),
        f"{MOD}.plain_effect": lambda n: n * 21,
    }
    answers.update(overrides)
    return FakeTasks(answers)


def test_fakes_answer_by_name_inside_a_with_block(engine: Engine) -> None:
    with fakes() as faked:
        run = engine.run(ff.release, INPUTS, run_id="r1")
    assert run.status == "completed", run.error
    assert run.result == {
        "lint": {"errors": 0},
        "deployed": [{"service": "api", "ok": True}, {"service": "web", "ok": True}],
        "notified": "pager is down",
        "extra": 42,
    }
    assert sorted(name for name, _ in faked.calls) == sorted(
        [
            f"{MOD}.lint",
            f"{MOD}.deploy",
            f"{MOD}.deploy",
            "notify",
            f"{MOD}.plain_effect",
        ]
    )
    assert (f"{MOD}.lint", {"files": ["a.py"]}) in faked.calls


def test_the_real_functions_are_restored_on_exit(engine: Engine) -> None:
    original = ff.lint.fn
    with fakes():
        assert ff.lint.fn is not original
    assert ff.lint.fn is original
    run = engine.run(ff.release, INPUTS, run_id="r2")
    assert run.status == "failed"
    assert run.error is not None and "RealWorldTouched" in run.error.message


def test_fakes_nest_and_restore_once() -> None:
    faked = fakes()
    original = ff.deploy.fn
    with faked, faked:
        assert ff.deploy.fn is not original
    assert ff.deploy.fn is original


def test_an_exception_class_fails_with_a_message() -> None:
    faked = FakeTasks({"notify": PermissionError})
    failure = faked.failure("notify")
    assert isinstance(failure, PermissionError)
    assert "notify" in str(failure)
    assert faked.failure("other") is None


def test_an_unknown_task_name_is_refused_with_a_suggestion() -> None:
    with (
        pytest.raises(
            ValueError, match=r"did you mean 'tests.testing.fake_flows.lint'"
        ),
        FakeTasks({f"{MOD}.lnt": {}}),
    ):
        pass
    assert ff.lint.fn.__name__ == "lint"


def test_fakes_under_run_schedule_and_a_crash() -> None:
    execution = run_schedule(ff.release, INPUTS, fakes=fakes())
    assert execution.status == "completed"
    assert execution.result["extra"] == 42
    from replay_engine.testing import Schedule

    crashed = run_schedule(
        ff.release, INPUTS, Schedule(crash_after=(3,)), fakes=fakes()
    )
    assert crashed.crashes == 1
    assert crashed.trace.calls.keys() == execution.trace.calls.keys()
    assert crashed.result == execution.result


def test_a_mapping_is_accepted_as_fakes() -> None:
    answers = {
        f"{MOD}.lint": {"errors": 0},
        f"{MOD}.deploy": {"ok": True},
        "notify": None,
        f"{MOD}.plain_effect": 1,
    }
    execution = run_schedule(ff.release, INPUTS, fakes=answers)
    assert execution.result["notified"] is True


def test_assert_deterministic_with_fakes() -> None:
    report = assert_deterministic(ff.release, INPUTS, fakes=fakes(), max_examples=8)
    assert report.schedules >= 8
    assert ff.lint.fn.__name__ == "lint"


def test_under_a_schedule_fakes_answer_through_the_engine_hook() -> None:
    # A process-pool task imports the real function by reference, so swapping
    # TaskDef.fn could not reach it; the engine's fake hook answers first.
    faked = FakeTasks({f"{MOD}.remote_scan": {"clean": True}})
    original = ff.remote_scan.fn
    execution = run_schedule(ff.scan, {"path": "/srv"}, fakes=faked)
    assert execution.result == {"clean": True}
    assert faked.calls == [(f"{MOD}.remote_scan", {"path": "/srv"})]
    assert ff.remote_scan.fn is original
