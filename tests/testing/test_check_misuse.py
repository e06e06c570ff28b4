"""``replay-engine check`` rules of issue 15: RE113 a task called directly, RE114 a
ctx call never awaited, RE115 module-level state written by a process, RE116
non-determinism hidden in a helper in another module of the user's package.

Each test writes a small package to ``tmp_path`` and checks its process, so the
checker reads real files as it does for users.
"""

from __future__ import annotations

import importlib
import itertools
import json
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from replay_engine.check import Finding, check_process, main_check

_names = itertools.count()

Write = Callable[..., Any]


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Write]:
    """``package(files, top=True)``: write modules, import ``flows``, return it.

    ``files`` maps a module name (``"flows"``, ``"helpers"``) to its source. In
    a package (``top=False``, the default) they go in a fresh package directory;
    with ``top=True`` they are top-level modules side by side.
    """
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded: list[str] = []

    def write(files: dict[str, str], top: bool = False) -> Any:
        pkg = f"pkg{next(_names)}"
        where = tmp_path if top else tmp_path / pkg
        where.mkdir(exist_ok=True)
        if not top:
            (where / "__init__.py").write_text("")
        prefix = "" if top else f"{pkg}."
        for name, source in files.items():
            text = textwrap.dedent(source).replace("PKG", pkg)
            (where / f"{name}.py").write_text(text, encoding="utf-8")
            loaded.append(prefix + name)
        loaded.append(pkg)
        importlib.invalidate_caches()
        return importlib.import_module(prefix + "flows")

    yield write
    for name in loaded:
        sys.modules.pop(name, None)


def found(module: Any) -> list[tuple[str, int]]:
    return [(f.code, f.line) for f in check_process(module.process)]


# -- RE113: a task called directly ----------------------------------------------------

STEPS = """
from replay_engine import external, task

@task
def step(n):
    return n * 2

@external(kind="agent")
def review(diff):
    ...
"""


def test_calling_a_task_directly_is_flagged(package: Write) -> None:
    flows = package(
        {
            "steps": STEPS,
            "flows": """\
            from replay_engine import task
            from . import steps
            from .steps import step

            @task
            def local_step(n):
                return n

            async def process(inputs, ctx):
                a = step(n=3)
                b = steps.review(diff="x")
                c = local_step(1)
                d = await ctx.task(step, {"n": 3})
                return [a, b, c, d]
            """,
        }
    )
    findings = check_process(flows.process)
    assert [(f.code, f.line) for f in findings] == [
        ("RE113", 10),
        ("RE113", 11),
        ("RE113", 12),
    ]
    assert "step(...) calls a @task directly" in findings[0].message
    assert "steps.review(...) calls a @external directly" in findings[1].message
    assert findings[0].replacement.startswith("await ctx.task(step,")


def test_a_local_name_shadowing_a_task_is_not_flagged(package: Write) -> None:
    flows = package(
        {
            "steps": STEPS,
            "flows": """\
            from .steps import step

            async def process(inputs, ctx):
                step = lambda n: n + 1
                return step(2) + await ctx.task(print, {})
            """,
        }
    )
    assert found(flows) == []


# -- RE114: a ctx call nobody awaits ----------------------------------------------


def test_unawaited_ctx_calls_are_flagged(package: Write) -> None:
    flows = package(
        {
            "flows": """\
            async def process(inputs, context):
                context.task(print, {"x": 1})
                context.parallel.all([lambda: context.task(print, {})])
                forgotten = context.task(print, {"x": 2})
                context.sleep(5)
                kept = context.task(print, {"x": 3})
                both = [context.task(print, {}), context.task(print, {})]
                context.call(print)(x=5)
                await context.parallel.all([lambda: kept])
                return await context.task(print, {"x": 4})
            """,
        }
    )
    findings = check_process(flows.process)
    assert [(f.code, f.line) for f in findings] == [
        ("RE114", 2),
        ("RE114", 3),
        ("RE114", 4),
        ("RE114", 5),
        ("RE114", 8),
    ]
    assert findings[0].message.startswith("context.task(...) is never awaited")
    assert findings[4].message.startswith("context.call(...)(...) is never awaited")
    assert "context.parallel.all(...)" in findings[1].message


