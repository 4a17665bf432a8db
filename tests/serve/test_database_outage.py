"""A real ``loopai serve`` with its state and outbox in a real PostgreSQL that goes away mid-test, and a
real receiver: delivery stops and resumes by itself, the event loop never waits for the database,
readiness and answers tell the truth, and SIGTERM stops within ``[serve] shutdown_timeout``."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.serve, pytest.mark.postgres]
# The other Pythons run without the [postgres] extra: these tests are deselected there, not collected.
pytest.importorskip("psycopg")

SHUTDOWN = 5
"""``[serve] shutdown_timeout`` of these services."""


class Receiver:
    """An HTTP endpoint in a thread that answers 200 and keeps the event id of every delivery."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                with owner._lock:
                    owner.ids.append(self.headers.get("webhook-id", ""))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def got(self, event_id: str) -> bool:
        with self._lock:
            return event_id in self.ids

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()


@pytest.fixture
def database(postgres_server, postgres_url) -> Iterator[str]:
    """A fresh, upgraded database; the server is started again after the test, whatever it did."""
    from loopai.database import Database, upgrade

    schema = Database(postgres_url)
    with schema.connect() as conn:
        upgrade(conn, schema.url.shown)
    yield postgres_url
    if not (postgres_server.data / "postmaster.pid").exists():  # a test that failed while it was away
        postgres_server.start()


def serve(launcher, kit, receiver: Receiver, url: str, *, unavailable_timeout: float = 2) -> Any:
    """A service with its state and outbox in ``url``, delivering to ``receiver`` (and no recorder)."""
    handler = f'[plugins.webhook_handlers.http-webhook-handler.configuration]\nurl = "{receiver.url}"\n'
    config = kit.standard_config({"shutdown_timeout": SHUTDOWN}, handler, recorder=False)
    env = {
        "LOOPAI_STATE_URL": url,
        "LOOPAI_OUTBOX": url,  # the state's database: one outbox for every replica
        "LOOPAI_STATE__UNAVAILABLE_TIMEOUT": str(unavailable_timeout),
        "LOOPAI_DELIVERY__POLL_INTERVAL": "0.2",
    }
    return launcher(config=config, env=env)


def ready(server) -> tuple[int, dict[str, str]]:
    """Readiness: the status and the checks (``details.checks`` of a 503)."""
    answer = httpx.get(server.url + "/api/v1/health/ready", timeout=10)
    body = answer.json()
    return answer.status_code, body["checks"] if answer.status_code == 200 else body["details"]["checks"]


def emit(server, **options: Any) -> httpx.Response:
    event = {"event_id": str(uuid.uuid4()), "event_type": "task.created", "payload": {"n": 1}}
    return httpx.post(server.url + "/api/v1/events", json=event, timeout=60, **options)


def health_took(server) -> float:
    started = time.monotonic()
    assert httpx.get(server.url + "/health", timeout=10).status_code == 200
    return time.monotonic() - started


