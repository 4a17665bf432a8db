"""Process isolation: plugins that crash, exit, run out of memory or CPU, or hang, each in real worker processes.

Every hostile plugin here really does it (a segfault through ctypes, ``os._exit``, an allocation
past ``memory_limit_mb``, a busy loop past ``cpu_time_limit_s``, a sleep past ``timeout``); the
report names the plugin and the failure, the worker is replaced and every other plugin goes on.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

import loopai

pytestmark = pytest.mark.processes

HOSTILE = """
class Hostile(loopai.ValidatorPlugin):
    '''Does what its input says: segfault, exit, allocate, spin, hang; else answers with its pid.'''

    isolation = "process"

    def validate(self, execution, context):
        what = execution.input
        if what == "segfault":
            ctypes.string_at(0)
        elif what == "exit":
            os._exit(3)
        elif what == "allocate":
            hoard = bytearray(2 * 1024**3)
            return valid(self.name, size=len(hoard))
        elif what == "spin":
            while True:
                pass
        elif what == "hang":
            time.sleep(60)
        elif what == "raise":
            raise LookupError("no such row")
        elif what == "nothing":
            return None
        return valid(self.name, pid=os.getpid())
"""


def execution(what: Any = None) -> loopai.ExecutionRecord:
    return loopai.ExecutionRecord(program_id=uuid.uuid4(), task_id=uuid.uuid4(), input=what)


def by_name(report: loopai.ValidationReport) -> dict[str, loopai.ValidationResult]:
    return {result.validator_type: result for result in report.results}


@pytest.mark.parametrize(
    ("what", "problem", "says"),
    [
        ("segfault", "crashed", "killed by SIGSEGV"),
        ("exit", "crashed", "exited with status 3"),
        ("allocate", "memory-limit", "ran out of memory (memory_limit_mb = 300)"),
        ("spin", "cpu-limit", "CPU time limit (cpu_time_limit_s = 1)"),
        ("hang", "timeout", "took longer than its timeout of 1.5s"),
    ],
)
def test_a_hostile_call_fails_by_name_and_the_host_and_the_others_go_on(
    plugin_module, hosts, what: str, problem: str, says: str
) -> None:
    plugins = plugin_module(HOSTILE)
    hostile = plugins.Hostile(name="hostile")
    hostile.memory_limit_mb, hostile.cpu_time_limit_s = 300, 1
    if what == "hang":
        hostile.timeout = 1.5
    host = hosts(hostile, plugins.Inline(name="neighbour")).start()
    before = by_name(host.validate(execution()))["hostile"].metadata["pid"]

    report = host.validate(execution(what))

    [failure] = report.failures
    assert (failure.plugin, failure.problem) == ("hostile", problem)
    assert failure.message.startswith("validator 'hostile' ") and says in failure.message
    assert by_name(report)["neighbour"].is_valid  # the plugin in the host's process went on
    after = by_name(host.validate(execution()))["hostile"]
    assert after.is_valid and after.metadata["pid"] not in (before, os.getpid())  # a new worker took over
    assert host.problems == []


def line_of(module: Any, text: str) -> str:
    """``/path/module.py:12``: the file and line of ``module`` where ``text`` is."""
    lines = Path(module.__file__).read_text(encoding="utf-8").splitlines()
    return f"{module.__file__}:{next(n for n, line in enumerate(lines, 1) if text in line)}"


def test_an_exception_in_the_worker_is_named_like_one_in_the_host_and_keeps_the_worker(plugin_module, hosts) -> None:
    plugins = plugin_module(HOSTILE)
    host = hosts(plugins.Hostile(name="hostile"))
    inline = plugins.Hostile(name="hostile")
    inline.isolation = "inline"
    pid = by_name(host.validate(execution()))["hostile"].metadata["pid"]

    [failure] = host.validate(execution("raise")).failures
    [in_the_host] = hosts(inline).validate(execution("raise")).failures

    where = line_of(plugins, 'raise LookupError("no such row")')
    assert failure.problem == "exception"
    assert failure.message == f"validator 'hostile' raised LookupError: no such row (at {where}, in its worker process)"
    assert in_the_host.message == f"validator 'hostile' raised LookupError: no such row (at {where})"
    assert by_name(host.validate(execution()))["hostile"].metadata["pid"] == pid


def test_an_exception_raised_deeper_is_named_at_the_line_of_the_plugins_own_module(plugin_module, hosts) -> None:
    plugins = plugin_module(
        """
        import json

        class Parses(loopai.ValidatorPlugin):
            isolation = "process"

            def validate(self, execution, context):
                return valid(self.name, parsed=json.loads(execution.input))
        """
    )
    host = hosts(plugins.Parses(name="parses"))

    [failure] = host.validate(execution("{not json")).failures

    # Raised inside the json module, named where the plugin's code called it.
    assert failure.message.startswith("validator 'parses' raised JSONDecodeError: Expecting property name")
    assert failure.message.endswith(f"(at {line_of(plugins, 'json.loads(')}, in its worker process)")


def test_a_crash_names_the_line_of_the_plugin_it_crashed_on(plugin_module, hosts) -> None:
    plugins = plugin_module(HOSTILE)
    host = hosts(plugins.Hostile(name="hostile"))

    [failure] = host.validate(execution("segfault")).failures

    # The innermost frame is ctypes' own string_at: the plugin's line is the one named.
    assert failure.problem == "crashed"
    assert failure.message == (
        "validator 'hostile' crashed: its worker process was killed by SIGSEGV (a segmentation fault) "
        f"at {line_of(plugins, 'ctypes.string_at(0)')}; it was replaced"
    )


def test_five_crashes_in_a_row_disable_the_plugin_until_reload(plugin_module, hosts) -> None:
    plugins = plugin_module(HOSTILE)
    hostile = plugins.Hostile(name="hostile")
    host = hosts(hostile, plugins.Inline(name="neighbour")).start()

    problems = [host.validate(execution("exit")).failures[0].problem for _ in range(5)]
    after = host.validate(execution())  # a record it would find valid: it is not asked

    assert problems == ["crashed"] * 5
    [reason] = host.problems
    assert reason.startswith("validator 'hostile' was disabled after 5 calls in a row lost its worker process")
    assert "fix the plugin, then reload or restart" in reason
    # A validator fails closed: no record is judged valid without it.
    assert not after.is_valid and by_name(after)["neighbour"].is_valid
    [failure] = after.failures
    assert failure.problem == "disabled"
    assert failure.message.startswith("validator 'hostile' is disabled after 5 calls in a row lost its worker process")
    assert "pid" not in by_name(after)["hostile"].metadata  # not called: no worker answered

    assert host.reload()  # the reload gives it another chance
    assert by_name(host.validate(execution()))["hostile"].is_valid


def test_a_sampler_given_up_on_is_left_out(plugin_module, hosts) -> None:
    plugins = plugin_module(
        """
        class Dies(loopai.SamplerPlugin):
            isolation = "process"

            def should_sample(self, execution, context):
                os._exit(3)
        """
    )
    dies = plugins.Dies(name="dies")
    host = hosts(dies).start()

    problems = [host.should_sample(execution()).failures[0].problem for _ in range(5)]
    after = host.should_sample(execution())

    assert problems == ["crashed"] * 5
    assert dies.enabled is False and not after.failures and after.decision is None


def test_sync_and_async_callers_and_two_workers_share_the_calls(plugin_module, hosts) -> None:
    plugins = plugin_module(
        """
        class Slow(loopai.ValidatorPlugin):
            isolation = "process"
            workers = 2

            def validate(self, execution, context):
                time.sleep(0.3)
                return valid(self.name, pid=os.getpid())
        """
    )
    host = hosts(plugins.Slow(name="slow")).start()
    pids: list[int] = []

    def call() -> None:
        pids.append(host.validate(execution()).results[0].metadata["pid"])

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    async def both() -> list[loopai.ValidationReport]:
        return list(await asyncio.gather(host.avalidate(execution()), host.avalidate(execution())))

    reports = asyncio.run(both())
    assert len(set(pids)) == 2 and os.getpid() not in pids  # both workers answered at once
    assert {r.results[0].metadata["pid"] for r in reports} == set(pids)


def test_startup_and_shutdown_run_in_each_worker(plugin_module, hosts, tmp_path: Path) -> None:
    plugins = plugin_module(
        f"""
        class Lifecycle(loopai.ValidatorPlugin):
            isolation = "process"
            workers = 2

            def startup(self, host):
                with open({str(tmp_path / "life.txt")!r}, "a") as log:
                    log.write(f"start {{os.getpid()}} {{host.worker}} {{host.host_pid}}\\n")

            def shutdown(self, host):
                with open({str(tmp_path / "life.txt")!r}, "a") as log:
                    log.write(f"stop {{os.getpid()}}\\n")

            def validate(self, execution, context):
                return valid(self.name)
        """
    )
    host = hosts(plugins.Lifecycle(name="life")).start()
    started = (tmp_path / "life.txt").read_text().split("\n")
    host.close()
    lines = (tmp_path / "life.txt").read_text().splitlines()

    starts = sorted(line.split() for line in lines if line.startswith("start"))
    assert [(words[2], words[3]) for words in starts] == [("0", str(os.getpid())), ("1", str(os.getpid()))]
    worker_pids = {words[1] for words in starts}
    assert os.getpid() not in {int(pid) for pid in worker_pids}
    assert {line.split()[1] for line in lines if line.startswith("stop")} == worker_pids
    assert not any(line.startswith("stop") for line in started)


def test_a_startup_that_raises_in_the_worker_disables_the_plugin(plugin_module, hosts) -> None:
    plugins = plugin_module(
        """
        class Broken(loopai.ValidatorPlugin):
            isolation = "process"

            def startup(self, host):
                raise ConnectionError("database unreachable")

            def validate(self, execution, context):
                return valid(self.name)
        """
    )
    host = hosts(plugins.Broken(name="broken"), plugins.Inline(name="neighbour")).start()

    assert [r.validator_type for r in host.validate(execution()).results] == ["neighbour"]
    [problem] = host.problems
    assert problem.startswith(
        "plugin 'broken' failed to start and was disabled: ConnectionError: database unreachable;"
    )


def test_isolation_from_the_configuration_with_a_factory(plugin_module, tmp_path: Path) -> None:
    plugins = plugin_module(HOSTILE)
    config = loopai.parse_config(
        {
            "autoload": False,
            "plugins": {
                "validators": {
                    "inline": {"factory": f"{plugins.__name__}:Inline", "isolation": "process"},
                    "hostile": {"factory": f"{plugins.__name__}:Hostile", "isolation": "inline"},
                }
            },
        }
    )
    with loopai.Host(config, environ={}) as host:
        results = by_name(host.validate(execution()))

    assert results["inline"].metadata["pid"] != os.getpid()
    assert results["hostile"].metadata["pid"] == os.getpid()


def test_a_plugin_that_cannot_be_pickled_is_built_again_from_its_class_and_settings(plugin_module, hosts) -> None:
    plugins = plugin_module(
        """
        import threading

        from pydantic import BaseModel

        class Locked(loopai.ValidatorPlugin):
            isolation = "process"

            class Config(BaseModel):
                answer: int = 0

            def __init__(self, config=None):
                super().__init__(config)
                self.lock = threading.Lock()  # no pickle takes this across

            def validate(self, execution, context):
                return valid(self.name, pid=os.getpid(), answer=self.config.answer)
        """
    )
    host = hosts(plugins.Locked({"answer": 42}))

    [result] = host.validate(execution()).results

    assert result.metadata["answer"] == 42 and result.metadata["pid"] != os.getpid()


def test_a_plugin_that_can_neither_be_pickled_nor_built_again_is_left_out_and_says_why(plugin_module, hosts) -> None:
    plugins = plugin_module(
        """
        import threading

        class Locked(loopai.ValidatorPlugin):
            isolation = "process"

            def __init__(self, label, lock):
                super().__init__(name=label)
                self.lock = lock

            def validate(self, execution, context):
                return valid(self.name)
        """
    )
    host = hosts(plugins.Locked("locked", threading.Lock()), plugins.Inline(name="neighbour"))

    assert [r.validator_type for r in host.validate(execution()).results] == ["neighbour"]
    [problem] = host.problems
    assert problem.startswith(
        "validator 'locked' cannot run isolated: pickling it for its worker process failed (TypeError: cannot "
        "pickle '_thread.lock' object), and Locked(settings) does not build it (its constructor takes other arguments)"
    )
    assert "open clients, locks and files in startup(), not in __init__" in problem


def test_a_built_in_plugin_runs_isolated_from_the_configuration(hosts) -> None:
    config = loopai.parse_config(
        {"plugins": {"validators": {"json-schema-validator": {"isolation": "process", "memory_limit_mb": 400}}}}
    )
    host = loopai.Host(config, discover=True, environ={"LOOPAI_PLUGINS": "json-schema-validator"})
    context = loopai.ValidationContext(output_schema={"type": "object", "required": ["label"]})

    try:
        report = host.validate(
            loopai.ExecutionRecord(program_id=uuid.uuid4(), task_id=uuid.uuid4(), output={"label": 1}), context
        )
    finally:
        host.close()

    [result] = report.results
    assert (result.validator_type, result.is_valid, report.failures) == ("json-schema-validator", True, ())


def test_an_isolated_handler_that_crashes_is_retried_on_a_new_worker(plugin_module, hosts, tmp_path: Path) -> None:
    marker = tmp_path / "crashed-once"
    plugins = plugin_module(
        f"""
        class Flaky(loopai.WebhookHandlerPlugin):
            isolation = "process"
            max_retries = 2

            def handle_event(self, event, context):
                if not os.path.exists({str(marker)!r}):
                    open({str(marker)!r}, "w").close()
                    os._exit(1)
        """
    )
    host = hosts(plugins.Flaky(name="flaky"), retry_backoff=0.0)

    report = host.emit(loopai.WebhookEvent(event_type="task.created"))

    assert report.ok and report.delivered == ("flaky",)
    assert marker.exists()


def test_an_isolated_handler_that_returns_a_value_is_delivered_and_said_once(plugin_module, hosts, caplog) -> None:
    plugins = plugin_module(
        """
        class Pager(loopai.WebhookHandlerPlugin):
            isolation = "process"

            def handle_event(self, event, context):
                return {"ok": False}  # the value stays in the worker: its type is named
        """
    )
    host = hosts(plugins.Pager(name="pager"))

    reports = [host.emit(loopai.WebhookEvent(event_type="task.created")) for _ in range(2)]

    assert [report.delivered for report in reports] == [("pager",), ("pager",)]
    assert [r.getMessage() for r in caplog.records if r.name == "loopai.delivery"] == [
        "webhook handler 'pager' returned a dict from handle_event: the delivery counts as made; "
        "raise an exception to have it retried"
    ]


def test_check_plugin_calls_an_isolated_plugin_only_in_its_workers_and_names_its_crash(plugin_module) -> None:
    """A plugin isolated because it may crash its process must not take the author's test run with it."""
    from loopai.testing import check_plugin

    plugins = plugin_module(
        """
        class AlwaysExits(loopai.ValidatorPlugin):
            isolation = "process"
            version = "1.0.0"

            def validate(self, execution, context):
                os._exit(3)
        """
    )

    with pytest.raises(AssertionError) as failed:
        check_plugin(plugins.AlwaysExits)

    assert "in a host: validator 'always-exits' crashed" in str(failed.value), failed.value


def test_a_wrong_result_in_the_worker_is_named_and_counted_as_inline(plugin_module, hosts) -> None:
    plugins = plugin_module(HOSTILE)
    host = hosts(plugins.Hostile(name="hostile"), meter=True).start()  # as loopai run's, which counts

    [failure] = host.validate(execution("nothing")).failures
    usage = {u.name: u for u in host.plugin_usage()}["hostile"]

    assert failure.problem == "wrong-type"
    assert failure.message.startswith(
        "validator 'hostile' returned None (a missing return?), but validate must return ValidationResult "
        "(its validate: "
    )
    assert (usage.calls, usage.failures) == (1, 1)  # was counted twice: 2 failures of 1 call
