"""What a waiting run needs, as ``runs`` shows it: extra fields and table columns."""

from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING, Any

from .. import Engine, PendingEffect, RunInfo

if TYPE_CHECKING:  # start-up: rich is imported where a table is printed
    from rich.table import Table


def now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def iso(value: _dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def age(effect: PendingEffect, at: _dt.datetime) -> float:
    """Seconds since ``effect`` was requested, as of ``at``."""
    return max(0.0, (at - effect.requested_at).total_seconds())


def waiting_fields(engine: Engine, info: RunInfo) -> dict[str, Any]:
    """What ``runs`` adds to each row: what a waiting run needs, and since when.

    ``pending`` (keys) and ``pending_count`` count the external effects
    without a result (abandoned ones excluded), ``oldest_pending_age`` is
    the age in seconds of the oldest of them, ``expired_leases`` how many
    were claimed by a worker whose lease ran out, ``signals`` the events the
    run waits for, ``next_due`` when its earliest timer or deadline falls
    due. Empty for a run that is not waiting.
    """
    empty: dict[str, Any] = {
        "pending": [],
        "pending_count": 0,
        "oldest_pending_age": None,
        "expired_leases": 0,
        "signals": [],
        "next_due": None,
    }
    if info.status != "waiting" or info.events == 0:
        return empty
    waiting = engine.waiting(info.run_id)
    live = waiting.externals
    at = now()
    return {
        "pending": [e.key for e in live],
        "pending_count": len(live),
        "oldest_pending_age": round(max(age(e, at) for e in live), 3) if live else None,
        "expired_leases": sum(1 for e in live if e.stale),
        "signals": [s.name for s in waiting.signals],
        "next_due": iso(waiting.next_due),
    }


def add_waiting_columns(table: Table) -> None:
    """The columns ``runs`` adds to its table when some run is waiting."""
    for name in ("pending", "oldest", "leases expired", "next due"):
        table.add_column(name, justify="right")


def waiting_cells(row: dict[str, Any]) -> tuple[str, ...]:
    """A row's cells for :func:`add_waiting_columns` (blank unless waiting)."""
    if row["status"] != "waiting":
        return ("", "", "", "")
    oldest = row["oldest_pending_age"]
    signals = len(row["signals"])
    pending = str(row["pending_count"]) + (f" +{signals} events" if signals else "")
    due = row["next_due"]
    return (
        pending,
        "" if oldest is None else f"{oldest:.0f}s",
        str(row["expired_leases"]) if row["expired_leases"] else "",
        "" if due is None else due[:19].replace("T", " "),
    )
