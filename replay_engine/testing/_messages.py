"""What a determinism failure says: what differed, where, under what, and what to do.

The message follows the rule for our error messages (STYLE §4.7): a fixed
headline naming the process and the kind of difference; the key and the call
site; the two sides aligned; the schedule and the seed; what the static check
sees in the source; a line of Python that reproduces it; and the remedy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import journal_format as jf

from .. import NonDeterminismError
from ..check import check_process
from ._fakes import FakeTasks
from ._schedule import DEFAULT_RUN_ID, Execution, ProcessFn, Schedule
from ._trace import CallRecord, Difference, Trace, describe_change, short

SITE = re.compile(r"call site: (.+)")
"""Where a NonDeterminismError's message names the call site."""

REMEDY = (
    "A process must make the same ctx calls, with the same args, every time it"
    " runs. Read time with ctx.now(), randomness with ctx.random(), ids with"
    " ctx.uuid(); iterate sets as sorted(...); combine parallel results from the"
    " list ctx.parallel returns (input order), never in completion order; do I/O"
    " and environment reads inside a task."
)

ORDER_REMEDY = (
    "It changed only because effects completed in another order: the process"
    " depends on which parallel branch finishes first (shared state mutated"
    " inside branches, or results collected as they arrive). Return values from"
    " branches and use the list ctx.parallel.all/map returns; it is in input"
    " order.\n" + REMEDY
)

HASH_REMEDY = (
    "Its behaviour depends on the interpreter's hash seed: it iterates a set (of"
    " strings, say) or uses hash() or id(). Iterate sorted(the_set) instead, and"
    " use ctx.random()/ctx.uuid() or a stable digest (hashlib) instead of hash()."
)


