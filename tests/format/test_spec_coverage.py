"""Requirements traceability: every JF id in the spec is cited by a test.

A requirement is *defined* where the spec shows its id in bold (``**JF-017**``)
and *cited* by ``@pytest.mark.spec("JF-017")`` or a ``# EVIDENCE-OF: JF-017``
comment anywhere under ``tests/``.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "docs" / "journal-format.md"
TESTS = ROOT / "tests"
ID = re.compile(r"JF-\d{3}")
EVIDENCE = re.compile(r"#\s*EVIDENCE-OF:\s*(JF-\d{3}(?:\s*,\s*JF-\d{3})*)")


def defined_ids() -> list[str]:
    return re.findall(r"\*\*(JF-\d{3})\*\*", SPEC.read_text(encoding="utf-8"))


def _is_spec_mark(node: ast.expr) -> bool:
    # pytest.mark.spec(...) or mark.spec(...)
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "spec"
        and (isinstance(node.value, ast.Attribute) and node.value.attr == "mark")
    )


def cited_ids_in(source: str) -> set[str]:
    """The ids a test module cites through spec marks and EVIDENCE-OF comments."""
    cited: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and _is_spec_mark(node.func):
            for arg in node.args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    cited.add(arg.value)
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    for token in tokens:
        if token.type == tokenize.COMMENT and (match := EVIDENCE.match(token.string)):
            cited.update(ID.findall(match.group(1)))
    return cited


def cited_ids() -> set[str]:
    cited: set[str] = set()
    for path in TESTS.rglob("*.py"):
        cited |= cited_ids_in(path.read_text(encoding="utf-8"))
    return cited


def test_the_spec_defines_requirements_once() -> None:
    ids = defined_ids()
    assert len(ids) >= 40
    assert [i for i, n in Counter(ids).items() if n > 1] == []


def test_every_requirement_is_cited_by_a_test() -> None:
    missing = sorted(set(defined_ids()) - cited_ids())
    assert missing == [], f"requirements no test cites: {missing}"


def test_every_cited_requirement_exists() -> None:
    unknown = sorted(cited_ids() - set(defined_ids()))
    assert unknown == [], f"tests cite ids the spec does not define: {unknown}"


def test_ids_named_in_the_format_code_exist() -> None:
    named = {
        i
        for path in (ROOT / "journal_format").rglob("*.py")
        for i in ID.findall(path.read_text(encoding="utf-8"))
    }
    assert named >= {"JF-011", "JF-020", "JF-030", "JF-031", "JF-032", "JF-040"}
    assert sorted(named - set(defined_ids())) == []


def test_the_citation_finder_sees_marks_and_comments() -> None:
    source = (
        "import pytest\n"
        "@pytest.mark.spec('JF-901', 'JF-902')\n"
        "def test_a():\n"
        "    pass  # EVIDENCE-OF: JF-903, JF-904\n"
        "x = 'JF-905'  # a mention is not a citation\n"
        "y = '# EVIDENCE-OF: JF-906'  # nor is a string that looks like a comment\n"
    )
    assert cited_ids_in(source) == {"JF-901", "JF-902", "JF-903", "JF-904"}
