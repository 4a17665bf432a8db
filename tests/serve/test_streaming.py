"""``batch/run`` as Server-Sent Events: parsed by the client and by a plain httpx stream, progress,
NDJSON uploads of any size, and clients that go away."""

from __future__ import annotations

import itertools
import json
import time
import uuid

import httpx
import pytest

from loopai.client import AsyncClient, LoopaiAPIError

pytestmark = pytest.mark.serve


def _sse(response: httpx.Response) -> list[tuple[str, str | None, dict]]:
    """(event, id, data) of every event in a plain httpx stream."""
    events, fields = [], {}
    for line in response.iter_lines():
        if not line:
            if "data" in fields:
                events.append((fields.get("event", "message"), fields.get("id"), json.loads(fields["data"])))
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value
    return events


def test_a_plain_httpx_stream_reads_results_with_ids_then_progress_then_done(server, kit):
    items = [{"id": f"i{n}", "execution": kit.record()} for n in range(5)]
    with httpx.stream(
        "POST",
        server.url + "/api/v1/batch/run",
        json={"items": items},
        headers={"Accept": "text/event-stream"},
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = _sse(response)
    results = [(ident, data["id"]) for kind, ident, data in events if kind == "result"]
    assert results == [(str(n), f"i{n - 1}") for n in range(1, 6)]
    kinds = [kind for kind, _, _ in events]
    assert kinds[0] == "progress" and kinds[-1] == "done" and kinds[-2] == "progress"
    assert events[-2][2] == {"completed": 5, "total": 5, "valid": 5, "failed": 0}
    assert events[-1][2]["completed"] == 5 and events[-1][2]["stopped_by"] is None


def test_progress_comes_at_least_once_a_second_while_a_batch_runs(launcher, kit):
    config = kit.standard_config(extra=f'[plugins.validators.slow]\nfactory = "{kit.MODULE}:Slow"\n')
    server = launcher(config=config, env={"LOOPAI_TEST_DELAY": "0.1"})
    items = [{"execution": kit.record()} for _ in range(25)]  # 2.5 s one at a time
    seen: list[float] = []
    with httpx.stream(
        "POST",
        server.url + "/api/v1/batch/run",
        json={"items": items, "max_concurrency": 1},
        headers={"Accept": "text/event-stream"},
        timeout=30,
    ) as response:
        started = time.monotonic()
        for line in response.iter_lines():
            if line == "event: progress":
                seen.append(time.monotonic() - started)
    gaps = [later - earlier for earlier, later in itertools.pairwise(seen)]
    assert len(seen) >= 4, seen  # the first, one per second of the 2.5 s, the last
    assert max(gaps) < 1.5, seen


@pytest.mark.parametrize("client", ["httpx", "loopai"])
def test_an_ndjson_upload_streams_its_answer_as_soon_as_it_is_sent_not_when_the_batch_ends(launcher, kit, client):
    """HTTP/1.1 clients read the answer once their upload is sent: the upload must end then, not
    when its last items are processed (its progress came all at once, at the end)."""
    config = kit.standard_config(extra=f'[plugins.validators.slow]\nfactory = "{kit.MODULE}:Slow"\n')
    server = launcher(config=config, env={"LOOPAI_TEST_DELAY": "0.1"})
    lines = [json.dumps({"id": str(n), "execution": kit.record()}) for n in range(30)]  # 3 s one at a time
    started = time.monotonic()
    arrived: list[float] = []
    if client == "httpx":
        with httpx.stream(
            "POST",
            server.url + "/api/v1/batch/run?max_concurrency=1",
            content="".join(line + "\n" for line in lines).encode(),
            headers={"Accept": "text/event-stream", "Content-Type": "application/x-ndjson"},
            timeout=30,
        ) as response:
            assert response.status_code == 200
            arrived = [time.monotonic() - started for line in response.iter_lines() if line == "event: result"]
    else:
        from loopai.client import Client

        with Client(server.url, timeout=30) as loopai_client:
            stream = loopai_client.stream_batch_run(iter(lines), max_concurrency=1)
            arrived = [time.monotonic() - started for _ in stream]
    assert len(arrived) == 30
    assert arrived[0] < 1.5, arrived  # the first result, not after the whole batch's 3 s
    assert arrived[-1] - arrived[0] > 2, arrived  # the others as they come


def test_the_client_streams_an_ndjson_upload_of_100000_items(launcher, kit):
    server = launcher(config=kit.standard_config(recorder=False))
    good, bad = json.dumps(kit.record(id="ID")), json.dumps(kit.record(id="ID", output={"label": "?"}))

    def lines():  # made as they are sent: the items never sit in a list
        for n in range(100_000):
            yield (bad if n % 1000 == 0 else good).replace("ID", str(uuid.UUID(int=n + 1)))

    progress = []
    with server.client() as client:
        stream = client.stream_batch_run(lines(), max_concurrency=10, on_progress=progress.append)
        count = invalid = 0
        last = 0
        for result in stream:
            count += 1
            invalid += not result.validation.is_valid
            assert result.line == last + 1
            last = result.line
    assert count == 100_000 and invalid == 100
    assert stream.summary.completed == 100_000 and stream.summary.invalid == 100
    assert progress[-1].total == 100_000 and progress[-1].completed == 100_000


def test_the_async_client_streams_from_an_async_iterable(server, kit):
    import asyncio

    async def run():
        async def items():
            for n in range(300):
                yield {"id": str(n), "execution": kit.record()}

        async with AsyncClient(server.url) as client:
            stream = client.stream_batch_run(items(), max_concurrency=5)
            ids = [result.id async for result in stream]
            return ids, stream.summary

    ids, summary = asyncio.run(run())
    assert ids == [str(n) for n in range(300)]
    assert summary.completed == 300


@pytest.mark.parametrize("body", ["json", "ndjson"])
def test_a_client_that_disconnects_stops_the_batch_and_nothing_emitted_is_lost(launcher, kit, body):
    config = kit.standard_config(extra=f'[plugins.validators.slow]\nfactory = "{kit.MODULE}:Slow"\n')
    server = launcher(config=config, env={"LOOPAI_TEST_DELAY": "0.05"})
    items = [{"id": str(n), "execution": kit.record()} for n in range(400)]  # 20 s one at a time
    if body == "json":
        sent = {"json": {"items": items, "max_concurrency": 1}, "headers": {"Accept": "text/event-stream"}}
    else:  # the whole upload is sent at once: the service must notice the client going away all the same
        sent = {
            "content": "".join(json.dumps(item) + "\n" for item in items).encode(),
            "headers": {"Accept": "text/event-stream", "Content-Type": "application/x-ndjson"},
            "params": {"max_concurrency": 1},
        }
    with httpx.stream("POST", server.url + "/api/v1/batch/run", timeout=30, **sent) as response:
        for line in response.iter_lines():
            if line == "event: result":
                break  # the first result is enough: go away
    time.sleep(1.5)
    settled = len(server.events())
    time.sleep(1.0)
    events = server.events()
    assert len(events) == settled  # nothing more is processed
    items_seen = {e["payload"]["item"] for e in events}
    assert 0 < len(items_seen) < 100
    for item in items_seen:  # every item started has all its events: completed run, completed validation
        kinds = sorted(e["type"] for e in events if e["payload"]["item"] == item)
        assert kinds == ["program.execution.completed", "validation.completed"], (item, kinds)


def test_a_client_that_disconnects_stops_a_batch_run_one_item_at_a_time(launcher, kit):
    """Plain validators and samplers, no handler: items run on the event loop, a list at a time.
    Before Python 3.12 ``asyncio.wait_for`` dropped the cancellation the disconnect brings, and
    the batch went on to its last item for nobody."""
    server = launcher(config=kit.standard_config(recorder=False))
    body = "".join(json.dumps(kit.record()) + "\n" for _ in range(60_000)).encode()
    headers = {"Accept": "text/event-stream", "Content-Type": "application/x-ndjson"}
    with httpx.stream("POST", server.url + "/api/v1/batch/run", content=body, headers=headers, timeout=30) as answer:
        for line in answer.iter_lines():
            if line == "event: result":
                break  # the first result is enough: go away

    def judged() -> float:
        text = httpx.get(server.url + "/metrics").text
        return sum(
            float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("loopai_validations_total{")
        )

    time.sleep(1.0)
    settled = judged()
    time.sleep(1.0)
    assert judged() == settled < 60_000  # it stopped, well before the end


def test_an_upload_that_breaks_off_stops_the_batch(launcher, kit):
    server = launcher()

    def items():
        for n in range(2000):
            yield {"id": str(n), "execution": kit.record()}
        raise RuntimeError("the producer broke")  # before the last chunk went: the server never gets it

    with server.client() as client, pytest.raises((RuntimeError, LoopaiAPIError)):
        list(client.stream_batch_run(items()))
    assert kit.eventually(lambda: len(server.events()) > 0, timeout=5)
    settled = -1
    while settled != len(server.events()):
        settled = len(server.events())
        time.sleep(0.5)
    events = server.events()
    processed = {e["payload"]["item"] for e in events}
    assert 0 < len(processed) < 2000
    assert processed == set(range(1, len(processed) + 1))  # in order, from the first, none skipped
    assert len(events) == 2 * len(processed)  # each item's two events delivered
    with server.client() as client:
        assert client.ready().status == "ready"  # and the service carries on


def test_the_clients_json_batch_run_takes_what_the_stream_takes(server, kit):
    """Records as dicts, models and JSON lines go inside ``{"execution": ...}``; items as they are."""
    import asyncio

    from loopai import ExecutionRecord

    records = [kit.record() for _ in range(4)]
    items = [
        records[0],  # a record's dict
        ExecutionRecord.model_validate(records[1]),
        json.dumps(records[2]) + "\n",  # a line of a loopai run input file
        "\n",  # a blank line: skipped, as loopai run skips it
        {"id": "mine", "execution": records[3]},  # an item
    ]
    with server.client() as client:
        answer = client.batch_run(items)
        with pytest.raises(LoopaiAPIError, match=r"^INVALID_REQUEST: item 2 is not JSON: "):
            client.batch_run([records[0], "{not json"])  # said before anything is sent
        with pytest.raises(LoopaiAPIError) as bad_event:
            client.emit({"event_type": "task.creatd"})
        assert bad_event.value.code == "INVALID_REQUEST" and bad_event.value.status is None
        assert bad_event.value.message.startswith("the event is not one: event_type: ")
        assert "did you mean 'task.created'" in bad_event.value.message

    async def run():
        async with AsyncClient(server.url) as client:
            return await client.batch_run(items)

    for body in (answer, asyncio.run(run())):
        assert [result.id for result in body.results] == [*(r["id"] for r in records[:3]), "mine"]
        assert all(result.validation.is_valid for result in body.results)
        assert body.summary.completed == 4


def test_a_slow_producers_items_reach_the_service_as_they_come(launcher, kit):
    """The client gathered 64 KB before sending: the service got nothing of a slow producer until its end."""
    server = launcher()  # the recorder takes each item's events: they say what the service has processed
    reached: list[bool] = []

    def items():
        yield {"id": "first", "execution": kit.record()}
        for _ in range(3):
            time.sleep(0.2)
            yield {"execution": kit.record()}
        reached.append(kit.eventually(lambda: len(server.events()) > 0, timeout=5))
        yield {"id": "last", "execution": kit.record()}

    with server.client() as client:
        results = list(client.stream_batch_run(items(), max_concurrency=1))
    assert reached == [True]  # the first item was processed while the producer was still producing
    assert [r.id for r in results][::4] == ["first", "last"]


def test_a_stream_cut_in_the_middle_says_how_many_results_came(launcher, kit):
    server = launcher(config=kit.standard_config(recorder=False))
    got = 0
    with server.client() as client, pytest.raises(LoopaiAPIError) as cut:
        for _ in client.stream_batch_run(kit.record() for _ in range(200_000)):
            got += 1
            if got == 100:
                server.process.kill()  # the service goes away mid-stream
    assert cut.value.code == "STREAM_INTERRUPTED"  # was CONNECTION_FAILED: "no answer from ..."
    assert f"cut after {got:,} result(s)" in str(cut.value)
