"""The crash-and-resume demo: ``python -m replay_engine.demo``.

A process in the seed's style (implement, then parallel quality checks, then a
``parallel.map`` batch with a concurrency limit) is started in a child
process, SIGKILLed mid-run, and resumed. The demo shows how many effects were
served from the journal and how many dispatched, and checks that the final
result equals an uninterrupted run's.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from replay_engine import Engine, task

_WORK = 0.03  # seconds a simulated effect takes


def _effect_log(kind: str, name: str) -> None:
    # A side channel outside the journal: every execution of an effect is
    # appended here, so the demo can show that completed effects never re-run.
    path = os.environ.get("REPLAY_DEMO_EFFECTS")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{kind} {name}\n".encode())
        finally:
            os.close(fd)


@task
def implement(feature: str) -> dict[str, Any]:
    """Pretend an agent implemented the feature."""
    time.sleep(_WORK)
    _effect_log("implement", feature)
    files = [f"src/{feature}_{i}.py" for i in range(24)]
    return {"files": files, "tests": [f"tests/test_{feature}.py"]}


@task
def quality_check(check: str, files: list[str]) -> dict[str, Any]:
    """One quality check (coverage, lint, types, security) over the files."""
    time.sleep(_WORK * 2)
    _effect_log("check", check)
    score = (sum(len(f) for f in files) + len(check) * 5) % 17 + 80
    return {"check": check, "score": score, "passed": score >= 82}


@task(retries=2)
def process_file(file: str) -> dict[str, Any]:
    """Process one file of the batch."""
    time.sleep(_WORK)
    _effect_log("file", file)
    return {"file": file, "lines": len(file) * 7}


async def quality_pipeline(inputs: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Implement, check in parallel, then process every file, 6 at a time."""
    impl = await ctx.task(implement, {"feature": inputs["feature"]})
    checks = await ctx.parallel.all(
        [
            lambda name=name: ctx.task(
                quality_check, {"check": name, "files": impl["files"]}
            )
            for name in ("coverage", "lint", "types", "security")
        ]
    )
    ctx.log("quality checks done", passed=sum(c["passed"] for c in checks))
    outs = await ctx.parallel.map(
        impl["files"], lambda f: ctx.task(process_file, {"file": f}), limit=6
    )
    return {
        "feature": inputs["feature"],
        "checks": {c["check"]: c["score"] for c in checks},
        "files": len(outs),
        "lines": sum(o["lines"] for o in outs),
    }


def _child(journal: str, run_id: str) -> None:
    with Engine(journal) as engine:
        engine.run(quality_pipeline, {"feature": "login"}, run_id=run_id)


def main() -> int:
    """Run the demo; returns the exit code (0 when the resumed result is identical)."""
    console = Console()
    workdir = tempfile.mkdtemp(prefix="replay-demo-")
    journal = os.path.join(workdir, "journal")
    effects = os.path.join(workdir, "effects.log")
    env = {**os.environ, "REPLAY_DEMO_EFFECTS": effects}
    os.environ["REPLAY_DEMO_EFFECTS"] = effects
    try:
        console.rule("[bold]replay-engine: crash and resume")
        console.print(f"journal: {journal}")
        argv = [sys.executable, "-m", "replay_engine.demo", "--child", journal]
        child = subprocess.Popen([*argv, "demo-run"], env=env)
        with Engine(journal) as engine:
            events = _wait_for_events(engine, "demo-run", at_least=22, child=child)
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
            executed_before = _count_lines(effects)
            console.print(
                f"[red]SIGKILLed[/red] the run mid-flight: {events} events journaled,"
                f" {executed_before} effects executed."
            )
            status = engine.status("demo-run")
            console.print(f"status after the crash: [yellow]{status.status}[/yellow]")

            run = engine.resume("demo-run")
            executed_after = _count_lines(effects) - executed_before
            table = Table(title="resume of demo-run")
            table.add_column("what")
            table.add_column("count", justify="right")
            rows = [
                ("effects served from the journal", run.stats.replayed),
                ("effects dispatched by the resume", run.stats.dispatched),
                ("effects executed by the resume (side channel)", executed_after),
                (
                    "effects that ran twice (in flight at the kill)",
                    _count_lines(effects) - len(set(_lines(effects))),
                ),
                ("events written by the resume", run.stats.events_written),
                ("group commits by the resume", run.stats.commits),
            ]
            for what, count in rows:
                table.add_row(what, str(count))
            console.print(table)

            reference = engine.run(
                quality_pipeline, {"feature": "login"}, run_id="reference"
            )
            same = run.result == reference.result and run.status == "completed"
            console.print(f"resumed result:   {run.result}")
            console.print(f"reference result: {reference.result}")
            report = engine.verify()
            console.print(
                f"journal verified: {report.runs} runs, {report.events} events,"
                f" {report.blobs} blobs, {'intact' if report.ok else 'DAMAGED'}"
            )
            verdict = "[green]identical" if same else "[red]DIFFERENT"
            console.print(f"crashed-and-resumed result vs uninterrupted: {verdict}")
            return 0 if same and report.ok else 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_for_events(
    engine: Engine, run_id: str, *, at_least: int, child: subprocess.Popen[bytes]
) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise SystemExit("the demo run ended before it could be interrupted")
        try:
            events = engine.status(run_id).events
        except KeyError:
            events = 0
        if events >= at_least:
            return events
        time.sleep(0.005)
    raise SystemExit("the demo run made no progress in 60 s")


def _lines(path: str) -> list[str]:
    try:
        with open(path) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def _count_lines(path: str) -> int:
    return len(_lines(path))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3])
    else:
        sys.exit(main())
