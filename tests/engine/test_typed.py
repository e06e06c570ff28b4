"""Values come back as they went in (issue 15): conversion to the task's annotations.

Live, replayed (a fork resumed before its end), and resumed after a SIGKILL in
a child process, the process must see the same types: tuples, sets, dates,
datetimes, UUIDs, Structs and dataclasses — never the lists, strings and dicts
the journal stores. Wrong arguments are refused before anything is recorded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import journal_format as jf
from replay_engine import Engine, PayloadError, TaskDef, task
from tests.children import crash_child, finish_child, start_child
from tests.engine import typed_flows as tf
from tests.helpers import cli_invoker
from tests.journal_views import tags

MakeEngine = Any

EXPECTED = [
    "Point:Point(x=3, when=datetime.date(2026, 3, 1), span=(1, 1))",
    "Point:Point(x=4, when=datetime.date(2026, 3, 2), span=(1, 3))",
    "Tag:Tag(names=frozenset({'a', 'b'}), at=datetime.datetime(2026, 5, 4, 3, 2, 1,"
    " tzinfo=datetime.timezone.utc))",
    "list:[(UUID('00000000-0000-0000-0000-000000000001'), datetime.date(2026, 1, 1)),"
    " (UUID('00000000-0000-0000-0000-000000000002'), datetime.date(2026, 1, 2))]",
    # Unannotated: as before, a tuple arrives as a list.
    "dict:{'got': 'list', 'x': [1, 2]}",
]


def _sorted_frozenset(description: list[str]) -> list[str]:
    # A frozenset's repr order depends on the string hash seed of the process.
    return [
        d.replace("frozenset({'b', 'a'})", "frozenset({'a', 'b'})") for d in description
    ]


def _fork_before_end(engine: Engine, run_id: str, new_id: str) -> None:
    """A fork with every effect completed but not the run: resuming it replays all."""
    events = engine.events(run_id)
    assert jf.event_tag(events[-1].event) == "run_completed"
    engine.fork(run_id, at=len(events) - 1, new_run_id=new_id)


def test_live_and_replayed_results_have_the_annotated_types(
    make_engine: MakeEngine,
) -> None:
    engine = make_engine()
    live = engine.run(tf.typed_process, {}, run_id="live")
    assert live.status == "completed", live
    assert _sorted_frozenset(live.result) == EXPECTED
    _fork_before_end(engine, "live", "again")
    replayed = engine.resume("again", process=tf.typed_process)
    assert replayed.status == "completed"
    assert replayed.stats.dispatched == 0 and replayed.stats.replayed == 6
    assert _sorted_frozenset(replayed.result) == EXPECTED


def test_types_survive_a_sigkill_and_a_resume_in_another_process(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "journal"
    side = tmp_path / "side"
    ref = "tests.engine.typed_flows:typed_process"
    # Killed once the third effect's completion is committed (run_started,
    # then requested/completed per effect): the resume replays three effects
    # from the journal and runs the others live.
    crash_child(
        "run", journal, "r", ref=ref, inputs={}, kill_at=7, env={tf.SIDE_ENV: str(side)}
    )
    code, out = finish_child(
        start_child("resume", journal, "r", env={tf.SIDE_ENV: str(side)})
    )
    assert code == 0, out
    result = json.loads(out.strip().splitlines()[-1])
    assert result["status"] == "completed"
    assert _sorted_frozenset(result["result"]) == EXPECTED
    ran = side.read_text().split()
    assert ran.count("move") == 2 and ran.count("tag") == 1, ran  # none twice


def test_external_result_is_converted_to_the_annotation(
    make_engine: MakeEngine,
) -> None:
    engine = make_engine()
    assert engine.run(tf.external_process, {}, run_id="x").status == "waiting"
    (pending,) = engine.pending("x")
    engine.post("x", pending.key, result={"ok": True, "reviewer": "ada"})
    run = engine.resume("x", process=tf.external_process)
    assert run.result == "Verdict:Verdict(ok=True, reviewer='ada')"


def test_wrong_argument_type_is_refused_before_anything_is_recorded(
    make_engine: MakeEngine,
) -> None:
    engine = make_engine()
    run = engine.run(tf.bad_argument, {"when": "next tuesday"}, run_id="bad")
    assert run.status == "failed"
    assert run.error is not None and run.error.type.endswith("PayloadError")
    message = run.error.message
    for part in (
        "typed_flows.move",
        "argument 'when'",
        "datetime",
        "nothing was recorded",
    ):
        assert part in message, message
    assert "requested" not in tags(engine, "bad"), tags(engine, "bad")
    ok = engine.run(tf.bad_argument, {"when": "2026-01-01T00:00:00Z"}, run_id="good")
    assert ok.status == "completed", ok


def test_wrong_argument_from_the_cli_names_the_parameter(tmp_path: Path) -> None:
    invoke = cli_invoker(tmp_path / "journal")
    result = invoke(
        "run",
        "tests.engine.typed_flows:bad_argument",
        "--input",
        '{"when": 12}',
        "--run-id",
        "cli",
        "--json",
        code=1,
    )
    doc = json.loads(result.stdout)
    text = json.dumps(doc)
    assert "argument 'when'" in text and "datetime" in text, doc


def test_result_that_does_not_fit_is_not_recorded(make_engine: MakeEngine) -> None:
    engine = make_engine()
    run = engine.run(tf.bad_result, {}, run_id="r")
    assert run.status == "failed"
    assert run.error is not None and "-> Point" in run.error.message
    assert "completed" not in tags(engine, "r")


def test_task_and_call_forms_record_the_same_calls(make_engine: MakeEngine) -> None:
    engine = make_engine()
    first = engine.run(tf.same_calls_task_form, {}, run_id="t")
    assert first.result == ["tuple:(1, 'b')", "tuple:(2, 'c')"]
    _fork_before_end(engine, "t", "c")
    other = engine.resume("c", process=tf.same_calls_call_form)
    assert other.status == "completed" and other.stats.replayed == 2
    assert other.result == first.result


def test_call_form_refuses_extra_positionals(make_engine: MakeEngine) -> None:
    @task
    def one(a: int) -> int:
        return a

    async def proc(inputs: Any, ctx: Any) -> Any:
        return await ctx.call(one)(1, 2)

    run = make_engine().run(proc, {}, run_id="p")
    assert run.status == "failed" and "takes 1 positional" in run.error.message


def test_unannotated_and_natively_decoded_tasks_convert_nothing() -> None:
    """The fast path: nothing to convert, so nothing is attempted (bench tasks)."""

    @task
    def bare(i):  # type: ignore[no-untyped-def]
        return i

    @task(executor="inline")
    def scalar(i: int, s: str, d: dict[str, Any], xs: list[int]) -> dict[str, int]:
        return {}

    for t in (bare, scalar):
        assert t.plan.converts == () and t.result_type is None, t.plan
    assert [name for name, _ in scalar.plan.checks] == ["i", "s", "d", "xs"]
    assert tf.move.plan.converts and tf.move.result_type is tf.Point


def test_forward_reference_is_resolved_at_first_use(make_engine: MakeEngine) -> None:
    namespace: dict[str, Any] = {}
    exec(  # a class defined after the task that names it
        "from __future__ import annotations\n"
        "import msgspec\n"
        "from replay_engine import task\n"
        "@task\n"
        "def later() -> Later:\n"
        "    return Later(x=(1, 2))\n"
        "class Later(msgspec.Struct):\n"
        "    x: tuple[int, int]\n",
        namespace,
    )
    later: TaskDef[[], Any] = namespace["later"]

    async def proc(inputs: Any, ctx: Any) -> Any:
        value = await ctx.task(later)
        return repr(value)

    run = make_engine().run(proc, {}, run_id="f")
    assert run.result == "Later(x=(1, 2))"


def test_payload_error_is_a_type_error() -> None:
    assert issubclass(PayloadError, TypeError)


@pytest.mark.parametrize("value", [(1, 2), {"a"}, b"\x00"])
def test_direct_call_outside_a_process_is_a_plain_call(value: Any) -> None:
    assert tf.untyped(value) == {"got": type(value).__name__, "x": value}


class _Service:
    def __init__(self, base: int) -> None:
        self.base = base

    def span(self, a: int, b: int = 1) -> tuple[int, int]:
        return (self.base + a, b)


def test_bound_method_tasks_bind_positionals_without_self(
    make_engine: MakeEngine,
) -> None:
    service = _Service(10)

    async def proc(inputs: Any, ctx: Any) -> Any:
        first = await ctx.call(service.span)(1)
        second = await ctx.task(service.span, {"a": 2, "b": 3})
        return [tf.describe(first), tf.describe(second)]

    run = make_engine().run(proc, {}, run_id="m")
    assert run.result == ["tuple:(11, 1)", "tuple:(12, 3)"], run.error


@task(executor="inline")
def scaled(n: int, factor: float = 1.0) -> float:
    return n * factor


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ({"n": 2, "factor": 3}, None),  # an int where a float is annotated is fine
        ({"n": 2.0}, "argument 'n' must be int"),
        ({"n": True}, "argument 'n' must be int"),
        ({"n": "2"}, "argument 'n' must be int"),
        ({"n": 1, "factor": "x"}, "argument 'factor' must be float"),
    ],
)
def test_scalar_arguments_are_checked_exactly(
    make_engine: MakeEngine, args: dict[str, Any], problem: str | None
) -> None:
    async def proc(inputs: Any, ctx: Any) -> Any:
        return await ctx.task(scaled, args)

    engine = make_engine()
    run = engine.run(proc, {}, run_id="s")
    if problem is None:
        assert run.status == "completed" and run.result == 6.0
    else:
        assert run.status == "failed" and problem in run.error.message, run.error
        assert "requested" not in tags(engine, "s")