def test_awaited_and_returned_ctx_calls_are_not_flagged(package: Write) -> None:
    flows = package(
        {
            "flows": """\
            import asyncio

            def later(ctx, n):
                return ctx.task(print, {"n": n})   # the caller awaits it

            async def process(inputs, ctx):
                first = ctx.task(print, {})
                a = await first
                b = await later(ctx, 1)
                c = await ctx.parallel.map([1, 2], lambda n: ctx.task(print, {"n": n}))
                d = await asyncio.gather(ctx.task(print, {}), ctx.task(print, {}))
                return [a, b, c, d]
            """,
        }
    )
    assert found(flows) == []


# -- RE115: module-level state ---------------------------------------------


def test_writes_to_module_level_state_are_flagged(package: Write) -> None:
    flows = package(
        {
            "flows": """\
            COUNT = 0
            SEEN: list[int] = []
            CACHE = {}
            LIMIT = 10

            def remember(k, v):
                CACHE[k] = v

            async def process(inputs, ctx):
                global COUNT
                COUNT = COUNT + 1
                SEEN.append(inputs["n"])
                remember("k", await ctx.task(print, {}))
                mine = []
                mine.append(LIMIT)
                return mine
            """,
        }
    )
    findings = check_process(flows.process)
    assert [(f.code, f.line) for f in findings] == [
        ("RE115", 7),
        ("RE115", 11),
        ("RE115", 12),
    ]
    assert "the module-level 'CACHE'" in findings[0].message
    assert findings[0].function.endswith(".remember")
    assert "assigns (through `global`) the module-level 'COUNT'" in findings[1].message
    assert "calls .append() on the module-level 'SEEN'" in findings[2].message


def test_writes_to_state_imported_from_another_module_are_flagged(
    package: Write,
) -> None:
    flows = package(
        {
            "state": """\
            import collections
            SEEN = []
            COUNTS = collections.Counter()
            NAME = "fixed"
            """,
            "flows": """\
            from .state import COUNTS, NAME, SEEN

            async def process(inputs, ctx):
                SEEN.append(NAME)
                COUNTS["runs"] += 1
                return await ctx.task(print, {})
            """,
        }
    )
    assert found(flows) == [("RE115", 4), ("RE115", 5)]


def test_locals_shadowing_module_names_and_closures_are_not_flagged(
    package: Write,
) -> None:
    flows = package(
        {
            "flows": """\
            CACHE = {}

            async def process(inputs, ctx):
                CACHE = {}
                CACHE["k"] = 1
                results = []
                async def branch(n):
                    results.append(n)
                    return n
                await ctx.parallel.all([lambda: branch(1)])
                return CACHE, results
            """,
        }
    )
    assert found(flows) == []


# -- RE116: hazards in helpers of other modules -----------------------------------


