"""Order and dependencies: run_before / run_after, priority for the rest, requires_plugins, cycles, strict mode."""

from __future__ import annotations

import asyncio
import types
import uuid
from typing import Any

import pytest

import loopai


def execution() -> loopai.ExecutionRecord:
    return loopai.ExecutionRecord(program_id=uuid.uuid4(), task_id=uuid.uuid4())


class Named(loopai.ValidatorPlugin):
    """Says its name; its order and dependencies are given per instance."""

    def __init__(self, name: str, priority: int = 0, **declared: Any) -> None:
        super().__init__(name=name, priority=priority)
        for attribute, value in declared.items():
            setattr(self, attribute, value)
        self.log: list[str] | None = None

    def startup(self, host: Any) -> None:
        if self.log is not None:
            self.log.append(f"start {self.name}")

    def shutdown(self, host: Any) -> None:
        if self.log is not None:
            self.log.append(f"stop {self.name}")

    def validate(self, execution, context):
        return loopai.ValidationResult(is_valid=True, validator_type=self.name)


class Sampler(loopai.SamplerPlugin):
    def should_sample(self, execution, context):
        return loopai.SamplingDecision(should_sample=False)


def host(*plugins: object, **options: Any) -> loopai.Host:
    options.setdefault("environ", {})
    return loopai.Host(plugins=plugins, **options)


def called(made: loopai.Host) -> list[str]:
    return [r.validator_type for r in made.validate(execution()).results]


def test_constraints_come_first_and_priority_then_name_orders_the_rest() -> None:
    made = host(
        Named("audit", priority=1000, run_after=["schema"]),  # the highest priority, placed after schema
        Named("schema", priority=10),
        Named("cheap", priority=10, run_before="schema"),  # one name is enough
        Named("beta", priority=5),
        Named("alpha", priority=5),
    )

    assert called(made) == ["cheap", "schema", "audit", "alpha", "beta"]
    assert asyncio.run(made.avalidate(execution())).results[2].validator_type == "audit"  # async: the same order
    placed = {p.name: p.reason for p in made.call_order()["validator"].placed}
    assert placed["audit"] == "after 'schema' (audit.run_after); priority 1000"
    assert placed["schema"] == "after 'cheap' (cheap.run_before); before 'audit' (audit.run_after); priority 10"
    assert placed["alpha"] == "by priority 5, then name"


def test_the_registry_still_lists_by_priority() -> None:
    made = host(Named("late", priority=100, run_after=["early"]), Named("early"))

    assert [p.name for p in made.registry.list(loopai.ValidatorPlugin)] == ["late", "early"]
    assert called(made) == ["early", "late"]


def test_a_constraint_naming_an_absent_or_disabled_plugin_is_ignored_with_a_note() -> None:
    off = Named("off")
    off.enabled = False
    made = host(Named("a", run_after=["ghost", "off"], run_before=["a"]), off, Sampler(name="sampler"))
    made.registry.resolve(loopai.ValidatorPlugin, "a").run_before = ["sampler"]  # another kind: not a validator

    assert called(made) == ["a"]
    assert made.call_order()["validator"].notes == (
        "validator 'a': run_before 'sampler' is ignored: 'sampler' is not a registered validator "
        "(run_before and run_after order plugins of one kind)",
        "validator 'a': run_after 'ghost' is ignored: 'ghost' is not a registered validator "
        "(run_before and run_after order plugins of one kind)",
        "validator 'a': run_after 'off' is ignored: 'off' is disabled",
    )
    assert made.problems == []  # a note, not a problem


def test_a_cycle_is_reported_naming_every_plugin_and_falls_back_to_priority() -> None:
    made = host(
        Named("a", priority=1, run_before=["b"]),
        Named("b", priority=3, run_before=["c"]),
        Named("c", priority=2, run_before=["a"]),
        Named("d", priority=0, run_after=["a"]),
    )

    assert called(made) == ["b", "c", "a", "d"]  # priority among the three, d still after a
    ordering = made.call_order()["validator"]
    assert ordering.cycles == (("a", "b", "c"),)
    [report] = ordering.cycle_report
    assert report == (
        "validators 'a', 'b', 'c' are in a cycle of run_before/run_after constraints (a before b (a.run_before); "
        "b before c (b.run_before); c before a (c.run_before)); they run by priority among themselves: remove one of "
        "these constraints"
    )
    assert made.problems == [report]


