"""A finding of the static check: where, which rule, what to use instead."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, order=True)
class Finding:
    """One determinism hazard in a process's source.

    .. versionadded:: 0.1
    """

    file: str
    line: int
    col: int
    code: str
    message: str
    replacement: str
    function: str
    """The function (``module.qualname``) the hazard is in."""

    def __str__(self) -> str:
        return (
            f"{self.file}:{self.line}:{self.col}: {self.code} {self.message}"
            f" (use {self.replacement})"
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the fields."""
        return asdict(self)
