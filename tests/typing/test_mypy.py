"""What a user's type checker sees: `mypy --strict` on samples and the docs' examples.

One mypy run (the venv's, as a subprocess) checks ``samples/*.py`` and
``docs/examples/**/*.py``. In a sample, ``# R: T`` says the ``reveal_type`` on that
line must reveal exactly ``T``, and ``# E: text`` that mypy must report an error
there containing ``text``; any other error fails. The docs' examples must pass
with no error at all, and each must appear verbatim in the document that
includes it (``<!-- example: docs/examples/NAME.py -->`` before a python block).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((Path(__file__).parent / "samples").glob("*.py"))
EXAMPLES = sorted((ROOT / "docs" / "examples").rglob("*.py"))
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_LINE = re.compile(r"^(?P<path>[^:]+):(?P<line>\d+): (?P<sev>error|note): (?P<msg>.*)$")
_EXPECT = re.compile(r"#\s*(?P<kind>[RE]):\s*(?P<text>.*?)\s*$")
_MARKER = re.compile(
    r"<!-- example: (?P<path>[^ ]+) -->\n```python\n(?P<code>.*?)```\n", re.S
)
_BLOCK = re.compile(r"```python\n(?P<code>.*?)```\n", re.S)


@pytest.fixture(scope="module")
def mypy_output() -> dict[tuple[str, int], list[tuple[str, str]]]:
    """(file relative to the root, line) -> [(severity, message)], from one mypy run."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--show-error-codes",
            "--no-error-summary",
            "--no-pretty",
            "--cache-dir",
            str(ROOT / ".mypy_cache"),
            *map(str, SAMPLES + EXAMPLES),
        ],
        cwd=ROOT,  # the project's [tool.mypy] overrides (untyped lmdb …)
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr or proc.stdout
    found: dict[tuple[str, int], list[tuple[str, str]]] = {}
    for line in proc.stdout.splitlines():
        m = _LINE.match(line)
        if m is None:
            continue
        name = str(Path(m["path"]).resolve().relative_to(ROOT))
        found.setdefault((name, int(m["line"])), []).append((m["sev"], m["msg"]))
    # Exit 1 with no error listed is mypy failing to run (not installed, say),
    # which would otherwise pass every example unchecked.
    assert proc.returncode == 0 or found, proc.stderr or proc.stdout
    return found


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_sample_reveals_and_errors(
    sample: Path, mypy_output: dict[tuple[str, int], list[tuple[str, str]]]
) -> None:
    name = _rel(sample)
    expected: dict[int, tuple[str, str]] = {}
    for number, text in enumerate(sample.read_text().splitlines(), start=1):
        m = _EXPECT.search(text)
        if m is not None:
            expected[number] = (m["kind"], m["text"])
    assert expected, f"{name} asserts nothing"
    problems: list[str] = []
    for number, (kind, text) in expected.items():
        got = mypy_output.get((name, number), [])
        if kind == "R":
            revealed = [msg for sev, msg in got if msg.startswith("Revealed type is ")]
            want = f'Revealed type is "{text}"'
            if want not in revealed:
                problems.append(f"{name}:{number}: wanted {want}, got {revealed}")
        elif not any(sev == "error" and text in msg for sev, msg in got):
            problems.append(
                f"{name}:{number}: wanted an error with {text!r}, got {got}"
            )
    for (path, number), got in sorted(mypy_output.items()):
        if path != name:
            continue
        for sev, msg in got:
            if sev == "error" and expected.get(number, ("",))[0] != "E":
                problems.append(f"{name}:{number}: unexpected error: {msg}")
    assert not problems, "\n".join(problems)


def test_docs_examples_pass_mypy_strict(
    mypy_output: dict[tuple[str, int], list[tuple[str, str]]],
) -> None:
    assert EXAMPLES, "docs/examples/ is empty"
    names = {_rel(p) for p in EXAMPLES}
    errors = [
        f"{path}:{number}: {msg}"
        for (path, number), got in sorted(mypy_output.items())
        if path in names
        for sev, msg in got
        if sev == "error"
    ]
    assert not errors, "\n".join(errors)


def test_docs_include_their_examples_verbatim() -> None:
    included: set[str] = set()
    for doc in DOCS:
        text = doc.read_text()
        for m in _MARKER.finditer(text):
            path = ROOT / m["path"]
            assert path.is_file(), f"{_rel(doc)} includes {m['path']}, which is missing"
            assert m["code"] == path.read_text(), (
                f"{_rel(doc)}: the block after <!-- example: {m['path']} --> differs"
                f" from the file; copy the file into the document again"
            )
            included.add(m["path"])
    assert included == {_rel(p) for p in EXAMPLES}, "an example no document includes"


def test_every_process_example_in_the_docs_is_checked() -> None:
    """A python block that writes process code must be one of the checked examples."""
    loose = []
    for doc in DOCS:
        text = doc.read_text()
        marked = {m.start("code") for m in _MARKER.finditer(text)}
        for m in _BLOCK.finditer(text):
            code = m["code"]
            if m.start("code") in marked:
                continue
            if "async def " in code or "@task" in code or "ctx." in code:
                loose.append(f"{_rel(doc)}: {code.splitlines()[0]}")
    assert not loose, (
        "process code in the docs that mypy does not check:\n" + "\n".join(loose)
    )
