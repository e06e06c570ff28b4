"""The JSON API against a real ``replay-engine serve`` subprocess on a real journal.

Every response is checked against the shipped OpenAPI schema; refused
writes are compared with the CLI's own error for the same request, and the
journal is checked to be unchanged after them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import referencing
import referencing.jsonschema

import journal_format as jf
from replay_engine import Engine
from tests.journal_views import key_of, tags
from tests.serve.servers import (
    FLOWS,
    cli,
    env,
    events_of,
    server,
    start_run,
    wait_for,
    worker,
)

SPEC = json.loads(
    resources.files("replay_engine._serve")
    .joinpath("static", "openapi.json")
    .read_text(encoding="utf-8")
)
_REGISTRY = referencing.Registry().with_resource(
    "urn:openapi",
    referencing.Resource.from_contents(
        SPEC, default_specification=referencing.jsonschema.DRAFT202012
    ),
)
TOKEN = "t0ken-for-the-tests-1234567890"


def conforms(response: httpx.Response, path: str, method: str = "get") -> Any:
    """The response's JSON, validated against the spec's schema for its status."""
    spec = SPEC["paths"][path][method]["responses"]
    assert str(response.status_code) in spec, (
        path,
        response.status_code,
        response.text,
    )
    pointer = (
        "urn:openapi#/paths/"
        + path.replace("~", "~0").replace("/", "~1")
        + f"/{method}/responses/{response.status_code}/content/application~1json/schema"
    )
    doc = response.json()
    jsonschema.Draft202012Validator({"$ref": pointer}, registry=_REGISTRY).validate(doc)
    return doc


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    path = tmp_path / "journal"
    start_run(path, "approval", "bp1", {"title": "deploy?", "payload": {"diff": "+1"}})
    start_run(path, "agents", "ag1", {"n": 3})
    start_run(path, "signalled", "sg1", {})
    return path


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


# -- refusals --------------------------------------------------------------------


def _cli_error(journal: Path, *args: str) -> dict[str, Any]:
    done = cli(journal, *args, "--json")
    assert done.returncode != 0, done.stdout
    return json.loads(done.stdout)["error"]  # type: ignore[no-any-return]


def test_refused_writes_say_what_the_cli_says_and_write_nothing(journal: Path) -> None:
    with server(journal) as s:
        c = s.client
        before = {r: events_of(c, r) for r in ("bp1", "ag1", "sg1")}

        def refused(path: str, body: Any, status: int, **kw: Any) -> dict[str, Any]:
            response = c.post(path, **({"json": body} if body is not None else kw))
            assert response.status_code == status, response.text
            return conforms(response, _template(path), "post")["error"]  # type: ignore[no-any-return]

        bad = refused(
            "/api/runs/ag1/effects/0.0.0", None, 400,
            content=b'{"result": ', headers={"Content-Type": "application/json"},
        )  # fmt: skip
        assert bad["message"].startswith("the body is not valid JSON")
        nan = refused(
            "/api/runs/ag1/effects/0.0.0", None, 400,
            content=b'{"result": NaN}', headers={"Content-Type": "application/json"},
        )  # fmt: skip
        assert "NaN" in nan["message"]
        unknown_field = refused("/api/runs/ag1/effects/0.0.0", {"reslt": 1}, 400)
        assert "unknown field 'reslt'" in unknown_field["message"]
        two = refused("/api/runs/ag1/effects/0.0.0", {"result": 1, "error": "x"}, 400)
        assert "exactly one" in two["message"]
        bad_key = refused("/api/runs/ag1/effects/1.x", {"result": 1}, 400)
        assert bad_key["message"].startswith("key:")
        lease_type = refused("/api/runs/ag1/claim", {"worker": "w", "lease": True}, 400)
        assert "'lease' must be" in lease_type["message"]

        # Refusals decided by the journal: the CLI's message and reason, exactly.
        post = ["post", "--result", "1"]
        cases = [
            ("/api/runs/ag1/effects/9", {"result": 1}, [*post, "ag1", "9"]),
            ("/api/runs/nope/effects/0", {"result": 1}, [*post, "nope", "0"]),
            ("/api/runs/bp1/effects/0", {"result": 1}, [*post, "bp1", "0"]),
            (
                "/api/runs/ag1/claim",
                {"worker": "w", "lease": 1e12},
                ["pending", "ag1", "--claim", "w", "--lease", "1e12"],
            ),
        ]
        for path, body, args in cases:
            response = c.post(path, json=body)
            doc = conforms(response, _template(path), "post")["error"]
            from_cli = _cli_error(journal, *args)
            assert response.status_code in (400, 404, 409), response.text
            if from_cli["type"] != "UsageError":
                assert doc["message"] == from_cli["message"], path
                assert doc.get("reason") == from_cli.get("reason")
                assert doc["type"] == from_cli["type"]

        # An expired lease: the holder's heartbeat is refused, as from the CLI.
        assert c.post(
            "/api/runs/ag1/claim", json={"worker": "w1", "lease": 0.2}
        ).json()["claimed"]
        time.sleep(0.5)
        assert (
            c.post("/api/runs/ag1/claim", json={"worker": "w2", "lease": 60}).json()[
                "claimed"
            ][0]["key"]
            == "0.0.0"
        )
        late = c.post(
            "/api/runs/ag1/effects/0.0.0/heartbeat", json={"worker": "w1", "lease": 5}
        )
        doc = conforms(late, "/api/runs/{run_id}/effects/{key}/heartbeat", "post")
        from_cli = _cli_error(
            journal, "post", "ag1", "0.0.0", "--heartbeat", "--by", "w1", "--lease", "5"
        )
        assert late.status_code == 409
        assert doc["error"]["reason"] == from_cli["reason"] == "not_claimed"
        assert doc["error"]["message"] == from_cli["message"]
        stolen = c.post("/api/runs/ag1/effects/0.0.0", json={"result": 1, "by": "w1"})
        assert (
            stolen.status_code == 409 and stolen.json()["error"]["reason"] == "claimed"
        )

        after = {r: events_of(c, r) for r in ("bp1", "ag1", "sg1")}
        # Only the two claims were written: every refusal wrote nothing.
        assert after == {**before, "ag1": before["ag1"] + 2}
    with Engine(str(journal), read_only=True) as engine:
        assert tags(engine, "ag1")[-2:] == ["claimed", "claimed"]


def _template(path: str) -> str:
    parts = path.split("/")
    if len(parts) >= 4:
        parts[3] = "{run_id}"
    if len(parts) >= 6 and parts[4] == "effects":
        parts[5] = "{key}"
    return "/".join(parts)


def test_a_token_guards_every_api_request(journal: Path) -> None:
    with server(journal, "--host", "0.0.0.0", token=TOKEN) as s:
        url = s.url.replace("0.0.0.0", "127.0.0.1")
        auth = {"Authorization": f"Bearer {TOKEN}"}
        claim = {"worker": "w", "lease": 9}
        with (
            httpx.Client(base_url=url, timeout=30) as anon,
            httpx.Client(base_url=url, headers=auth, timeout=30) as good,
        ):
            before = events_of(good, "ag1")
            missing = anon.post("/api/runs/ag1/claim", json=claim)
            assert missing.status_code == 401
            doc = conforms(missing, "/api/runs/{run_id}/claim", "post")
            assert "Authorization: Bearer" in doc["error"]["message"]
            wrong = anon.post(
                "/api/runs/ag1/claim", json=claim, headers={"Authorization": "Bearer x"}
            )
            assert wrong.status_code == 403
            assert anon.get("/api/runs").status_code == 401
            assert anon.get("/").status_code == 200  # the console shell: no data
            assert events_of(good, "ag1") == before  # nothing was written
            assert good.post("/api/runs/ag1/claim", json=claim).status_code == 200


def test_read_only_refuses_every_write(journal: Path) -> None:
    with server(journal, "--read-only") as s:
        c = s.client
        before = events_of(c, "ag1")
        for path, body in [
            ("/api/runs/ag1/effects/0.0.0", {"result": 1}),
            ("/api/runs/ag1/claim", {"worker": "w", "lease": 9}),
            ("/api/runs/sg1/signals", {"event": "go"}),
            ("/api/runs/ag1/cancel", {}),
        ]:
            response = c.post(path, json=body)
            assert response.status_code == 403, path
            assert response.json()["error"]["type"] == "ReadOnly"
        assert events_of(c, "ag1") == before
        assert len(c.get("/api/runs").json()) == 3


def test_browser_writes_need_the_csrf_token_and_our_origin(journal: Path) -> None:
    with server(journal) as s:
        c = s.client
        body = {"worker": "w", "lease": 9}
        foreign = c.post(
            "/api/runs/ag1/claim", json=body, headers={"Origin": "http://evil.test"}
        )
        assert foreign.status_code == 403
        form = c.post(
            "/api/runs/ag1/claim",
            content=b"worker=w",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert form.status_code == 415
        cookie = c.get("/").cookies["re_csrf"]
        own = {"Origin": s.url, "Cookie": f"re_csrf={cookie}"}
        no_header = c.post("/api/runs/ag1/claim", json=body, headers=own)
        assert no_header.status_code == 403 and "X-CSRF-Token" in no_header.text
        rebound = c.get("/api/runs", headers={"Host": "attacker.test:80"})
        assert rebound.status_code == 421
        ok = c.post(
            "/api/runs/ag1/claim", json=body, headers={**own, "X-CSRF-Token": cookie}
        )
        assert ok.status_code == 200, ok.text


# -- starting ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--host", "0.0.0.0"], "without a token"),
        (["--host", "192.0.2.1", "--token", "short"], "shorter than 16"),
    ],
)
def test_an_unsafe_server_is_refused_at_start(
    journal: Path, args: list[str], says: str
) -> None:
    done = cli(journal, "serve", "--port", "0", *args)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr and "Traceback" not in done.stderr


def test_serving_no_journal_is_a_usage_error(tmp_path: Path) -> None:
    done = cli(tmp_path / "none", "serve", "--port", "0")
    assert done.returncode == 2 and "no journal" in done.stderr


WITHOUT_EXTRA = (
    "import sys; sys.modules['starlette'] = sys.modules['uvicorn'] = None;"
    " from replay_engine._cli import main; main(sys.argv[1:])"
)


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--help"], 0, "serve"),
        (["serve", "--port", "0"], 2, "pip install 'replay-engine[serve]'"),
        (["worker", "serve_flows:approval", "--serve"], 2, "replay-engine[serve]"),
    ],
)
def test_without_the_extra_the_cli_starts_and_serve_names_it(
    journal: Path, args: list[str], code: int, says: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRA, "--journal", str(journal), *args],
        env=env(),
        cwd=FLOWS,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == code, done.stderr
    assert says in done.stdout + done.stderr and "Traceback" not in done.stderr


# -- racing posters --------------------------------------------------------------


def test_forty_posters_over_http_and_the_cli_one_winner_per_key(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    keys = [f"0.{i}.0" for i in range(10)]
    start_run(journal, "agents", "race", {"n": len(keys)})
    outcomes: dict[str, list[tuple[str, int]]] = {k: [] for k in keys}
    lock = threading.Lock()
    with server(journal) as s:

        def over_http(key: str, n: int) -> None:
            with httpx.Client(base_url=s.url, timeout=60) as c:
                r = c.post(f"/api/runs/race/effects/{key}", json={"result": f"http{n}"})
            assert r.status_code in (200, 409), r.text
            if r.status_code == 409:
                assert r.json()["error"]["reason"] == "already_completed"
            with lock:
                outcomes[key].append((f"http{n}", r.status_code))

        def over_cli(key: str, n: int) -> None:
            done = cli(
                journal,
                "post",
                "race",
                key,
                "--result",
                json.dumps(f"cli{n}"),
                "--json",
            )
            assert done.returncode in (0, 1), done.stderr
            if done.returncode == 1:
                assert json.loads(done.stdout)["error"]["reason"] == "already_completed"
            with lock:
                outcomes[key].append((f"cli{n}", 200 if done.returncode == 0 else 409))

        threads = [
            threading.Thread(target=fn, args=(key, n))
            for key in keys
            for n, fn in enumerate([over_http, over_http, over_cli, over_cli])
        ]
        assert len(threads) == 40
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        assert not any(t.is_alive() for t in threads)
        pending = s.client.get("/api/runs/race/pending").json()["pending"]
        assert pending == []
    recorded: dict[str, Any] = {}
    with Engine(str(journal), read_only=True) as engine:
        for stored in engine.events("race"):
            event = stored.event
            if isinstance(event, jf.EffectCompleted):
                key = key_of(event)
                assert key not in recorded, f"two results for {key}"
                recorded[key] = engine.payload(event.result)
    for key in keys:
        winners = [who for who, status in outcomes[key] if status == 200]
        assert len(outcomes[key]) == 4, key
        assert len(winners) == 1, (key, outcomes[key])
        assert recorded[key] == winners[0]


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
