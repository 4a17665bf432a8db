"""The asyncio client of ``loopai serve``: :class:`loopai.client.Client`'s calls, awaited."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from typing import Any

import httpx
from pydantic import BaseModel, TypeAdapter

from loopai._models import ExecutionRecord, SamplingContext, ValidationContext, WebhookEvent
from loopai._wire import (
    BatchRunProgress,
    BatchRunResponse,
    BatchRunResult,
    BatchRunSummary,
    BatchValidateResponse,
    EventAccepted,
    Health,
    PluginInfo,
    Readiness,
    SamplingReportBody,
    ValidationReportBody,
)
from loopai.client._common import (
    DEFAULT_TIMEOUT,
    Chunks,
    Endpoint,
    EventStream,
    RetryPolicy,
    answer,
    as_json,
    batch_items,
    connection_failed,
    error_of,
    event_of,
    json_request,
    stream_cut,
)

__all__ = ["AsyncBatchRunStream", "AsyncClient"]

_PLUGINS = TypeAdapter(list[PluginInfo])


class AsyncClient:
    """:class:`loopai.client.Client` for asyncio code: the same calls, each a coroutine; ``async with``."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        endpoint = Endpoint.resolve(base_url, api_key, environ)
        self.base_url = endpoint.url
        self.retry = retry if retry is not None else RetryPolicy()
        self._http = httpx.AsyncClient(
            base_url=endpoint.url, headers=endpoint.headers, timeout=timeout, transport=transport
        )

    async def health(self) -> Health:
        """``GET /health``."""
        return answer(await self._send("GET", "/health", idempotent=True), Health)

    async def ready(self) -> Readiness:
        """``GET /api/v1/health/ready`` (not retried; 503 raises ``NOT_READY``)."""
        return answer(await self._send("GET", "/api/v1/health/ready", idempotent=True, retries=0), Readiness)

    async def plugins(self, *, all: bool = False, kind: str | None = None) -> list[PluginInfo]:
        """The plugins the service found."""
        params: dict[str, Any] = {"all": all} if kind is None else {"all": all, "kind": kind}
        response = await self._send("GET", "/api/v1/plugins", idempotent=True, params=params)
        if response.status_code >= 400:
            raise error_of(response)
        return _PLUGINS.validate_json(response.content)

    async def validate(
        self, execution: ExecutionRecord | Mapping[str, Any], context: ValidationContext | None = None
    ) -> ValidationReportBody:
        """Every validator's verdict on ``execution``."""
        body = {"execution": as_json(execution), "context": as_json(context)}
        return answer(
            await self._send("POST", "/api/v1/validate", idempotent=True, **json_request(body)), ValidationReportBody
        )

    async def sample(
        self, execution: ExecutionRecord | Mapping[str, Any], context: SamplingContext | None = None
    ) -> SamplingReportBody:
        """Whether a sampler selects ``execution``."""
        body = {"execution": as_json(execution), "context": as_json(context)}
        return answer(
            await self._send("POST", "/api/v1/sample", idempotent=False, **json_request(body)), SamplingReportBody
        )

    async def emit(self, event: WebhookEvent | Mapping[str, Any]) -> EventAccepted:
        """Hand ``event`` to the handlers; returns once it is durable."""
        event = event_of(event)  # its event_id fixed here, the same for every retry
        response = await self._send("POST", "/api/v1/events", idempotent=True, **json_request(as_json(event), "event"))
        return answer(response, EventAccepted)

    async def batch_validate(
        self, task_id: uuid.UUID | str, items: Iterable[BaseModel | Mapping[str, Any]]
    ) -> BatchValidateResponse:
        """Upstream's batch validation against the task's schemas."""
        body = {"task_id": str(task_id), "items": [as_json(item) for item in items]}
        response = await self._send("POST", "/api/v1/batch/validate", idempotent=False, **json_request(body))
        return answer(response, BatchValidateResponse)

    async def batch_run(
        self, items: Iterable[Any], *, max_concurrency: int = 10, stop_on_first_error: bool = False
    ) -> BatchRunResponse:
        """``items`` through the service's pipeline as one JSON request."""
        body = {
            "items": batch_items(items),
            "max_concurrency": max_concurrency,
            "stop_on_first_error": stop_on_first_error,
        }
        return answer(
            await self._send("POST", "/api/v1/batch/run", idempotent=False, **json_request(body)), BatchRunResponse
        )

    def stream_batch_run(
        self,
        items: Iterable[Any] | AsyncIterable[Any],
        *,
        max_concurrency: int = 10,
        stop_on_first_error: bool = False,
        on_progress: Callable[[BatchRunProgress], None] | None = None,
    ) -> AsyncBatchRunStream:
        """Results as they arrive (``async for``), items sent as NDJSON from any iterable, sync or async."""
        return AsyncBatchRunStream(self, items, max_concurrency, stop_on_first_error, on_progress)

    async def _send(
        self, method: str, path: str, *, idempotent: bool, retries: int | None = None, **options: Any
    ) -> Any:
        budget = self.retry.retries if retries is None else retries
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._http.request(method, path, **options)
            except httpx.TransportError as exc:
                if attempt > budget or not self.retry.retry_on(exc, idempotent):
                    raise connection_failed(exc, self.base_url) from exc
                await asyncio.sleep(self.retry.pause(attempt))
                continue
            if response.status_code == 503 and attempt <= budget:
                await asyncio.sleep(self.retry.pause(attempt, response.headers.get("retry-after")))
                continue
            return response

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()


class AsyncBatchRunStream:
    """:class:`loopai.client.BatchRunStream` for ``async for``."""

    def __init__(
        self,
        client: AsyncClient,
        items: Iterable[Any] | AsyncIterable[Any],
        max_concurrency: int,
        stop_on_first_error: bool,
        on_progress: Callable[[BatchRunProgress], None] | None,
    ) -> None:
        self._client = client
        self._items = items
        self._params = {"max_concurrency": max_concurrency, "stop_on_first_error": stop_on_first_error}
        self._events = EventStream(on_progress)

    @property
    def summary(self) -> BatchRunSummary | None:
        return self._events.summary

    @property
    def progress(self) -> BatchRunProgress | None:
        return self._events.progress

    async def __aiter__(self) -> AsyncIterator[BatchRunResult]:
        http = self._client._http
        headers = {"Content-Type": "application/x-ndjson", "Accept": "text/event-stream"}
        answering = False
        try:
            async with http.stream(
                "POST", "/api/v1/batch/run", params=self._params, headers=headers, content=self._chunks()
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise error_of(response)
                answering = True
                async for data in response.aiter_bytes():
                    for result in self._events.feed(data):
                        yield result
        except httpx.TransportError as exc:
            if answering:
                raise stream_cut(exc, self._client.base_url, self._events) from exc
            raise connection_failed(exc, self._client.base_url) from exc
        self._events.finish()

    async def _chunks(self) -> AsyncIterator[bytes]:
        chunks, iterator = Chunks(), aiter(_each(self._items))
        while True:
            asked = time.monotonic()
            try:
                item = await anext(iterator)
            except StopAsyncIteration:
                break
            chunk = chunks.add(item, time.monotonic() - asked)
            if chunk is not None:
                yield chunk
        rest = chunks.rest()
        if rest is not None:
            yield rest


async def _each(items: Iterable[Any] | AsyncIterable[Any]) -> AsyncIterator[Any]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item
