"""The fault-injection run of issue 12: damage a small journal every way, run
every inspection command on it, and classify what happened.

A small journal is built through the CLI (a completed run, a waiting run with
an external effect and its checkpoint, a failed run, a fork, a run with a
payload large enough for overflow pages). Each fault is applied to a fresh
**copy** of it, and each command runs as a subprocess with a timeout:

* bit flips at the head, middle and end of every LMDB page of ``data.mdb``
  (both meta pages included);
* truncations at every page boundary and a few odd sizes;
* commit failures: a run filling a small tmpfs, stopped by a full disk at a
  random point, then every command on what it left.

Outcomes: ``hang`` (timeout), ``signal`` (killed by a signal), ``traceback``
(``Traceback`` on stderr), ``silent`` (exit 0 or 3 with output that differs
from the pristine journal's while ``verify`` on the same copy says intact),
``damaged-by-commit`` (a failed commit left a journal ``verify`` rejects),
else ``clean``. ``python -m tests.faults.injection [--full]`` prints the
summary; ``tests/faults/test_fault_injection.py`` asserts it is all clean.
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tests.adversarial import CLI, env_for, kill_group

HERE = Path(__file__).parent
PAGE = 4096
RUNS = ("done", "wait", "fail", "fork", "big")
RUN_COMMANDS: tuple[tuple[str, ...], ...] = (
    ("status",),
    ("log",),
    ("export", "--format", "jsonl"),
    ("pending",),
)
OUTCOMES = ("clean", "hang", "signal", "traceback", "silent", "damaged-by-commit")


@dataclass(frozen=True)
class Result:
    """One command's end: ``code`` None means it was killed at the timeout."""

    code: int | None
    stdout: str
    stderr: str


@dataclass
class Case:
    fault: str
    command: str
    outcome: str
    detail: str = ""


@dataclass
class Summary:
    faults: int = 0
    cases: list[Case] = field(default_factory=list)

    def counts(self) -> Counter[str]:
        return Counter(case.outcome for case in self.cases)

    def bad(self) -> list[Case]:
        return [case for case in self.cases if case.outcome != "clean"]

    def render(self) -> str:
        counts = self.counts()
        lines = [
            f"faults tried: {self.faults}",
            f"commands run: {len(self.cases)}",
            *(f"  {name:<18} {counts.get(name, 0)}" for name in OUTCOMES),
        ]
        if self.bad():
            lines.append("not clean:")
            lines += [
                f"  {c.fault} | {c.command} | {c.outcome}: {c.detail}"
                for c in self.bad()
            ]
        return "\n".join(lines)


