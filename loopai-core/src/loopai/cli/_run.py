"""``loopai run INPUT``: execution records through the plugins, one JSON line out per line in."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import IO, TYPE_CHECKING, Any

from loopai.cli._common import NOT_SERVING, host_options, positive_int, worker_count

if TYPE_CHECKING:
    from loopai.cli._run_files import Outcome
    from loopai.cli._run_host import HostRecipe
    from loopai.host import Host
    from loopai.run import Input, Summary

__all__ = ["add_commands"]


_EPILOG = """\
input lines: an ExecutionRecord object, or {"execution": {...}, "expected_output": ...};
blank lines are skipped. Keys are read in snake case and in C#'s spellings (TaskId,
taskId; Status "Error" or 1); keys no field has are ignored, each named once (with the
field it may be a misspelling of). Each record is validated (the task's schemas and the expected
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
opens and closes; none with -q). At the end the run waits up to [delivery] drain_timeout seconds (default
10) for what is due, and says so when that lasts (Ctrl-C ends the wait, the summary still
printed); the summary's delivery table says, per handler, what was delivered,
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

--workers N: N processes, each with its own host; every record of a task goes to the same
worker, in order, so the output, the summary and the events are those of one process. A
worker that dies ends the run early: each line it had not answered gets an error line.

When the configuration does not mention the console-webhook-handler, `loopai run` keeps
stdout for the results: the console handler prints to stderr, and only failed and
timed-out runs and threshold breaches, at most 10 a minute per event type and task (the
count of the others at the end). Configure it (any [plugins.webhook_handlers.
console-webhook-handler] table) to choose for yourself.

