"""``loopai events deliver [--follow] [--max-seconds S]``: deliver what the outbox holds as pending.

Once (the default): what is due now and the retries it schedules, then a line per handler and an
exit status that says whether anything is left. With ``--follow``: a long-running worker, a sidecar
for services that only emit (the workers look at the outbox every ``[delivery] poll_interval``
seconds for what other processes record), until SIGTERM, Ctrl-C or ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from loopai.cli._outboxes import OUTBOX_HELP, existing_outbox, outbox_failures, outbox_path

__all__ = ["add_command"]

_EPILOG = """\
Deliveries go out as `loopai run` and every host with an outbox deliver them: up to
[delivery] max_in_flight per handler at once, failed attempts retried at their scheduled
time (backoff, or the receiver's Retry-After), dead after [dispatch] max_retries, a handler's
circuit opened after [delivery] circuit_failures failures in a row. Leases keep two workers
(this command and a running host, say) from delivering one delivery at once; a worker that
was killed loses its leases at once (SQLite, on this machine) or within [delivery] lease
seconds (PostgreSQL: any number of these commands may share one outbox, on any machines).

Once, every pending delivery is tried now, whatever its schedule (after an outage: do not
wait for the backoff), and it waits for them and the retries they schedule (at most
--max-seconds); deliveries behind an open circuit, or to handlers that are not loaded, stay
pending. With --follow it keeps to the schedule and keeps delivering until SIGTERM, Ctrl-C
or --max-seconds, then waits up to [delivery] drain_timeout for what is in flight.

A plugin the configuration names that cannot load stops it before anything is delivered
(as `loopai run` and `loopai serve` do): its deliveries would otherwise wait unsaid.

exit status: 0 nothing left pending or dead by this command, 1 some delivery is still
pending or died, 2 usage, configuration or outbox error (the message names the file and line)."""


def add_command(commands: Any, parent: argparse.ArgumentParser) -> None:
    """Add ``deliver`` to the ``events`` subcommands."""
    deliver = commands.add_parser(
        "deliver",
        parents=[parent],
        help="deliver what the outbox holds as pending, once or as a long-running worker (--follow)",
        description="Deliver what the outbox holds as pending, with the configured webhook handlers.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    deliver.add_argument("--follow", action="store_true", help="keep delivering what is recorded later (a sidecar)")
    deliver.add_argument(
        "--max-seconds", type=_seconds, metavar="S", help="stop after S seconds (once: default, until done)"
    )
    deliver.add_argument("--outbox", metavar="WHERE", help=OUTBOX_HELP)
    deliver.set_defaults(handler=_deliver)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a finite number of seconds above 0")
    return value


def _deliver(args: argparse.Namespace) -> int:
    from loopai._errors import ConfigError, StartupError
    from loopai.cli._common import NOT_SERVING, delivery_notices, selection_of
    from loopai.cli._output import is_quiet
    from loopai.config import load_config
    from loopai.delivery import SqliteOutbox, is_database_url
    from loopai.host import Host
    from loopai.run import refuse_unrunnable

    path = outbox_path(args)
    if args.follow and not is_database_url(path):
        outbox = _created(path, SqliteOutbox)
    else:
        outbox = existing_outbox(path, ", nothing to deliver", args)
    if outbox is None:
        return 0
    with outbox_failures():
        try:
            try:
                config = load_config(args.config, unused=NOT_SERVING)
                # This command is the sidecar that `[delivery] workers = false` counts on: it delivers.
                config.delivery = config.delivery.model_copy(update={"workers": True})
                selection = selection_of(args, config)
                host = Host(config, discover=True, selection=selection, outbox=outbox, strict=args.strict)
                # A handler the file names that cannot load would leave its deliveries pending unsaid.
                refuse_unrunnable(host, config, "loopai events deliver: nothing was delivered")
                if not args.follow:
                    outbox.due_now()  # an operator's "deliver now": not when the backoff would have
                for problem in config.with_lines(host.problems):
                    print(f"warning: {problem}", file=sys.stderr)
                with delivery_notices("loopai events deliver", quiet=is_quiet(args)), host:
                    if args.follow:
                        started = (
                            f"delivering from {outbox.path} (Ctrl-C or SIGTERM to stop); "
                            "SIGHUP reloads the configuration"
                        )
                        _until_stopped(host, args.max_seconds, started)
                    else:
                        host.drain(args.max_seconds)
            except (ConfigError, StartupError) as exc:
                print(exc, file=sys.stderr)
                return 2
            if host.delivery_failure is not None:
                raise host.delivery_failure
            rows = host.delivery_report()
            idle = {row.handler: _why_idle(host, row.handler) for row in rows if row.pending}
        finally:
            outbox.close()
    said = [row for row in rows if _worth_saying(row, config)]
    if not said:
        print(f"{outbox.path}: nothing was pending")
    for row in said:
        print(
            f"{row.handler}: {row.delivered} delivered, {row.retried} retried, {row.dead} dead, "
            f"{row.pending} pending" + (f" (circuit {row.circuit})" if row.circuit != "closed" else "")
        )
        if idle.get(row.handler):
            print(f"{row.handler}: its deliveries stay pending: {idle[row.handler]}", file=sys.stderr)
        if row.quarantined:
            print(
                f"{row.handler}: {row.quarantined} deliver{'y' if row.quarantined == 1 else 'ies'} set aside, their "
                "stored event unreadable: see loopai events list --quarantined",
                file=sys.stderr,
            )
    pending, dead = sum(row.pending for row in rows), sum(row.dead for row in rows)
    if dead:
        print(f"{dead} deliver{'y' if dead == 1 else 'ies'} died: see loopai events list --dead", file=sys.stderr)
    return 1 if pending or dead else 0


def _why_idle(host: Any, name: str) -> str | None:
    """Why webhook handler ``name`` delivers nothing in ``host`` (not installed, left out by the
    selection, off, or idle for want of settings), or None when it is loaded and enabled."""
    from loopai._kinds import WEBHOOK_HANDLER as kind

    for entry in host.registry.entries(kind, enabled_only=False):
        if entry.name == name and entry.plugin.enabled:
            return None
    for record in host.discovered:
        if record.kind == kind.label and record.name == name:
            if not record.selected:
                return f"it is installed but not selected ({record.selected_by}; see --plugins, --disable-plugins)"
            return record.reason or f"it is {record.status}"
    return f"no webhook handler named {name!r} is installed or configured here (see loopai plugins list)"


def _worth_saying(row: Any, config: Any) -> bool:
    """A handler's line is shown when the configuration names it or it had anything to deliver."""
    from loopai._kinds import WEBHOOK_HANDLER

    busy = row.delivered or row.retried or row.dead or row.pending or row.circuit != "closed"
    return bool(busy) or config.plugins.find(WEBHOOK_HANDLER, row.handler) is not None


def _created(path: str, opener: Any) -> Any:
    """The outbox at ``path``, created if missing (a sidecar may start before anything was emitted)."""
    from loopai._errors import ConfigError

    try:
        return opener(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None


def _until_stopped(host: Any, max_seconds: float | None, started: str) -> None:
    """Say ``started``, then wait for SIGTERM, Ctrl-C or ``max_seconds``; the workers deliver meanwhile,
    and SIGHUP reloads the configuration and the handlers (what changed is said on stderr). A failing
    outbox (a database away past ``[state] unavailable_timeout``, a full disk) stops the workers: the
    wait ends then too, and the command exits 2, for its supervisor to restart it. A stop by SIGTERM
    is a clean one, as by Ctrl-C: the exit status says what is left, not the signal."""
    from loopai.cli._common import sigterm_as_ctrl_c

    with sigterm_as_ctrl_c(), _sighup_reloads(host), contextlib.suppress(KeyboardInterrupt):
        print(started, file=sys.stderr, flush=True)  # once SIGTERM is ours: a stop from now on is clean
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        while (deadline is None or time.monotonic() < deadline) and host.delivery_failure is None:
            # In short waits: the kernel may hand a signal to any thread, and Python runs its handler
            # only when the main thread comes back to the interpreter.
            time.sleep(0.2 if deadline is None else min(0.2, max(0.0, deadline - time.monotonic())))


@contextlib.contextmanager
def _sighup_reloads(host: Any) -> Iterator[None]:
    from loopai.host import reload_on_sighup

    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGHUP"):
        yield  # signals are only caught in the main thread, and not everywhere
        return
    with reload_on_sighup(
        host, on_reload=lambda result: print(f"loopai events deliver: {result.summary()}", file=sys.stderr, flush=True)
    ):
        yield
