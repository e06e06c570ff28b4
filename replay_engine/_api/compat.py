"""``check_compatible``: which stored runs a change to a process would break.

The CI gate before a deploy: every stored run of the process is replayed,
read-only, against the code about to ship. A run whose journal the new code
no longer agrees with (a call added, removed or changed before the end of
what was recorded; for a complete history, also a different ending) would
stop with ``NonDeterminismError`` when resumed; every other run would go on.
Nothing is dispatched and nothing is written: a replay answers every call
from the journal.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from .._run import process_ref as _process_ref
from ..errors import NonDeterminismError, ReplayEngineError
from .executing import ProcessFn, load_process
from .travel import TimeTravel

Verdict = Literal["compatible", "breaks", "error"]


@dataclass(frozen=True)
class RunCompatibility:
    """What replaying one stored run against the given code found."""

    run_id: str
    status: str
    """The run's status (as ``Engine.status`` shows it)."""
    verdict: Verdict
    """``compatible``; ``breaks`` (the code diverges from the journal); or
    ``error`` (the replay could not be made: a damaged journal, say)."""
    key: str = ""
    """For ``breaks``: the invocation key of the first divergence."""
    seq: int | None = None
    """For ``breaks``: the journal event recorded there, if any."""
    message: str = ""
    """For ``breaks`` and ``error``: what was found (recorded vs replayed)."""

    @property
    def compatible(self) -> bool:
        """True when the run would replay as recorded."""
        return self.verdict == "compatible"


class CompatChecking(TimeTravel):
    """``Engine.check_compatible``."""

    def check_compatible(
        self,
        process: ProcessFn | str,
        runs: Iterable[str] | None = None,
    ) -> list[RunCompatibility]:
        """Replay stored runs against ``process``; report which it would break.

        Args:
            process: the new code (a function, or a ``module:qualname`` you
                name; it is imported as ``run`` would).
            runs: the run ids to check; None for every run recorded with this
                process's reference (``module:qualname``), whatever its status.

        Raises:
            ProcessImportError: ``process`` cannot be imported or is not a
                process (``async def process(inputs, ctx)``).
            RunNotFoundError: a run named in ``runs`` does not exist.
        """
        fn = load_process(process) if isinstance(process, str) else process
        ref = _process_ref.reference(fn)
        _process_ref.check_process(fn, ref)
        if runs is None:
            chosen = [i.run_id for i in self.runs() if i.process == ref]
        else:
            chosen = list(runs)
            for run_id in chosen:
                self.status(run_id)  # an unknown run is reported before any work
        return [self._check_one(run_id, fn) for run_id in sorted(chosen)]

    def _check_one(self, run_id: str, fn: ProcessFn) -> RunCompatibility:
        status = self.status(run_id).status
        try:
            self.replay(run_id, process=fn)
        except NonDeterminismError as exc:
            return RunCompatibility(
                run_id, status, "breaks", exc.key, exc.seq, str(exc)
            )
        except ReplayEngineError as exc:
            return RunCompatibility(
                run_id, status, "error", message=f"{type(exc).__name__}: {exc}"
            )
        return RunCompatibility(run_id, status, "compatible")
