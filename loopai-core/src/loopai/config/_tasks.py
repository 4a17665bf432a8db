"""The tasks table: per-task schemas, sampling rate and thresholds (``[tasks."<task_id>"]`` or a ``--tasks`` file)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator, ValidationError
from pydantic_core import PydanticCustomError

from loopai._errors import ConfigError, describe_validation_error
from loopai.config._documents import read_document
from loopai.config._lines import in_file_order, with_lines

__all__ = ["DEFAULT_WINDOW", "TaskId", "TaskSettings", "TaskTable", "by_uuid", "load_tasks", "parse_tasks"]

DEFAULT_WINDOW = 50


def _canonical_uuid(text: str) -> str:
    try:
        return str(UUID(text))
    except ValueError:
        raise PydanticCustomError("task_id", "a task id must be a UUID") from None


TaskId = Annotated[str, AfterValidator(_canonical_uuid)]
"""A task id as a key of the tasks table: a UUID, kept as its canonical text (TOML and JSON keys are text)."""


def _one_entry_per_task(table: Any) -> Any:
    """Refuse two keys that are one task id (``6f1c...`` and ``6F1C...``): one would silently replace the other."""
    if isinstance(table, Mapping):
        seen: dict[str, str] = {}
        for key in table:
            try:
                canonical = str(UUID(str(key)))
            except ValueError:
                continue  # refused by name, as a key
            if canonical in seen:
                raise PydanticCustomError(
                    "duplicate_task_id",
                    "{first} and {second} are the same task id (a UUID, whatever its case): keep one entry",
                    {"first": seen[canonical], "second": str(key)},
                )
            seen[canonical] = str(key)
    return table


def _json_schema(value: Any) -> dict[str, Any] | bool:
    if isinstance(value, (bool, dict)):
        return value
    raise PydanticCustomError("json_schema", "must be a JSON Schema: a table (object), or true or false")


JsonSchema = Annotated[dict[str, Any] | bool, PlainValidator(_json_schema)]
"""A JSON Schema: an object, or ``true`` / ``false`` (valid since draft 6); anything else is refused by name."""


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
    input_schema: JsonSchema | None = None
    """JSON Schema of the task's input (an object, or ``true``/``false``: valid since draft 6)."""
    output_schema: JsonSchema | None = None
    """JSON Schema of the task's output."""
    sampling_rate: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    """Handed to samplers in the context; 0 lets each sampler use its own setting."""
    accuracy_threshold: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    latency_threshold_ms: Annotated[float, Field(gt=0.0)] | None = None
    window: Annotated[int, Field(ge=1)] = DEFAULT_WINDOW
    """How many of the task's latest records the rolling accuracy and latency cover."""


TaskTable = Annotated[dict[TaskId, TaskSettings], BeforeValidator(_one_entry_per_task)]
"""The tasks table: settings by task id, one entry per task."""


class _Table(BaseModel):
    tasks: TaskTable


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
        lines = describe_validation_error(exc, model=_Table)
        raise ConfigError([f"{label}: {line.removeprefix('tasks.')}" for line in lines]) from None
    return by_uuid(table)


def by_uuid(table: Mapping[str, TaskSettings]) -> dict[UUID, TaskSettings]:
    """The tasks table keyed by :class:`uuid.UUID`, as execution records carry their task ids."""
    return {UUID(key): settings for key, settings in table.items()}


def load_tasks(path: str | Path) -> dict[UUID, TaskSettings]:
    """Read a tasks file (``.json``, else TOML); errors name the file, the line and the field."""
    label = str(path)
    document = read_document(Path(path), label)
    try:
        return parse_tasks(document, label)
    except ConfigError as exc:
        located = sorted(
            with_lines(exc.problems, Path(path), label, under="tasks"), key=lambda found: in_file_order(found[1])
        )
        raise ConfigError(message for message, _ in located) from None
