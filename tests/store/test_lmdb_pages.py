"""Damaged LMDB pages are reported by ``verify``, never an LMDB abort.

LMDB asserts on a branch or leaf page whose flags were damaged and aborts the
process (``SIGABRT``). ``page_problems`` walks every page the newest commit
reaches, with plain reads, before LMDB touches any of them. Each case is a
real journal; the CLI case runs in a child interpreter so an abort would be
seen as a signal death, not kill the test run.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from replay_engine import Engine, external, task
from replay_engine._store.files import read_meta_pages
from replay_engine._store.lmdb_pages import page_problems
from tests.helpers import child_env

FLAGS_OFFSET = 10  # of mp_flags within a page


@task(executor="inline", name="pages.double")
def double(i: int) -> int:
    return 2 * i


@task(executor="inline", name="pages.big")
def big(n: int) -> str:
    return "x" * n


@external(kind="agent", name="pages.gate")
def gate() -> Any:
    """Posted by the test."""


async def fan(inputs: dict[str, Any], ctx: Any) -> Any:
    values = await ctx.parallel.map(
        range(inputs["n"]), lambda i: ctx.task(double, {"i": i})
    )
    if inputs.get("big"):
        values.append(len(await ctx.task(big, {"n": inputs["big"]})))
    if inputs.get("gate"):
        values.append(await ctx.task(gate, {}))
    return sum(values)


def many_runs(engine: Engine) -> None:
    for i in range(60):
        engine.run(fan, {"n": 3}, run_id=f"run-{i}")


def large_payload(engine: Engine) -> None:
    engine.run(fan, {"n": 2, "big": 200_000}, run_id="big")
    engine.run(fan, {"n": 2, "big": 9_000}, run_id="medium")


def waiting_with_checkpoint(engine: Engine) -> None:
    run = engine.run(fan, {"n": 40, "gate": True}, run_id="waiting")
    assert run.status == "waiting"


def forked(engine: Engine) -> None:
    engine.run(fan, {"n": 40, "gate": True}, run_id="parent")
    engine.fork("parent", 20, "child")
    engine.post("parent", "1", result=5)
    engine.resume("parent")


def one_key_with_many_events(engine: Engine) -> None:
    """Over ~250 events of one key: its ``keys`` values leave the inline
    sub-page for a DUPFIXED sub-database, whose leaves (flags 0x22) hold
    packed 8-byte seqs and no node pointers (the verify false alarm of
    tests/external/test_crash.py, where one key collected ~250 claims)."""
    run = engine.run(fan, {"n": 2, "gate": True}, run_id="held")
    assert run.status == "waiting"
    [effect] = engine.claim("held", "worker", lease=600)
    for _ in range(300):
        engine.heartbeat("held", effect.key, "worker", lease=600)


def everything(engine: Engine) -> None:
    many_runs(engine)
    large_payload(engine)
    waiting_with_checkpoint(engine)
    forked(engine)


def small(engine: Engine) -> None:
    engine.run(fan, {"n": 5, "gate": True}, run_id="small")
    engine.run(fan, {"n": 2, "big": 20_000}, run_id="big")


def build(tmp_path: Path, shape: Callable[[Engine], None]) -> Path:
    path = tmp_path / "journal"
    with Engine(str(path)) as engine:
        shape(engine)
    return path


def reachable_pages(path: Path) -> dict[int, int]:
    """Every page the newest commit reaches, with its flags (a plain walk)."""
    from replay_engine._store import lmdb_pages as lp

    metas, _ = read_meta_pages(str(path / "data.mdb"))
    newest = max((m for m in metas if m.valid), key=lambda m: m.txnid)
    data = (path / "data.mdb").read_bytes()
    walk = lp._Walk(data, newest.page_size, newest.last_page)
    base = newest.index * newest.page_size + lp._DBS_OFFSET
    for db in (0, 1):
        record = lp._DB.unpack_from(data, base + db * lp._DB.size)
        walk.tree(record[7], record[1], False, "test")
    assert walk.problems == []
    size = newest.page_size
    return {
        p: struct.unpack_from("<H", data, p * size + FLAGS_OFFSET)[0]
        for p in walk.headed
    }


def flip(path: Path, pgno: int) -> None:
    metas, _ = read_meta_pages(str(path / "data.mdb"))
    size = metas[0].page_size
    with open(path / "data.mdb", "r+b") as stream:
        stream.seek(pgno * size + FLAGS_OFFSET)
        byte = stream.read(1)[0]
        stream.seek(pgno * size + FLAGS_OFFSET)
        stream.write(bytes([byte ^ 0x01]))


SHAPES = [
    many_runs,
    large_payload,
    waiting_with_checkpoint,
    forked,
    one_key_with_many_events,
    everything,
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.__name__)
def test_healthy_journals_have_no_page_problems(
    tmp_path: Path, shape: Callable[[Engine], None]
) -> None:
    path = build(tmp_path, shape)
    assert page_problems(str(path)) == []
    flags = set(reachable_pages(path).values())
    assert flags <= {0x01, 0x02, 0x04, 0x22}
    if shape in (large_payload, everything):
        assert 0x04 in flags  # the big value lives in an overflow run
    if shape in (many_runs, everything):
        assert 0x01 in flags  # deep enough for branch pages
    if shape is one_key_with_many_events:
        assert 0x22 in flags  # a DUPFIXED sub-database's leaf
    with Engine(str(path), create=False) as engine:
        assert engine.verify().ok


def test_a_flipped_flag_bit_on_any_reachable_page_is_reported(tmp_path: Path) -> None:
    path = build(tmp_path, small)
    pages = reachable_pages(path)
    assert len(pages) > 5
    clean = (path / "data.mdb").read_bytes()
    for pgno in sorted(pages):
        flip(path, pgno)
        problems = page_problems(str(path))
        assert any(f"LMDB page {pgno} " in p for p in problems), (pgno, problems)
        (path / "data.mdb").write_bytes(clean)
    assert page_problems(str(path)) == []


def test_verify_reports_a_damaged_leaf_page_instead_of_aborting(tmp_path: Path) -> None:
    path = build(tmp_path, small)
    leaf = min(p for p, flags in reachable_pages(path).items() if flags == 0x02)
    flip(path, leaf)
    result = subprocess.run(
        [sys.executable, "-m", "replay_engine._cli", "--journal", str(path), "verify"],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    output = " ".join((result.stdout + result.stderr).split())
    assert f"LMDB page {leaf}" in output, output
    assert os.path.getsize(path / "data.mdb") > 0


def poke(path: Path, offset: int, fmt: str, value: int) -> None:
    with open(path / "data.mdb", "r+b") as stream:
        stream.seek(offset)
        stream.write(struct.pack(fmt, value))


@pytest.mark.parametrize(
    ("field", "fmt", "change"),
    [
        (8, "<H", lambda v: v + 1),  # mp_pad: the packed values' size
        (12, "<H", lambda v: v + 2),  # mp_lower: one value more
        (14, "<H", lambda v: v - 6),  # mp_upper: out of step with the count
        (12, "<H", lambda v: 4000),  # mp_lower: more values than the page holds
    ],
    ids=["size", "count", "upper", "overfull"],
)
def test_a_damaged_dupfixed_leaf_is_reported(
    tmp_path: Path, field: int, fmt: str, change: Callable[[int], int]
) -> None:
    path = build(tmp_path, one_key_with_many_events)
    [leaf] = [p for p, flags in reachable_pages(path).items() if flags == 0x22]
    offset = leaf * read_meta_pages(str(path / "data.mdb"))[0][0].page_size + field
    (value,) = struct.unpack_from(fmt, (path / "data.mdb").read_bytes(), offset)
    poke(path, offset, fmt, change(value))
    problems = page_problems(str(path))
    assert any(f"LMDB page {leaf} " in p for p in problems), problems
