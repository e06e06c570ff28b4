"""Timeline benchmark: page size and first paint of a 10k-call run in Chromium.

Run from the project root::

    .venv/bin/python bench/bench_timeline.py             # 10,000 calls
    .venv/bin/python bench/bench_timeline.py --n 50000

Setup records two runs with the real engine (``durability="process"``, inline
tasks): ``map``, one ``ctx.parallel.map`` of ``n`` calls followed by a loop of
60, and ``loop``, ``n`` sequential calls alternating two tasks. For each,
``replay-engine timeline`` writes the page (timed as a subprocess: start-up,
reading the journal, layout, HTML).

Paint: headless Chromium (``/usr/bin/chromium``) takes a screenshot of the
page (``--screenshot``: load, style, layout, paint); the **floor** is the same
command on an empty page, measured in the same run, interleaved, best of
``--repeat``. The figure to watch is ``page - floor``: what the timeline adds
to the browser's own start-up, the part of first paint the page is
responsible for (the target: under a second at 10k calls).
"""

from __future__ import annotations

import argparse
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


def _cli(journal: Path, run_id: str, page: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [
            *(sys.executable, "-m", "replay_engine._cli", "--journal", str(journal)),
            *("timeline", run_id, "-o", str(page)),
        ],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    return time.perf_counter() - started


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
    args = parser.parse_args()
    if not CHROMIUM.exists():
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
            seconds = _cli(journal, run_id, page)
            pages[run_id] = page
            size = page.stat().st_size
            print(f"{run_id:>5}: timeline command {seconds:.2f} s, page {size:,} bytes")
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