def run_cli(journal: Path, args: Sequence[str], timeout: float) -> Result:
    """``replay-engine --journal JOURNAL ARGS`` in its own session, bounded."""
    proc = subprocess.Popen(
        [*CLI, "--journal", str(journal), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_for(HERE),
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        code = None
    finally:
        kill_group(proc)
    return Result(code, _normal(out, journal), _normal(err, journal))


# Durations measured now (a pending effect's age, a resume's elapsed time)
# differ between any two runs of a command; everything else must not.
_DURATION = re.compile(r"\b\d+(?:\.\d+)?(?:µs|ms|s|m|h|d)\b")

_PADDING = re.compile(r"[ \t]+")
_RULE = re.compile(r"[─━]+")


def _normal(text: str, journal: Path) -> str:
    for path in {str(journal), str(journal.resolve())}:
        text = text.replace(path, "<journal>")
    # A table column as wide as its widest duration: compare cells, not padding.
    return _PADDING.sub(" ", _RULE.sub("-", _DURATION.sub("<duration>", text)))


# -- the journal ----------------------------------------------------------------------


def build(journal: Path) -> None:
    """The small journal every fault is applied to (built through the CLI)."""

    def ok(args: Sequence[str], *codes: int, variant: str | None = None) -> None:
        env = env_for(HERE, **({"FAULT_VARIANT": variant} if variant else {}))
        done = subprocess.run(
            [*CLI, "--journal", str(journal), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert done.returncode in codes, (args, done.returncode, done.stderr)

    waiter = ("run", "fault_flows:waiter", "--input", "{}", "--run-id")
    ok((*waiter, "done"), 3)
    ok(("post", "done", "1", "--result", '"go"'), 0)
    ok(("resume", "done"), 0)
    ok((*waiter, "wait"), 3)
    ok((*waiter, "fail"), 1, variant="raise")
    ok(("fork", "done", "--at", "3", "--run-id", "fork"), 0)
    big = '{"text": "' + "x" * 9000 + '"}'
    ok(("run", "fault_flows:echo", "--input", big, "--run-id", "big"), 0)


# -- faults -------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    name: str
    apply: Callable[[Path], None]


def flip(offset: int, bit: int) -> Callable[[Path], None]:
    def apply(journal: Path) -> None:
        path = journal / "data.mdb"
        data = bytearray(path.read_bytes())
        data[offset] ^= 1 << bit
        path.write_bytes(bytes(data))

    return apply


def truncate(size: int) -> Callable[[Path], None]:
    def apply(journal: Path) -> None:
        with open(journal / "data.mdb", "r+b") as file:
            file.truncate(size)

    return apply


# Offsets in a page: the header (page number, flags, lower/upper bounds), the
# first node pointers, the middle, the end (where node data is packed).
HEADER_OFFSETS = (0, 8, 10, 12, 14, 16, 18)
BODY_OFFSETS = (PAGE // 2, PAGE - 40, PAGE - 1)


def damage_faults(size: int, *, full: bool, rng: random.Random) -> list[Fault]:
    """Every page at every offset class (full), or a sample (quick)."""
    pages = size // PAGE
    faults: list[Fault] = []
    sampled = range(pages) if full else sorted({0, 1, *rng.sample(range(pages), 3)})
    for page in sampled:
        offsets = (
            (0, 10, 12, 14, *BODY_OFFSETS)
            if full
            else (
                rng.choice(HEADER_OFFSETS),
                rng.choice(BODY_OFFSETS),
            )
        )
        for offset in offsets:
            bit = rng.randrange(8)
            at = page * PAGE + offset
            faults.append(Fault(f"flip page {page} +{offset} bit {bit}", flip(at, bit)))
    if (
        full and pages >= 2
    ):  # the meta pages' txnid and root pointers: where rollbacks hide
        for page in (0, 1):
            for offset in (136, 128, 120, 40, 88):
                faults.append(
                    Fault(
                        f"flip meta {page} +{offset} bit 1",
                        flip(page * PAGE + offset, 1),
                    )
                )
    cuts = [*range(0, size, PAGE), PAGE + 1, size // 2 + 7, size - 1]
    if not full:
        cuts = sorted(set([*rng.sample(cuts, min(2, len(cuts))), size - 1]))
    faults += [Fault(f"truncate to {cut}", truncate(cut)) for cut in cuts]
    return faults


# -- running commands on a damaged copy ------------------------------------------


def commands(runs: Sequence[str]) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = [("runs",), ("verify",)]
    for run in runs:
        out += [(cmd[0], run, *cmd[1:]) for cmd in RUN_COMMANDS]
    return out


def run_all(
    journal: Path, work: Path, timeout: float, runs: Sequence[str] = RUNS
) -> dict[tuple[str, ...], Result]:
    """Every command on ``journal``; each resume on a copy of its own."""
    results = {args: run_cli(journal, args, timeout) for args in commands(runs)}
    for run in runs:
        own = work / f"resume-{run}"
        shutil.copytree(journal, own)
        results[("resume", run)] = run_cli(own, ("resume", run), timeout)
        shutil.rmtree(own)
    return results


def classify(
    result: Result, pristine: Result | None, verify_intact: bool
) -> tuple[str, str]:
    if result.code is None:
        return "hang", "no end within the timeout"
    if result.code < 0:
        return "signal", f"killed by signal {-result.code}"
    if "Traceback" in result.stderr:
        return "traceback", result.stderr.strip().splitlines()[-1][:200]
    if pristine is not None and (result.code, result.stdout) == (
        pristine.code,
        pristine.stdout,
    ):
        return "clean", ""
    if result.code in (1, 2) and "error" in result.stderr.lower():
        return "clean", ""
    if verify_intact:
        first = (result.stdout or result.stderr).strip().splitlines()[:1]
        return "silent", f"exit {result.code}, differs from pristine: {first}"
    return "clean", ""


def try_fault(
    fault: Fault,
    run: str,
    template: Path,
    pristine: dict[tuple[str, ...], Result],
    timeout: float,
) -> list[Case]:
    """The fault on a fresh copy: ``runs``, ``verify``, and every command of one
    run (faults rotate through the runs, so each run meets every fault class)."""
    with tempfile.TemporaryDirectory(prefix="inject-") as tmp:
        work = Path(tmp)
        journal = work / "journal"
        shutil.copytree(template, journal)
        fault.apply(journal)
        results = run_all(journal, work, timeout, (run,))
    intact = results[("verify",)].code == 0
    cases = []
    for args, result in results.items():
        outcome, detail = classify(result, pristine[args], intact)
        cases.append(Case(fault.name, " ".join(args), outcome, detail))
    return cases


# -- commit failures ---------------------------------------------------------------


def commit_failures(
    points: int, rng: random.Random, timeout: float
) -> list[list[Case]]:
    """Runs stopped by a full tmpfs at ``points`` random fill levels."""
    out = []
    for _ in range(points):
        with tempfile.TemporaryDirectory(prefix="inject-disk-") as tmp:
            disk = Path(tmp) / "disk"
            disk.mkdir()
            mount = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)],
                capture_output=True,
                check=False,
            )
            if mount.returncode != 0:
                return out
            try:
                out.append(_one_commit_failure(disk, Path(tmp), rng, timeout))
            finally:
                subprocess.run(
                    ["umount", "-l", str(disk)], capture_output=True, check=False
                )
    return out


def _one_commit_failure(
    disk: Path, work: Path, rng: random.Random, timeout: float
) -> list[Case]:
    journal = disk / "journal"
    size = rng.choice((2_000, 20_000, 60_000))
    filler = rng.randrange(0, 400_000)
    (disk / "filler").write_bytes(b"\0" * filler)
    name = f"disk full (filler {filler} B, results of {size} B)"
    args = (
        "run",
        "fault_flows:fill",
        "--run-id",
        "f",
        "--input",
        f'{{"size": {size}}}',
    )
    cases = [_writer_case(name, " ".join(args[:2]), run_cli(journal, args, timeout))]
    # What the failed commit left, read where it stands (read-only commands)
    # and resumed with room again (a copy on the ordinary disk).
    verified = run_cli(journal, ("verify",), timeout)
    outcome, detail = classify(verified, None, verify_intact=False)
    if (
        outcome == "clean"
        and verified.code != 0
        and "not a journal" not in verified.stderr
    ):
        outcome, detail = "damaged-by-commit", verified.stdout.strip()[-300:]
    cases.append(Case(name, "verify", outcome, detail))
    for cmd in (("status", "f"), ("log", "f"), ("runs",), ("pending", "f")):
        outcome, detail = classify(run_cli(journal, cmd, timeout), None, False)
        cases.append(Case(name, " ".join(cmd), outcome, detail))
    if (journal / "data.mdb").exists():
        copy = work / "roomy"
        shutil.copytree(journal, copy)
        again = run_cli(copy, ("resume", "f"), timeout)
        cases.append(_writer_case(name, "resume f (room again)", again))
    return cases


def _writer_case(name: str, command: str, result: Result) -> Case:
    outcome, detail = classify(result, None, verify_intact=False)
    return Case(name, command, outcome, detail)


# -- the whole run -------------------------------------------------------------------


def inject(
    *,
    full: bool,
    seed: int = 12,
    timeout: float = 30.0,
    workers: int = 2,
    commit_points: int | None = None,
    damage: bool = True,
) -> Summary:
    """Build the journal, try every fault of the profile, classify everything."""
    rng = random.Random(seed)
    summary = Summary()
    with tempfile.TemporaryDirectory(prefix="inject-template-") as tmp:
        template = Path(tmp) / "journal"
        build(template)
        copy = Path(tmp) / "pristine"
        shutil.copytree(template, copy)
        pristine = run_all(copy, Path(tmp), timeout)
        size = (template / "data.mdb").stat().st_size
        faults = damage_faults(size, full=full, rng=rng) if damage else []
        summary.faults = len(faults)
        with ThreadPoolExecutor(workers) as pool:
            jobs = [
                pool.submit(
                    try_fault, f, RUNS[i % len(RUNS)], template, pristine, timeout
                )
                for i, f in enumerate(faults)
            ]
            for job in jobs:
                cases = job.result()
                summary.cases += cases
    points = commit_points if commit_points is not None else (8 if full else 0)
    for cases in commit_failures(points, rng, timeout):
        summary.faults += 1
        summary.cases += cases
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--full", action="store_true", help="every page and offset class"
    )
    parser.add_argument("--seed", type=int, default=12)
    options = parser.parse_args(argv)
    summary = inject(full=options.full, seed=options.seed)
    print(summary.render())
    return 1 if summary.bad() else 0


if __name__ == "__main__":
    raise SystemExit(main())
