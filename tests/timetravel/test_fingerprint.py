"""The code fingerprint: per process function, recorded per execution.

Versions of one process are compiled from source under one module name (as a
deploy replaces a module), so they share their ``module:qualname`` reference.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import journal_format as jf
from replay_engine import Engine, NonDeterminismError
from replay_engine._run.process_ref import code_of, module_fingerprint

MODULE = "fp_flow_mod"

BASE = '''
from replay_engine import external, task

@task(name="fp.step")
def step(n):
    return n * 2

@external(kind="agent", name="fp.ask")
def ask(q):
    """posted"""

def helper(x):
    return x + 1

async def process(inputs, ctx):
    a = await ctx.task(step, {"n": 1})
    b = await ctx.task(ask, {"q": "go?"})
    c = await ctx.parallel.all([lambda: ctx.task(step, {"n": 3})])
    return [a, b, c]
'''

# Comments, blank lines, a docstring-free edit of another function: not the
# process's code.
COSMETIC = "# a comment at the top\n\n" + BASE.replace(
    "return x + 1", "return x + 2  # helper changed"
).replace("async def process", "# about the process\n\nasync def process")
# Only the lambda the process defines changes.
LAMBDA = BASE.replace('{"n": 3}', '{"n": 4}')
# The process inserts a call before a recorded one.
INSERTED = BASE.replace(
    'a = await ctx.task(step, {"n": 1})',
    'await ctx.task(step, {"n": 0})\n    a = await ctx.task(step, {"n": 1})',
)


def compile_process(source: str) -> Callable[..., Any]:
    namespace: dict[str, Any] = {"__name__": MODULE}
    exec(compile(source, f"{MODULE}.py", "exec"), namespace)
    return namespace["process"]  # type: ignore[no-any-return]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with Engine(tmp_path / "j", durability="process") as eng:
        yield eng


@pytest.mark.spec("JF-114")
def test_the_fingerprint_ignores_lines_comments_and_other_functions() -> None:
    base, cosmetic = code_of(compile_process(BASE)), code_of(compile_process(COSMETIC))
    assert base[0].startswith("code1:")
    assert base == cosmetic
    lam = code_of(compile_process(LAMBDA))
    assert lam[0] != base[0]
    changed = [name for name, h in lam[1].items() if base[1][name] != h]
    assert changed == ["process.<locals>.<lambda>"]
    assert set(base[1]) == {"process", "process.<locals>.<lambda>"}


@pytest.mark.spec("JF-114")
def test_each_execution_records_the_code_it_ran(engine: Engine) -> None:
    v1, v2 = compile_process(BASE), compile_process(LAMBDA)
    assert engine.run(v1, {}, run_id="r").status == "waiting"
    started = engine.events("r")[0].event
    assert isinstance(started, jf.RunStarted)
    assert (started.fingerprint, started.code) == code_of(v1)
    engine.post("r", "1", result="ok")
    assert engine.resume("r", process=v2).status == "completed"
    executions = [
        s.event for s in engine.events("r") if isinstance(s.event, jf.ExecutionStarted)
    ]
    assert [(e.fingerprint, e.code) for e in executions] == [code_of(v2)]


def test_the_resume_warning_names_the_function_that_changed(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    engine.run(compile_process(BASE), {}, run_id="r")
    # A cosmetic edit: nothing to warn about.
    assert engine.resume("r", process=compile_process(COSMETIC)).warnings == []
    engine.post("r", "1", result="ok")
    with caplog.at_level(logging.WARNING, logger="replay_engine"):
        run = engine.resume("r", process=compile_process(LAMBDA))
    assert run.status == "completed"
    [warning] = run.warnings
    assert "changed: process.<locals>.<lambda>" in warning
    assert "ctx.patched" in warning
    assert warning in caplog.text


def test_the_warning_compares_with_the_latest_execution(engine: Engine) -> None:
    two = BASE.replace(
        'c = await ctx.parallel.all([lambda: ctx.task(step, {"n": 3})])',
        'c = await ctx.task(ask, {"q": "again?"})',
    )
    changed = two.replace("return [a, b, c]", "return [a, b, c, 1]")
    engine.run(compile_process(two), {}, run_id="r")
    engine.post("r", "1", result="ok")
    first = engine.resume("r", process=compile_process(changed))
    assert first.status == "waiting"
    assert len(first.warnings) == 1
    # The same new code again: it is what the run last executed with (an
    # execution that wrote nothing, though, leaves no trace to compare with).
    assert engine.resume("r", process=compile_process(changed)).warnings == []
    assert len(engine.resume("r", process=compile_process(two)).warnings) == 1


def test_a_divergence_after_a_code_change_says_so_first(engine: Engine) -> None:
    engine.run(compile_process(BASE), {}, run_id="r")
    with pytest.raises(NonDeterminismError) as caught:
        engine.resume("r", process=compile_process(INSERTED))
    message = str(caught.value)
    assert message.startswith("the code changed since this run last executed")
    assert "changed: process" in message.splitlines()[0]
    causes = message[message.index("Likely causes:") :]
    assert causes.index("the code changed") < causes.index("a branch on time")
    assert caught.value.key == "0"
    # The same divergence without a code change keeps the usual order.
    engine.run(compile_process(BASE), {}, run_id="s")
    plain = compile_process(BASE)
    plain_error = _divergence_without_change(engine, plain)
    assert not plain_error.startswith("the code changed")


def _divergence_without_change(engine: Engine, fn: Callable[..., Any]) -> str:
    """A divergence whose code did not change: a branch on the environment."""
    flip = {"on": False}

    async def flaky(inputs: Any, ctx: Any) -> Any:
        if flip["on"]:
            await ctx.task(fn.__globals__["step"], {"n": 99})
        return await fn(inputs, ctx)

    flaky.__module__, flaky.__qualname__ = MODULE, "flaky"
    engine.run(flaky, {}, run_id="flaky")
    flip["on"] = True
    with pytest.raises(NonDeterminismError) as caught:
        engine.resume("flaky", process=flaky)
    return str(caught.value)


def test_old_journals_with_a_module_fingerprint_still_compare(
    engine: Engine, tmp_path: Path
) -> None:
    """A run whose run_started holds a module-source hash (older writers)."""
    fn = compile_process(BASE)
    engine.run(fn, {}, run_id="new")
    store = engine._store  # crafting what an older writer wrote
    inputs = jf.encode_payload({})
    ref = jf.payload_ref(inputs)
    legacy = jf.RunStarted(
        process=f"{MODULE}:process", fingerprint=module_fingerprint(fn), inputs=ref
    )
    store.create_run("old", legacy, jf.blobs_for(ref, inputs))
    run = engine.resume("old", process=fn)
    assert (run.status, run.warnings) == ("waiting", [])
    other = engine.resume("old", process=compile_process(COSMETIC))
    assert other.status == "waiting"
