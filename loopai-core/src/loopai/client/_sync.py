"""The blocking client of ``loopai serve``."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

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
    ndjson_chunks,
    stream_cut,
)

__all__ = ["BatchRunStream", "Client"]

_M = TypeVar("_M", bound=BaseModel)
_PLUGINS = TypeAdapter(list[PluginInfo])


class Client:
    """Calls a ``loopai serve`` service.

    ``base_url`` and ``api_key`` default to ``LOOPAI_URL`` and ``LOOPAI_API_KEY`` (else
    ``http://127.0.0.1:8080``, no key). Every failure raises :class:`loopai.client.LoopaiAPIError`
    with the service's ``code``; idempotent calls are retried as :class:`RetryPolicy` says. Use it
    as a context manager, or :meth:`close` it. ``transport`` is httpx's (for tests, proxies).
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        endpoint = Endpoint.resolve(base_url, api_key, environ)
        self.base_url = endpoint.url
        self.retry = retry if retry is not None else RetryPolicy()
        self._http = httpx.Client(base_url=endpoint.url, headers=endpoint.headers, timeout=timeout, transport=transport)

    # -- the calls ---------------------------------------------------------------------------

    def health(self) -> Health:
        """``GET /health``."""
        return answer(self._send("GET", "/health", idempotent=True), Health)

    def ready(self) -> Readiness:
        """``GET /api/v1/health/ready`` (not retried: a probe says what it finds; 503 raises ``NOT_READY``)."""
        return answer(self._send("GET", "/api/v1/health/ready", idempotent=True, retries=0), Readiness)

    def plugins(self, *, all: bool = False, kind: str | None = None) -> list[PluginInfo]:
        """The plugins the service found, as ``loopai plugins list --json`` shows them."""
        params: dict[str, Any] = {"all": all} if kind is None else {"all": all, "kind": kind}
        response = self._send("GET", "/api/v1/plugins", idempotent=True, params=params)
        if response.status_code >= 400:
            raise error_of(response)
        return _PLUGINS.validate_json(response.content)

    def validate(
        self, execution: ExecutionRecord | Mapping[str, Any], context: ValidationContext | None = None
    ) -> ValidationReportBody:
        """Every validator's verdict on ``execution`` (context: the task's, unless given)."""
        body = {"execution": as_json(execution), "context": as_json(context)}
        return answer(
            self._send("POST", "/api/v1/validate", idempotent=True, **json_request(body)), ValidationReportBody
        )

    def sample(
        self, execution: ExecutionRecord | Mapping[str, Any], context: SamplingContext | None = None
    ) -> SamplingReportBody:
        """Whether a sampler selects ``execution`` (counted in its task's statistics: not retried)."""
        body = {"execution": as_json(execution), "context": as_json(context)}
        return answer(self._send("POST", "/api/v1/sample", idempotent=False, **json_request(body)), SamplingReportBody)

    def emit(self, event: WebhookEvent | Mapping[str, Any]) -> EventAccepted:
        """Hand ``event`` to the handlers; returns once it is durable (retried: an event id is delivered once)."""
        event = event_of(event)  # its event_id fixed here, the same for every retry
        return answer(
            self._send("POST", "/api/v1/events", idempotent=True, **json_request(as_json(event), "event")),
            EventAccepted,
        )

    def batch_validate(
        self, task_id: uuid.UUID | str, items: Iterable[BaseModel | Mapping[str, Any]]
    ) -> BatchValidateResponse:
        """Upstream's batch validation: each item (``id``, ``input``, ``output``, ``expected_output``)
        against the task's schemas."""
        body = {"task_id": str(task_id), "items": [as_json(item) for item in items]}
        return answer(
            self._send("POST", "/api/v1/batch/validate", idempotent=False, **json_request(body)), BatchValidateResponse
        )

    def batch_run(
        self,
        items: Iterable[Any],
        *,
        max_concurrency: int = 10,
        stop_on_first_error: bool = False,
    ) -> BatchRunResponse:
        """``items`` through the service's pipeline, as one JSON request (at most the service's
        ``max_batch_items``; :meth:`stream_batch_run` has no limit). An item is what
        :meth:`stream_batch_run` takes: a ``BatchRunItem``, an ``ExecutionRecord``, a dict (a record, or
        an item with ``execution``), or a line of JSON (blank lines are skipped)."""
        body = {
            "items": batch_items(items),
            "max_concurrency": max_concurrency,
            "stop_on_first_error": stop_on_first_error,
        }
        return answer(self._send("POST", "/api/v1/batch/run", idempotent=False, **json_request(body)), BatchRunResponse)

    def stream_batch_run(
        self,
        items: Iterable[Any],
        *,
        max_concurrency: int = 10,
        stop_on_first_error: bool = False,
        on_progress: Callable[[BatchRunProgress], None] | None = None,
    ) -> BatchRunStream:
        """Results as they arrive, for any number of items: they are sent as NDJSON, one at a time
        encoded, so an iterable of any length works. Iterate the returned stream; its ``summary``
        is set once it is exhausted; ``on_progress`` is called with each progress event."""
        return BatchRunStream(self, items, max_concurrency, stop_on_first_error, on_progress)

    # -- sending -------------------------------------------------------------------------------

    def _send(self, method: str, path: str, *, idempotent: bool, retries: int | None = None, **options: Any) -> Any:
        budget = self.retry.retries if retries is None else retries
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http.request(method, path, **options)
            except httpx.TransportError as exc:
                if attempt > budget or not self.retry.retry_on(exc, idempotent):
                    raise connection_failed(exc, self.base_url) from exc
                time.sleep(self.retry.pause(attempt))
                continue
            if response.status_code == 503 and attempt <= budget:
                time.sleep(self.retry.pause(attempt, response.headers.get("retry-after")))
                continue
            return response

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class BatchRunStream:
    """The results of one streamed ``batch/run``, in item order, as they arrive (iterate once).

    ``summary`` is set once the stream is exhausted; ``progress`` holds the last progress.
    Leaving the loop early (``break``) disconnects, which stops the batch on the service (items in
    flight there finish; what they raised is delivered).
    """

    def __init__(
        self,
        client: Client,
        items: Iterable[Any],
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

    def __iter__(self) -> Iterator[BatchRunResult]:
        http = self._client._http
        headers = {"Content-Type": "application/x-ndjson", "Accept": "text/event-stream"}
        answering = False
        try:
            with http.stream(
                "POST", "/api/v1/batch/run", params=self._params, headers=headers, content=ndjson_chunks(self._items)
            ) as response:
                if response.status_code >= 400:
                    raise error_of(response)
                answering = True
                for data in response.iter_bytes():
                    yield from self._events.feed(data)
        except httpx.TransportError as exc:
            if answering:
                raise stream_cut(exc, self._client.base_url, self._events) from exc
            raise connection_failed(exc, self._client.base_url) from exc
        self._events.finish()