def test_delivery_stops_with_the_database_says_so_and_resumes_when_it_is_back(
    launcher, kit, receiver, database, postgres_server
):
    server = serve(launcher, kit, receiver, database)
    before = emit(server)
    assert before.status_code == 202, before.text
    assert kit.eventually(lambda: receiver.got(before.json()["event_id"]))
    assert ready(server) == (200, {"plugins": "ok", "outbox": "ok", "state": "ok", "delivery": "ok"})

    postgres_server.stop()
    try:
        # The event loop never waits for the database: /health answers at once, every time.
        slowest, deadline = 0.0, time.monotonic() + 3
        while time.monotonic() < deadline:
            slowest = max(slowest, health_took(server))
            time.sleep(0.05)
        assert slowest < 0.5, slowest

        def stopped() -> bool:
            status, checks = ready(server)
            return status == 503 and checks["delivery"].startswith("stopped: ")

        assert kit.eventually(stopped, timeout=20), ready(server)
        checks = ready(server)[1]
        shown = postgres_server.url(password=False).rsplit("/", 1)[0].replace("loopai@", "loopai:***@")
        assert checks["plugins"] == "ok"
        assert checks["state"].startswith(f"failed: state database {shown}/"), checks
        assert "has been unreachable for 2 s ([state] unavailable_timeout)" in checks["state"], checks
        assert checks["outbox"].startswith("failed: state database "), checks
        assert checks["delivery"].startswith("stopped: state database "), checks

        # Accepting an event that no one can store is refused as a 503 the client retries, at once.
        started = time.monotonic()
        refused = emit(server)
        assert time.monotonic() - started < 5
        assert refused.status_code == 503, refused.text
        assert refused.json()["code"] == "NOT_READY" and refused.headers["retry-after"]
        batch = {"task_id": kit.TASK, "items": [{"id": "a", "output": {"label": "maybe"}}]}
        batched = httpx.post(server.url + "/api/v1/batch/validate", json=batch, timeout=60)
        assert batched.status_code == 503, batched.text
        run = httpx.post(server.url + "/api/v1/batch/run", json={"items": [{"execution": kit.record()}]}, timeout=60)
        assert run.status_code == 200, run.text  # an answer of results: the item's says what to do
        assert " does not answer: send the request again in a moment" in run.json()["results"][0]["error"]

        # A scrape answers with what the service has: no outbox gauge, no 500.
        started = time.monotonic()
        scraped = httpx.get(server.url + "/metrics", timeout=10)
        assert scraped.status_code == 200 and time.monotonic() - started < 4
        assert "loopai_http_requests_total" in scraped.text and "loopai_outbox_pending" not in scraped.text
    finally:
        if not (postgres_server.data / "postmaster.pid").exists():
            postgres_server.start()

    assert kit.eventually(lambda: ready(server)[0] == 200, timeout=20), ready(server)
    # The copy of the counts into the metrics, every second, outlived the outage (before: it died on it).
    assert kit.eventually(lambda: "delivery counts cannot be read: it answers again" in server.log), server.log
    after = emit(server)
    assert after.status_code == 202, after.text
    assert kit.eventually(lambda: receiver.got(after.json()["event_id"]), timeout=20)  # before: never delivered
    assert "loopai_outbox_pending 0.0" in httpx.get(server.url + "/metrics").text

    assert server.stop() == 0
    log = server.log
    assert log.count("delivery stopped: state database ") == 1, log
    assert log.count("delivery resumed: the outbox answers again") == 1, log
    assert log.count("metrics: the host's delivery counts cannot be read: state database ") == 1, log
    assert "POST /api/v1/events answered 503: " in log
    assert "Traceback" not in log and "Exception in ASGI application" not in log, log
    assert postgres_server.password not in log
    assert "stopped; no delivery is left pending in the outbox" in log


@pytest.mark.parametrize("case", ["known-away", "just-gone", "idle"])
def test_sigterm_while_the_database_is_away_stops_in_time_and_says_what_was_not_done(
    launcher, kit, receiver, database, postgres_server, case
):
    """known-away: readiness found the database failing; just-gone: the default [state]
    unavailable_timeout (30 s), far longer than the shutdown timeout, has not passed; idle: nothing
    was counted during the outage, but delivery had stopped on it."""
    server = serve(launcher, kit, receiver, database, unavailable_timeout=30 if case == "just-gone" else 2)
    record = {"execution": kit.record()}
    assert httpx.post(server.url + "/api/v1/sample", json=record).status_code == 200
    time.sleep(0.3)  # the count is written
    postgres_server.stop()
    try:
        for _ in range(0 if case == "idle" else 3):  # counted in the process: the flusher cannot write them
            assert httpx.post(server.url + "/api/v1/sample", json=record, timeout=10).status_code == 200
        if case == "just-gone":
            time.sleep(0.5)
        else:
            assert kit.eventually(lambda: ready(server)[1]["delivery"].startswith("stopped: "), timeout=20)
        signalled = time.monotonic()
        status = server.stop(timeout=60)
        took = time.monotonic() - signalled
    finally:
        if not (postgres_server.data / "postmaster.pid").exists():
            postgres_server.start()

    log = server.log
    assert took < SHUTDOWN + 1, (took, log)  # before: about 31 s
    assert status == 1, log  # before: 0, after a traceback
    said = [line for line in log.splitlines() if "not stopped cleanly: " in line]
    assert len(said) == 1, log
    if case == "idle":
        assert "not stopped cleanly: the outbox failed (state database postgresql://loopai:***@" in said[0], said
        assert said[0].endswith("the deliveries left pending could not be counted: the next start delivers them, "
                                "or loopai events deliver"), said  # fmt: skip
    else:
        assert "state database postgresql://loopai:***@" in said[0], said
        assert said[0].endswith("3 execution(s) counted by this process were not written"), said
    assert "Traceback" not in log and "Application shutdown failed" not in log, log
    assert postgres_server.password not in log
