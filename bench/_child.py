"""Running one benchmark case in a fresh child interpreter.

Each bench re-invokes its own file with ``--child CASE --journal PATH`` and
its options; the child prints its figures as one JSON line, last.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_child(
    script: str,
    case: str,
    journal: Path,
    options: list[str],
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run ``script --child case --journal journal *options``; its JSON result."""
    cmd = [sys.executable, script, "--child", case, "--journal", str(journal)]
    proc = subprocess.run(
        [*cmd, *options], capture_output=True, text=True, check=False, env=env
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(
            f"{Path(script).stem}: child {case!r} failed ({proc.returncode})"
        )
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result
