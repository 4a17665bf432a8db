"""Running the service under uvicorn: one process, or N workers sharing the socket; signals and logs.

SIGTERM (or Ctrl-C) stops accepting connections, lets requests in flight finish for up to
``[serve] shutdown_timeout`` seconds, then the lifespan closes the host (deliveries drain; what is
left stays in the outbox) in what is left of it, and at most a few seconds more (see
:mod:`._shutdown`). After a graceful SIGTERM the command exits 0; 1
when the host could not be closed cleanly (said in one line). SIGHUP reloads the
plugins (one process) or restarts the workers once the configuration checks out (see
:mod:`._workers`).
"""

from __future__ import annotations

import contextlib
import copy
import errno
import logging
import logging.config
import math
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Iterator, Mapping
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from loopai._errors import LoopaiError
from loopai._log import NotReported
from loopai.config import LoopaiConfig
from loopai.host import Host
from loopai.serve._app import create_app, settle_heap
from loopai.serve._building import build_host
from loopai.serve._options import OPTIONS_VARIABLE, ServeOptions
from loopai.serve._security import ApiKeys, insecure_binding
from loopai.serve._workers import Supervisor

__all__ = ["run_service"]

_FACTORY = "loopai.serve:app_from_environment"


def run_service(config: LoopaiConfig, options: ServeOptions, *, environ: Mapping[str, str] | None = None) -> int:
    """Serve ``config`` until stopped; the exit status (0 after a graceful stop, 1 when stopping failed:
    a database that stayed away kept what it had to write, or closing the host did not end in time;
    2 when refused).

    Raises :class:`loopai.ConfigError` or :class:`loopai.StartupError` when the host cannot be built
    (strict mode), before anything listens.
    """
    environ = os.environ if environ is None else environ
    logging.config.dictConfig(_log_config())  # before the host is built: its problems are logged
    where = options.listening(config)
    refusal = insecure_binding(where.host, ApiKeys.resolve(config.serve, environ), allowed=options.insecure_no_auth)
    if refusal is None:
        refusal = cannot_listen(where.host, where.port)
    if refusal is not None:
        print(f"loopai serve: {refusal}", file=sys.stderr)
        return 2
    settings: dict[str, Any] = {
        "host": where.host,
        "port": where.port,
        "timeout_graceful_shutdown": math.ceil(config.serve.shutdown_timeout),
        "log_config": _log_config(),
        "server_header": False,
        "lifespan": "on",
    }
    if where.workers == 1:
        app = create_app(config, options=options, environ=environ)
        if not _connected(app.state.service.host):
            return 2
        settle_heap()
        server = uvicorn.Server(uvicorn.Config(app, **settings))
        with _sigterm_is_a_clean_stop():
            server.run()
        if not server.started:
            return 2
        failed = getattr(getattr(server, "lifespan", None), "shutdown_failed", False)
        return 1 if failed or app.state.service.stop_failed is not None else 0
    host = build_host(config, options, environ=environ)  # refuse before starting N workers that would fail
    try:
        if not _connected(host):
            return 2
    finally:
        host.close()
    with _metrics_directory():
        os.environ[OPTIONS_VARIABLE] = options.to_environ()
        workers = uvicorn.Config(_FACTORY, factory=True, workers=where.workers, **settings)
        with contextlib.suppress(KeyboardInterrupt):
            Supervisor(workers, sockets=[workers.bind_socket()]).run()  # what uvicorn.run does, SIGHUP checked
    return 0


def _connected(host: Host) -> bool:
    """Whether ``host`` reaches its state database and outbox server, if it has them; when not, said
    on stderr in one message (which the service's start would bury under a traceback)."""
    try:
        host.connect()
    except LoopaiError as exc:
        host.close(drain_timeout=0)
        for problem in getattr(exc, "problems", None) or [str(exc)]:
            print(f"loopai serve: not started: {problem}", file=sys.stderr)
        return False
    return True


def cannot_listen(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on (in use, a privileged port, not this machine's address),
    or None. Tried with a socket bound as uvicorn binds its own, then closed: said before the plugins
    start, where uvicorn would say it after starting them, in its own words."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except socket.gaierror as exc:
        return f"cannot listen on {where}: {host!r} is not a known host name ({exc.strerror}); use --host ADDRESS"
    except OSError as exc:
        why = {
            errno.EADDRINUSE: "the address is already in use (another loopai serve?): stop what listens there, or "
            "choose another --port",
            errno.EACCES: "permission denied (ports below 1024 need privileges): choose another --port",
            errno.EADDRNOTAVAIL: f"{host} is not an address of this machine: use 127.0.0.1, 0.0.0.0 (every "
            "address) or one of its own with --host",
        }.get(exc.errno or 0, exc.strerror or str(exc))
        return f"cannot listen on {where}: {why}"
    return None


@contextlib.contextmanager
def _sigterm_is_a_clean_stop() -> Iterator[None]:
    """uvicorn raises the signal it stopped for again once it has stopped; for SIGTERM, the normal
    way to stop a service, the command then exits 0 instead of dying by the signal."""
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _metrics_directory() -> Iterator[None]:
    """``PROMETHEUS_MULTIPROC_DIR`` for the workers (prometheus-client's multiprocess mode): the one
    given, else a fresh directory removed at the end. Set before any worker imports the client."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        yield
        return
    made = tempfile.mkdtemp(prefix="loopai-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = made
    try:
        yield
    finally:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        shutil.rmtree(made, ignore_errors=True)


def _log_config() -> dict[str, Any]:
    """uvicorn's logging, with loopai's own messages (plugin problems, failures with their trace ids)
    on the same handler."""
    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["loopai"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    # What a plugin logged while refusing its settings is in the problem that names it: said once.
    config.setdefault("filters", {})["loopai_not_reported"] = {"()": NotReported}
    config["handlers"]["default"].setdefault("filters", []).append("loopai_not_reported")
    # The connection pool's every attempt to reconnect: loopai says a database's outage, and its end, once.
    config["loggers"]["psycopg.pool"] = {"level": "ERROR"}
    return config