exit status: 0 every line processed, 1 some line malformed (or the input ended early),
2 usage or configuration error (or the outbox failed: the message names the file),
3 with --fail-on-undelivered: every line processed but some delivery to the run's handlers
is dead or still pending at the end, 130 interrupted (Ctrl-C: reading stops, the records in flight finish,
the output holds whole lines, emitted events stay in the outbox; or a Ctrl-C ended the wait
for deliveries at the end: what is left stays pending; a second Ctrl-C while records are
processed stops at once, without the summary), 143 stopped by SIGTERM (timeout, systemd,
Kubernetes: as a Ctrl-C, the summary printed with the command that delivers what is left; a
second SIGTERM or Ctrl-C stops at once; sent to the process group, it stops the run as one: the
workers leave it to the run)."""


def add_commands(commands: Any, help_text: str, subcommand: str | None) -> None:
    """Add ``run`` to ``commands`` (an argparse subparsers object); see :func:`loopai.cli._main.build_parser`."""
    run = commands.add_parser(
        "run",
        parents=[host_options()],
        help=help_text,
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
        type=positive_int,
        default=1,
        help="records in flight, for async plugins (default 1: the sync path)",
    )
    run.add_argument(
        "--workers",
        metavar="N",
        type=worker_count,
        default=1,
        help="processes to run on (default 1; auto: one per CPU available; more than that is warned about, "
        "each starts a host of its own); each task's records go to one worker, and the output is the same as with one",
    )
    run.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    run.add_argument("--fail-fast", action="store_true", help="stop at the first malformed line")
    run.add_argument("--dry-run-events", action="store_true", help="handlers get events in dry-run mode")
    run.add_argument(
        "--fail-on-undelivered",
        action="store_true",
        help="exit with status 3 when any delivery to the run's handlers is dead or still pending at the end "
        "(default: 0, reported)",
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


def _fail(problems: list[str]) -> int:
    for problem in problems:
        print(problem, file=sys.stderr)
    return 2


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from loopai._errors import ConfigError
    from loopai.cli._common import every_problem, plugin_output_to_stderr, results_apart, sigterm_as_ctrl_c
    from loopai.cli._run_files import Outcome, check_paths, discard_if_empty, kept_files, outbox_for
    from loopai.cli._run_host import HostRecipe
    from loopai.config import by_uuid, load_config, load_tasks_overridden
    from loopai.run import Input

    try:
        config = load_config(args.config, unused=NOT_SERVING)
    except ConfigError:
        return _fail(every_problem(args.config))
    outbox = outbox_for(args.output, config)
    new_outbox = outbox if isinstance(outbox, Path) and not outbox.exists() else None
    try:
        check_paths(args.input, args.output, kept_files(args.tasks, config, outbox, dry_run=args.dry_run_events))
        # The LOOPAI_TASKS__<ID>__<KEY> variables are over a --tasks file as over the configuration's [tasks].
        tasks = load_tasks_overridden(args.tasks, os.environ) if args.tasks else by_uuid(config.tasks)
        source = Input(args.input)
    except ConfigError as exc:
        return _fail(exc.problems)
    recipe = HostRecipe(config, tasks, args, outbox)
    # From here on (plugins are imported, built, started, called and stopped), what they print goes
    # to stderr, print() and what they write to fd 1 itself (os.write, the processes they start, native
    # code): fd 1 is stderr's until the end; the results and the --json summary are written to
    # outcome.stdout, a copy of the standard output taken first.
    # SIGTERM: a Ctrl-C, but exit 143.
    with results_apart() as stdout, plugin_output_to_stderr(), sigterm_as_ctrl_c() as terminated:
        outcome = Outcome(args.output, stdout)
        try:
            status = _run_with(recipe, source, outcome, args)
        except KeyboardInterrupt as interrupt:  # a second one: stopped at once, without the summary
            if not terminated.received:
                raise
            from loopai._crash import interrupted_line

            said = interrupted_line(interrupt.__traceback__).replace("interrupted", "interrupted by SIGTERM", 1)
            print(said, file=sys.stderr)
            return 143
    if new_outbox is not None and status == 2:
        discard_if_empty(new_outbox)
    return 143 if terminated.received and status == 130 else status


def _run_with(recipe: HostRecipe, source: Input, outcome: Outcome, args: argparse.Namespace) -> int:
    """Run ``source``, write the results, close the files and report: the exit status."""
    from loopai._errors import ConfigError, OutboxError, StartupError
    from loopai.cli._common import delivery_notices
    from loopai.cli._output import is_quiet
    from loopai.cli._run_files import finishing_commands, unwritable, written_so_far
    from loopai.run import InputError

    try:
        try:
            with delivery_notices("loopai run", quiet=is_quiet(args)):
                summary = _process(recipe, source, outcome, args)
        except (ConfigError, StartupError) as exc:  # ConfigError: also the state database (loopai.database)
            if not hasattr(exc, "summary"):  # before any record: nothing was done
                return _fail(exc.problems)
            # The state database failed part-way (away past [state] unavailable_timeout): what was
            # done is summed up, and the message said once.
            outcome.broken, summary = exc, exc.summary
            summary.stopped_by = "; ".join(exc.problems)
            print(f"loopai run: {summary.stopped_by}", file=sys.stderr)
        except InputError as exc:
            summary = exc.summary  # type: ignore[attr-defined]
            summary.stopped_by = str(exc)
            print(exc, file=sys.stderr)
        except OutboxError as exc:
            if not hasattr(exc, "summary"):  # before any record: the outbox could not be opened
                return _fail([str(exc)])
            outcome.broken, summary = exc, exc.summary
            summary.stopped_by = str(exc)
            print(f"loopai run: {exc}", file=sys.stderr)
        except BrokenPipeError:
            raise  # the reader went away (| head): not a failure
        except OSError as exc:  # the output could not be written: a full disk, say
            outcome.abandon()
            raise unwritable(args.output, exc) from None
        summary.output = outcome.path
        if args.dry_run_events:  # handlers were called in dry-run mode, inline: nothing was sent, nothing kept
            summary.outbox, summary.deliveries, summary.dry_run = None, [], True
        summary.deliver_command, summary.replay_command = finishing_commands(args, summary, recipe.config.source)
    finally:
        source.close()
        outcome.close()
    if outcome.broken is not None and (written := written_so_far(outcome.path, summary.lines)):
        summary.stopped_by = "; ".join(filter(None, [summary.stopped_by, written]))
    return _report(summary, outcome, args)


def _process(recipe: HostRecipe, source: Input, outcome: Outcome, args: argparse.Namespace) -> Summary:
    """Run ``source`` in this process, or on ``--workers`` processes; the summary. An InputError,
    OutboxError or DatabaseError raised part-way carries the summary of what was done (``exc.summary``)."""
    from loopai._errors import LoopaiError, OutboxError, StartupError
    from loopai.cli._output import is_quiet
    from loopai.cli._run_host import pending_now, say_setup
    from loopai.database import DatabaseError
    from loopai.run import (
        InputError,
        Runner,
        RunOptions,
        StallWatch,
        WorkerFailed,
        close_after_delivering,
        refuse_unrunnable,
        run_in_workers,
    )

    progress = sys.stderr if _is_terminal(sys.stderr) and not is_quiet(args) else None
    batch = RunOptions.batch if source.regular else 1  # from a pipe, no line waits for the next
    options = RunOptions(args.concurrency, args.fail_fast, progress, _warn_one, batch, None if is_quiet(args) else _say)
    if args.workers > 1:
        _warn(_too_many_workers(args.workers))
        try:
            summary, problems = run_in_workers(recipe, args.workers, source, outcome.open, options)
        except WorkerFailed as exc:
            raise StartupError(exc.problems) from None
        if summary.failed is not None:  # a worker's outbox or state database failed: exit 2, as in one process
            outcome.broken = LoopaiError(summary.failed)
        summary.deliveries = pending_now(recipe, summary.deliveries)
        _warn(problems)
        summary.problems = problems + [p for p in summary.problems if p not in problems]
        return summary
    host, problems = recipe()
    _warn(problems)
    say_setup(host, recipe.config)
    known = len(host.problems)
    try:
        with StallWatch.starting_host(host, options.say):  # a startup hook that hangs is named
            host.start()
        # A plugin the configuration names whose startup failed is off: as one that cannot load.
        refuse_unrunnable(host, recipe.config, "loopai run: nothing was processed")
        output = outcome.open()  # once the host runs: a refused run leaves an earlier output alone
    except BaseException as exc:  # not started (a state database down, say): what it says is the message
        said = getattr(exc, "problems", None) or []
        _warn([problem for problem in host.problems[known:] if not any(problem in line for line in said)])
        host.close(drain_timeout=0)
        raise
    runner = Runner(host, {}, output, options)
    summary = runner.summary
    try:
        with host:
            try:
                runner.run(source)
            except KeyboardInterrupt:  # a second Ctrl-C: stop now, what is pending stays in the outbox
                _close_now(host)
                raise
            summary.stopped_waiting = not close_after_delivering(host, options.say)
    except (InputError, OutboxError, DatabaseError) as exc:
        _settle(host, summary, known, failing=True)
        exc.summary = summary  # type: ignore[union-attr]
        raise
    _settle(host, summary, known)
    if host.delivery_failure is not None:
        outcome.broken = host.delivery_failure
        print(f"loopai run: {outcome.broken}", file=sys.stderr)
    return summary


def _close_now(host: Host) -> None:
    """Close ``host`` without waiting for deliveries, nor for a database that is away: what its state
    store could not write is said (the interruption is what the run ends on)."""
    from loopai._errors import OutboxError
    from loopai.database import DatabaseError

    try:
        host.close(drain_timeout=0, wait_for_database=False)
    except (OutboxError, DatabaseError) as exc:
        print(f"loopai run: {exc}", file=sys.stderr)


def _settle(host: Host, summary: Summary, known: int, *, failing: bool = False) -> None:
    """Complete ``summary`` from the closed host. While another error is on its way out
    (``failing``), an outbox that cannot be counted leaves the delivery table out instead of
    hiding that error."""
    from loopai._errors import OutboxError
    from loopai.database import DatabaseError

    _warn(host.problems[known:])  # plugins that failed to start or stop
    summary.problems = list(host.problems)
    summary.plugins = host.plugin_usage()  # handlers were called in the background, until the host drained
    try:
        summary.deliveries = host.delivery_report()
    except (OutboxError, DatabaseError):
        if not failing:
            raise
    # Events were recorded, and what became of their deliveries is not known: said, with the command.
    summary.uncounted = failing and not summary.deliveries and summary.hook_calls["emit"] > 0


def _report(summary: Summary, outcome: Outcome, args: argparse.Namespace) -> int:
    """Print the summary; the exit status."""
    from loopai.cli._output import is_quiet

    if args.json:
        print(json.dumps(summary.to_dict(), indent=2), file=outcome.stdout if outcome.path else sys.stderr)
    elif not is_quiet(args):
        sys.stderr.write(summary.render())
    elif args.fail_on_undelivered:  # quiet, but exit 3 says why
        for note in summary.undelivered_notes():
            print(f"loopai run: {note}", file=sys.stderr)
    if summary.interrupted or summary.stopped_waiting:
        return 130
    if outcome.broken is not None:
        return 2
    if summary.malformed or summary.stopped_by:
        return 1
    return 3 if args.fail_on_undelivered and (summary.pending or summary.dead) else 0


def _too_many_workers(workers: int) -> list[str]:
    """The warning for ``--workers`` above the CPUs this process may use (none when it is not): each
    worker builds a host of its own, so the extra ones make the start slow and never run at once."""
    from loopai.run import available_cpus

    cpus = available_cpus()
    if workers <= cpus:
        return []
    return [
        f"--workers {workers}: more than the {cpus} CPU(s) this process may use; each worker starts a host "
        f"of its own, so the start takes longer and at most {cpus} run at once (--workers auto: one per CPU; "
        "for plugins that wait on the network, --concurrency N instead); going on with "
        f"{workers}"
    ]


def _warn(problems: list[str]) -> None:
    from loopai.cli._output import warn

    for problem in problems:
        warn(problem)


def _warn_one(problem: str) -> None:
    _warn([problem])


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _is_terminal(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty())
