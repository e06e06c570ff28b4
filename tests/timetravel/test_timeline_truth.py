"""The timeline tells the truth about executions, and scales (issue 16).

Real runs on a real LMDB journal, the ``timeline`` command as a subprocess,
and the page rendered by headless Chromium where it matters (label overlap is
measured by the page itself, with the browser's text metrics).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import journal_format as jf
from replay_engine import Engine
from replay_engine._cli.timeline_model import build_timeline
from tests.executions.conftest import killed_in_gate
from tests.helpers import child_env

from . import timeline_flows as flows
from .test_cli_processes import CHROMIUM, _chromium

MAX_PAGE = 1_500_000


def timeline(journal: Path, run_id: str, page: Path) -> str:
    done = subprocess.run(
        [
            *(sys.executable, "-m", "replay_engine._cli", "--journal", str(journal)),
            *("timeline", run_id, "-o", str(page)),
        ],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return page.read_text(encoding="utf-8")


def attrs(html: str, cls: str) -> list[dict[str, str]]:
    """The data-* attributes of every ``<g class="CLS ...">``."""
    found = []
    for tag in re.findall(rf'<g class="{cls}[ "][^>]*>', html):
        found.append(dict(re.findall(r'data-([\w-]+)="([^"]*)"', tag)))
    return found


def test_a_crashed_and_resumed_run_shows_two_executions_and_the_twice_run_effect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal, side, gate = tmp_path / "journal", tmp_path / "side", tmp_path / "gate"
    journal.mkdir()
    pid = killed_in_gate(journal, side, gate)
    gate.touch()
    monkeypatch.setenv("REPLAY_EXEC_SIDE", str(side))
    with Engine(str(journal), durability="process") as eng:
        assert eng.resume("r").stats.redispatched == 1
    html = timeline(journal, "r", tmp_path / "r.html")

    rows = {a["key"]: a for a in attrs(html, "tl-row")}
    # One colour per execution: 0 and 1 ran in the first, 2 and 3 in the second.
    assert {k: a["x"] for k, a in rows.items()} == {
        "0": "0",
        "1": "0",
        "2": "1",
        "3": "1",
    }
    # The effect in flight at the kill is marked, and drawn as two bars.
    assert [k for k, a in rows.items() if a.get("twice")] == ["2"]
    row_2 = re.search(r'<g class="tl-row[^"]*" data-key="2".*?</g>', html, re.S)
    assert row_2 is not None
    assert row_2.group(0).count('class="lost"') == 1 and "&#215;2" in row_2.group(0)
    assert "<b>dispatched twice</b> 1" in html
    # The legend and the lanes name both executions.
    assert f"execution 1 (start (pid {pid}))" in html
    assert f"execution 2 (resume (pid {os.getpid()}))" in html
    assert len(re.findall(r'<g class="lane" data-x="\d"', html)) == 2
    # A click shows args and result, with their content addresses.
    assert rows["1"]["args"].startswith("{&quot;i&quot;: 2}  [blake3 ")
    assert rows["1"]["result"].startswith("2  [blake3 ")
    address = jf.address_of(jf.encode_payload(2)).hex()
    assert address in rows["1"]["result"]


def test_an_old_journal_without_execution_events_splits_at_run_boundaries() -> None:
    @dataclass
    class Stored:
        seq: int
        event: Any

    key0, key1 = jf.encode_key((0,)), jf.encode_key((1,))
    events = [
        jf.RunStarted(process="m:f", fingerprint="x", inputs=b"\xc0"),
        jf.EffectRequested(key=key0, task="t", kind="external", args=b"\x80"),
        jf.RunWaiting(pending=[key0]),
        jf.EffectCompleted(key=key0, result=b"\x01"),
        jf.EffectRequested(key=key1, task="t", kind="task", args=b"\x80"),
        jf.EffectCompleted(key=key1, result=b"\x02"),
    ]
    stored = [Stored(i, e) for i, e in enumerate(events)]
    tl = build_timeline("old", "running", stored, [i * 1000 for i in range(6)])
    assert [(e.index, e.label, e.start, e.end) for e in tl.executions] == [
        (0, "start", 0, 2000),
        (1, "resume", 3000, 5000),
    ]
    assert [(r.key, r.execution) for r in tl.rows] == [("0", 1), ("1", 1)]


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")
def test_a_10k_call_run_is_a_small_page_with_groups_and_counts(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "journal"
    with Engine(str(journal), durability="process") as eng:
        run = eng.run(flows.wide, {"n": 10_000, "loop": 60}, run_id="big")
        assert run.status == "completed"
    html = timeline(journal, "big", tmp_path / "big.html")
    assert len(html.encode()) <= MAX_PAGE, f"{len(html.encode()):,} bytes"

    groups = attrs(html, "tl-group")
    assert [(g["group"], g["count"]) for g in groups] == [
        ("0", "10000"),
        ("1…60", "60"),
    ]
    rows = attrs(html, "tl-row")
    # The ten retried members of the map have rows of their own.
    assert sorted(r["key"] for r in rows if r.get("member") == "0") == sorted(
        f"0.{i}.0" for i in range(7, 10_000, 1000)
    )
    assert "10,000 calls (collapsed)" in html

    dom = _chromium(
        "--dump-dom", tmp_path.joinpath("big.html").as_uri(), profile=tmp_path / "p"
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-overlaps="0"' in dom.stdout
    drawn = len(re.findall(r'<g class="tl-(row|group)', dom.stdout))
    assert drawn == 2 + 10  # two groups, ten retried members


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")
def test_labels_of_close_boundaries_never_overlap(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    steps = 8
    with Engine(str(journal), durability="process") as eng:
        eng.run(flows.approvals, {"steps": steps}, run_id="w")
        for i in range(steps):
            eng.post("w", str(i), result=i)
            eng.iterate("w")
        assert eng.status("w").status == "completed"
    html = timeline(journal, "w", tmp_path / "w.html")
    assert len(re.findall(r'<g class="lane"', html)) == steps + 1
    # (several lines of labels: checked in the browser below)
    dom = _chromium(
        "--dump-dom", tmp_path.joinpath("w.html").as_uri(), profile=tmp_path / "p"
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-overlaps="0"' in dom.stdout, "labels overlap in the browser"


def test_journal_strings_in_args_and_results_are_text(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    with Engine(str(journal), durability="process") as eng:
        assert eng.run(flows.hostile, {}, run_id="h").status == "completed"
    html = timeline(journal, "h", tmp_path / "h.html")
    assert html.count("<script") == 1, "journal text opened a script"
    assert "<img" not in html and "onerror=alert(2)>" not in html
    assert "\x1b" not in html and "\\u001b[2J" in html  # shown, not acted on
    (row,) = attrs(html, "tl-row")
    assert "&lt;/script&gt;" in row["args"]
    # Cut short, with the size said and the blob's own address.
    assert len(row["args"]) < 1_500 and "characters)" in row["args"]
    big = {"text": flows.HOSTILE, "big": flows.HOSTILE * 200}
    assert jf.address_of(jf.encode_payload(big)).hex() in row["args"]
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "<link" not in html and "@import" not in html and "url(http" not in html


def test_a_long_loop_over_several_tasks_is_folded_into_blocks(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    with Engine(str(journal), durability="process") as eng:
        assert eng.run(flows.alternating, {"n": 3000}, run_id="a").status == "completed"
    html = timeline(journal, "a", tmp_path / "a.html")
    groups = attrs(html, "tl-group")
    rows = attrs(html, "tl-row")
    members = [r for r in rows if "member" in r]
    # Every call is in a block of 100, or (retried: 3 of them) on its own row too.
    assert [g["count"] for g in groups] == ["100"] * 30
    assert len(rows) == len(members) == 3
    assert len(html.encode()) < 100_000