class DeterminismFailure(AssertionError):
    """The process did something different under another schedule or on replay.

    Raised by :func:`~replay_engine.testing.assert_deterministic` and
    :func:`~replay_engine.testing.check_schedule`. The message says what
    differed, where (key and call site), under which schedule, and how to
    reproduce it.

    Attributes:
        process: the process, as ``module:qualname``.
        schedule: the (minimal, under hypothesis) schedule that shows it.
        key: the invocation key of the first difference, if it is at a call.
        site: ``file:line`` of that call, when known.
        error: the engine's NonDeterminismError, when replay raised one.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        message: str,
        *,
        process: str,
        schedule: Schedule,
        key: str | None = None,
        site: str | None = None,
        error: NonDeterminismError | None = None,
    ) -> None:
        super().__init__(message)
        self.process = process
        self.schedule = schedule
        self.key = key
        self.site = site
        self.error = error


@dataclass(frozen=True)
class Subject:
    """What is being checked: the process, its inputs and how it is run."""

    process: ProcessFn
    ref: str
    inputs: Any
    fakes: FakeTasks | None
    run_id: str
    seed: int | None


def failure(
    subject: Subject,
    schedule: Schedule,
    difference: Difference,
    *,
    labels: tuple[str, str],
    stage: str,
    site: str | None = None,
    error: NonDeterminismError | None = None,
    remedy: str | None = None,
    hash_seed: int | None = None,
) -> DeterminismFailure:
    """Build the failure, with its whole message."""
    lines = [f"process {subject.ref} is not deterministic: {difference.what}.", ""]
    where = f"at key {difference.key}" if difference.key else "at the end"
    lines.append(f"  {where}" + (f", called at {site}" if site else ""))
    width = max(len(label) for label in labels)
    lines.append(f"    {labels[0]:<{width}} : {difference.first}")
    lines.append(f"    {labels[1]:<{width}} : {difference.second}")
    lines += ["", f"  while {stage}", f"  under {schedule!r}"]
    if subject.seed is not None and schedule != Schedule():
        lines.append(
            f"  hypothesis seed {subject.seed}: rerun with pytest"
            f" --replay-seed={subject.seed}, or assert_deterministic(...,"
            f" seed={subject.seed})"
        )
    lines += static_lines(subject)
    lines += ["", "Reproduce:", *snippet(subject, schedule, hash_seed), ""]
    if difference.task_side:
        remedy = (
            "The calls agree but the task returned something else for the same"
            " args: the task itself is nondeterministic. That is allowed (a"
            " task's result is journaled), but to test the process, make the"
            " task's result reproducible, e.g. fakes=FakeTasks({"
            f"{_task_name(difference)!r}: ...}})."
        )
    if remedy is None:
        order_only = schedule.delays and not schedule.crash_after
        remedy = ORDER_REMEDY if order_only else REMEDY
    lines.append(remedy)
    return DeterminismFailure(
        "\n".join(lines),
        process=subject.ref,
        schedule=schedule,
        key=difference.key,
        site=site,
        error=error,
    )


def hash_seed_difference(
    out: dict[str, Any], trace: Trace
) -> tuple[Difference, str | None]:
    """What a child replaying under another hash seed reported, and the site."""
    key = out.get("key") or None
    if not out.get("diverged"):
        return (
            Difference(
                None,
                "replayed in another interpreter, it returned a different result",
                short(trace.result_value),
                "a result with content address b3:" + str(out.get("result"))[:12],
            ),
            None,
        )
    recorded = out.get("recorded", "")
    if key in trace.calls:
        recorded = trace.calls[key].describe()
    what = "it made different calls when replayed in another interpreter"
    replayed = str(out.get("replayed", ""))
    probe = out.get("probe")
    if key is not None and isinstance(probe, dict):
        now = CallRecord(
            key=key,
            kind=probe["kind"],
            name=probe["name"],
            args=bytes.fromhex(probe["args"]),
            args_value=jf.decode_payload(bytes.fromhex(probe["payload"])),
        )
        how = change(trace, key, now)
        if how is not None:
            what = how + " when replayed in another interpreter"
            replayed = now.describe(outcome=False)
    match = SITE.search(str(out.get("message", "")))
    return Difference(key, what, recorded, replayed), match.group(1) if match else None


def change(trace: Trace, key: str, now: CallRecord | None) -> str | None:
    """How the call replay made at ``key`` differs from the recorded one."""
    recorded = trace.calls.get(key)
    if recorded is None or now is None:
        return None
    return describe_change(recorded, now)


def stage_of(schedule: Schedule, execution: Execution) -> str:
    """What the execution under ``schedule`` went through, in words."""
    parts = []
    if schedule.delays:
        parts.append(f"holding back {len(schedule.delays)} completions")
    if execution.crashes:
        parts.append(f"crashing {execution.crashes} time(s) and resuming")
    return "running with " + " and ".join(parts) if parts else "running"


def snippet(subject: Subject, schedule: Schedule, hash_seed: int | None) -> list[str]:
    """Python lines that reproduce the failure."""
    module, _, qualname = subject.ref.partition(":")
    importable = "<locals>" not in qualname and "." not in qualname
    name = qualname if importable else "process"
    names = "FakeTasks, Schedule" if subject.fakes is not None else "Schedule"
    lines = [f"    from replay_engine.testing import {names}, check_schedule"]
    if importable:
        lines.append(f"    from {module} import {qualname}")
    options = "".join(
        f", {option}"
        for option, given in (
            (f"fakes={subject.fakes!r}", subject.fakes is not None),
            (f"run_id={subject.run_id!r}", subject.run_id != DEFAULT_RUN_ID),
            (f"hash_seed={hash_seed}", hash_seed is not None),
        )
        if given
    )
    lines.append(
        f"    check_schedule({name}, {short(subject.inputs, 400)}, {schedule!r}"
        f"{options})"
    )
    return lines


def static_lines(subject: Subject) -> list[str]:
    """What ``replay-engine check`` finds in the process's source, if anything."""
    try:
        findings = check_process(subject.process)
    except Exception:  # the static check is a hint here, never the verdict
        return []
    if not findings:
        return []
    lines = ["", f"The static check (replay-engine check {subject.ref}) points at:"]
    for finding in findings[:6]:
        lines.append(
            f"  {finding.file}:{finding.line}:{finding.col}: {finding.code}"
            f" {finding.message} -> {finding.replacement}"
        )
    if len(findings) > 6:
        lines.append(f"  ... and {len(findings) - 6} more")
    return lines


def _task_name(difference: Difference) -> str:
    match = re.match(r"task '([^']*)'", difference.first)
    return match.group(1) if match else "module.task"