def test_a_hazard_in_a_helper_module_is_flagged_with_its_chain(
    package: Write, tmp_path: Path
) -> None:
    flows = package(
        {
            "helpers": """\
            import time
            import uuid

            from .clock import stamp

            def make_id(prefix):
                return f"{prefix}-{uuid.uuid4()}"

            def label(x):
                return f"{x}@{stamp()}"

            def pure(x):
                return x * 2
            """,
            "clock": """\
            import datetime

            def stamp():
                return _raw()

            def _raw():
                return datetime.datetime.now().isoformat()
            """,
            "flows": """\
            from . import helpers
            from .helpers import label

            async def process(inputs, ctx):
                a = helpers.make_id("job")
                b = label(3)
                c = helpers.pure(2)
                return await ctx.task(print, {"a": a, "b": b, "c": c})
            """,
        }
    )
    findings = check_process(flows.process)
    assert [(f.code, f.line) for f in findings] == [("RE116", 5), ("RE116", 6)]
    pkg = flows.__name__.split(".")[0]
    make_id, label = findings
    assert (
        f"flows.process → helpers.make_id ({pkg}/helpers.py:6)"
        f" → uuid.uuid4 ({pkg}/helpers.py:7)"
    ) in make_id.message
    assert make_id.message.startswith("uuid.uuid4() makes a new random id")
    assert make_id.replacement.startswith("ctx.uuid()")
    assert (
        f"flows.process → helpers.label ({pkg}/helpers.py:9)"
        f" → clock.stamp ({pkg}/clock.py:3) → clock._raw ({pkg}/clock.py:6)"
        f" → datetime.datetime.now ({pkg}/clock.py:7)"
    ) in label.message
    assert make_id.file == str(tmp_path / pkg / "flows.py")


def test_helper_modules_are_parsed_never_imported(package: Write) -> None:
    flows = package(
        {
            "helpers": """\
            def make_id():
                from .deeper import raw_id   # imported only when called
                return raw_id()
            """,
            "deeper": """\
            import os
            raise RuntimeError("the checker must not import this module")

            def raw_id():
                return os.environ["HOST"]
            """,
            "flows": """\
            from .helpers import make_id

            async def process(inputs, ctx):
                return make_id()
            """,
        }
    )
    (finding,) = check_process(flows.process)
    assert finding.code == "RE116"
    assert "helpers.make_id" in finding.message and "deeper.raw_id" in finding.message
    assert "os.environ" in finding.message
    assert f"{flows.__name__.rsplit('.', 1)[0]}.deeper" not in sys.modules


def test_tasks_ignores_and_the_depth_bound_stop_the_search(package: Write) -> None:
    chain = {
        f"h{i}": f"""\
            from . import h{i + 1}

            def f():
                return h{i + 1}.f()
            """
        for i in range(1, 6)
    }
    chain["h6"] = """\
        import random

        def f():
            return random.random()
        """
    flows = package(
        {
            **chain,
            "effects": """\
            import time
            from replay_engine import task

            @task
            def fetch():
                return time.time()

            def allowed():
                return time.time()  # replay-engine: ignore[RE101]
            """,
            "flows": """\
            from . import effects, h1, h5

            async def process(inputs, ctx):
                a = await ctx.task(effects.fetch, {})
                b = effects.allowed()
                c = h1.f()      # random.random is 6 calls deep: beyond the bound
                d = h5.f()      # 2 calls deep: found
                return [a, b, c, d]
            """,
        }
    )
    assert found(flows) == [("RE116", 7)]


def test_top_level_modules_beside_the_process_are_followed(package: Write) -> None:
    flows = package(
        {
            "helpers": """\
            import random

            def pick(xs):
                return random.choice(xs)
            """,
            "flows": """\
            import json
            import helpers

            async def process(inputs, ctx):
                return json.dumps(helpers.pick([1, 2]))
            """,
        },
        top=True,
    )
    (finding,) = check_process(flows.process)
    assert finding.code == "RE116"
    assert "flows.process → helpers.pick (helpers.py:3)" in finding.message


def test_main_check_reports_the_new_codes_as_json(
    package: Write, capsys: pytest.CaptureFixture[str]
) -> None:
    flows = package(
        {
            "flows": """\
            SEEN = []

            async def process(inputs, ctx):
                SEEN.append(1)
                ctx.task(print, {})
            """
        }
    )
    assert main_check(f"{flows.__name__}:process", as_json=True) == 1
    doc = json.loads(capsys.readouterr().out)
    assert [f["code"] for f in doc["findings"]] == ["RE115", "RE114"]
    assert all(isinstance(Finding(**f), Finding) for f in doc["findings"])
