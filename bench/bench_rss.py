"""Issue 17: peak RSS of a large resume, by phase (cold and warm).

Cold: ``bench_cold.py``'s crashed run (``n`` sequential effects, SIGKILLed
with one in flight, no checkpoint) resumed to the end. Warm: ``n`` sequential
effects, then a wait for a signal: the run waits with a checkpoint; the
signal is posted and the run resumed to the end (checkpoint + short tail).

The resuming child samples ``/proc/self/status`` (VmRSS, RssAnon, RssFile)
from a thread every 2 ms and keeps the largest sample of each phase: the fold
(``Store.load_index``), the commits (``Store.append``, the last one writes the
checkpoint) and the re-execution (the rest); VmHWM (the kernel's high-water
mark, exact) is read at each phase's end too. Linux only (``/proc``).

    .venv/bin/python bench/bench_rss.py --n 500000            # 1,000,005 events
    .venv/bin/python bench/bench_rss.py --n 500000 --against /tmp/base-tree

``--cases cli``: the same crashed run resumed by ``replay-engine resume``
(the console script, whose probe child reads the run first): peak RSS of the
command and of its probe child, sampled from outside, and their CPU.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import _child
import bench_cold

from replay_engine import Engine, task


@task(executor="inline")
def step(i: int) -> int:
    return i


async def warm(inputs: dict[str, int], ctx: Any) -> int:
    for i in range(inputs["n"]):
        await ctx.task(step, {"i": i})
    await ctx.wait_for_event("go", timeout=3600)
    return inputs["n"]


def _status() -> tuple[int, int, int, int]:
    fields = {}
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                fields[name] = int(rest.split()[0]) // 1024
    return fields["VmRSS"], fields["RssAnon"], fields["RssFile"], fields["VmHWM"]


def child_resume(journal: str, case: str, n: int) -> dict[str, Any]:
    from replay_engine._store.store import Store

    phase = ["open"]
    peaks: dict[str, tuple[int, int, int, int]] = {}
    done = threading.Event()

    def take(name: str) -> None:
        now = _status()
        old = peaks.get(name, (0, 0, 0, 0))
        if now[0] > old[0]:
            peaks[name] = now
        elif now[3] > old[3]:
            peaks[name] = (*old[:3], now[3])

    def sample() -> None:
        while not done.is_set():
            take(phase[0])
            time.sleep(0.002)

    def phased(method: Any, name: str) -> Any:
        # A sample at each end too: the sampler needs the GIL, which one long
        # C call (decoding a checkpoint) holds for the whole of it.
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            take(phase[0])
            phase[0] = name
            try:
                return method(*args, **kwargs)
            finally:
                take(name)
                phase[0] = "re-execution"

        return wrapper

    Store.load_index = phased(Store.load_index, "fold")  # type: ignore[method-assign]
    Store.append = phased(Store.append, "commit")  # type: ignore[method-assign]
    Store.append_group = phased(Store.append_group, "commit")  # type: ignore[method-assign]
    start = _status()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    with Engine(journal) as engine:
        process = bench_cold.cold_seq if case == "cold" else warm
        run = engine.resume("seq" if case == "cold" else "r", process=process)
    wall = time.perf_counter() - started
    take("end")
    done.set()
    sampler.join()
    assert run.status == "completed", run.status
    return {"start": start, "peaks": peaks, "wall": wall}


def child_record_warm(journal: str, n: int) -> dict[str, Any]:
    with Engine(journal, durability="process") as engine:
        run = engine.run(warm, {"n": n}, run_id="r")
        assert run.status == "waiting", run.status
        engine.post_event("r", "go", {})
    return {}


def _hwm_mb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass  # it ended between two samples
    return 0


def cli_resume(journal: Path, tree: str) -> dict[str, float]:
    """``replay-engine resume`` of the crashed run, the way a user meets it.

    The console script forks a probe child that reads the run first
    (``_cli/isolation.py``), then resumes in its own process. VmHWM of both
    is sampled from outside every 20 ms; CPU is the command's and its
    children's (``wait4``).
    """
    here = str(Path(__file__).resolve().parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [tree, here]))}
    env["BENCH_COLD_RESUMING"] = "1"
    cmd = [sys.executable, "-m", "replay_engine._cli", "--journal", str(journal)]
    cmd += ["resume", "seq", "--process", "bench_cold:cold_seq"]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=here, stdout=subprocess.DEVNULL)
    parent = probe = 0
    while True:
        done, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if done:
            break
        parent = max(parent, _hwm_mb(proc.pid))
        for thread in Path(f"/proc/{proc.pid}/task").glob("*/children"):
            try:
                kids = thread.read_text().split()
            except OSError:
                continue
            for kid in kids:
                probe = max(probe, _hwm_mb(int(kid)))
        time.sleep(0.02)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, f"resume exited {proc.returncode}"
    return {
        "parent": parent,
        "probe": probe,
        "cpu": usage.ru_utime + usage.ru_stime,
        "wall": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=500_000)
    parser.add_argument("--against", help="a tree to A/B against (PYTHONPATH)")
    parser.add_argument("--cases", default="cold,warm", help="cold, warm, cli")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--journal", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, case, n = args.child.split(":")
        if kind == "record":
            result = child_record_warm(args.journal, int(n))
        else:
            result = child_resume(args.journal, case, int(n))
        import json

        print(json.dumps(result))
        return
    bench_cold.precompile(Path(__file__).resolve().parent.parent)
    script = os.path.abspath(__file__)
    trees = ["", *([args.against] if args.against else [])]
    print(
        "| case | tree | phase | sampled VmRSS MB | anon MB | file MB"
        " | VmHWM at its end MB |"
    )
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="bench-rss-") as tmp:
        base = Path(tmp)
        for case in args.cases.split(","):
            made = base / f"made-{case}"
            if case == "cli":
                bench_cold.crash(made, "seq", args.n)
                for tree in trees:
                    copy = base / "try"
                    shutil.rmtree(copy, ignore_errors=True)
                    shutil.copytree(made, copy)
                    out = cli_resume(copy, tree)
                    print(
                        f"| cli | {tree or 'this'} | `resume` (peak: command /"
                        f" probe child) | {out['parent']} / {out['probe']} | | |"
                        f" CPU {out['cpu']:.1f} s, wall {out['wall']:.1f} s |"
                    )
                    sys.stdout.flush()
                continue
            if case == "cold":
                bench_cold.crash(made, "seq", args.n)  # the run is named "seq"
            else:
                _child.run_child(script, f"record:{case}:{args.n}", made, [])
            for tree in trees:
                copy = base / "try"
                shutil.rmtree(copy, ignore_errors=True)
                shutil.copytree(made, copy)
                env = {**os.environ, **({"PYTHONPATH": tree} if tree else {})}
                env["BENCH_COLD_RESUMING"] = "1"
                out = _child.run_child(
                    script, f"resume:{case}:{args.n}", copy, [], env=env
                )
                for name in ("fold", "re-execution", "commit", "end"):
                    rss, anon, file, hwm = out["peaks"].get(name, (0, 0, 0, 0))
                    print(
                        f"| {case} | {tree or 'this'} | {name} | {rss} | {anon}"
                        f" | {file} | {hwm} |"
                    )
                print(f"| {case} | {tree or 'this'} | wall s | {out['wall']:.1f} | | |")
                sys.stdout.flush()


if __name__ == "__main__":
    main()
