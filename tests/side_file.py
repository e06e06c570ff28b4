"""The side channel tasks report on: JSON lines appended to a file.

Tests see from outside the journal what ran, how often and where, without
trusting the journal they check. One ``os.write`` of one line per report on an
``O_APPEND`` descriptor, so reports from threads and processes never interleave.
"""

from __future__ import annotations

import json
import os
from typing import Any


def append_line(env_name: str, line: dict[str, Any]) -> None:
    """Append ``line`` to the file named by ``$env_name`` (nothing when unset)."""
    path = os.environ.get(env_name)
    if not path:
        return
    data = (json.dumps(line, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def read_side(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every line reported so far (none when nothing was)."""
    try:
        with open(path, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]
    except FileNotFoundError:
        return []
