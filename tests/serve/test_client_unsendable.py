"""What JSON cannot carry (NaN, Infinity, objects of other types): the client raises ``INVALID_REQUEST``
naming the field, before anything is sent, in every call that sends a JSON body, sync and async."""

from __future__ import annotations

import asyncio
import datetime
import math
from collections.abc import Callable
from typing import Any

import pytest

import loopai
from loopai.client import AsyncClient, BatchRunItem, Client, LoopaiAPIError, RetryPolicy
from loopai.testing import make_execution

pytestmark = pytest.mark.serve

NAN_SCORE = "execution.output.score is nan: JSON cannot carry NaN or Infinity"


def _calls(kit: Any) -> list[tuple[str, Callable[[Any], Any], str]]:
    """(name, call on a client, the message it raises): each sends a body holding a NaN or an infinity."""
    bad = {**kit.record(), "output": {"score": math.nan}}
    return [
        ("validate, a model", lambda c: c.validate(make_execution(output={"score": math.nan})), NAN_SCORE),
        ("validate, a dict", lambda c: c.validate(bad), NAN_SCORE),
        ("sample", lambda c: c.sample(bad), NAN_SCORE),
        (
            "emit",
            lambda c: c.emit({"event_type": "task.created", "payload": {"scores": [1.0, math.inf]}}),
            "event.payload.scores[1] is inf: JSON cannot carry NaN or Infinity",
        ),
        (
            "batch_validate",
            lambda c: c.batch_validate(kit.TASK, [{"id": "a", "output": {}}, {"id": "b", "output": {"p": -math.inf}}]),
            "items[1].output.p is -inf: JSON cannot carry NaN or Infinity",
        ),
        (
            "batch_run",
            lambda c: c.batch_run([kit.record(), bad]),
            "items[1].execution.output.score is nan: JSON cannot carry NaN or Infinity",
        ),
        (
            "a field of another type",
            lambda c: c.validate({**kit.record(), "output": {"on": datetime.date(2025, 3, 14)}}),
            "execution.output.on is a date: JSON cannot carry it",
        ),
        (
            "an odd key",
            lambda c: c.validate({**kit.record(), "output": {"my score": math.nan}}),
            'execution.output["my score"] is nan',
        ),
    ]


def _check(raised: LoopaiAPIError, message: str) -> None:
    assert raised.code == "INVALID_REQUEST"
    assert raised.status is None  # no answer: nothing was sent
    assert raised.message.startswith(message), raised.message
    assert raised.details is not None and raised.message.startswith(raised.details["field"])


def test_the_host_takes_a_record_the_client_cannot_send() -> None:
    # Why the client must say so itself: the record is a valid one.
    with loopai.Host() as host:
        assert host.validate(make_execution(output={"score": math.nan})).is_valid


def test_the_sync_client_names_the_field_json_cannot_carry(server, kit) -> None:
    with server.client() as client:
        for name, call, message in _calls(kit):
            with pytest.raises(LoopaiAPIError) as raised:
                call(client)
            _check(raised.value, message)
        assert client.validate(kit.record()).is_valid  # the service is there, and took nothing


def test_the_async_client_names_the_field_json_cannot_carry(server, kit) -> None:
    async def run() -> list[tuple[str, LoopaiAPIError | None]]:
        got: list[tuple[str, LoopaiAPIError | None]] = []
        async with AsyncClient(server.url) as client:
            for name, call, _ in _calls(kit):
                try:
                    await call(client)
                except LoopaiAPIError as exc:
                    got.append((name, exc))
                else:
                    got.append((name, None))
            assert (await client.validate(kit.record())).is_valid
        return got

    got = asyncio.run(run())

    for (name, raised), (_, _, message) in zip(got, _calls(kit), strict=True):
        assert raised is not None, name
        _check(raised, message)


def test_nothing_is_sent_and_nothing_retried(kit) -> None:
    # No service on this port: an error raised after sending would be CONNECTION_FAILED.
    url = f"http://127.0.0.1:{kit.free_port()}"
    with Client(url, retry=RetryPolicy(retries=0)) as client:
        for _, call, message in _calls(kit):
            with pytest.raises(LoopaiAPIError) as raised:
                call(client)
            _check(raised.value, message)


SCORED = "3e0f8a51-9c2d-4f6b-8a1e-7d5c4b3a2f10"
"""A task whose output must have a numeric ``score``: NaN is a number there, null is not."""


def test_a_streamed_upload_carries_nan_as_loopai_run_reads_it_never_as_null(launcher, kit) -> None:
    # NDJSON is read line by line as `loopai run` reads its input, which takes NaN and Infinity:
    # the streamed call sends them as they are (never null, which would change the verdict).
    extra = f'[tasks."{SCORED}"]\noutput_schema.required = ["score"]\noutput_schema.properties.score.type = "number"\n'
    server = launcher(config=kit.standard_config(extra=extra, recorder=False))
    nan_output = {"score": math.nan}
    items: list[Any] = [
        make_execution(task_id=SCORED, output=nan_output),  # a model
        {"execution": {**kit.record(SCORED), "output": {"score": math.inf}}},  # a dict
        BatchRunItem(id="as an item", execution=make_execution(task_id=SCORED, output=nan_output)),
        {**kit.record(SCORED), "output": {"score": None}},  # null: not a number
    ]
    with server.client() as client:
        verdicts = [result.validation.is_valid for result in client.stream_batch_run(items)]
    assert verdicts == [True, True, True, False]
