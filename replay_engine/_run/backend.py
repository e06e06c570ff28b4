"""What ``ctx`` needs from the runtime executing it.

``Context`` is a thin front: it checks its arguments and takes each call's
invocation key, then hands the call to the runtime. The one exception is the
replay loop's common case, a ``ctx.task`` that completed before: ctx asks the
journal (``RunJournal.answer``) itself and answers at once, a call shallower.

ctx knows the runtime only through this protocol, so ``context`` does not
import ``runtime`` (which builds the context) and the two form no cycle.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import journal_format as jf

from .feed import Feed
from .journal import RunJournal
from .scope import Scope
from .stats import RunStats
from .tasks import TaskDef

if TYPE_CHECKING:  # imported only when tracing is on
    from .tracing import Tracing


class ContextBackend(Protocol):
    """The runtime as ``ctx`` sees it (implemented by ``runtime.Runtime``)."""

    run_id: str
    seed: str
    """The lineage's seed: ``ctx.random``/``ctx.uuid`` derive from it."""
    journal: RunJournal
    """``ctx.task`` asks it directly (``answer``): the replay loop's one lookup."""
    stats: RunStats
    stopping: bool
    activity: int
    groups: set[Any]
    """The parallel groups still waiting (see ``parallel.run_group``)."""
    feed: Feed
    """Lazy branch start: room in the dispatcher (see ``parallel.Feed``)."""
    clock_ns: Callable[[], int]
    tracing: Tracing | None
    """OpenTelemetry spans, or ``None`` (off): checked once per replayed call."""

    def tick(self) -> None:
        """Count a step of progress."""

    def check_live(self) -> None:
        """Raise when the execution diverged or is being stopped."""

    def recorded_value(self, data: bytes, key: bytes) -> Any:
        """Decode a recorded payload; damage ends the run (JournalCorruptError)."""

    def task(
        self,
        tdef: TaskDef[..., Any],
        key: bytes,
        scope: Scope,
        args_bytes: bytes,
        address: bytes,
        entry: jf.CallEntry | None,
    ) -> Awaitable[Any]:
        """``ctx.task`` at ``key``: new, failed, abandoned or interrupted before."""

    def sleep(self, key: bytes, prefix: bytes, seconds: float) -> Awaitable[None]:
        """``ctx.sleep`` at ``key``."""

    def value(
        self, kind: str, key: bytes, prefix: bytes, make: Callable[[bytes], int | bytes]
    ) -> int | bytes:
        """``ctx.now/random/uuid`` at ``key``: the recorded value, or a new one."""

    def patched(self, scope: Scope, patch_id: str) -> bool:
        """``ctx.patched``: the new path (True) or the recorded old one."""

    def deprecate_patch(self, scope: Scope, patch_id: str) -> None:
        """``ctx.deprecate_patch``: skip a recorded marker for the id."""

    def group(self, key: bytes) -> None:
        """``ctx.parallel`` takes ``key`` for a group: refuse it if recorded."""

    def log(
        self, key: bytes, ordinal: int, message: str, fields: dict[str, Any]
    ) -> None:
        """``ctx.log``: record and emit the line unless it already was."""

    def run_child(
        self, key: bytes, scope: Scope, process: Any, inputs: Any, run_id: str | None
    ) -> Awaitable[Any]:
        """``ctx.run_child`` at ``key``: the child's result (journal, or live)."""
