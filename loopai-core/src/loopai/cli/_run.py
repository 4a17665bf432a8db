"""``loopai run INPUT``: execution records through the plugins, one JSON line out per line in."""

from __future__ import annotations

import argparse
import json
import sys
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from uuid import UUID

    from loopai.config import LoopaiConfig, TaskSettings
    from loopai.host import Host
    from loopai.run import Input, Summary

__all__ = ["add_command"]

HELP = "validate, sample and raise events for execution records (JSON Lines)"
"""What ``loopai --help`` says of the command."""

CONSOLE = "console-webhook-handler"

_EPILOG = """\
input lines: an ExecutionRecord object, or {"execution": {...}, "expected_output": ...};
blank lines are skipped. Keys are read in snake case and in C#'s spellings (TaskId,
taskId; Status "Error" or 1); keys no field has are ignored, with one warning per run.
Each record is validated (the task's schemas and the expected output), offered to the
samplers (the task's sampling_rate), and raises events: program.execution.completed /
failed / timeout, validation.completed / failed, and accuracy.threshold.breached /
latency.threshold.breached when the task's rolling accuracy (share of valid records over
its last `window` records, default 50) falls below accuracy_threshold, or its rolling
p95 latency_ms over the same window rises above latency_threshold_ms: once per crossing,
again only after it has recovered. Events go through the durable outbox to every enabled
handler that takes them; a type that no handler takes is listed in the output but not
emitted.

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

--workers N: N processes, each with its own host; every record of a task goes to the same
worker, in order, so the output, the summary and the events are those of one process. A
worker that dies ends the run early: each line it had not answered gets an error line.

When the configuration does not mention the console-webhook-handler, `loopai run` keeps
stdout for the results: the console handler prints to stderr, and only failed and
timed-out runs and threshold breaches. Configure it (any [plugins.webhook_handlers.
console-webhook-handler] table) to choose for yourself.

exit status: 0 every line processed, 1 some line malformed (or the input ended early),
2 usage or configuration error, 130 interrupted (Ctrl-C: the records in flight finish,
the output holds whole lines, emitted events stay in the outbox)."""


