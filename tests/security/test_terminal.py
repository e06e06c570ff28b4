"""Terminal safety (issue 12, item 5).

Strings from a journal (process, task names, log messages, results) are
printed literally: no rich markup is interpreted (a ``[link=...]`` is not a
hyperlink, ``[/]`` does not crash ``runs``) and control characters are
escaped (no raw ``ESC [2J`` or BEL reaches the terminal).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import journal_format as jf
from tests.adversarial import cli, make_journal, payload_ref, started, write_run

LINK = "[link=https://x]hi[/link]"
EVIL = f"{LINK} [/] [bold red]red \x1b[2J\x07end"
SOFT = f"{LINK} [bold red]red \x1b[2J\x07end"  # no [/]: rich does not crash on it
TERMINAL = {"COLUMNS": "200", "FORCE_COLOR": "1", "TTY_COMPATIBLE": "1"}


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    journal = tmp_path / "journal"
    make_journal(journal)
    for suffix, text in (("", EVIL), ("-soft", SOFT)):
        write_runs(journal, suffix, text)
    return journal


def write_runs(journal: Path, suffix: str, text: str) -> None:
    key = jf.encode_key((0,))
    start, blobs = started(text, {"x": text})
    args, more = payload_ref({"why": text})
    result, res = payload_ref(text)
    blobs |= more | res
    done_events = [
        start,
        jf.EffectRequested(key=key, task=text, kind="task", args=args),
        jf.EffectCompleted(key=key, result=result),
        jf.LogLine(
            key=jf.encode_key((1,)), ordinal=0, message=text, fields={"f": text}
        ),
        jf.RunCompleted(result=result),
    ]
    write_run(journal, "done" + suffix, done_events, blobs, status="completed")
    wait_events = [
        start,
        jf.EffectRequested(key=key, task=text, kind="agent", args=args),
        jf.RunWaiting(pending=[key]),
    ]
    write_run(journal, "wait" + suffix, wait_events, blobs, status="waiting")


def assert_literal(out: str) -> None:
    assert "\x1b]8;" not in out, "journal text became a terminal hyperlink"
    assert "\x1b[2J" not in out, (
        "a raw escape code from the journal reached the terminal"
    )
    assert "\x07" not in out, "a raw BEL from the journal reached the terminal"
    assert LINK in out, "the journal's text was not printed literally"


COMMANDS = [
    ["runs"],
    ["status", "done"],
    ["status", "wait"],
    ["log", "done"],
    ["log", "wait"],
    ["pending", "wait"],
]
SOFT_COMMANDS = [[c[0], c[1] + "-soft"] for c in COMMANDS if len(c) == 2]


@pytest.mark.parametrize("command", COMMANDS, ids="-".join)
def test_journal_text_is_printed_literally(journal: Path, command: list[str]) -> None:
    done = cli(journal, *command, extra_env=TERMINAL)
    assert done.returncode in (0, 3), done.describe()
    assert "Traceback" not in done.output, done.describe()
    assert_literal(done.stdout)


@pytest.mark.parametrize("command", COMMANDS[:3], ids="-".join)
def test_json_output_escapes_control_characters(
    journal: Path, command: list[str]
) -> None:
    done = cli(journal, *command, "--json", extra_env=TERMINAL)
    assert done.returncode in (0, 3), done.describe()
    assert "\x1b" not in done.stdout and "\x07" not in done.stdout, done.describe()


@pytest.mark.parametrize("command", SOFT_COMMANDS, ids="-".join)
def test_markup_and_escapes_without_a_closing_tag(
    journal: Path, command: list[str]
) -> None:
    done = cli(journal, *command, extra_env=TERMINAL)
    assert done.returncode in (0, 3), done.describe()
    assert "Traceback" not in done.output, done.describe()
    assert_literal(done.stdout)


@pytest.mark.parametrize("command", COMMANDS, ids="-".join)
def test_control_characters_are_shown_escaped(
    journal: Path, command: list[str]
) -> None:
    """Not dropped either: the reader sees that the journal holds an escape."""
    done = cli(journal, *command, extra_env=TERMINAL)
    assert "\\x1b[2J" in done.stdout and "\\x07end" in done.stdout, done.describe()


@pytest.mark.parametrize("suffix", ["", "-soft"])
def test_timeline_html_escapes_journal_text(
    journal: Path, tmp_path: Path, suffix: str
) -> None:
    page = tmp_path / "t.html"
    done = cli(journal, "timeline", "done" + suffix, "-o", str(page))
    assert done.returncode == 0, done.describe()
    html = page.read_text()
    assert "[link=https://x]hi[/link]" in html, "the task name is missing"
    assert "<script>" in html and html.count("<script>") == 1
    assert "\x1b" not in done.stdout and "\x07" not in done.stdout


def test_html_special_characters_in_a_task_name(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    make_journal(journal)
    write_runs(journal, "", '<script>alert(1)</script>" onload="x')
    page = tmp_path / "t.html"
    done = cli(journal, "timeline", "done", "-o", str(page))
    assert done.returncode == 0, done.describe()
    html = page.read_text()
    assert "<script>alert(1)" not in html, "journal text reached the page as HTML"
    assert '" onload="x' not in html, "journal text closed an attribute"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_json_escapes_del_and_c1(tmp_path: Path) -> None:
    """JSON leaves DEL and C1 raw; a C1 CSI (U+009B) is an escape on some terminals."""
    journal = tmp_path / "journal"
    make_journal(journal)
    write_runs(journal, "", "a\x7fb\x9b2Jc")
    for command in (["status", "done", "--json"], ["log", "done", "--json"]):
        done = cli(journal, *command)
        assert done.returncode == 0, done.describe()
        assert "\x9b" not in done.stdout and "\x7f" not in done.stdout
        assert "\\u009b" in done.stdout, done.describe()
    done = cli(journal, "export", "done", "--format", "jsonl")
    assert done.returncode == 0, done.describe()
    assert "\x9b" not in done.stdout and "\\u009b" in done.stdout


def test_timeline_on_stdout_carries_no_raw_escapes(journal: Path) -> None:
    done = cli(journal, "timeline", "done", "-o", "-", extra_env=TERMINAL)
    assert done.returncode == 0, done.describe()
    assert "\x1b" not in done.stdout and "\x07" not in done.stdout
    assert "\\x1b[2J" in done.stdout, "the escape is not shown"
