"""``loopai run``'s tasks table: per-task schemas, sampling rate and thresholds, and their rolling windows."""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from loopai._documents import read_document
from loopai._errors import ConfigError, describe_validation_error

__all__ = ["DEFAULT_WINDOW", "Crossing", "Rolling", "TaskId", "TaskSettings", "by_uuid", "load_tasks", "parse_tasks"]

DEFAULT_WINDOW = 50
LATENCY_PERCENTILE = 95


def _canonical_uuid(text: str) -> str:
    try:
        return str(UUID(text))
    except ValueError:
        raise PydanticCustomError("task_id", "a task id must be a UUID") from None


TaskId = Annotated[str, AfterValidator(_canonical_uuid)]
"""A task id as a key of the tasks table: a UUID, kept as its canonical text (TOML and JSON keys are text)."""


class TaskSettings(BaseModel):
    """One task's entry in the tasks table (``[tasks."<task_id>"]``).

    ``accuracy_threshold``: the least share of valid records, over the task's last
    ``window`` records, before ``accuracy.threshold.breached``. ``latency_threshold_ms``:
    the most the p95 latency over the same window may be before
    ``latency.threshold.breached``. Both are judged once the window is full.
    """

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    """A readable name for summaries and event payloads (the task id otherwise)."""
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    sampling_rate: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    """Handed to samplers in the context; 0 lets each sampler use its own setting."""
    accuracy_threshold: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    latency_threshold_ms: Annotated[float, Field(gt=0.0)] | None = None
    window: Annotated[int, Field(ge=1)] = DEFAULT_WINDOW
    """How many of the task's latest records the rolling accuracy and latency cover."""


class _Table(BaseModel):
    tasks: dict[TaskId, TaskSettings]


def parse_tasks(document: Any, label: str) -> dict[UUID, TaskSettings]:
    """Validate a tasks document: ``{task_id: {...}}``, ``{"tasks": {...}}`` or a list of
    objects with a ``task_id``. Raises :class:`loopai.ConfigError` naming ``label`` and the field."""
    if isinstance(document, Mapping) and set(document) == {"tasks"}:
        document = document["tasks"]
    if isinstance(document, list):
        listed: dict[str, Any] = {}
        for index, entry in enumerate(document):
            if not isinstance(entry, Mapping) or "task_id" not in entry:
                raise ConfigError([f"{label}: [{index}]: each task needs a task_id"])
            listed[str(entry["task_id"])] = {k: v for k, v in entry.items() if k != "task_id"}
        document = listed
    if not isinstance(document, Mapping):
        raise ConfigError([f"{label}: the tasks must be a table keyed by task_id, got {type(document).__name__}"])
    try:
        table = _Table.model_validate({"tasks": document}).tasks
    except ValidationError as exc:
        lines = describe_validation_error(exc)
        raise ConfigError([f"{label}: {line.removeprefix('tasks.')}" for line in lines]) from None
    return by_uuid(table)


def by_uuid(table: Mapping[str, TaskSettings]) -> dict[UUID, TaskSettings]:
    """The tasks table keyed by :class:`uuid.UUID`, as execution records carry their task ids."""
    return {UUID(key): settings for key, settings in table.items()}


def load_tasks(path: str | Path) -> dict[UUID, TaskSettings]:
    """Read a tasks file (``.json``, else TOML); errors name the file and the field."""
    label = str(path)
    document = read_document(Path(path), label)
    return parse_tasks(document, label)


class Crossing:
    """A threshold the rolling value has just crossed (it had not been crossed before)."""

    __slots__ = ("in_window", "metric", "threshold", "value")

    def __init__(self, metric: str, value: float, threshold: float, in_window: int) -> None:
        self.metric = metric
        self.value = value
        self.threshold = threshold
        self.in_window = in_window


class Rolling:
    """A task's last ``window`` outcomes and latencies, and whether each threshold is breached.

    Accuracy is the share of valid records in the window; latency is the window's p95
    (nearest rank) of ``latency_ms``, records without one left out. Each is judged once its
    window is full. A breach is reported once, when the value crosses the threshold; it
    is reported again only after the value has come back within the threshold.
    """

    __slots__ = (
        "accuracy_breached",
        "accuracy_threshold",
        "latencies",
        "latency_breached",
        "latency_threshold",
        "outcomes",
        "sorted_latencies",
        "valid",
        "window",
    )

    def __init__(self, settings: TaskSettings) -> None:
        self.window = settings.window
        self.accuracy_threshold = settings.accuracy_threshold
        self.latency_threshold = settings.latency_threshold_ms
        self.outcomes: deque[bool] = deque()
        self.valid = 0
        self.latencies: deque[float] = deque()
        self.sorted_latencies: list[float] = []
        self.accuracy_breached = False
        self.latency_breached = False

    def add(self, valid: bool, latency_ms: float | None) -> list[Crossing]:
        """Count one record; return the thresholds it made the task cross (usually none)."""
        crossings: list[Crossing] = []
        if self.accuracy_threshold is not None:
            self._add_outcome(valid, crossings)
        if self.latency_threshold is not None and latency_ms is not None:
            self._add_latency(latency_ms, crossings)
        return crossings

    def _add_outcome(self, valid: bool, crossings: list[Crossing]) -> None:
        outcomes = self.outcomes
        outcomes.append(valid)
        self.valid += valid
        if len(outcomes) > self.window:
            self.valid -= outcomes.popleft()
        if len(outcomes) < self.window:
            return
        accuracy = self.valid / len(outcomes)
        threshold = self.accuracy_threshold
        assert threshold is not None
        below = accuracy < threshold
        if below and not self.accuracy_breached:
            crossings.append(Crossing("accuracy", accuracy, threshold, len(outcomes)))
        self.accuracy_breached = below

    def _add_latency(self, latency_ms: float, crossings: list[Crossing]) -> None:
        latencies, ordered = self.latencies, self.sorted_latencies
        latencies.append(latency_ms)
        bisect.insort(ordered, latency_ms)
        if len(latencies) > self.window:
            del ordered[bisect.bisect_left(ordered, latencies.popleft())]
        if len(latencies) < self.window:
            return
        p95 = ordered[math.ceil(len(ordered) * LATENCY_PERCENTILE / 100) - 1]
        threshold = self.latency_threshold
        assert threshold is not None
        above = p95 > threshold
        if above and not self.latency_breached:
            crossings.append(Crossing("latency", p95, threshold, len(latencies)))
        self.latency_breached = above
