"""The web console in headless Chromium, against a real server and a real worker.

A person opens the runs list, opens a waiting run, reads its breakpoint and
approves it with a response; the worker (a subprocess) carries the run on and
the page shows it complete, live. Journal strings are hostile HTML: they must
appear as text, and none of them may run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.serve.cdp import CHROMIUM, browser
from tests.serve.servers import server, start_run, worker

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install chromium)"
)

HOSTILE_TITLE = '<img src=x onerror="window.__pwned=1">deploy?'
HOSTILE_PAYLOAD = {
    "diff": "<script>window.__pwned=2</script>",
    "note": "</pre><b>x</b>",
}


def js(value: object) -> str:
    return json.dumps(value)


def test_a_person_approves_a_breakpoint_and_watches_the_run_complete(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "journal"
    start_run(
        journal,
        "approval",
        "deploy-1",
        {"title": HOSTILE_TITLE, "payload": HOSTILE_PAYLOAD},
    )
    start_run(journal, "approval", "deploy-2", {"title": "second <b>one</b>"})
    with (
        server(journal) as s,
        worker(journal, "serve_flows:approval"),
        browser(tmp_path / "profile") as page,
    ):
        page.goto(s.url + "/#/runs")
        page.wait(
            "document.querySelectorAll('#runs-body tr[data-run]').length === 2",
            "the runs list",
        )
        statuses = "[...document.querySelectorAll('#runs-body .status')]"
        assert page.eval(statuses + ".map(e => e.textContent)") == ["waiting"] * 2
        # The search box filters the list.
        page.eval(
            "const q = document.getElementById('search'); q.value = 'deploy-2';"
            " q.dispatchEvent(new Event('input')); true"
        )
        page.wait(
            "document.querySelectorAll('#runs-body tr[data-run]').length === 1",
            "the filtered list",
        )
        first_row = "document.querySelector('#runs-body tr[data-run] a').textContent"
        assert page.eval(first_row) == "deploy-2"
        page.eval(
            "const r = document.getElementById('search'); r.value = '';"
            " r.dispatchEvent(new Event('input')); true"
        )
        page.wait(
            "[...document.querySelectorAll('#runs-body a.run-link')]"
            ".some(a => a.textContent === 'deploy-1')",
            "deploy-1 listed",
        )
        page.eval(
            "[...document.querySelectorAll('#runs-body a.run-link')]"
            ".find(a => a.textContent === 'deploy-1').click(); true"
        )
        page.wait("location.hash === '#/run/deploy-1'", "the run page")
        page.wait(
            "document.getElementById('run-status')?.textContent === 'waiting'",
            "the run's status",
        )
        page.wait("document.querySelector('.approval textarea')", "the approval form")
        # The breakpoint reads as text: the hostile title and payload, verbatim.
        assert page.eval("document.querySelector('.bp-title').textContent") == (
            HOSTILE_TITLE
        )
        shown = page.eval("document.querySelector('.bp-payload').textContent")
        assert json.loads(shown) == HOSTILE_PAYLOAD
        page.wait("document.querySelectorAll('#event-log tr').length >= 2", "events")

        page.eval(
            "document.querySelector('.approval textarea').value = "
            + js(js("ship it"))
            + "; document.querySelector('.approval button.approve').click(); true"
        )
        page.wait(
            "document.getElementById('run-status')?.textContent === 'completed'",
            "the run to complete, live",
        )
        result = json.loads(page.eval("document.getElementById('result').textContent"))
        assert result == {
            "answer": {"approved": True, "response": "ship it"},
            "loud": "SHIP IT",
        }
        page.wait(
            "[...document.querySelectorAll('#event-log tr td:nth-child(2)')]"
            ".some(td => td.textContent === 'run_completed')",
            "run_completed in the streamed log",
        )
        # The timeline is the `timeline` command's page, framed and sandboxed.
        assert (
            page.eval(
                "document.querySelector('iframe.timeline').getAttribute('sandbox')"
            )
            == "allow-scripts"
        )

        # The approvals page: the other run, rejected there with a response.
        page.goto(s.url + "/#/approvals")
        page.wait(
            "document.querySelectorAll('#approvals .approval').length === 1",
            "one pending approval",
        )
        assert page.eval("document.querySelector('.bp-title').textContent") == (
            "second <b>one</b>"
        )
        page.eval(
            "document.querySelector('.approval textarea').value = 'not today';"
            " document.querySelector('.approval button.reject').click(); true"
        )
        page.wait(
            "document.getElementById('notice').textContent.startsWith('rejected 0')",
            "the rejection",
        )
        page.wait(
            "document.querySelector('#approvals .muted')?.textContent"
            " === 'nothing waits for a person'",
            "an empty approvals queue",
        )
        done = s.client.get("/api/runs/deploy-2")
        for _ in range(300):
            if done.json()["status"] == "completed":
                break
            page.eval("new Promise(r => setTimeout(() => r(true), 100))")
            done = s.client.get("/api/runs/deploy-2")
        assert done.json()["result"]["answer"] == {
            "approved": False,
            "response": "not today",
        }
        page.goto(s.url + "/#/claims")
        page.wait("document.querySelector('#claims-body td')", "the claims page")

        # Nothing hostile ran or became markup anywhere.
        assert page.eval("window.__pwned === undefined")
        assert (
            page.eval(
                "document.querySelectorAll('main img, main script, main b').length"
            )
            == 0
        )


def test_with_a_token_the_console_asks_for_it_then_works(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    start_run(journal, "approval", "tok-1", {"title": "t"})
    token = "console-token-0123456789abcdef"
    with (
        server(journal, token=token) as s,
        browser(tmp_path / "profile") as page,
    ):
        page.goto(s.url + "/#/runs")
        page.wait(
            "document.getElementById('notice').textContent.includes('needs a token')",
            "the console to say it needs the token",
        )
        page.eval(
            f"document.getElementById('token').value = {js(token)};"
            " document.querySelector('#token-form button').click(); true"
        )
        page.wait(
            "[...document.querySelectorAll('#runs-body a.run-link')]"
            ".some(a => a.textContent === 'tok-1')",
            "the runs list with the token",
        )
        # The framed timeline cannot send a header: it gets the token's cookie.
        assert page.eval("fetch('/api/runs/tok-1/timeline').then(r => r.status)") == 200
        page.goto(s.url + "/#/run/tok-1")
        page.wait(
            "document.getElementById('run-status')?.textContent === 'waiting'",
            "the run's live status with the token",
        )
