"""Timeline benchmark: page size and first paint of a 10k-call run in Chromium.

Run from the project root::

    .venv/bin/python bench/bench_timeline.py             # 10,000 calls
    .venv/bin/python bench/bench_timeline.py --n 50000

Setup records two runs with the real engine (``durability="process"``, inline
tasks): ``map``, one ``ctx.parallel.map`` of ``n`` calls followed by a loop of
60, and ``loop``, ``n`` sequential calls alternating two tasks. For each,
``replay-engine timeline`` writes the page, timed as a subprocess (start-up,
reading the journal, layout, HTML), wall and CPU, beside the floor measured
in the same run, interleaved: a fresh interpreter reading the run's events
(each checked), and ``export`` of the run for reference; best of
``--repeat``. The figure to watch is the CPU ratio to that floor
(``--no-paint`` prints only these, without Chromium).

Paint: headless Chromium (``/usr/bin/chromium``) takes a screenshot of the
page (``--screenshot``: load, style, layout, paint); the **floor** is the same
command on an empty page, measured in the same run, interleaved, best of
``--repeat``. The figure to watch is ``page - floor``: what the timeline adds
to the browser's own start-up, the part of first paint the page is
responsible for (the target: under a second at 10k calls).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from replay_engine import Engine  # noqa: E402
from tests.timetravel import timeline_flows as flows  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")


READ_EVENTS = (
    "import sys; from replay_engine import Engine;"
    " e = Engine(sys.argv[1]); e.events(sys.argv[2]); e.close()"
)
"""The floor: a fresh interpreter opens the journal and reads the run's events,
each checked (what any command that shows the whole run must do)."""


def _timed(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system, the command and its children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, cwd=ROOT)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _command_times(journal: Path, run_id: str, page: Path, repeat: int) -> None:
    """``timeline`` beside a raw read of the run's events (the floor), interleaved.

    ``export`` of the same run is shown too, for reference. Best of ``repeat``.
    """
    cli = (sys.executable, "-m", "replay_engine._cli", "--journal", str(journal))
    commands = {
        "floor": [sys.executable, "-c", READ_EVENTS, str(journal), run_id],
        "export": [*cli, "export", run_id, "-o", os.devnull],
        "timeline": [*cli, "timeline", run_id, "-o", str(page)],
    }
    best = {name: (float("inf"), float("inf")) for name in commands}
    for _ in range(repeat):
        for name, argv in commands.items():
            wall, cpu = _timed(argv)
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
    floor_cpu = best["floor"][1]
    for name in ("floor", "export", "timeline"):
        wall, cpu = best[name]
        print(
            f"{run_id:>5}: {name:>8} {wall:.2f} s wall, {cpu:.2f} s CPU"
            f" = {cpu / floor_cpu:.2f}x the floor's CPU (best of {repeat})"
        )


def _paint(page: Path, work: Path) -> float:
    profile = Path(tempfile.mkdtemp(dir=work))
    started = time.perf_counter()
    subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            f"--screenshot={work / 'shot.png'}",
            "--window-size=1280,900",
            page.resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    elapsed = time.perf_counter() - started
    shutil.rmtree(profile, ignore_errors=True)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="calls per run")
    parser.add_argument("--repeat", type=int, default=3, help="paints per page")
    parser.add_argument(
        "--no-paint",
        action="store_true",
        help="only the command's time beside its floor (no Chromium needed)",
    )
    args = parser.parse_args()
    if not args.no_paint and not CHROMIUM.exists():
        sys.exit("needs /usr/bin/chromium (apt-get install -y chromium)")
    work = Path(tempfile.mkdtemp(prefix="bench-timeline-"))
    try:
        journal = work / "journal"
        started = time.perf_counter()
        with Engine(str(journal), durability="process") as eng:
            eng.run(flows.wide, {"n": args.n, "loop": 60}, run_id="map")
            eng.run(flows.alternating, {"n": args.n}, run_id="loop")
        print(
            f"setup: {args.n:,} calls per run in {time.perf_counter() - started:.1f} s"
        )
        empty = work / "empty.html"
        empty.write_text("<!DOCTYPE html><html><body></body></html>")
        pages = {}
        for run_id in ("map", "loop"):
            page = work / f"{run_id}.html"
            _command_times(journal, run_id, page, args.repeat)
            pages[run_id] = page
            print(f"{run_id:>5}: page {page.stat().st_size:,} bytes")
        if args.no_paint:
            return
        best = {name: float("inf") for name in ("floor", *pages)}
        for _ in range(args.repeat):
            best["floor"] = min(best["floor"], _paint(empty, work))
            for run_id, page in pages.items():
                best[run_id] = min(best[run_id], _paint(page, work))
        floor = best["floor"]
        print(f"floor: empty page screenshot {floor:.2f} s (best of {args.repeat})")
        for run_id in pages:
            extra = best[run_id] - floor
            print(
                f"{run_id:>5}: screenshot {best[run_id]:.2f} s = floor + {extra:.2f} s"
                f" (ratio {best[run_id] / floor:.2f}x); target: floor + < 1 s"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
