"""The application factory: :func:`create_app` assembles the service, its routes, limits and metrics.

There is no global application: ``loopai serve`` calls the factory (each worker process calls
:func:`app_from_environment`), tests and embedding applications call it with what they need.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from fastapi import FastAPI

from loopai._crash import stacks_on_crash
from loopai._errors import LoopaiError, StartupError
from loopai._log import captured_warnings, logger
from loopai._models import WebhookEvent
from loopai._version import core_version
from loopai._wire import BatchRunItem, BatchRunRequest, BatchValidateRequest, SampleRequest, ValidateRequest
from loopai.config import LoopaiConfig, load_config
from loopai.host import Host
from loopai.serve._building import build_host
from loopai.serve._errors import install_error_handlers
from loopai.serve._gate import KeyGate
from loopai.serve._inbound import InboundDelivery
from loopai.serve._limits import BodyLimit
from loopai.serve._metrics import HttpMetrics, Telemetry
from loopai.serve._openapi import install_openapi
from loopai.serve._options import ServeOptions
from loopai.serve._service import Service
from loopai.serve.routes import (
    admin,
    batch_run,
    batch_validate,
    events,
    health,
    metrics,
    plugins,
    sampling,
    validation,
    webhooks,
)

__all__ = ["app_from_environment", "create_app", "settle_heap"]

log = logger("loopai.serve")

_ROUTERS = (validation, sampling, events, batch_run, batch_validate, webhooks, plugins, health, metrics, admin)
"""In this order: FastAPI tries routes one by one, and the per-execution ones are the hot ones."""
_READ_BY_HAND = (
    ValidateRequest,
    SampleRequest,
    WebhookEvent,
    BatchValidateRequest,
    BatchRunRequest,
    BatchRunItem,
    InboundDelivery,
)
"""The request bodies routes read themselves (each route names its own with ``request_body``): every one
must be here, or the document refers to a schema it lacks (tests/serve/test_openapi.py checks)."""
_DESCRIPTION = """\
Loopai's plugin host as an HTTP service: validate and sample execution records, raise events for the
webhook handlers, run batches (as JSON or Server-Sent Events, NDJSON uploads of any size), and relay
upstream Loopai's webhook deliveries. Every /api/v1 route but health needs an API key when the
service has keys (Authorization: Bearer <key> or X-Api-Key); errors are
{"code", "message", "details", "trace_id", "timestamp"}."""


def create_app(
    config: LoopaiConfig | None = None,
    *,
    host: Host | None = None,
    options: ServeOptions | None = None,
    environ: Mapping[str, str] | None = None,
) -> FastAPI:
    """The service for ``config`` as an ASGI application.

    Without ``host``, one is built as ``loopai serve`` builds it (discovery, selection and strict
    mode from ``options``, a durable outbox, metering) and the application owns it: its lifespan
    starts the plugins and, at shutdown, waits for the work in flight and closes the host (which
    drains deliveries). A given ``host`` is started by the lifespan but closed by whoever made it.
    Raises :class:`loopai.ConfigError` or, in strict mode, :class:`loopai.StartupError` when the
    host cannot be built.
    """
    config = config if config is not None else LoopaiConfig()
    options = options if options is not None else ServeOptions()
    environ = os.environ if environ is None else environ
    telemetry = Telemetry()
    owns_host = host is None
    if host is None:
        host = build_host(config, options, meter=telemetry.meter(), environ=environ)
    telemetry.label_tasks(host.tasks.settings)
    service = Service(config, host, telemetry, environ, owns_host=owns_host)
    app = FastAPI(
        title="loopai",
        version=core_version(),
        description=_DESCRIPTION,
        lifespan=_lifespan(service),
        redoc_url=None,
    )
    app.state.service = service
    for module in _ROUTERS:
        app.include_router(module.router())
    install_error_handlers(app)
    install_openapi(app, _READ_BY_HAND)
    app.add_middleware(BodyLimit, limit=service.max_body_bytes, service=service)
    app.add_middleware(KeyGate, service=service)  # before any body is read
    app.add_middleware(HttpMetrics, telemetry=telemetry)  # outermost: refusals are counted too
    return app


def app_from_environment() -> FastAPI:
    """The factory uvicorn calls in each worker process (``--workers N``): the options ``loopai serve``
    put in ``LOOPAI_SERVE_OPTIONS``, the configuration they name. A worker that cannot be built (the
    configuration changed since the main process checked it) logs why and exits with status 1: no
    traceback, and uvicorn keeps the workers that run."""
    options = ServeOptions.from_environ(os.environ)
    try:
        config = load_config(options.config)
        with captured_warnings():  # the plugins' problems: said once, by the parent's check before the workers
            app = create_app(config, options=options)
    except LoopaiError as exc:
        for problem in getattr(exc, "problems", None) or [str(exc)]:
            log.error("worker process %d not started: %s", os.getpid(), problem)
        raise SystemExit(1) from None
    app.state.service.worker_processes = options.listening(config).workers
    settle_heap()  # a worker is a process of its own
    stacks_on_crash()  # a crash in a plugin's native code prints the stack that names it
    return app


def settle_heap() -> None:
    """Collect once, then leave what the process holds after startup (plugins, schemas, the host: some
    hundred thousand objects) out of the garbage collector's full passes, which would otherwise walk
    all of it again and again while requests allocate. For a process of its own (the command's, a
    worker): an embedding application decides for itself."""
    gc.collect()
    gc.freeze()


def _lifespan(service: Service) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await service.start()
        except StartupError as exc:
            for problem in exc.problems:
                log.error("%s", problem)
            raise
        stop_listening = _reload_on_sighup(service)
        stop_noting = _note_exit_signals(service)
        try:
            yield
        finally:
            stop_noting()
            stop_listening()
            await service.stop()

    return lifespan


def _note_exit_signals(service: Service) -> Callable[[], None]:
    """SIGTERM and SIGINT also tell the service that the server is stopping (:meth:`Service.shutting_down`)
    before the server's own handler (uvicorn's: stop accepting, wait for the requests in flight) runs.
    Only where the server handles them (the main thread, a handler of its own); returns how to stop."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    wrapped: dict[int, Any] = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        handler = signal.getsignal(signum)
        if not callable(handler):
            continue  # the default or ignored: nobody waits for requests in flight

        def noting(number: int, frame: Any, handler: Callable[[int, Any], Any] = handler) -> None:
            service.shutting_down()
            handler(number, frame)

        wrapped[signum] = (handler, noting)
        signal.signal(signum, noting)

    def stop_noting() -> None:
        for signum, (handler, noting) in wrapped.items():
            if signal.getsignal(signum) is noting:
                signal.signal(signum, handler)

    return stop_noting


def _reload_on_sighup(service: Service) -> Callable[[], None]:
    """SIGHUP asks the service to reload (where signals can be caught); returns how to stop listening."""
    hangup = getattr(signal, "SIGHUP", None)
    if hangup is None or threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(hangup, service.reload)
    except (NotImplementedError, RuntimeError):
        return lambda: None

    def stop_listening() -> None:
        loop.remove_signal_handler(hangup)

    return stop_listening
