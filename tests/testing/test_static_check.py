"""``check_process`` and ``main_check``: the static determinism check.

Each hazard is written into a small module on disk (so the checker reads real
source, as it does for users) and must be flagged with its code, at its line,
with the deterministic replacement; the seed's examples must come out clean.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from replay_engine.check import Finding, check_process, main_check

from . import hazards, seed_examples

HEADER = """\
import asyncio, datetime, os, random, threading, time, uuid
import datetime as dt
import concurrent.futures
from datetime import datetime as DateTime
from time import time as now
from uuid import uuid4
from pathlib import Path
from replay_engine import task
"""


def load(tmp_path: Path, body: str, name: str = "snippet") -> Any:
    """Write ``HEADER + body`` as a module and import it."""
    path = tmp_path / f"{name}.py"
    path.write_text(HEADER + textwrap.dedent(body), encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def codes(tmp_path: Path, body: str) -> list[tuple[str, int]]:
    """``(code, line within body)`` of every finding for ``process``."""
    module = load(tmp_path, body)
    offset = HEADER.count("\n")
    return [(f.code, f.line - offset) for f in check_process(module.process)]


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("x = time.time()", "RE101"),
        ("x = time.monotonic()", "RE101"),
        ("x = now()", "RE101"),
        ("x = datetime.datetime.now()", "RE101"),
        ("x = dt.datetime.utcnow()", "RE101"),
        ("x = DateTime.now()", "RE101"),
        ("x = datetime.date.today()", "RE101"),
        ("x = random.random()", "RE102"),
        ("x = random.choice([1, 2])", "RE102"),
        ("x = random.Random()", "RE102"),
        ("x = os.urandom(4)", "RE102"),
        ("x = uuid.uuid4()", "RE103"),
        ("x = uuid4()", "RE103"),
        ("x = os.environ['HOME']", "RE104"),
        ("x = os.environ.get('HOME')", "RE104"),
        ("x = os.getenv('HOME')", "RE104"),
        ("x = open('f').read()", "RE105"),
        ("x = Path('f').read_text()", "RE105"),
        ("x = os.listdir('.')", "RE105"),
        ("import socket\n    x = socket.gethostname()", "RE106"),
        ("import urllib.request\n    x = urllib.request.urlopen('http://x')", "RE106"),
        ("threading.Thread(target=print).start()", "RE108"),
        ("x = concurrent.futures.ThreadPoolExecutor()", "RE108"),
        ("x = asyncio.create_task(asyncio.sleep(0))", "RE109"),
        ("time.sleep(1)", "RE110"),
        ("x = hash('a')", "RE111"),
    ],
)
def test_each_hazard_is_flagged_at_its_line(
    tmp_path: Path, line: str, code: str
) -> None:
    body = f"""
async def process(inputs, ctx):
    {line}
    return await ctx.task(print, {{}})
"""
    found = codes(tmp_path, body)
    assert code in [c for c, _ in found], found
    assert all(n == line.count("\n") + 3 for c, n in found if c == code)


@pytest.mark.parametrize(
    "loop",
    [
        "for name in {'a', 'b'}:\n        out.append(name)",
        "out.extend([n for n in set(inputs['names'])])",
        "names = {'a', 'b'}\n    for name in names:\n        out.append(name)",
        "names = set(inputs['names']) | {'c'}\n    out.extend(list(names))",
        "out.append(','.join({'a', 'b'}))",
        "await ctx.parallel.map({'a', 'b'}, print)",
        "out.append({'a', 'b'}.pop())",
        "out.extend({n: 1 for n in frozenset(['a'])})",
    ],
)
def test_set_iteration_is_flagged(tmp_path: Path, loop: str) -> None:
    body = f"""
async def process(inputs, ctx):
    out = []
    {loop}
    return out
"""
    assert "RE107" in [c for c, _ in codes(tmp_path, body)]


@pytest.mark.parametrize(
    "safe",
    [
        "for name in sorted({'a', 'b'}):\n        out.append(name)",
        "out.append(sorted(n for n in {'a', 'b'}))",
        "out.append(len({'a', 'b'}))",
        "out.append('a' in {'a', 'b'})",
        "out.append({n.upper() for n in {'a', 'b'}})",
        "out.append(sum(len(n) for n in {'a', 'b'}))",
        "rng = random.Random(42)\n    out.append(rng.random())",
        "random = ctx.random()\n    out.append(random.randint(1, 6))",
        "out.append(ctx.now().isoformat())",
        "out.append(str(ctx.uuid()))",
        "out.extend(await asyncio.gather(ctx.task(print, {}), ctx.task(print, {})))",
        "out.append(time.strftime('%Y', (2024, 1, 1, 0, 0, 0, 0, 1, 0)))",
        "out.append(os.environ['HOME'])  # replay-engine: ignore[RE104]",
        "out.append(time.time())  # replay-engine: ignore",
    ],
)
def test_deterministic_code_is_not_flagged(tmp_path: Path, safe: str) -> None:
    body = f"""