def test_a_cycle_is_a_startup_error_in_strict_mode() -> None:
    with pytest.raises(loopai.StartupError) as raised:
        host(Named("a", run_after=["b"]), Named("b", run_after=["a"]), strict=True)

    assert "validators 'a', 'b' are in a cycle" in str(raised.value)


def test_plugins_that_require_each_other_are_reported_and_start_by_priority() -> None:
    log: list[str] = []
    plugins = [
        Named("a", priority=1, requires_plugins=["b"]),
        Named("b", priority=3, requires_plugins=["a"]),
        Named("c", priority=2),
    ]
    for plugin in plugins:
        plugin.log = log
    made = host(*plugins)
    made.start()

    assert made.problems == [
        "plugins 'a', 'b' require each other ('a' requires 'b'; 'b' requires 'a'): none can start after the "
        "others, so they start by priority; remove one of these requirements"
    ]
    assert log == ["start b", "start c", "start a"]
    made.close()


def test_a_missing_required_plugin_disables_its_dependents_in_a_chain() -> None:
    made = host(
        Named("needs-ghost", requires_plugins=["ghost"]),
        Named("needs-needy", requires_plugins=["needs-ghost"]),
        Named("needs-sampler", requires_plugins=["sampler"]),
        Sampler(name="sampler"),
    )

    assert called(made) == ["needs-sampler"]  # a required plugin of another kind counts
    assert made.problems == [
        "validator 'needs-ghost' is disabled (missing-plugin): it requires 'ghost', which is not loaded and "
        "enabled; install and enable it, or take it out of its requires_plugins",
        "validator 'needs-needy' is disabled (missing-plugin): it requires 'needs-ghost', which is not loaded and "
        "enabled; install and enable it, or take it out of its requires_plugins",
    ]
    assert made.registry.resolve(loopai.ValidatorPlugin, "needs-ghost").enabled is False


def test_a_missing_required_plugin_is_a_startup_error_in_strict_mode() -> None:
    with pytest.raises(loopai.StartupError, match="'needs-ghost' is disabled \\(missing-plugin\\)"):
        host(Named("needs-ghost", requires_plugins=["ghost"]), strict=True)


def test_a_required_plugin_turned_off_at_run_time_leaves_its_dependents_out() -> None:
    base = Named("base")
    made = host(base, Named("extra", requires_plugins=["base"]))
    assert called(made) == ["base", "extra"]

    base.enabled = False

    assert called(made) == []
    assert made.problems == ["validator 'extra' is left out: it requires 'base', which is not loaded and enabled"]


def test_required_plugins_start_first_and_stop_last() -> None:
    log: list[str] = []
    plugins = [
        Named("app", priority=100, requires_plugins=["db"]),
        Named("db", priority=0),
        Named("other", priority=50),
    ]
    for plugin in plugins:
        plugin.log = log

    with host(*plugins):
        pass

    assert log == ["start other", "start db", "start app", "stop app", "stop db", "stop other"]


def test_the_configuration_replaces_what_the_class_declares() -> None:
    class Declares(Named):
        run_after = ("second",)

    config = loopai.parse_config(
        {
            "plugins": {
                "validators": {
                    "first": {"run_after": []},
                    "second": {"run_after": ["first"], "requires_plugins": ["first"]},
                }
            }
        }
    )

    made = host(Declares("first"), Named("second"), config=config)

    assert called(made) == ["first", "second"]


def test_a_module_of_hook_functions_declares_its_order_too() -> None:
    module = types.ModuleType("ordered_hooks")
    module.run_before = ["late"]

    @loopai.hookimpl
    def validate(execution, context):
        return loopai.ValidationResult(is_valid=True, validator_type="hooks")

    module.validate = validate
    made = host(Named("late", priority=100), module)

    assert called(made) == ["hooks", "late"]


def test_a_wrong_declaration_is_refused_when_the_class_is_made() -> None:
    with pytest.raises(ValueError, match="isolation must be one of 'inline', 'process', got 'thread'"):

        class Wrong(Named):
            isolation = "thread"
