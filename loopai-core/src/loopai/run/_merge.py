"""``loopai run --workers``: the workers' summaries added up into the run's, and what a dead worker took with it.

Each task's records go to one worker, so a worker's task summaries are whole and are taken as they
are; counts, hook times and plugin usage are added; deliveries are added per handler (what the
outbox holds as the worker that closed last saw it). A worker that died sent no summary: the
records it answered (their result lines are in the output) are counted as records of no task,
its malformed lines as malformed, the lines it held as lines without a result, and the summary
says which tasks are missing from its table (:attr:`Summary.missing`), named by the tasks table
when it has their names (:func:`labels`), and how the worker ended (:func:`died`).
"""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Mapping, Sequence
from typing import Any, Final

from loopai.delivery import HandlerDeliveries
from loopai.host import PluginUsage
from loopai.run._process import WorkerHandle
from loopai.run._summary import Summary

__all__ = ["Part", "add_up", "died", "labels", "missing_note"]

_NAMED = 10
"""Tasks of a dead worker named in the summary; the others are counted."""


@dataclasses.dataclass
class Part:
    """One worker's share: its summary (None: it died first), and what the parent saw of it."""

    name: str
    """``worker 2 (pid 1234)``"""
    summary: Summary | None
    death: str | None
    answered: int = 0
    """Result lines it sent back (each written to the output)."""
    errors: int = 0
    """Of those, error lines (its malformed lines)."""
    tasks: Sequence[str] = ()
    """Its tasks' labels (a dead worker's, for the note)."""
    delivered_for_run: bool = False
    """It was the worker that delivers the run's events."""


def add_up(summary: Summary, parts: Sequence[Part], lost: int) -> None:
    """Add the workers' ``parts`` into ``summary`` (``lost``: the lines that got no result)."""
    usage: dict[tuple[str, str], PluginUsage] = {}
    summary.no_result = lost
    for part in parts:
        each = part.summary
        if each is None:
            summary.unsummed += part.answered - part.errors
            summary.malformed += part.errors
            summary.missing.append(missing_note(part))
            if part.delivered_for_run:
                summary.missing.append(
                    f"{part.name} delivered the run's events: the deliveries it made are not counted here, and "
                    "what it had not delivered is pending in the outbox (loopai events list --pending)"
                )
            continue
        summary.tasks.update(each.tasks)
        summary.malformed += each.malformed
        firsts = [first for first in (summary.first_malformed, each.first_malformed) if first is not None]
        summary.first_malformed = min(firsts, default=None)
        summary.stopped_by = summary.stopped_by or each.stopped_by
        summary.stopped_waiting = summary.stopped_waiting or each.stopped_waiting
        summary.tabled = summary.tabled or each.tabled
        for hook in summary.hook_calls:
            summary.hook_calls[hook] += each.hook_calls[hook]
            summary.hook_seconds[hook] += each.hook_seconds[hook]
        for plugin in each.plugins:
            total = usage.setdefault((plugin.kind, plugin.name), PluginUsage(plugin.kind, plugin.name))
            total.calls += plugin.calls
            total.failures += plugin.failures
            total.seconds += plugin.seconds
            total.first_failure = total.first_failure or plugin.first_failure
        summary.problems += [problem for problem in each.problems if problem not in summary.problems]
    summary.plugins = list(usage.values())
    deliveries: dict[str, HandlerDeliveries] = {}
    closed = [part.summary for part in parts if part.summary is not None]
    for each in sorted(closed, key=lambda s: s.finished or 0.0):  # the last to count knows what is pending
        for row in each.deliveries:
            deliveries[row.handler] = _added(deliveries.get(row.handler), row)
    summary.deliveries = list(deliveries.values())


def missing_note(part: Part) -> str:
    """What a dead worker's missing summary leaves out."""
    names = list(part.tasks)
    named = ", ".join(names[:_NAMED]) + (f" and {len(names) - _NAMED:,} more" if len(names) > _NAMED else "")
    tasks = f"the {len(names):,} task(s) it had are missing from the table: {named}" if names else "it had no task"
    return (
        f"{part.name} {part.death}: {tasks}; its {part.answered - part.errors:,} record(s) with a result line "
        "are counted in the records above"
    )


def labels(owned: Sequence[str], names: Mapping[Any, Any]) -> list[str]:
    """The tasks of 32-hex-digit ids ``owned``, by name when ``names`` (the tasks table) has one."""
    by_hex = {
        getattr(task_id, "hex", str(task_id)): getattr(settings, "name", None) for task_id, settings in names.items()
    }
    found = []
    for key in owned:
        name = by_hex.get(key)
        found.append(name or f"{key[:8]}-{key[8:12]}-{key[12:16]}-{key[16:20]}-{key[20:]}")
    return found


def _added(earlier: HandlerDeliveries | None, later: HandlerDeliveries) -> HandlerDeliveries:
    """One handler's deliveries by two workers: what each did, added up; what the outbox holds, as
    the one that closed later saw it (both deliver from the same outbox)."""
    if earlier is None:
        return later
    return dataclasses.replace(
        later,
        delivered=earlier.delivered + later.delivered,
        retried=earlier.retried + later.retried,
        dead=earlier.dead + later.dead,
        last_error=later.last_error or earlier.last_error,
        loaded=earlier.loaded or later.loaded,
    )


def died(worker: WorkerHandle) -> str:
    """How ``worker`` ended, said after its name: ``was killed by SIGKILL``."""
    worker.process.join(timeout=5)
    if worker.fatal is not None:
        return f"stopped: {worker.fatal}"
    code = worker.process.exitcode
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            return f"was killed by signal {-code}"
        crash = name in ("SIGSEGV", "SIGBUS", "SIGILL", "SIGFPE", "SIGABRT")
        return f"was killed by {name}" + (_CRASHED if crash else "")
    return f"ended unexpectedly (exit status {code})"


_CRASHED: Final = (
    " (it crashed, as native code in a plugin can: the stack it printed names the plugin; "
    'isolation = "process" confines such a plugin to worker processes of its own)'
)
