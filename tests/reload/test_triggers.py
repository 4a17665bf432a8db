"""What makes a long-running host reload: a real SIGHUP to this process, a real change of its file."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid

import pytest

import loopai

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="SIGHUP is POSIX")


def execution() -> loopai.ExecutionRecord:
    return loopai.ExecutionRecord(program_id=uuid.uuid4(), task_id=uuid.uuid4())


def tags(host: loopai.Host) -> dict[str, int]:
    return {r.validator_type: r.metadata["tag"] for r in host.validate(execution()).results}


def wait_for(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_reload_on_sighup_reloads_in_a_worker_thread_and_gives_the_signal_back(reloadable) -> None:
    reloadable.tagged(1)
    host = reloadable.host().start()
    done: list[loopai.host.ReloadResult] = []
    before = signal.getsignal(signal.SIGHUP)

    with loopai.host.reload_on_sighup(host, on_reload=done.append):
        reloadable.tagged(2)
        os.kill(os.getpid(), signal.SIGHUP)
        assert wait_for(lambda: done)

    assert done[0].reloaded and done[0].generation == 2
    assert tags(host) == {"a": 2, "b": 2}
    assert signal.getsignal(signal.SIGHUP) == before


def test_reload_on_sighup_refuses_outside_the_main_thread(reloadable) -> None:
    reloadable.tagged(1)
    host = reloadable.host()
    said: list[str] = []

    def install() -> None:
        try:
            loopai.host.reload_on_sighup(host)
        except RuntimeError as exc:
            said.append(str(exc))

    thread = threading.Thread(target=install)
    thread.start()
    thread.join()

    assert said == ["SIGHUP can only be taken in the main thread (Python delivers signals there)"]


def test_the_host_setting_takes_sighup_when_started_in_the_main_thread(reloadable) -> None:
    before = signal.getsignal(signal.SIGHUP)  # SIG_DFL; SIG_IGN under nohup
    reloadable.tagged(1, extra="[host]\nreload_on_sighup = true\n")
    host = reloadable.host().start()
    reloadable.tagged(2, extra="[host]\nreload_on_sighup = true\n")

    os.kill(os.getpid(), signal.SIGHUP)

    assert wait_for(lambda: tags(host) == {"a": 2, "b": 2})
    host.close()
    assert signal.getsignal(signal.SIGHUP) is before  # given back when the host closes


def test_the_host_setting_outside_the_main_thread_is_a_problem_not_a_signal(reloadable) -> None:
    before = signal.getsignal(signal.SIGHUP)
    reloadable.tagged(1, extra="[host]\nreload_on_sighup = true\n")
    host = reloadable.host()
    thread = threading.Thread(target=host.start)
    thread.start()
    thread.join()

    assert host.problems == [
        "reload_on_sighup = true is not in effect: SIGHUP can only be taken in the main thread "
        "(Python delivers signals there)"
    ]
    assert signal.getsignal(signal.SIGHUP) is before  # left as it was


def test_watch_config_reloads_once_the_file_has_changed_and_held_still(reloadable) -> None:
    watching = "[host]\nwatch_config = true\nwatch_interval = 0.4\n"
    reloadable.tagged(1, extra=watching)
    host = reloadable.host().start()

    for tag in (2, 3, 4):  # three quick saves: one reload, of the last
        reloadable.tagged(tag, extra=watching)
        time.sleep(0.02)

    assert wait_for(lambda: tags(host) == {"a": 4, "b": 4})
    time.sleep(1.0)
    assert host._set.generation == 2  # the burst made one reload
    reloadable.tagged(5, "a", extra="[host]\nwatch_config = false\n")  # the last change it watches
    assert wait_for(lambda: tags(host) == {"a": 5})
    reloadable.tagged(6, "a")
    time.sleep(1.0)
    assert tags(host) == {"a": 5}
