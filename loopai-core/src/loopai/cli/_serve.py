"""``loopai serve``: the plugin host as an HTTP service (the ``serve`` extra)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from loopai.cli._common import host_options, worker_count

__all__ = ["add_commands"]


_EPILOG = """\
The same configuration, discovery, selection and strict mode as every command; the [serve] table
sets what the flags do not (host, port, workers, api_keys, inbound_secret, shutdown_timeout,
max_body_mb, max_batch_items). API keys: [serve] api_keys or LOOPAI_API_KEYS (comma-separated);
callers send Authorization: Bearer <key> or X-Api-Key. Without keys only a loopback address may
be bound, unless --insecure-no-auth, and POST /api/v1/admin/reload is refused (403): SIGHUP reloads.

A plugin the configuration names that cannot run (not installed, fails to import, wrong settings)
is left out and said on stderr, one warning each naming the file, the line and the field; the
service starts without it (GET /api/v1/plugins shows it failed). --strict (or strict = true)
refuses to start instead (exit 2).

SIGTERM or Ctrl-C stops accepting connections, lets requests in flight finish (up to
shutdown_timeout, default 10 s; a batch that cannot finish in time stops taking items and ends
its answer with its summary), then shuts the plugins down and drains deliveries; what is left
stays in the outbox. SIGHUP reloads the configuration and the plugins without a restart
(as POST /api/v1/admin/reload and [host] watch_config do); with --workers N, SIGHUP to the main
process restarts the workers one by one instead.

Endpoints: /health, /metrics, /openapi.json, /docs and /api/v1/... (docs/SERVICE.md).
exit status: 0 stopped, 2 usage, configuration or startup error."""


def add_commands(commands: Any, help_text: str, subcommand: str | None) -> None:
    """Add ``serve`` to ``commands`` (an argparse subparsers object); see :func:`loopai.cli._main.build_parser`."""
    serve = commands.add_parser(
        "serve",
        parents=[host_options()],
        help=help_text,
        description="Serve the plugin host over HTTP (needs: pip install 'loopai-core[serve]').",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--host", metavar="ADDRESS", help="address to listen on (default: [serve] host, 127.0.0.1)")
    serve.add_argument("--port", metavar="N", type=_port, help="port to listen on (default: [serve] port, 8080)")
    serve.add_argument(
        "--workers",
        metavar="N",
        type=worker_count,
        help="worker processes, or auto: one per CPU (default: [serve] workers, 1)",
    )
    serve.add_argument(
        "--tasks", metavar="FILE", help="tasks table, TOML or JSON (default: [tasks] of the configuration)"
    )
    serve.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="allow listening on a non-loopback address without API keys (anyone who reaches it may call it)",
    )
    serve.set_defaults(handler=_serve)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0..65535 (got {value})")
    return value


def _serve(args: argparse.Namespace) -> int:
    from loopai._errors import ConfigError, StartupError
    from loopai.cli._common import config_or_exit, patterns

    try:
        from loopai.serve import ServeOptions, run_service
    except ModuleNotFoundError as missing:
        print(f"loopai serve: {missing}", file=sys.stderr)
        return 2
    # A file refused for its own problems lists the named plugins' too, so that one pass fixes everything
    # (once started, the service would only leave such a plugin out and say so: see build_host).
    config = config_or_exit(args, with_plugins=True, unused=())
    options = ServeOptions(
        config=args.config,
        tasks=args.tasks,
        plugins=_tuple(patterns(args.plugins)),
        disable_plugins=_tuple(patterns(args.disable_plugins)),
        autoload=False if args.no_autoload else None,
        strict=args.strict,
        host=args.host,
        port=args.port,
        workers=args.workers,
        insecure_no_auth=args.insecure_no_auth,
    )
    try:
        return run_service(config, options)
    except (ConfigError, StartupError) as exc:
        for problem in config.with_lines(exc.problems):
            print(problem, file=sys.stderr)
        return 2


def _tuple(values: list[str] | None) -> tuple[str, ...] | None:
    return None if values is None else tuple(values)
