"""Shared pieces of the fault tests."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.adversarial import cli

HERE = Path(__file__).parent


def copy_of(
    factory: pytest.TempPathFactory,
    tmp_path: Path,
    name: str,
    build: Callable[[Path], None],
) -> Path:
    """A fresh copy of a journal built once per session by ``build(path)``."""
    template = _TEMPLATES.get(name)
    if template is None:
        template = factory.mktemp(f"template-{name}") / "journal"
        build(template)
        _TEMPLATES[name] = template
    journal = tmp_path / "journal"
    shutil.copytree(template, journal, symlinks=True)
    return journal


_TEMPLATES: dict[str, Path] = {}


def build_waiting(journal: Path) -> None:
    """``r1`` of ``fault_flows:waiter``: waiting for its agent at key 1."""
    done = cli(
        journal,
        "run",
        "fault_flows:waiter",
        "--run-id",
        "r1",
        "--input",
        "{}",
        paths=[HERE],
    )
    assert done.returncode == 3, done.describe()


def build_posted(journal: Path) -> None:
    """``r1`` waiting, with its agent's result posted: a resume runs a task."""
    build_waiting(journal)
    done = cli(journal, "post", "r1", "1", "--result", '"go"')
    assert done.returncode == 0, done.describe()


def side_lines(path: Path) -> list[list[str]]:
    try:
        return [line.split() for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []


def counts(path: Path, what: str) -> Counter[str]:
    """How often each ``i`` was noted with ``what``."""
    return Counter(parts[1] for parts in side_lines(path) if parts[0] == what)


@contextlib.contextmanager
def mounted(*command: str, target: Path) -> Iterator[None]:
    """``mount *command target`` for the block; skips the test if mount fails."""
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", *command, str(target)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount ({' '.join(command)}): {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True, check=False)


@contextlib.contextmanager
def read_only_view(source: Path, target: Path) -> Iterator[None]:
    """``source`` seen read-only at ``target`` (a read-only bind mount: root
    bypasses permission bits); skips the test if that is not possible."""
    with mounted("--bind", str(source), target=target):
        done = subprocess.run(
            ["mount", "-o", "remount,bind,ro", str(target)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot remount read-only: {done.stderr.strip()}")
        yield
