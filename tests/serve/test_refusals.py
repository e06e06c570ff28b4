"""Refusals: bad input, journal refusals, tokens, read-only, CSRF, unsafe starts.

Each refused write is compared with the CLI's own error for the same request
(same type, reason and message), and the journal is checked unchanged.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from replay_engine import Engine
from tests.journal_views import tags
from tests.serve.schema import conforms
from tests.serve.servers import FLOWS, cli, env, events_of, server

TOKEN = "t0ken-for-the-tests-1234567890"


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
