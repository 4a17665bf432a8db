"""The service's Prometheus metrics: what the host did, what the outbox holds, and the HTTP requests.

Series (``GET /metrics``, Prometheus text format):

- ``loopai_validations_total{task_id,result}`` (``valid``/``invalid``) and
  ``loopai_sampling_decisions_total{task_id,sampled}`` (``true``/``false``), per execution judged;
- ``loopai_plugin_calls_total{plugin,kind,outcome}`` (``ok``/``failed``, from the host's meter) and
  ``loopai_plugin_call_seconds{plugin}``, a histogram of every plugin call's duration;
- ``loopai_webhook_deliveries_total{handler,status}``: ``recorded`` for each delivery an emit put in
  the outbox, then ``delivered``, ``retried`` (a failed attempt, retried later) and ``dead`` as the
  host's delivery workers report them (without an outbox: ``delivered``/``failed`` per inline emit);
- ``loopai_outbox_pending``: deliveries the outbox holds as pending, read when scraped (left out when
  the outbox does not answer in time);
- ``loopai_reloads_total{result}`` (``ok``/``failed``): hot reloads (SIGHUP, ``POST /api/v1/admin/reload``);
- ``loopai_http_requests_total{method,route,status}`` and
  ``loopai_http_request_duration_seconds{method,route}`` (``route`` is the path template).

With several worker processes (``--workers N``) every worker writes its values to files in
``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode) and a scrape, whichever worker
answers it, adds them up. The outbox is one file shared by the workers, so its gauge is read once,
at the scrape. A ``task_id`` label is the task's id for tasks of the tasks table and for the first
100 other tasks a process sees, then ``other``: a client cannot grow the series without bound.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Final
from uuid import UUID

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from loopai._report import EmitReport, SamplingReport, ValidationReport
from loopai.delivery import HandlerDeliveries
from loopai.host import Host, Meter, PluginUsage

__all__ = ["HttpMetrics", "Telemetry"]

_BUCKETS: Final = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_OTHER_TASKS_LABELLED: Final = 100


class Telemetry:
    """The metrics of one service (one registry each: nothing global, two apps never mix)."""

    def __init__(self, *, multiprocess: bool | None = None) -> None:
        self.multiprocess = "PROMETHEUS_MULTIPROC_DIR" in os.environ if multiprocess is None else multiprocess
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self._validations = Counter(
            "loopai_validations_total",
            "Executions validated, by task and verdict",
            ["task_id", "result"],
            registry=registry,
        )
        self._sampling = Counter(
            "loopai_sampling_decisions_total", "Sampling decisions, by task", ["task_id", "sampled"], registry=registry
        )
        self._plugin_calls = Counter(
            "loopai_plugin_calls_total", "Plugin calls, by outcome", ["plugin", "kind", "outcome"], registry=registry
        )
        self._plugin_seconds = Histogram(
            "loopai_plugin_call_seconds", "Duration of plugin calls", ["plugin"], buckets=_BUCKETS, registry=registry
        )
        self._deliveries = Counter(
            "loopai_webhook_deliveries_total",
            "Webhook deliveries, by handler and outcome",
            ["handler", "status"],
            registry=registry,
        )
        self._reloads = Counter(
            "loopai_reloads_total",
            "Hot reloads of the plugins, by result (ok or failed)",
            ["result"],
            registry=registry,
        )
        self._requests = Counter(
            "loopai_http_requests_total", "HTTP requests answered", ["method", "route", "status"], registry=registry
        )
        self._request_seconds = Histogram(
            "loopai_http_request_duration_seconds",
            "Time to answer HTTP requests (streams: until the end)",
            ["method", "route"],
            buckets=_BUCKETS,
            registry=registry,
        )
        self._labelled_tasks: set[str] = set()
        self._other_tasks = 0
        self._children: dict[tuple[Any, ...], Any] = {}  # labelled series, looked up once each
        self._per_task: dict[UUID, tuple[Any, Any, Any, Any]] = {}
        self._plugin_observers: dict[str, Callable[[float], None]] = {}
        self._usage: dict[tuple[str, str], tuple[int, int]] = {}
        self._usage_lock = threading.Lock()
        self._delivery_counts: dict[str, tuple[int, ...]] = {}

    # -- what the host did ------------------------------------------------------------------

    def meter(self) -> Meter:
        """A meter for the host: it counts calls and failures, and times every call into the histogram."""
        return Meter(observe=self._plugin_call)

    def _plugin_call(self, kind: str, name: str, seconds: float) -> None:
        observe = self._plugin_observers.get(name)
        if observe is None:
            observe = self._plugin_observers.setdefault(name, self._plugin_seconds.labels(name).observe)
        observe(seconds)

    def reloaded(self, ok: bool) -> None:
        """Count one hot reload and whether it took."""
        self._child(self._reloads, "ok" if ok else "failed").inc()

    def sync_host(self, host: Host) -> None:
        """Bring the counters the host keeps (its meter, its delivery workers) up to date."""
        self.sync_plugin_usage(host.plugin_usage())
        self.sync_deliveries(host.delivery_report())

    def sync_deliveries(self, rows: Sequence[HandlerDeliveries]) -> None:
        """Add what the delivery workers did since the last sync to ``loopai_webhook_deliveries_total``."""
        with self._usage_lock:
            for row in rows:
                seen = self._delivery_counts.get(row.handler, (0, 0, 0))
                now = (row.delivered, row.retried, row.dead)
                for status, before, after in zip(("delivered", "retried", "dead"), seen, now, strict=True):
                    if after > before:
                        self._child(self._deliveries, row.handler, status).inc(after - before)
                self._delivery_counts[row.handler] = tuple(max(a, b) for a, b in zip(seen, now, strict=True))

    def sync_plugin_usage(self, usage: Sequence[PluginUsage]) -> None:
        """Add what the host's meter counted since the last sync to ``loopai_plugin_calls_total``."""
        with self._usage_lock:
            for entry in usage:
                key = (entry.kind, entry.name)
                calls, failures = self._usage.get(key, (0, 0))
                ok = (entry.calls - entry.failures) - (calls - failures)
                failed = entry.failures - failures
                if ok < 0 or failed < 0:
                    continue  # a failure counted before its call: settled at the next sync
                if ok:
                    self._child(self._plugin_calls, entry.name, entry.kind, "ok").inc(ok)
                if failed:
                    self._child(self._plugin_calls, entry.name, entry.kind, "failed").inc(failed)
                self._usage[key] = (entry.calls, entry.failures)

    def label_tasks(self, tasks: Iterable[UUID]) -> None:
        """Give each of ``tasks`` (the tasks table) its own ``task_id`` label, beyond the cap on others."""
        self._labelled_tasks.update(str(task) for task in tasks)

    def validated(self, task_id: UUID, report: ValidationReport) -> None:
        """Count one validation."""
        self._child(self._validations, self._task_label(task_id), "valid" if report.is_valid else "invalid").inc()

    def sampled(self, task_id: UUID, report: SamplingReport) -> None:
        """Count one sampling decision."""
        self._child(self._sampling, self._task_label(task_id), "true" if report.should_sample else "false").inc()

    def judged(self, task_id: UUID, *, valid: int, invalid: int, sampled: int, not_sampled: int) -> None:
        """Count a task's validations and sampling decisions, told in bulk (a batch's, as it goes)."""
        counters = self._per_task.get(task_id)
        if counters is None:
            label = self._task_label(task_id)
            counters = self._per_task[task_id] = (
                self._child(self._validations, label, "invalid"),
                self._child(self._validations, label, "valid"),
                self._child(self._sampling, label, "false"),
                self._child(self._sampling, label, "true"),
            )
        for counter, count in zip(counters, (invalid, valid, not_sampled, sampled), strict=True):
            if count:
                counter.inc(count)

    def emitted(self, reports: Sequence[EmitReport]) -> None:
        """Count the deliveries ``reports`` name."""
        for report in reports:
            for handler in report.delivered:
                self._child(self._deliveries, handler, "delivered").inc()
            for handler in report.pending:
                self._child(self._deliveries, handler, "recorded").inc()
            for failure in report.failures:
                self._child(self._deliveries, failure.plugin, "failed").inc()

    def _task_label(self, task_id: UUID) -> str:
        text = str(task_id)
        if text in self._labelled_tasks:
            return text
        if self._other_tasks < _OTHER_TASKS_LABELLED:
            self._other_tasks += 1
            self._labelled_tasks.add(text)
            return text
        return "other"

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children.setdefault(key, metric.labels(*labels))
        return child

    # -- HTTP ---------------------------------------------------------------------------------

    def answered(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one HTTP request."""
        self._child(self._requests, method, route, str(status)).inc()
        self._child(self._request_seconds, method, route).observe(seconds)

    # -- exposition ---------------------------------------------------------------------------

    def render(self, outbox_pending: int | None = None) -> bytes:
        """The Prometheus text of every series (of every worker, in multiprocess mode), with
        ``outbox_pending`` as ``loopai_outbox_pending`` (None: left out). Reads files in
        multiprocess mode: call it off the event loop."""
        if self.multiprocess:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        else:
            registry = self.registry
        if outbox_pending is None:
            return generate_latest(registry)
        scrape = CollectorRegistry()
        scrape.register(_Registered(registry))
        scrape.register(_OutboxGauge(outbox_pending))
        return generate_latest(scrape)


class _Registered(Collector):
    """Another registry's metrics, collected again (to add a scrape-time gauge beside them)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Any]:
        return iter(self._registry.collect())


class _OutboxGauge(Collector):
    def __init__(self, pending: int) -> None:
        self._pending = pending

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("loopai_outbox_pending", "Deliveries the outbox holds as pending", value=self._pending)


class HttpMetrics:
    """ASGI middleware: counts and times every HTTP request by method, route template and status."""

    def __init__(self, app: Any, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def noting_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noting_status)
        finally:
            # Routing wrote the matched route into the scope; its template keeps the label set small.
            route = getattr(scope.get("route"), "path", None)
            if route is None:  # a plain route (/openapi.json, /docs) has its fixed path; no route at all: unmatched
                route = scope["path"] if scope.get("endpoint") is not None else "unmatched"
            self.telemetry.answered(scope["method"], route, status, time.perf_counter() - started)
