"""Faults while a run executes (issue 12), in process, on a real LMDB.

The black-box versions (the CLI as a subprocess) are in ``tests/faults/``;
these drive ``Engine`` directly, so they can say exactly how an execution
ended: a failed commit ends ``run_async`` with ``JournalWriteError`` at once
(never a hang), an interrupt raised in a task goes on up without being
recorded as anyone's failure, and a paused resume keeps the run's status.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

import journal_format as jf
from replay_engine import Engine, NonDeterminismError, ReplayEngineError, external, task
from replay_engine.errors import FormatVersionError, JournalWriteError
from tests.adversarial import raw
from tests.faults._support import mounted
from tests.journal_views import stored_record

BOUND = 20.0
"""Every execution here must end well within this many seconds."""

RAISE: dict[str, BaseException | None] = {"now": None}
"""What ``maybe_raise`` raises on its next call (then nothing)."""
RAN: list[int] = []


@task(name="faults.ok")
def ok(i: int) -> int:
    RAN.append(i)
    return i


@task(name="faults.maybe_raise")
def maybe_raise(i: int) -> int:
    exc, RAISE["now"] = RAISE["now"], None
    if exc is not None:
        raise exc
    return i


@task(name="faults.inline_raise", executor="inline")
def inline_raise(i: int) -> int:
    return maybe_raise.fn(i)  # type: ignore[no-any-return]


@task(name="faults.async_raise")
async def async_raise(i: int) -> int:
    exc, RAISE["now"] = RAISE["now"], None
    await asyncio.sleep(0)
    if exc is not None:
        raise exc
    return i


@task(name="faults.big")
def big(i: int) -> str:
    return os.urandom(100_000).hex()


@external(kind="agent", name="faults.agent")
def agent(what: str) -> Any:
    raise NotImplementedError


@pytest.fixture(autouse=True)
def _clean() -> None:
    RAISE["now"] = None
    RAN.clear()


def batch_with(raiser: Any) -> Callable[[Any, Any], Any]:
    """24 tiny sync tasks in one parallel group, branch 3 being ``raiser``."""

    async def process(inputs: Any, ctx: Any) -> Any:
        thunks = [lambda i=i: ctx.task(ok, {"i": i}) for i in range(24)]
        thunks[3] = lambda: ctx.task(raiser, {"i": 3})
        return await ctx.parallel.all(thunks)

    return process


def by_key(engine: Engine, run_id: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for stored in engine.events(run_id):
        key = getattr(stored.event, "key", None)
        if key is not None:
            out.setdefault(jf.key_bytes_to_text(key), []).append(
                jf.event_tag(stored.event)
            )
    return out


def bounded(coro: Any) -> Any:
    """Run ``coro``; a hang fails the test instead of hanging it."""

    async def main() -> Any:
        return await asyncio.wait_for(coro, BOUND)

    return asyncio.run(main())


def raised(call: Callable[[], Any]) -> BaseException | None:
    """What ``call()`` raised, caught here so that an interrupt raised on
    purpose never reaches pytest as one (it would stop the session)."""
    try:
        call()
    except BaseException as exc:
        return exc
    return None


# -- interrupts in tasks -------------------------------------------------------------


@pytest.mark.parametrize("raiser", [maybe_raise, inline_raise, async_raise])
@pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit])
def test_an_interrupt_in_a_task_goes_up_unrecorded(
    make_engine: Callable[..., Engine], raiser: Any, kind: type[BaseException]
) -> None:
    engine = make_engine()
    process = batch_with(raiser)
    RAISE["now"] = kind()
    exc = raised(lambda: engine.run(process, {}, run_id="r1"))
    assert type(exc) is kind, repr(exc)
    events = by_key(engine, "r1")
    assert events["0.3.0"] == ["requested"], events["0.3.0"]
    failed = {k: v for k, v in events.items() if "failed" in v or "attempt_failed" in v}
    assert not failed, failed
    # Every sibling that ran is recorded completed; none is recorded failed.
    done = {int(k.split(".")[1]) for k, v in events.items() if "completed" in v}
    assert set(RAN) <= done, sorted(set(RAN) - done)
    # The run is not locked, and a resume dispatches the interrupted call again.
    run = engine.resume("r1", process=process)
    assert run.status == "completed", run
    assert run.result == list(range(24))
    assert by_key(engine, "r1")["0.3.0"] == ["requested", "completed"]


def test_cancelled_error_raised_by_an_async_task_is_not_its_failure(
    make_engine: Callable[..., Engine],
) -> None:
    engine = make_engine()
    process = batch_with(async_raise)
    RAISE["now"] = asyncio.CancelledError()
    with pytest.raises(ReplayEngineError, match="CancelledError"):
        bounded(engine.run_async(process, {}, run_id="r1"))
    assert by_key(engine, "r1")["0.3.0"] == ["requested"]
    run = engine.resume("r1", process=process)
    assert run.status == "completed", run


# -- failed commits -----------------------------------------------------------------


async def fill(inputs: Any, ctx: Any) -> int:
    for i in range(200):
        await ctx.task(big, {"i": i})
    return 0


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_failed_commit_ends_the_execution_at_once(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    with mounted("-t", "tmpfs", "-o", "size=2m", "tmpfs", target=disk):
        engine = Engine(str(disk / "journal"))
        try:
            with pytest.raises(JournalWriteError) as caught:
                bounded(engine.run_async(fill, {}, run_id="r1"))
            message = str(caught.value)
            assert "could not be written" in message
            assert "nothing after seq" in message and "'r1'" in message
            # What was committed stands, and the run is not locked: a resume
            # takes the lock and ends the same way (still no room).
            assert engine.verify("r1").ok
            with pytest.raises(JournalWriteError):
                bounded(engine.resume_async("r1", process=fill))
        finally:
            engine.close()


def newer_write_version(journal: Path) -> None:
    with raw(journal) as (env, dbs), env.begin(write=True) as txn:
        meta = jf.decode_meta(txn.get(jf.META_FORMAT_KEY, db=dbs[jf.DB_META]))
        newer = jf.FormatMeta(
            magic=meta.magic,
            read_version=meta.read_version,
            write_version=jf.FORMAT_VERSION + 1,
        )
        txn.put(jf.META_FORMAT_KEY, msgspec.msgpack.encode(newer), db=dbs[jf.DB_META])


async def waiter(inputs: Any, ctx: Any) -> Any:
    answer = await ctx.task(agent, {"what": "go"})
    return await ctx.task(ok, {"i": answer})


def test_resume_of_a_journal_with_a_newer_write_version_ends_at_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal"
    engine = Engine(str(path))
    try:
        assert engine.run(waiter, {}, run_id="r1").status == "waiting"
        engine.post("r1", "0", result=7)
    finally:
        engine.close()
    newer_write_version(path)
    engine = Engine(str(path), create=False)
    try:
        for _ in range(2):  # the second time: the lock was released
            with pytest.raises(FormatVersionError):
                bounded(engine.resume_async("r1", process=waiter))
        assert not RAN, "a task ran although nothing could be recorded"
    finally:
        engine.close()


# -- resumes that stop early -----------------------------------------------------------


def variant(first: str) -> Callable[[Any, Any], Any]:
    async def process(inputs: Any, ctx: Any) -> Any:
        if first == "raise":
            raise ValueError("boom-before-any-call")
        answer = await ctx.task(agent if first == "agent" else ok, {"what": "go"})
        return answer

    return process


def test_a_diverged_resume_keeps_a_waiting_run_waiting(
    make_engine: Callable[..., Engine],
) -> None:
    engine = make_engine()
    assert engine.run(variant("agent"), {}, run_id="r1").status == "waiting"
    with pytest.raises(NonDeterminismError):
        engine.resume("r1", process=variant("other"))
    assert stored_record(engine, "r1").status == "waiting"
    assert [r.run_id for r in engine.runs(status="waiting")] == ["r1"]


def test_a_process_raising_before_its_recorded_calls_fails(
    make_engine: Callable[..., Engine],
) -> None:
    engine = make_engine()
    assert engine.run(variant("agent"), {}, run_id="r1").status == "waiting"
    run = engine.resume("r1", process=variant("raise"))
    assert run.status == "failed", run
    assert run.error is not None
    assert run.error.type == "ValueError"
    assert run.error.message == "boom-before-any-call"
    # A failed run may be resumed with fixed code: it waits again.
    assert engine.resume("r1", process=variant("agent")).status == "waiting"
