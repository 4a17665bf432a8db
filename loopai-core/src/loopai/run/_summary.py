"""``loopai run``'s summary: per task and per plugin, as an aligned text table or as JSON."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from loopai._kinds import KINDS
from loopai._models import WebhookEventType
from loopai.delivery import HandlerDeliveries
from loopai.host import Observation, PluginUsage

__all__ = ["Histogram", "KeyWarning", "Summary", "TaskSummary"]


class KeyWarning(str):
    """The warning about one key of the input (its text), with the ``key`` and the ``line`` it is about
    (see ``_notes``): a ``--workers`` worker sends it to the parent, pickled with both."""

    key: str
    line: int


class Histogram:
    """Latencies kept as counts per value rounded to 3 significant digits: quantiles to
    within 0.5 %, in memory that does not grow with the number of records (at most 900 values
    per decade)."""

    __slots__ = ("count", "counts")

    def __init__(self) -> None:
        self.counts: dict[float, int] = {}
        self.count = 0

    def add(self, value: float) -> None:
        """Count one value."""
        key = float(f"{value:.3g}")
        counts = self.counts
        counts[key] = counts.get(key, 0) + 1
        self.count += 1

    def quantile(self, q: float) -> float | None:
        """The nearest-rank ``q`` quantile (0..1), or None when nothing was counted."""
        if not self.count:
            return None
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for value in sorted(self.counts):
            seen += self.counts[value]
            if seen >= rank:
                return value
        return None  # pragma: no cover - unreachable: the counts add up to self.count


class TaskSummary:
    """What happened to one task's records."""

    __slots__ = ("breaches", "configured", "events", "latency", "name", "records", "sampled", "task_id", "valid")

    def __init__(self, task_id: UUID, name: str | None, configured: bool) -> None:
        self.task_id = task_id
        self.name = name
        self.configured = configured
        self.records = 0
        self.valid = 0
        self.sampled = 0
        self.events: dict[WebhookEventType, int] = {}
        self.breaches: dict[str, int] = {}
        self.latency = Histogram()

    @property
    def label(self) -> str:
        """The task's name, else its id."""
        return self.name or str(self.task_id)

    def count(self, latency_ms: float | None, valid: bool, sampled: bool, observation: Observation) -> None:
        """One processed record: its latency, verdict, sampling, thresholds crossed and events raised."""
        self.records += 1
        self.valid += valid
        self.sampled += sampled
        if latency_ms is not None:
            self.latency.add(latency_ms)
        for crossing in observation.crossings:
            self.breaches[crossing.metric] = self.breaches.get(crossing.metric, 0) + 1
        counts = self.events
        for event_type, _ in observation.raised:
            counts[event_type] = counts.get(event_type, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "task_id": str(self.task_id),
            "name": self.name,
            "in_tasks_table": self.configured,
            "records": self.records,
            "valid": self.valid,
            "valid_percent": _percent(self.valid, self.records),
            "sampled": self.sampled,
            "events": sum(self.events.values()),
            "events_by_type": dict(sorted((t.value, n) for t, n in self.events.items())),
            "breaches": dict(sorted(self.breaches.items())),
            "latency_ms": {"p50": self.latency.quantile(0.5), "p95": self.latency.quantile(0.95)},
        }


HOOKS = ("validate", "should_sample", "emit")


