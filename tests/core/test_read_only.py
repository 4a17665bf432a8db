"""What the host hands to plugins is read-only: a plugin that changes it fails, and nobody else sees a change."""

from __future__ import annotations

import asyncio
import copy
import pickle
import uuid
from typing import Any

import pytest

import loopai


def execution() -> loopai.ExecutionRecord:
    return loopai.ExecutionRecord(
        program_id=uuid.uuid4(), task_id=uuid.uuid4(), output={"label": "positive", "scores": [0.9, 0.1]}
    )


class Changes(loopai.ValidatorPlugin):
    """Changes what it was given, the way careless code does."""

    def __init__(self, name: str, change: Any) -> None:
        super().__init__(name=name, priority=100)
        self.change = change

    def validate(self, execution, context):
        self.change(execution, context)
        return loopai.ValidationResult(is_valid=True, validator_type=self.name)


class Sees(loopai.ValidatorPlugin):
    """Says what it saw, after the plugin that tried to change it."""

    def validate(self, execution, context):
        return loopai.ValidationResult(
            is_valid=True,
            validator_type="sees",
            metadata={"output": execution.output, "schema": context.output_schema},
        )


CHANGES = {
    "a field": lambda e, c: setattr(e, "output", "hijacked"),
    "a key": lambda e, c: e.output.__setitem__("label", "negative"),
    "a nested list": lambda e, c: e.output["scores"].append(1.0),
    "a context schema": lambda e, c: c.output_schema["required"].append("injected"),
    "a context field": lambda e, c: setattr(c, "expected_output", "anything"),
}


@pytest.mark.parametrize("what", sorted(CHANGES))
@pytest.mark.parametrize("driver", ["sync", "async"])
def test_a_change_fails_inside_that_plugin_and_no_one_else_sees_it(what: str, driver: str) -> None:
    record = execution()
    context = loopai.ValidationContext(output_schema={"type": "object", "required": ["label"]})
    host = loopai.Host(plugins=[Changes("careless", CHANGES[what]), Sees()], environ={})

    if driver == "sync":
        report = host.validate(record, context)
    else:
        report = asyncio.run(host.avalidate(record, context))

    [failure] = report.failures
    assert (failure.plugin, failure.problem) == ("careless", "exception")
    assert failure.message.startswith("validator 'careless' raised TypeError: ")
    assert "read-only" in failure.message
    seen = report.results[1].metadata
    assert seen == {"output": {"label": "positive", "scores": [0.9, 0.1]}, "schema": context.output_schema}
    assert record.output == {"label": "positive", "scores": [0.9, 0.1]}
    assert context.output_schema == {"type": "object", "required": ["label"]}


def test_a_handler_cannot_change_the_event_the_next_handler_gets() -> None:
    got: list[Any] = []

    class First(loopai.WebhookHandlerPlugin):
        priority = 10

        def handle_event(self, event, context):
            event.payload["task"] = "someone else's"

    class Second(loopai.WebhookHandlerPlugin):
        def handle_event(self, event, context):
            got.append(dict(event.payload))

    host = loopai.Host(plugins=[First(), Second()], environ={}, max_retries=0)
    report = host.emit(loopai.WebhookEvent(event_type="task.created", payload={"task": "mine"}))

    assert [f.plugin for f in report.failures] == ["first"]
    assert got == [{"task": "mine"}]


def test_copies_are_the_way_to_change_one() -> None:
    record = execution()

    changed = record.model_copy(update={"output": {"label": "negative"}})

    assert changed.output == {"label": "negative"} and record.output["label"] == "positive"
    assert copy.deepcopy(record) == record
    assert pickle.loads(pickle.dumps(record)) == record
    assert record.model_dump()["output"] == {"label": "positive", "scores": [0.9, 0.1]}