async def process(inputs, ctx):
    out = []
    {safe}
    return out
"""
    assert codes(tmp_path, body) == []


def test_an_ignore_for_another_code_does_not_hide_the_finding(tmp_path: Path) -> None:
    body = """
async def process(inputs, ctx):
    return time.time()  # replay-engine: ignore[RE104]
"""
    assert [c for c, _ in codes(tmp_path, body)] == ["RE101"]


def test_helpers_in_the_module_are_checked_transitively(tmp_path: Path) -> None:
    body = """
def stamp():
    return time.time()

def label(x):
    return f"{x}-{stamp()}"

async def process(inputs, ctx):
    return await ctx.task(print, {"label": label(1)})
"""
    module = load(tmp_path, body)
    (finding,) = check_process(module.process)
    assert finding.code == "RE101"
    assert finding.function == "snippet.stamp"
    assert finding.line == HEADER.count("\n") + 3


def test_tasks_are_effects_and_are_not_checked(tmp_path: Path) -> None:
    body = """
@task
def fetch(url):
    return open(url).read() + str(time.time())

def plain_effect():
    return random.random()

async def process(inputs, ctx):
    a = await ctx.task(fetch, {"url": "x"})
    return [a, await ctx.task(plain_effect, {})]
"""
    module = load(tmp_path, body)
    assert check_process(module.process) == []


def test_a_branch_writing_shared_state_after_an_await_is_flagged(
    tmp_path: Path,
) -> None:
    body = """
async def process(inputs, ctx):
    order, last, slots = [], None, [None] * 3

    async def branch(n):
        nonlocal last
        order.append(("start", n))   # before the first await: index order
        r = await ctx.task(print, {"n": n})
        order.append(n)
        last = r
        slots[n] = r                 # an indexed slot: fine
        return r

    await ctx.parallel.all([lambda: branch(0), lambda: branch(1)])
    return order, last, slots
"""
    found = codes(tmp_path, body)
    assert found == [("RE112", 9), ("RE112", 10)]


def test_the_four_hazard_processes_are_flagged_at_their_lines() -> None:
    source = Path(hazards.__file__).read_text(encoding="utf-8").splitlines()
    marked = {
        match.group(1): number
        for number, line in enumerate(source, start=1)
        if (match := re.search(r"# HAZARD (RE\d+)", line))
    }
    for process, code in [
        (hazards.wall_clock, "RE101"),
        (hazards.direct_random, "RE102"),
        (hazards.set_iteration, "RE107"),
        (hazards.completion_order, "RE112"),
    ]:
        (finding,) = check_process(process)
        assert (finding.code, finding.line) == (code, marked[code]), finding
        assert finding.file == hazards.__file__


@pytest.mark.parametrize(
    "process",
    [*hazards.FIXED, *(p for p, _ in seed_examples.EXAMPLES)],
    ids=lambda p: p.__name__,
)
def test_deterministic_processes_pass(process: Any) -> None:
    assert check_process(process) == []


def test_a_reference_string_is_imported() -> None:
    findings = check_process("tests.testing.hazards:wall_clock")
    assert [f.code for f in findings] == ["RE101"]


def test_a_finding_reads_as_a_compiler_message() -> None:
    (finding,) = check_process(hazards.wall_clock)
    text = str(finding)
    assert text.startswith(f"{hazards.__file__}:{finding.line}:{finding.col}: RE101")
    assert "time.time()" in text and "(use ctx.now())" in text
    assert Finding(**finding.to_dict()) == finding


def test_main_check_exit_codes_and_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main_check("tests.testing.hazards:wall_clock", as_json=False) == 1
    out = capsys.readouterr().out
    assert "RE101" in out and "ctx.now()" in out and "1 determinism hazard" in out
    assert (
        main_check("tests.testing.seed_examples:scenario1_quality_checks", False) == 0
    )
    assert "no determinism hazards" in capsys.readouterr().out


def test_main_check_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main_check("tests.testing.hazards:completion_order", as_json=True) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False
    assert doc["process"] == "tests.testing.hazards:completion_order"
    assert doc["functions"] == ["tests.testing.hazards.completion_order"]
    (finding,) = doc["findings"]
    assert finding["code"] == "RE112"
    assert set(finding) == {
        "file",
        "line",
        "col",
        "code",
        "message",
        "replacement",
        "function",
    }
    assert main_check("tests.testing.hazards:random_fixed", as_json=True) == 0
    assert json.loads(capsys.readouterr().out) == {
        "process": "tests.testing.hazards:random_fixed",
        "ok": True,
        "functions": ["tests.testing.hazards.random_fixed"],
        "findings": [],
    }