class Summary:
    """Counts of one run, filled by the engine as records finish."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.finished: float | None = None
        self.lines = 0
        self.malformed = 0
        self.first_malformed: tuple[int, str] | None = None
        """The first malformed line's number and why it is not a record (``line 3: ...``)."""
        self.interrupted = False
        """A Ctrl-C stopped the reading (the records read were finished)."""
        self.stopped_waiting = False
        """A Ctrl-C ended the wait for deliveries at the end: what was due stays pending."""
        self.stopped_by: str | None = None
        self.tasks: dict[UUID, TaskSummary] = {}
        self.plugins: list[PluginUsage] = []
        """Calls, failures and time per plugin, as a metering host measured them."""
        self.hook_calls = dict.fromkeys(HOOKS, 0)
        self.hook_seconds = dict.fromkeys(HOOKS, 0.0)
        self.outbox: str | None = None
        self.output: str | None = None
        self.problems: list[str] = []
        self.warnings: list[str] = []
        """What the input made worth saying, once each (see :mod:`._notes`): set at the end."""
        self.unknown_keys: dict[str, KeyWarning] = {}
        """Each distinct key no field has (at most ``_notes.MOST_KEPT``): the warning about its first line
        (a ``_notes.KeyWarning``)."""
        self.tabled = False
        """The tasks table was not empty: a record of a task it lacks is worth a word."""
        self.unsummed = 0
        """Records with a result line whose task counts were lost (a ``--workers`` worker died): in no task."""
        self.no_result = 0
        """Lines that got a "no result" error line (a ``--workers`` worker died holding them)."""
        self.missing: list[str] = []
        """What is missing from this summary, and why (a dead worker's tasks)."""
        self.deliveries: list[HandlerDeliveries] = []
        """Per webhook handler, what delivery did (filled once the host has drained)."""
        self.uncounted = False
        """The outbox failed before its deliveries could be counted: some may be pending."""
        self.failed: str | None = None
        """What failed that the run could not go on with (the outbox, the state database), as a
        ``--workers`` worker said it; the command exits 2."""
        self.deliver_command: str | None = None
        """The exact command that delivers what is still pending."""
        self.replay_command: str | None = None
        """The exact command that replays the dead letters."""
        self.dry_run = False
        """Handlers were called in dry-run mode (``--dry-run-events``): nothing was sent or kept."""

    @property
    def pending(self) -> int:
        """Deliveries to this run's webhook handlers still pending in the outbox when the run ended."""
        return sum(row.pending for row in self.deliveries if row.loaded)

    @property
    def pending_elsewhere(self) -> int:
        """Deliveries the outbox holds as pending for handlers this run did not load: earlier runs'
        with other plugins, or other hosts'. Said, with how to deliver them; not this run's to fail on."""
        return sum(row.pending for row in self.deliveries if not row.loaded)

    @property
    def dead(self) -> int:
        """Deliveries that this run gave up on (dead letters)."""
        return sum(row.dead for row in self.deliveries)

    @property
    def records(self) -> int:
        """Lines processed as execution records (with a result line)."""
        return sum(task.records for task in self.tasks.values()) + self.unsummed

    @property
    def seconds(self) -> float:
        """Wall time of the run (so far)."""
        return (self.finished or time.perf_counter()) - self.started

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form of the whole summary."""
        seconds = self.seconds
        records = self.records
        return {
            "lines": self.lines,
            "records": records,
            "malformed": self.malformed,
            "without_result": self.no_result,
            "first_malformed": self.first_malformed[1] if self.first_malformed else None,
            "interrupted": self.interrupted,
            "stopped_waiting": self.stopped_waiting,
            "dry_run": self.dry_run,
            "stopped_by": self.stopped_by,
            "seconds": round(seconds, 6),
            "records_per_second": round(records / seconds, 1) if seconds > 0 else None,
            "tasks": [task.to_dict() for task in self._tasks_in_order()],
            "plugins": [usage.to_dict() for usage in self._plugins_in_order()],
            "hooks": {
                hook: {"calls": self.hook_calls[hook], "seconds": round(self.hook_seconds[hook], 6)} for hook in HOOKS
            },
            "deliveries": [row.to_dict() for row in self.deliveries],
            "undelivered": {"pending": self.pending, "dead": self.dead, "pending_elsewhere": self.pending_elsewhere},
            "deliveries_uncounted": self.uncounted,
            "deliver_command": self.deliver_command
            if self.pending or self.pending_elsewhere or self.uncounted
            else None,
            "replay_command": self.replay_command if self.dead else None,
            "output": self.output,
            "outbox": self.outbox,
            "missing": list(self.missing),
            "problems": list(self.problems),
            "warnings": list(self.warnings),
        }

    def _tasks_in_order(self) -> list[TaskSummary]:
        return sorted(self.tasks.values(), key=lambda t: (not t.configured, t.label))

    def _plugins_in_order(self) -> list[PluginUsage]:
        order = {kind.label: index for index, kind in enumerate(KINDS)}
        return sorted(self.plugins, key=lambda p: (order.get(p.kind, len(order)), p.name))

    def render(self) -> str:
        """The summary as plain aligned text."""
        seconds = self.seconds
        records = self.records
        rate = f"{records / seconds:,.0f} records/s" if seconds > 0 else "-"
        head = f"loopai run: {self.lines:,} line(s), {records:,} record(s), {self.malformed:,} malformed"
        if self.no_result:
            head += f", {self.no_result:,} without a result"
        head += f", {seconds:.2f} s ({rate})"
        if self.interrupted:
            head += " - INTERRUPTED: reading stopped, the records read were finished"
        elif self.stopped_by:
            head += f" - stopped early: {self.stopped_by}"
        if self.stopped_waiting:
            head += " - Ctrl-C ended the wait for deliveries: they stay pending in the outbox"
        blocks = [head]
        if self.missing:
            blocks.append("\n".join(["MISSING FROM THIS SUMMARY:", *(f"  {note}" for note in self.missing)]))
        if self.first_malformed is not None:
            blocks.append(f"FIRST MALFORMED LINE (each has an error line in the results):\n  {self.first_malformed[1]}")
        task_rows = [
            (
                task.label,
                f"{task.records:,}",
                _percent_text(task.valid, task.records),
                f"{task.sampled:,}",
                f"{sum(task.events.values()):,}",
                _ms(task.latency.quantile(0.5)),
                _ms(task.latency.quantile(0.95)),
                ", ".join(f"{metric} x{n}" for metric, n in sorted(task.breaches.items())) or "-",
            )
            for task in self._tasks_in_order()
        ]
        if task_rows:
            header = ("TASK", "RECORDS", "VALID", "SAMPLED", "EVENTS RAISED", "P50 MS", "P95 MS", "BREACHES")
            blocks.append(_table(header, task_rows, right=range(1, 7)))
        plugin_rows = [
            (
                p.name,
                p.kind,
                f"{p.calls:,}",
                f"{p.failures:,}",
                f"{p.seconds:.3f} s",
            )
            for p in self._plugins_in_order()
        ]
        judged = records > 0  # else the plugin and host call tables would be rows of zeros
        if plugin_rows and judged:
            blocks.append(_table(("PLUGIN", "KIND", "CALLS", "FAILURES", "OWN TIME"), plugin_rows, right=range(2, 5)))
        blocks.append(self._first_failures())
        if judged or self.pending or self.dead or self.pending_elsewhere:
            blocks.append(self._delivery_table())
        hook_rows = [
            (f"host.{hook}", f"{self.hook_calls[hook]:,}", f"{self.hook_seconds[hook]:.3f} s") for hook in HOOKS
        ]
        if judged:
            blocks.append(_table(("HOST CALL", "CALLS", "TIME"), hook_rows, right=range(1, 3)))
        notes = []
        if self.plugins and judged:
            notes.append("OWN TIME: time spent inside each plugin; host call times include the host's own work.")
        if self.tasks:
            notes.append(
                "EVENTS RAISED: events the records raised; those of a type some handler takes were emitted, "
                "one delivery per handler (DELIVERED...: each (event, handler) delivery)."
            )
        if self.output:
            notes.append(f"results are in {self.output}")
        if self.dry_run:
            notes.append("dry run: each handler was called with is_dry_run = true; no event was sent or kept")
        if self.outbox:
            listing = "loopai events list" + ("" if "://" in self.outbox else f" --outbox {self.outbox}")
            notes.append(f"events are kept in the outbox {self.outbox} ({listing})")
        notes.extend(self.undelivered_notes())
        blocks.append("\n".join(notes))
        return "\n\n".join(block for block in blocks if block) + "\n"

    def _first_failures(self) -> str:
        """Why each plugin that failed failed, the first time (the table only counts)."""
        lines = [
            f"  {p.first_failure} ({p.failures:,} of {p.calls:,} call{'' if p.calls == 1 else 's'} failed)"
            for p in self._plugins_in_order()
            if p.failures and p.first_failure
        ]
        return "\n".join(["FIRST FAILURE of each plugin that failed:", *lines]) if lines else ""

    def _delivery_table(self) -> str:
        if not self.deliveries:
            return ""
        header = ["HANDLER", "DELIVERED", "RETRIED", "PENDING", "DEAD"]
        quarantined = any(row.quarantined for row in self.deliveries)
        circuits = any(row.circuit != "closed" for row in self.deliveries)
        rows = []
        for row in self.deliveries:
            name = row.handler if row.loaded else f"{row.handler} (not loaded)"
            cells = [name, f"{row.delivered:,}", f"{row.retried:,}", f"{row.pending:,}", f"{row.dead:,}"]
            if quarantined:
                cells.append(f"{row.quarantined:,}")
            if circuits:
                cells.append(row.circuit)
            rows.append(cells)
        header += ["QUARANTINED"] * quarantined + ["CIRCUIT"] * circuits
        table = _table(header, rows, right=range(1, 6 + quarantined))
        failed = [f"  {row.handler}: {row.last_error}" for row in self.deliveries if row.last_error]
        if not failed:
            return table
        return table + "\n\n" + "\n".join(["LAST FAILED ATTEMPT of each handler that failed:", *failed])

    def undelivered_notes(self) -> list[str]:
        """What is still pending and dead, each with the command that finishes the job (none: all delivered)."""
        notes = []
        if self.uncounted and self.deliver_command:
            notes.append(
                "the deliveries could not be counted (the outbox failed): once it is back, deliver what is "
                f"pending with  {self.deliver_command}"
            )
        if self.pending:
            notes.append(
                f"{self.pending:,} deliver{_ies(self.pending)} still pending: deliver with  {self.deliver_command}"
            )
        if self.pending_elsewhere:
            names = [repr(row.handler) for row in self.deliveries if row.pending and not row.loaded]
            count, one = self.pending_elsewhere, self.pending_elsewhere == 1
            notes.append(
                f"{count:,} deliver{'y' if one else 'ies'} to {', '.join(names)} {'is' if one else 'are'} "
                f"pending from before (this run did not load {'it' if len(names) == 1 else 'them'}: recorded by "
                f"earlier runs or other hosts): deliver with  {self.deliver_command}"
            )
        if self.dead:
            notes.append(
                f"{self.dead:,} deliver{_ies(self.dead)} dead (refused, or retries used up): replay with  "
                f"{self.replay_command}"
            )
        return notes


def _ies(count: int) -> str:
    return "y is" if count == 1 else "ies are"


def _percent(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 2) if whole else None


def _percent_text(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "-"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], right: Iterable[int] = ()) -> str:
    """Columns padded to their widest cell; columns in ``right`` aligned right."""
    everything = [tuple(header), *(tuple(row) for row in rows)]
    widths = [max(len(row[i]) for row in everything) for i in range(len(header))]
    aligned = set(right)
    lines = []
    for row in everything:
        cells = [
            cell.rjust(w) if i in aligned else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
