"""The JSON API against a real ``replay-engine serve`` subprocess on a real journal.

Every answer is checked against the shipped OpenAPI schema and, where the
CLI prints the same document, compared with the CLI's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.serve.schema import SPEC, conforms
from tests.serve.servers import cli, events_of, server, wait_for, worker


def test_every_endpoint_answers_with_its_documented_document(journal: Path) -> None:
    with server(journal) as s:
        c = s.client
        rows = conforms(c.get("/api/runs"), "/api/runs")
        assert {r["run_id"] for r in rows} == {"bp1", "ag1", "sg1"}
        assert rows[0]["run_id"] == "sg1"  # newest first, as `runs`
        only = conforms(c.get("/api/runs", params={"q": "AG"}), "/api/runs")
        assert [r["run_id"] for r in only] == ["ag1"]
        waiting = conforms(c.get("/api/runs?status=completed"), "/api/runs")
        assert waiting == []
        status = conforms(c.get("/api/runs/ag1"), "/api/runs/{run_id}")
        # The same document as the CLI's, field for field.
        from_cli = json.loads(cli(journal, "status", "ag1", "--json").stdout)
        assert {k: status[k] for k in from_cli} == from_cli
        page = conforms(
            c.get("/api/runs/ag1/events", params={"from": 1, "limit": 2}),
            "/api/runs/{run_id}/events",
        )
        assert [e["seq"] for e in page["events"]] == [1, 2] and page["next"] == 3
        log = json.loads(cli(journal, "log", "ag1", "--json").stdout)
        assert page["events"] == log[1:3]
        pending = conforms(c.get("/api/runs/ag1/pending"), "/api/runs/{run_id}/pending")
        assert [p["key"] for p in pending["pending"]] == ["0.0.0", "0.1.0", "0.2.0"]
        approvals = conforms(c.get("/api/approvals"), "/api/approvals")
        assert [(a["run_id"], a["key"]) for a in approvals] == [("bp1", "0")]
        assert approvals[0]["args"] == {"title": "deploy?", "payload": {"diff": "+1"}}

        claim = "/api/runs/{run_id}/claim"
        got = conforms(
            c.post("/api/runs/ag1/claim", json={"worker": "w1", "lease": 60}),
            claim,
            "post",
        )
        assert [e["key"] for e in got["claimed"]] == ["0.0.0"]
        claims = conforms(c.get("/api/claims"), "/api/claims")
        assert [(x["key"], x["claimed_by"]) for x in claims] == [("0.0.0", "w1")]
        assert 0 <= claims[0]["heartbeat_age"] < 30 and claims[0]["lease_left"] > 0
        beat = "/api/runs/{run_id}/effects/{key}/heartbeat"
        conforms(
            c.post(
                "/api/runs/ag1/effects/0.0.0/heartbeat",
                json={"worker": "w1", "lease": 30},
            ),
            beat,
            "post",
        )
        effect = "/api/runs/{run_id}/effects/{key}"
        posted = conforms(
            c.post("/api/runs/ag1/effects/0.0.0", json={"result": 7, "by": "w1"}),
            effect,
            "post",
        )
        assert posted == {
            "run_id": "ag1", "key": "0.0.0", "posted": "result", "seq": posted["seq"],
            "by": "w1",
        }  # fmt: skip
        conforms(
            c.post("/api/runs/ag1/effects/0.1.0", json={"error": "no"}), effect, "post"
        )
        answer = conforms(
            c.post("/api/runs/bp1/effects/0", json={"approve": True, "response": "ok"}),
            effect,
            "post",
        )
        assert answer["posted"] == "result"
        sent = conforms(
            c.post("/api/runs/sg1/signals", json={"event": "go", "payload": [1]}),
            "/api/runs/{run_id}/signals",
            "post",
        )
        assert sent["event"] == "go"
        cancelled = conforms(
            c.post("/api/runs/ag1/cancel", json={"reason": "done"}),
            "/api/runs/{run_id}/cancel",
            "post",
        )
        assert cancelled["status"] == "cancelled" and cancelled["abandoned"] == [
            "0.2.0"
        ]
        # What was posted over HTTP is what the journal holds.
        shown = json.loads(cli(journal, "log", "bp1", "--json").stdout)
        assert "completed" in [e["type"] for e in shown]
        assert s.stop() == 0


def test_a_plain_server_submits_nothing(journal: Path) -> None:
    with server(journal) as s:
        refused = s.client.post("/api/runs", json={"process": "serve_flows:approval"})
        doc = conforms(refused, "/api/runs", "post")
        assert refused.status_code == 403 and "never imports" in doc["error"]["message"]
        assert len(conforms(s.client.get("/api/runs"), "/api/runs")) == 3


def test_worker_serve_submits_its_own_processes_and_runs_them(journal: Path) -> None:
    with server(journal, command=("worker", "serve_flows:approval", "--serve")) as s:
        c = s.client
        made = c.post(
            "/api/runs",
            json={"process": "serve_flows:approval", "inputs": {"title": "t"},
                  "run_id": "sub1"},
        )  # fmt: skip
        assert conforms(made, "/api/runs", "post")["status"] == "queued"
        foreign = c.post("/api/runs", json={"process": "serve_flows:agents"})
        assert foreign.status_code == 403
        # The worker in the same process starts it; a post there wakes it.
        wait_for(lambda: c.get("/api/runs/sub1").json()["status"] == "waiting", "start")
        c.post("/api/runs/sub1/effects/0", json={"approve": True, "response": "x"})
        wait_for(
            lambda: c.get("/api/runs/sub1").json()["status"] == "completed", "finish"
        )
        assert c.get("/api/runs/sub1").json()["result"]["loud"] == "X"
        assert s.stop() == 0


def test_the_stream_sends_every_event_then_the_end(journal: Path) -> None:
    with server(journal) as s, worker(journal, "serve_flows:approval"):
        c = s.client
        c.post("/api/runs/bp1/effects/0", json={"approve": True, "response": "go"})
        frames: list[tuple[str, Any]] = []
        with c.stream("GET", "/api/runs/bp1/stream") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            kind, data = "", []
            for line in response.iter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    data.append(line[6:])
                elif not line and data:
                    frames.append((kind, json.loads("\n".join(data))))
                    kind, data = "", []
        assert frames[-1] == ("end", {"run_id": "bp1", "status": "completed"})
        seqs = [doc["seq"] for kind, doc in frames if kind == "event"]
        total = events_of(c, "bp1")
        assert seqs == list(range(total))
        statuses = [doc["status"] for kind, doc in frames if kind == "status"]
        assert statuses[-1] == "completed"
        page = c.get("/api/runs/bp1/timeline")
        assert (
            page.status_code == 200
            and "sandbox" in page.headers["content-security-policy"]
        )
        assert "<svg" in page.text


def test_the_schema_documents_every_route_and_only_those() -> None:
    from replay_engine._serve.app import build_app
    from replay_engine._serve.entry import ServeConfig

    app = build_app(ServeConfig(journal="unused"))
    served = {
        (route.path, method.lower())
        for route in app.routes
        for method in getattr(route, "methods", None) or ()
        if route.path.startswith("/api/") and method != "HEAD"
    }
    documented = {(path, m) for path, item in SPEC["paths"].items() for m in item}
    assert served == documented


def test_a_failed_run_shows_its_error_and_traceback(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    done = cli(
        journal, "run", "serve_flows:fails", "--input", '{"message": "<b>no</b>"}',
        "--run-id", "f1",
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    with server(journal) as s:
        doc = conforms(s.client.get("/api/runs/f1"), "/api/runs/{run_id}")
        assert doc["status"] == "failed"
        assert doc["error"]["type"] == "ValueError"
        assert doc["error"]["message"] == "<b>no</b>"
        assert "serve_flows.py" in doc["error"]["traceback"]
        assert "raise ValueError" in doc["error"]["traceback"]


def test_serve_from_python_in_a_thread_stops_when_asked(journal: Path) -> None:
    import threading

    import httpx

    import replay_engine

    ready: list[str] = []
    stop = threading.Event()
    thread = threading.Thread(
        target=replay_engine.serve,
        args=(str(journal),),
        kwargs={"port": 0, "on_ready": ready.append, "stop": stop},
    )
    thread.start()
    try:
        wait_for(lambda: ready, "the server to listen")
        with httpx.Client(base_url=ready[0], timeout=30) as c:
            rows = conforms(c.get("/api/runs"), "/api/runs")
        assert len(rows) == 3
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()


def test_the_console_puts_no_text_into_the_page_as_html() -> None:
    from importlib import resources

    static = resources.files("replay_engine._serve").joinpath("static")
    script = static.joinpath("console.js").read_text(encoding="utf-8")
    code = "\n".join(line.split("//")[0] for line in script.splitlines())
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
        assert sink not in code, sink
    page = static.joinpath("index.html").read_text(encoding="utf-8")
    assert "http" not in page  # nothing from another origin (no CDN)
