"""Hot reload: the next plugin set is built and started aside, swapped in whole, and the old one retired.

Each test changes a real configuration file and reloads a host built from it; the plugins are
factories of a real module (see conftest.py).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid

import loopai


def execution() -> loopai.ExecutionRecord:
    return loopai.ExecutionRecord(program_id=uuid.uuid4(), task_id=uuid.uuid4())


def tags(report: loopai.ValidationReport) -> dict[str, int]:
    return {result.validator_type: result.metadata["tag"] for result in report.results}


def test_fifty_reloads_under_load_no_call_fails_and_none_sees_a_mixed_set(reloadable) -> None:
    reloadable.tagged(0)
    host = reloadable.host().start()
    stop = threading.Event()
    seen: list[dict[str, int]] = []
    bad: list[object] = []

    def call() -> None:
        while not stop.is_set():
            report = host.validate(execution())
            if not report.is_valid or report.failures or len(set(tags(report).values())) != 1:
                bad.append(report)  # a failure, a call after shutdown, or two sets in one call
            seen.append(tags(report))

    callers = [threading.Thread(target=call) for _ in range(4)]
    for caller in callers:
        caller.start()
    results = []
    for tag in range(1, 51):
        reloadable.tagged(tag)
        results.append(host.reload())
        time.sleep(0.002)
    stop.set()
    for caller in callers:
        caller.join()

    assert all(results) and [r.generation for r in results] == list(range(2, 52))
    assert all(r.reconfigured and not (r.added or r.removed) for r in results)
    assert bad == []
    assert len({row["a"] for row in seen}) > 10  # the calls ran on many of the sets
    assert tags(host.validate(execution())) == {"a": 50, "b": 50}
    stops = [e for e in reloadable.module.EVENTS if e[0] == "stop"]
    assert len(stops) == 100 and all(in_flight == 0 for *_, in_flight in stops)  # shut down after its last call


def test_calls_in_flight_finish_on_the_old_set_and_its_shutdown_comes_after(reloadable) -> None:
    reloadable.write(
        """
        autoload = false
        [plugins.validators.slow]
        factory = "{module}:Tagged"
        configuration = { tag = 1, delay = 0.5, label = "slow" }
        """
    )
    host = reloadable.host().start()
    in_flight: list[loopai.ValidationReport] = []
    caller = threading.Thread(target=lambda: in_flight.append(host.validate(execution())))
    caller.start()
    time.sleep(0.1)  # the call is inside the plugin now
    reloadable.tagged(2, "slow")

    result = host.reload()
    caller.join()

    assert result.reconfigured == (loopai.host.PluginChange("validator", "slow", ("settings",)),)
    assert tags(in_flight[0]) == {"slow": 1} and in_flight[0].is_valid  # finished on the old set
    events = reloadable.module.EVENTS
    assert events.index(("call", "slow", 1)) < events.index(("stop", "slow", 1, 0))
    assert events.index(("start", "slow", 2)) < events.index(("stop", "slow", 1, 0))  # started aside, first
    assert tags(host.validate(execution())) == {"slow": 2}


def test_reload_says_what_was_added_removed_and_reconfigured(reloadable) -> None:
    reloadable.tagged(1, "a", "b")
    host = reloadable.host()
    reloadable.tagged(1, "b", "c", extra="[plugins.validators.b.metadata]\nteam = 'ml'\n")

    result = host.reload()

    assert result.reloaded and result.changed
    assert [str(c) for c in result.added] == ["validator 'c'"]
    assert [str(c) for c in result.removed] == ["validator 'a'"]
    assert [str(c) for c in result.reconfigured] == ["validator 'b' (metadata)"]
    assert result.to_dict()["added"] == [{"kind": "validator", "name": "c", "changed": []}]
    assert result.source == str(reloadable.path.resolve())
    assert sorted(tags(host.validate(execution()))) == ["b", "c"]


def test_plugins_adjusted_in_code_stay_adjusted_across_reloads(reloadable) -> None:
    reloadable.tagged(1, "a", "b")
    host = reloadable.host()
    seen: list[tuple[str, ...]] = []

    def quiet_b(view) -> None:  # as loopai run keeps the console handler to alerts
        seen.append(tuple(entry.name for entry in view.registry.entries(loopai.ValidatorPlugin)))
        view.registry.resolve(loopai.ValidatorPlugin, "b").enabled = False

    host.adjust_plugins(quiet_b)
    assert sorted(tags(host.validate(execution()))) == ["a"]
    reloadable.tagged(2, "a", "b", "c")

    result = host.reload()

    assert result.reloaded and [str(c) for c in result.added] == ["validator 'c'"]
    assert sorted(tags(host.validate(execution()))) == ["a", "c"]  # b is still off, in the new set
    assert seen == [("a", "b"), ("a", "b", "c")]  # called now, then with the set the reload built

    calls: list[object] = []

    def fails_on_reload(view) -> None:
        calls.append(view)
        if len(calls) > 1:
            raise RuntimeError("no")

    host.adjust_plugins(fails_on_reload)
    failed = host.reload()
    assert failed.reloaded  # the new set is kept; the failure is one of its problems
    assert any("adjusting the reloaded plugins failed" in p and "RuntimeError: no" in p for p in failed.problems)
    assert sorted(tags(host.validate(execution()))) == ["a", "c"]


def test_a_configuration_that_cannot_be_read_changes_nothing(reloadable, caplog) -> None:
    reloadable.tagged(1)
    host = reloadable.host().start()
    reloadable.write("autoload = false\n[plugins.validators.a\n")

    with caplog.at_level(logging.WARNING, logger="loopai"):
        result = host.reload()

    assert not result and result.generation == 1
    assert result.problems[0].startswith(f"{reloadable.path}:2:22: invalid TOML")
    assert "reload failed, nothing changed" in caplog.text
    assert tags(host.validate(execution())) == {"a": 1, "b": 1}


def test_a_startup_that_raises_fails_the_reload_and_the_old_set_runs_on(reloadable) -> None:
    reloadable.tagged(1)
    host = reloadable.host().start()
    reloadable.tagged(
        2, extra='[plugins.validators.failing]\nfactory = "{module}:Failing"\n'.replace("{module}", reloadable.name)
    )

    result = host.reload()

    assert not result
    [problem] = result.problems
    assert problem.startswith(
        "plugin 'failing' failed to start and was disabled: ConnectionError: cannot reach the rules service (at "
    )
    assert tags(host.validate(execution())) == {"a": 1, "b": 1}
    events = reloadable.module.EVENTS
    assert ("start", "a", 2) in events and ("stop", "a", 2, 0) in events  # what did start was stopped
    assert ("stop", "a", 1, 0) not in events


def test_a_running_plugin_lost_to_a_failure_fails_the_reload(reloadable) -> None:
    reloadable.tagged(1)
    host = reloadable.host()
    reloadable.write(
        """
        autoload = false
        [plugins.validators.a]
        factory = "{module}:Tagged"
        configuration = { tag = "not a number", label = "a" }
        [plugins.validators.b]
        factory = "{module}:Tagged"
        configuration = { tag = 1, label = "b" }
        """
    )

    result = host.reload()

    assert not result
    [problem] = result.problems
    assert problem.startswith(f"validator 'a' runs now and would be lost: {reloadable.path}:5: validators.a.tag: ")
    assert problem.endswith("fix that, or turn it off (enabled = false) to reload without it")
    assert tags(host.validate(execution())) == {"a": 1, "b": 1}


def test_a_plugin_the_new_configuration_names_that_cannot_run_fails_the_reload(reloadable) -> None:
    """As loopai run and serve refuse to start on it: a misspelt table would otherwise leave the plugin
    it meant on its defaults, and name a plugin that is not there."""
    reloadable.tagged(1)
    host = reloadable.host()
    reloadable.tagged(1, "a", extra='[plugins.validators.bb]\nconfiguration = { tag = 2, label = "b" }\n')  # b misspelt

    result = host.reload()

    assert not result
    [problem] = result.problems
    assert problem.startswith(f"{reloadable.path}:5: validators.bb: no validator named 'bb' is registered")
    assert tags(host.validate(execution())) == {"a": 1, "b": 1}  # nothing changed


def test_in_strict_mode_any_problem_fails_the_reload(reloadable) -> None:
    reloadable.tagged(1)
    host = reloadable.host(strict=True)
    reloadable.tagged(2, extra="[plugins.validators.ghost]\nenabled = true\n")

    result = host.reload()

    assert not result
    [problem] = result.problems
    assert problem.startswith(f"{reloadable.path}:")  # with the line that names it
    assert problem.endswith(
        ": validators.ghost: no validator named 'ghost' is registered; install the package "
        'that provides it, register it in code, or set factory = "module:attribute"'
    )
    assert tags(host.validate(execution())) == {"a": 1, "b": 1}


def test_statistics_task_state_tasks_table_and_outbox_carry_over(reloadable, tmp_path) -> None:
    task = uuid.uuid4()
    reloadable.tagged(1, extra=f'[tasks."{task}"]\nsampling_rate = 0.5\n')
    host = reloadable.host(outbox=tmp_path / "outbox.sqlite3")
    outbox = host.outbox
    for _ in range(3):
        host.should_sample(loopai.ExecutionRecord(program_id=uuid.uuid4(), task_id=task))
    reloadable.tagged(2, extra=f'[tasks."{task}"]\nsampling_rate = 0.25\n')

    assert host.reload()

    assert host.outbox is outbox
    assert host.statistics(task).total_executions == 3
    assert host.tasks.view(task).sampling.sampling_rate == 0.25  # the new tasks table


def test_plugins_registered_in_code_are_carried_over_never_started_twice(reloadable) -> None:
    reloadable.tagged(1, "a")
    given = reloadable.module.Tagged({"tag": 7})
    given.name = "given"
    host = loopai.Host.from_config(reloadable.path, environ={}, outbox=False, plugins=[given])
    reloadable.hosts.append(host)
    host.start()
    reloadable.tagged(2, "a")

    assert host.reload()
    assert host.reload()
    host.close()

    mine = [e for e in reloadable.module.EVENTS if e[1] == "given"]
    assert [e[0] for e in mine if e[0] != "call"] == ["start", "stop"]
    assert host.registry.resolve(loopai.ValidatorPlugin, "given") is given


def test_areload_runs_async_hooks_on_the_running_loop(reloadable) -> None:
    reloadable.tagged(1)

    async def scenario() -> tuple[loopai.host.ReloadResult, dict[str, int]]:
        async with loopai.Host.from_config(reloadable.path, environ={}, outbox=False) as host:
            reloadable.tagged(2)
            result = await host.areload()
            return result, tags(await host.avalidate(execution()))

    result, after = asyncio.run(scenario())

    assert result.reloaded and after == {"a": 2, "b": 2}


def test_a_closed_host_does_not_reload(reloadable) -> None:
    reloadable.tagged(1)
    host = reloadable.host()
    host.close()

    result = host.reload()

    assert not result and result.problems == ("the host is closed: build a new one",)


def test_a_plugin_whose_init_skips_super_init_is_refused_and_does_not_break_a_reload() -> None:
    """It has no ``config`` nor ``metadata``: refused at registration, saying the fix; a reload of
    the host still works (it answered 500 in the service)."""

    class NoSuperInit(loopai.ValidatorPlugin):
        def __init__(self) -> None:
            self.calls = 0

        def validate(self, execution, context):
            self.calls += 1
            return loopai.ValidationResult(is_valid=True, validator_type=self.name)

    plugin = NoSuperInit()
    with loopai.Host(plugins=[plugin], outbox=False, environ={}) as host:
        result = host.reload(loopai.LoopaiConfig(autoload=False))

        assert result.reloaded, result.problems
        assert any("call super().__init__(*args, **kwargs) in" in problem for problem in host.problems), host.problems
        assert host.validate(execution()).results == [] and plugin.calls == 0


def test_a_discovered_plugin_whose_new_settings_are_wrong_is_said_once_with_its_line(tmp_path) -> None:
    path = tmp_path / "loopai.toml"
    path.write_text("[plugins.samplers.percentage-sampler.configuration]\nsampling_rate = 0.3\n", encoding="utf-8")
    host = loopai.Host.from_config(path, outbox=False, environ={}).start()
    try:
        path.write_text("[plugins.samplers.percentage-sampler.configuration]\nsampling_rate = 1.5\n", encoding="utf-8")

        result = host.reload()

        assert not result
        [problem] = result.problems
        assert problem.startswith("sampler 'percentage-sampler' runs now and would be lost: its settings are wrong")
        assert problem.endswith(f"{path}:2: samplers.percentage-sampler.sampling_rate: must be <= 1 (got 1.5)")
        assert problem.count("enabled = false") == 1  # the advice once
    finally:
        host.close()


def test_a_configuration_file_created_after_start_is_found_by_a_reload_of_a_host_built_from_a_search(
    reloadable, monkeypatch
) -> None:
    """As ``loopai serve`` builds its host: from ``load_config`` (no file found), not ``Host.from_config``."""
    monkeypatch.chdir(reloadable.root)
    reloadable.path.unlink(missing_ok=True)
    searched = loopai.Host(loopai.load_config(environ={}), outbox=False, environ={}, discover=True)
    in_code = loopai.Host(loopai.LoopaiConfig(autoload=False), outbox=False, environ={}, discover=True)
    reloadable.hosts += [searched, in_code]
    reloadable.tagged(3)  # loopai.toml appears in the folder

    assert searched.reload().added and tags(searched.validate(execution())) == {"a": 3, "b": 3}
    assert searched.config.source == reloadable.path.resolve()
    kept = in_code.reload()  # made in code: its configuration is its own, nothing is looked for
    assert kept.reloaded and not kept.added and in_code.config.source is None
