"""The time-travel commands as real processes: a pipe, a pseudo-terminal, a browser.

* ``replay``/``fork``/``export``/``timeline`` run as ``python -m
  replay_engine._cli`` and their JSON is checked against the engine API;
* ``debug`` is driven through a pseudo-terminal (stdlib ``pty``), as a person
  at a terminal would drive it;
* the timeline page is rendered by headless Chromium (skipped when
  ``/usr/bin/chromium`` is missing: ``apt-get install -y chromium``), and
  the rendered DOM must hold one ``tl-row`` per call key.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import journal_format as jf

from .conftest import FLOWS_DIR, Recorded, call_keys, child_env, key_of

CHROMIUM = Path("/usr/bin/chromium")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def cli(
    journal: Path, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "replay_engine._cli", "--journal", str(journal), *args],
        capture_output=True,
        text=True,
        cwd=FLOWS_DIR,
        env=child_env(),
        timeout=timeout,
        check=False,
    )


def test_replay_fork_export_timeline_in_subprocesses(
    recorded: Recorded, tmp_path: Path
) -> None:
    journal, engine = recorded.journal, recorded.engine
    side = recorded.side_lines()

    proc = cli(journal, "replay", "r1", "--until", "9", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    snap = engine.replay("r1", until=9)
    assert doc["until"] == 9 and doc["process_status"] == snap.process_status
    assert [(c["key"], c["status"]) for c in doc["calls"]] == [
        (c.key, c.status) for c in snap.calls
    ]
    assert recorded.side_lines() == side

    proc = cli(journal, "fork", "r1", "--at", "9", "--run-id", "r1-sub", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["fork_at"] == 9
    assert engine.status("r1-sub").parent == "r1"

    out = tmp_path / "r1.jsonl"
    proc = cli(journal, "export", "r1", "--format", "jsonl", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["digest"] for r in records] == [
        s.digest.hex() for s in engine.events("r1")
    ]

    page = tmp_path / "run.html"
    proc = cli(journal, "timeline", "r1", "-o", str(page), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["keys"] == call_keys(recorded.events())

    proc = cli(journal, "replay", "r1", "--until", "99")
    assert proc.returncode == 2 and proc.stderr.startswith("error: --until 99")
    assert proc.stdout == ""


# -- debug through a pseudo-terminal -----------------------------------------------


class Terminal:
    """A child process on a pseudo-terminal, read with timeouts."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        import pty

        self.fd, child = pty.openpty()
        self.proc = subprocess.Popen(
            args,
            stdin=child,
            stdout=child,
            stderr=child,
            env=env,
            cwd=cwd,
            close_fds=True,
        )
        os.close(child)

    def read_until(self, marker: str, timeout: float = 30) -> str:
        buf = b""
        deadline = time.monotonic() + timeout
        while marker.encode() not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {marker!r} within {timeout}s; got {buf!r}")
            ready, _, _ = select.select([self.fd], [], [], min(left, 0.2))
            if not ready:
                continue
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            buf += chunk
        return ANSI.sub("", buf.decode("utf-8", "replace")).replace("\r\n", "\n")

    def send(self, line: str) -> str:
        """Type a command; return everything printed up to the next prompt."""
        os.write(self.fd, line.encode() + b"\n")
        return self.read_until("debug> ")

    def close(self) -> int:
        try:
            return self.proc.wait(timeout=30)
        finally:
            os.close(self.fd)


def test_debug_stepper_through_a_pseudo_terminal(recorded: Recorded) -> None:
    events = recorded.events()
    last = len(events) - 1
    term = Terminal(
        [
            sys.executable,
            "-m",
            "replay_engine._cli",
            "--journal",
            str(recorded.journal),
            "debug",
            "r1",
        ],
        env=child_env(COLUMNS="200"),
        cwd=FLOWS_DIR,
    )
    try:
        start = term.read_until("debug> ")
        assert "debugging run r1" in start
        assert f"[seq 0/{last}] run_started" in start
        assert "frontier" in start and "tt_flows.py:" in start

        step = term.send("n")
        assert re.search(rf"\[seq 1/{last}\] requested\s+key 0\s+tt\.double", step)
        assert re.search(r"in flight 1", step)

        step = term.send("next")
        assert re.search(rf"\[seq 2/{last}\] completed\s+key 0\s+tt\.double", step)
        assert re.search(r"done 1 ", step)

        step = term.send("p")
        assert f"[seq 1/{last}]" in step

        failed = next(s.seq for s in events if jf.event_tag(s.event) == "failed")
        step = term.send(f"g {failed}")
        assert re.search(rf"\[seq {failed}/{last}\] failed\s+key 2\s+tt\.explode", step)
        assert "ValueError: boom" in step

        first_41 = min(s.seq for s in events if key_of(s) == "4.1.0")
        step = term.send("k 4.1.0")
        assert re.search(rf"\[seq {first_41}/{last}\] requested\s+key 4\.1\.0", step)

        shown = term.send("s 1.1.0")
        assert "tt.flaky" in shown and '"x": 3' in shown and "result: 103" in shown

        assert "outside" in term.send("g 999")
        assert f"already at the last event (seq {last})" in (
            term.send(f"g {last}") + term.send("n")
        )
        os.write(term.fd, b"q\n")
    finally:
        code = term.close()
    assert code == 0


# -- the timeline in a real browser --------------------------------------------------


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")
def test_timeline_renders_one_row_per_key_in_chromium(
    recorded: Recorded, tmp_path: Path
) -> None:
    page = tmp_path / "run.html"
    proc = cli(recorded.journal, "timeline", "r1", "-o", str(page))
    assert proc.returncode == 0, proc.stderr
    url = page.resolve().as_uri()

    dom = _chromium("--dump-dom", url, profile=tmp_path / "profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    rendered = re.findall(r'<g class="tl-row[^"]*" data-key="([^"]+)"', dom.stdout)
    assert rendered == call_keys(recorded.events())
    # The script ran in the page (it would have thrown on a missing element).
    assert 'id="detail"' in dom.stdout

    shot = tmp_path / "out.png"
    proc = _chromium(
        f"--screenshot={shot}",
        "--window-size=1200,800",
        url,
        profile=tmp_path / "profile-shot",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 8_000, f"screenshot is only {len(data)} bytes"
    shutil.rmtree(tmp_path / "profile-dom", ignore_errors=True)