def add_command(commands: Any, parent: argparse.ArgumentParser) -> None:
    """Add ``run`` to ``commands`` (an argparse subparsers object)."""
    run = commands.add_parser(
        "run",
        parents=[parent],
        help=HELP,
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
    run.add_argument(
        "--workers",
        metavar="N",
        type=_workers,
        default=1,
        help="processes to run on (default 1; auto: one per CPU available); each task's records go to one "
        "worker, and the output is the same as with one",
    )
    run.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    run.add_argument("--fail-fast", action="store_true", help="stop at the first malformed line")
    run.add_argument("--dry-run-events", action="store_true", help="handlers get events in dry-run mode")
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


def _workers(text: str) -> int:
    if text.strip().lower() == "auto":
        from loopai.run import available_cpus

        return available_cpus()
    return _positive_int(text)


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


class _HostRecipe:
    """How ``loopai run`` builds its host, from the configuration and the flags: picklable, so that
    each ``--workers`` process builds its own from the same (already read) configuration. (A plain
    class: a dataclass would compile its methods when ``loopai --help`` imports this module.)"""

    def __init__(
        self,
        config: LoopaiConfig,
        tasks: dict[UUID, TaskSettings],
        plugins: str | None = None,
        disable_plugins: str | None = None,
        no_autoload: bool = False,
        strict: bool | None = None,
        dry_run_events: bool = False,
        seed: int | None = None,
    ) -> None:
        self.config = config
        self.tasks = tasks
        self.plugins = plugins
        self.disable_plugins = disable_plugins
        self.no_autoload = no_autoload
        self.strict = strict
        self.dry_run_events = dry_run_events
        self.seed = seed

    def __call__(self) -> tuple[Host, list[str]]:
        """The host, not started, and the problems met loading its plugins. Raises
        :class:`loopai.ConfigError` or :class:`loopai.StartupError` (exit 2)."""
        from loopai._errors import ConfigError
        from loopai.cli._common import selection_of
        from loopai.host import Host

        flags = argparse.Namespace(
            plugins=self.plugins, disable_plugins=self.disable_plugins, no_autoload=self.no_autoload
        )
        host = Host(
            self.config,
            discover=True,
            selection=selection_of(flags, self.config),
            strict=self.strict,
            dry_run=True if self.dry_run_events else None,
            outbox=True,
            meter=True,
            tasks=self.tasks,
        )
        problems = list(host.problems)
        _console_defaults(host, self.config)
        if self.seed is not None and (problem := _seed_samplers(host, self.seed)):
            host.close()  # not started: releases the outbox
            raise ConfigError([problem])
        return host, problems


def _run(args: argparse.Namespace) -> int:
    from loopai._errors import ConfigError, StartupError
    from loopai.config import by_uuid, load_config, load_tasks
    from loopai.run import Input, InputError

    try:
        config = load_config(args.config)
        tasks = load_tasks(args.tasks) if args.tasks else by_uuid(config.tasks)
        source = Input(args.input)
    except ConfigError as exc:
        return _fail(exc.problems)
    recipe = _HostRecipe(
        config, tasks, args.plugins, args.disable_plugins, args.no_autoload, args.strict, args.dry_run_events, args.seed
    )
    output: IO[str] = sys.stdout
    try:
        if args.output and args.output != "-":
            try:
                output = open(args.output, "w", encoding="utf-8", newline="\n")  # noqa: SIM115 - closed below
            except OSError as exc:
                return _fail([f"{args.output}: cannot be written: {exc.strerror or exc}"])
        try:
            summary = _process(recipe, args.workers, source, output, args)
        except (ConfigError, StartupError) as exc:
            return _fail(exc.problems)
        except InputError as exc:
            summary = exc.summary  # type: ignore[attr-defined]
            summary.stopped_by = str(exc)
            print(exc, file=sys.stderr)
        summary.output = None if output is sys.stdout else args.output
    finally:
        source.close()
        if output is not sys.stdout:
            output.close()
    if args.json:
        where = sys.stdout if output is not sys.stdout else sys.stderr
        print(json.dumps(summary.to_dict(), indent=2), file=where)
    else:
        sys.stderr.write(summary.render())
    if summary.interrupted:
        return 130
    return 1 if summary.malformed or summary.stopped_by else 0


def _process(recipe: _HostRecipe, workers: int, source: Input, output: IO[str], args: argparse.Namespace) -> Summary:
    """Run ``source`` in this process, or on ``workers`` processes; the summary. An InputError
    raised part-way carries the summary of what was read (``exc.summary``)."""
    from loopai._errors import StartupError
    from loopai.run import InputError, Runner, RunOptions, WorkerFailed, run_in_workers

    progress = sys.stderr if _is_terminal(sys.stderr) else None
    options = RunOptions(args.concurrency, args.fail_fast, progress, _warn_one)
    if workers > 1:
        try:
            summary, problems = run_in_workers(recipe, workers, source, output, options)
        except WorkerFailed as exc:
            raise StartupError(exc.problems) from None
        _warn(problems)
        summary.problems = problems + [p for p in summary.problems if p not in problems]
        return summary
    host, problems = recipe()
    _warn(problems)
    known = len(host.problems)
    runner = Runner(host, {}, output, options)
    try:
        with host:
            runner.run(source)
    except InputError as exc:
        exc.summary = runner.summary  # type: ignore[attr-defined]
        raise
    finally:
        _warn(host.problems[known:])  # plugins that failed to start or stop
        runner.summary.problems = list(host.problems)
    return runner.summary


def _warn(problems: list[str]) -> None:
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)


def _warn_one(problem: str) -> None:
    _warn([problem])


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
