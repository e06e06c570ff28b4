"""``replay-engine check`` RE116 (issue 15): non-determinism hidden in a helper
in another module of the user's package, found by parsing (never importing)
and reported with the chain of calls, file:line at every step.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from replay_engine.check import Finding, check_process, main_check

from .user_packages import Write, found, package

__all__ = ["package"]  # the fixture, used by name


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
