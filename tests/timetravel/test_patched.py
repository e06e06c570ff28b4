"""``ctx.patched`` / ``ctx.deprecate_patch``: changing a process under its runs.

Runs are recorded with one version of a process (``patch_flows``) and then
resumed, replayed or checked with another, on a real LMDB journal.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import journal_format as jf
from replay_engine import Engine, NonDeterminismError, PatchError
from replay_engine.errors import PatchConflictError
from tests.helpers import cli_invoker
from tests.timetravel import patch_flows as pf


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    pf.CALLS.clear()
    with Engine(tmp_path / "j", durability="process") as eng:
        yield eng


def _events(engine: Engine, run_id: str) -> list[tuple[str, str]]:
    """``(tag, key)`` of every keyed event, and ``(tag, "")`` of the rest."""
    out = []
    for stored in engine.events(run_id):
        key = getattr(stored.event, "key", None)
        text = jf.key_bytes_to_text(key) if key is not None else ""
        out.append((jf.event_tag(stored.event), text))
    return out


@pytest.mark.spec("JF-110")
def test_a_new_run_records_a_marker_and_takes_the_new_path(engine: Engine) -> None:
    run = engine.run(pf.v2, {}, run_id="new")
    assert run.status == "completed"
    assert run.result == [1010, 20]
    assert ("patched", "1") in _events(engine, "new")
    markers = [
        s.event for s in engine.events("new") if isinstance(s.event, jf.PatchMarker)
    ]
    assert markers == [jf.PatchMarker(key=jf.encode_key((1,)), patch="extra")]
    # Its complete history replays (the marker answers True again), and so
    # does the check of the same code.
    assert engine.replay("new", process=pf.v2).result == [1010, 20]
    assert [c.verdict for c in engine.check_compatible(pf.v2, runs=["new"])] == [
        "compatible"
    ]


@pytest.mark.spec("JF-111")
def test_a_run_recorded_before_the_patch_takes_the_old_path(engine: Engine) -> None:
    run = engine.run(pf.v1, {"ask": True}, run_id="old")
    assert run.status == "waiting"
    before = _events(engine, "old")
    pf.CALLS.clear()
    # Resumed by the new code: no divergence, no marker, nothing re-run.
    again = engine.resume("old", process=pf.v2)
    assert again.status == "waiting"
    assert _events(engine, "old")[: len(before)] == before
    assert not any(tag == "patched" for tag, _ in _events(engine, "old"))
    assert pf.CALLS == []
    engine.post("old", "2", result="yes")
    done = engine.resume("old", process=pf.v2)
    assert (done.status, done.result) == ("completed", [10, "yes"])  # old path
    assert pf.CALLS == []
    assert not any(tag == "patched" for tag, _ in _events(engine, "old"))
    # The complete history replays against v2, v1, and compat agrees.
    assert engine.replay("old", process=pf.v2).result == [10, "yes"]
    assert engine.check_compatible(pf.v2, runs=["old"])[0].compatible


@pytest.mark.spec("JF-111")
def test_a_completed_old_run_is_compatible_with_the_patched_code(
    engine: Engine,
) -> None:
    engine.run(pf.v1, {}, run_id="old")
    assert engine.replay("old", process=pf.v2).result == [10, 20]
    # Without the patch the same change breaks the run.
    [verdict] = engine.check_compatible(pf.v3, runs=["old"])
    assert verdict.verdict == "breaks"
    assert verdict.key == "1"


@pytest.mark.spec("JF-111")
def test_a_run_waiting_before_the_patch_point_takes_the_new_path(
    engine: Engine,
) -> None:
    run = engine.run(pf.ask_first_v1, {}, run_id="w")
    assert run.status == "waiting"
    engine.post("w", "0", result=5)
    done = engine.resume("w", process=pf.ask_first_v2)
    assert (done.status, done.result) == ("completed", [1007, 20])
    assert ("patched", "1") in _events(engine, "w")
    # Every later resume or replay gives the same answer: it is recorded.
    assert engine.replay("w", process=pf.ask_first_v2).result == [1007, 20]


@pytest.mark.spec("JF-111")
def test_the_answer_never_flips_across_resumes(engine: Engine) -> None:
    engine.run(pf.v1, {"ask": True}, run_id="old")
    engine.run(pf.v2, {"ask": True}, run_id="new")
    for _ in range(3):
        assert engine.resume("old", process=pf.v2).status == "waiting"
        assert engine.resume("new", process=pf.v2).status == "waiting"
    assert [t for t, _ in _events(engine, "old")].count("patched") == 0
    assert [t for t, _ in _events(engine, "new")].count("patched") == 1
    engine.post("old", "2", result="o")
    engine.post("new", "4", result="n")
    assert engine.resume("old", process=pf.v2).result == [10, "o"]
    assert engine.resume("new", process=pf.v2).result == [1010, "n"]


def test_removing_a_patch_a_run_took_diverges(engine: Engine) -> None:
    engine.run(pf.v2, {}, run_id="new")
    with pytest.raises(NonDeterminismError) as caught:
        engine.replay("new", process=pf.v1)
    assert caught.value.key == "1"
    assert "patch marker" in str(caught.value)


@pytest.mark.spec("JF-113")
def test_deprecate_patch_accepts_markers_and_writes_none(engine: Engine) -> None:
    engine.run(pf.v2, {}, run_id="marked")
    assert engine.replay("marked", process=pf.v3).result == [1010, 20]
    fresh = engine.run(pf.v3, {}, run_id="fresh")
    assert fresh.result == [1010, 20]
    assert not any(tag == "patched" for tag, _ in _events(engine, "fresh"))
    assert engine.replay("fresh", process=pf.v3).result == [1010, 20]
    verdicts = engine.check_compatible(pf.v3, runs=["marked", "fresh"])
    assert [v.verdict for v in verdicts] == ["compatible", "compatible"]


@pytest.mark.spec("JF-110")
def test_markers_in_parallel_branches_have_stable_keys(engine: Engine) -> None:
    run = engine.run(pf.branches_v2, {}, run_id="b")
    assert run.result == [1001, 1002, 1003]
    markers = sorted(k for t, k in _events(engine, "b") if t == "patched")
    assert markers == ["0.0.0", "0.1.0", "0.2.0"]
    assert engine.replay("b", process=pf.branches_v2).result == [1001, 1002, 1003]


@pytest.mark.spec("JF-112")
def test_one_id_at_two_places_gets_one_answer(engine: Engine) -> None:
    engine.run(pf.v1, {}, run_id="old")
    engine.run(pf.reused_v2, {}, run_id="new")
    assert engine.replay("old", process=pf.reused_v2).result == [10, 20]
    assert engine.resume("new").result == [1010, 1020]
    assert [t for t, _ in _events(engine, "new")].count("patched") == 2
    engine.run(pf.v2, {}, run_id="v2run")
    with pytest.raises(PatchConflictError, match="one patch id guards one change"):
        engine.replay("v2run", process=pf.reused_late_v2)
    # On resume it pauses like a divergence: nothing written, status kept.
    engine.run(pf.v2, {"ask": True}, run_id="w2")
    before = _events(engine, "w2")
    with pytest.raises(PatchConflictError):
        engine.resume("w2", process=pf.reused_late_v2)
    assert _events(engine, "w2") == before
    assert engine.status("w2").status == "waiting"


@pytest.mark.parametrize("bad", ["", 3, None, b"x"])
def test_a_patch_id_must_be_a_non_empty_string(engine: Engine, bad: object) -> None:
    run = engine.run(pf.bad_id, {"id": bad}, run_id="bad")
    assert run.status == "failed"
    assert run.error is not None
    assert run.error.type.endswith("PatchError")
    assert issubclass(PatchConflictError, PatchError)
    assert "a patch id must be a non-empty string" in run.error.message
    assert not any(tag == "patched" for tag, _ in _events(engine, "bad"))


@pytest.mark.spec("JF-110")
def test_inspection_commands_show_markers(tmp_path: Path) -> None:
    journal = tmp_path / "cli"
    with Engine(journal, durability="process") as eng:
        eng.run(pf.v2, {}, run_id="new")
        eng.run(pf.v1, {}, run_id="old")
    invoke = cli_invoker(journal)
    log = invoke("log", "new", "--json", code=0)
    rows = json.loads(log.stdout)
    rows = rows["events"] if isinstance(rows, dict) else rows
    [marker] = [r for r in rows if r["type"] == "patched"]
    assert (marker["key"], marker["fields"]["patch"]) == ("1", "extra")
    assert "patch extra" in invoke("log", "new", code=0).stdout
    exported = invoke("export", "new", "--format", "jsonl", code=0).stdout
    assert '"patched"' in exported
    diff = json.loads(invoke("diff", "old", "new", "--json", code=1).stdout)
    assert (diff["first"]["key"], diff["first"]["b"]["task"]) == ("1", "patched extra")
    assert invoke("verify", "new", code=0).exit_code == 0
    page = tmp_path / "t.html"
    invoke("timeline", "new", "-o", str(page), code=0)
    assert "ctx.patched(extra)" in page.read_text()
