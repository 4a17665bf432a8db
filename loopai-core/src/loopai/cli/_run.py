"""``loopai run INPUT``: execution records through the plugins, one JSON line out per line in."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from typing import IO, Any

__all__ = ["add_command"]

CONSOLE = "console-webhook-handler"

_EPILOG = """\
input lines: an ExecutionRecord object, or {"execution": {...}, "expected_output": ...};
blank lines are skipped. Each record is validated (the task's schemas and the expected
output), offered to the samplers (the task's sampling_rate), and raises events:
program.execution.completed / failed / timeout, validation.completed / failed, and
accuracy.threshold.breached / latency.threshold.breached when the task's rolling accuracy
(share of valid records over its last `window` records, default 50) falls below
accuracy_threshold, or its rolling p95 latency_ms over the same window rises above
latency_threshold_ms: once per crossing, again only after it has recovered. Events go
through the durable outbox to every enabled handler that takes them; a type that no
handler takes is listed in the output but not emitted.

delivery: a result line is written once its events are stored in the outbox; delivery
workers deliver them in the background, each handler with up to [delivery] max_in_flight
at once, retries scheduled in the outbox (never waited for by the records), a handler's
circuit opened after [delivery] circuit_failures failures in a row (one line says when it
opens and closes). At the end the run waits up to [delivery] drain_timeout seconds (default
10) for what is due; the summary's delivery table says, per handler, what was delivered,
retried, is still pending or dead, with the exact `loopai events deliver` / `replay`
command to finish the job. Nothing is lost: what is left stays in the outbox.

tasks (--tasks FILE, TOML or JSON, else [tasks] of the configuration), keyed by task id:
  [tasks."6f1c2a9e-0d4b-4a8e-9b8e-2f0c1d3e4a5b"]
  name = "sentiment"
  output_schema = { type = "object", required = ["label"] }
  sampling_rate = 0.1
  accuracy_threshold = 0.9
  latency_threshold_ms = 250

output: one JSON line per input line, in input order: line, execution_id, task_id,
validation, sampling, events, error (null, or why the line could not be processed).
The summary goes to stderr (--json: as JSON, on stdout when --output names a file).

When the configuration does not mention the console-webhook-handler, `loopai run` keeps
stdout for the results: the console handler prints to stderr, and only failed and
timed-out runs and threshold breaches, at most 10 a minute per event type and task (the
count of the others at the end). Configure it (any [plugins.webhook_handlers.
console-webhook-handler] table) to choose for yourself.

exit status: 0 every line processed, 1 some line malformed (or the input ended early),
2 usage or configuration error (or the outbox failed: the message names the file),
3 with --fail-on-undelivered: every line processed but some delivery is dead or still
pending at the end, 130 interrupted (Ctrl-C: the records in flight finish, the output
holds whole lines, emitted events stay in the outbox)."""


def add_command(commands: Any, parent: argparse.ArgumentParser) -> None:
    """Add ``run`` to ``commands`` (an argparse subparsers object)."""
    run = commands.add_parser(
        "run",
        parents=[parent],
        help="validate, sample and raise events for execution records (JSON Lines)",
        description="Run execution records through the validators, samplers and webhook handlers.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("input", metavar="INPUT", help="JSON Lines file of execution records; - for stdin; gzip accepted")
    run.add_argument(
        "--tasks", metavar="FILE", help="tasks table, TOML or JSON (default: [tasks] of the configuration)"
    )
    run.add_argument("-o", "--output", metavar="FILE", help="write the result lines here (default: stdout)")
    run.add_argument(
        "--concurrency",
        metavar="N",
        type=_positive_int,
        default=1,
        help="records in flight, for async plugins (default 1: the sync path)",
    )
    run.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    run.add_argument("--fail-fast", action="store_true", help="stop at the first malformed line")
    run.add_argument("--dry-run-events", action="store_true", help="handlers get events in dry-run mode")
    run.add_argument(
        "--fail-on-undelivered",
        action="store_true",
        help="exit with status 3 when any delivery is dead or still pending at the end (default: 0, reported)",
    )
    run.add_argument(
        "--seed",
        metavar="N",
        type=_whole_number,
        help="seed the samplers that take one (the percentage-sampler's seed setting): the same input "
        "and seed sample the same records",
    )
    run.set_defaults(handler=_run)


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def _fail(problems: list[str]) -> int:
    for problem in problems:
        print(problem, file=sys.stderr)
    return 2


def _run(args: argparse.Namespace) -> int:
    from loopai._errors import ConfigError, LoopaiError, OutboxError, StartupError
    from loopai.cli._common import configured_failures, delivery_notices, selection_of
    from loopai.cli._output import is_quiet
    from loopai.cli._run_files import abandon, check_paths, close_output, outbox_for, unwritable
    from loopai.config import by_uuid, load_config, load_tasks
    from loopai.host import Host
    from loopai.run import Input, InputError, Runner, RunOptions

    try:
        config = load_config(args.config)
        tasks = load_tasks(args.tasks) if args.tasks else by_uuid(config.tasks)
        check_paths(args.input, args.output)
        source = Input(args.input)
    except ConfigError as exc:
        return _fail(exc.problems)
    output: IO[str] = sys.stdout
    broken: LoopaiError | None = None
    try:
        try:
            host = Host(
                config,
                discover=True,
                selection=selection_of(args, config),
                strict=args.strict,
                dry_run=True if args.dry_run_events else None,
                outbox=outbox_for(args.output, config),
                meter=True,
                tasks=tasks,
            )
        except (ConfigError, StartupError) as exc:
            return _fail(exc.problems)
        failures = configured_failures(host, config)
        if failures:  # the configuration names them: running without them would hide the mistake
            host.close()
            return _fail([*failures, _NOT_RUN.format(source=config.source_label)])
        _warn(host.problems)
        _say_setup(host, config)
        known = len(host.problems)
        _console_defaults(host, config)
        if args.seed is not None and (problem := _seed_samplers(host, args.seed)):
            host.close()  # not started: releases the outbox
            return _fail([problem])
        if args.output and args.output != "-":  # opened last: a refused run leaves earlier results alone
            try:
                output = open(args.output, "w", encoding="utf-8", newline="\n")  # noqa: SIM115 - closed below
            except OSError as exc:
                host.close()
                return _fail([f"{args.output}: cannot be written: {exc.strerror or exc}"])
        progress = sys.stderr if _is_terminal(sys.stderr) and not is_quiet(args) else None
        runner = Runner(host, {}, output, RunOptions(args.concurrency, args.fail_fast, progress))
        runner.summary.output = None if output is sys.stdout else args.output
        try:
            with delivery_notices("loopai run"), host:
                summary = runner.run(source)
        except (StartupError, ConfigError) as exc:  # ConfigError: the state database (loopai.database)
            return _fail(exc.problems)
        except InputError as exc:
            summary = runner.summary
            summary.stopped_by = str(exc)
            print(exc, file=sys.stderr)
        except OutboxError as exc:
            broken, summary = exc, runner.summary
            summary.stopped_by = str(exc)
            print(f"loopai run: {exc}", file=sys.stderr)
        except BrokenPipeError:
            raise  # the reader went away (| head): not a failure
        except OSError as exc:  # the output could not be written: a full disk, say
            if output is not sys.stdout:
                abandon(output)
            raise unwritable(args.output, exc) from None
        _warn(host.problems[known:])  # plugins that failed to start or stop
        if broken is None and host.delivery_failure is not None:
            broken = host.delivery_failure
            print(f"loopai run: {broken}", file=sys.stderr)
        summary.problems = list(host.problems)
        summary.plugins = host.plugin_usage()  # handlers were called in the background, until the host drained
        summary.deliveries = host.delivery_report()
        summary.deliver_command, summary.replay_command = _finishing_commands(args, summary.outbox)
    finally:
        source.close()
        if output is not sys.stdout and not output.closed:
            close_output(output, args.output)
    if args.json:
        where = sys.stdout if output is not sys.stdout else sys.stderr
        print(json.dumps(summary.to_dict(), indent=2), file=where)
    elif not is_quiet(args):
        sys.stderr.write(summary.render())
    if summary.interrupted:
        return 130
    if broken is not None:
        return 2
    if summary.malformed or summary.stopped_by:
        return 1
    return 3 if args.fail_on_undelivered and (summary.pending or summary.dead) else 0


def _finishing_commands(args: argparse.Namespace, outbox: str | None) -> tuple[str | None, str | None]:
    """The exact ``loopai events deliver`` and ``replay --all-dead`` commands for this run's outbox,
    configuration and plugin selection."""
    if outbox is None:
        return None, None
    # A database is named by the configuration (its URL, password included, is never printed here).
    where = [] if "://" in outbox else ["--outbox", os.path.abspath(outbox) if outbox != ":memory:" else outbox]
    if args.config:
        where += ["--config", args.config]
    for flag, value in (("--plugins", args.plugins), ("--disable-plugins", args.disable_plugins)):
        if value:
            where += [flag, value]
    if args.no_autoload:
        where.append("--no-autoload")
    return shlex.join(["loopai", "events", "deliver", *where]), shlex.join(
        ["loopai", "events", "replay", "--all-dead", *where]
    )


_NOT_RUN = (
    "loopai run: nothing was processed: {source} names plugins that cannot run (above); fix them, "
    "or set enabled = false in their tables (loopai config check lists every error)"
)


def _say_setup(host: Any, config: Any) -> None:
    """With ``-v``: the configuration used, the plugins that run (by priority) and where events are kept."""
    from loopai._kinds import KINDS
    from loopai.cli._output import say

    say(f"configuration: {config.source_label}")
    for kind in KINDS:
        running = [f"{e.name} ({e.plugin.priority})" for e in host.registry.entries(kind.base)]
        say(f"{kind.key} (priority): {', '.join(running) or 'none'}")
    say(f"outbox: {host.outbox.path if host.outbox is not None else 'none (events are delivered directly)'}")


def _warn(problems: list[str]) -> None:
    from loopai.cli._output import warn

    for problem in problems:
        warn(problem)


def _is_terminal(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty())


def _seed_samplers(host: Any, seed: int) -> str | None:
    """Set ``seed`` in the settings of every enabled sampler that has one (the built-in
    percentage-sampler), over what the configuration says; the problem when none has."""
    from loopai._errors import PluginSettingsError
    from loopai._plugin import SamplerPlugin

    seeded = []
    for sampler in host.registry.list(SamplerPlugin):
        settings = sampler.config
        if "seed" not in getattr(type(settings), "model_fields", {}):
            continue
        try:
            sampler.configure({**settings.model_dump(), "seed": seed}, where=f"--seed for {sampler.name}")
        except PluginSettingsError as exc:
            return f"loopai run: {exc}"
        seeded.append(sampler.name)
    if not seeded:
        return "loopai run: --seed: no enabled sampler takes a seed (the built-in percentage-sampler does; disabled?)"
    return None


def _console_defaults(host: Any, config: Any) -> None:
    """On built-in defaults the console handler would print a box per event on stdout, among
    the result lines (or the JSON summary): send it to stderr, and keep it to alerts."""
    from loopai._plugin import WebhookHandlerPlugin
    from loopai.run import ALERT_EVENTS

    plugin = host.registry.resolve(WebhookHandlerPlugin, CONSOLE)
    if plugin is None or config.plugins.find("webhook_handlers", CONSOLE) is not None:
        return  # not loaded, or set up on purpose: as configured
    plugin.supported_events = ALERT_EVENTS
    settings = plugin.config
    if "stream" in getattr(type(settings), "model_fields", {}):
        plugin.configure({**settings.model_dump(), "stream": "stderr"})  # also makes the host see the new events
    else:
        plugin.priority = plugin.priority  # the host rebuilds its routes when a plugin changes
