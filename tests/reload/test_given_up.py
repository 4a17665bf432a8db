"""A plugin given up on (its worker processes lost five calls in a row) stays off until a reload succeeds.

The handler really ends its worker (``os._exit``, see conftest.py) and counts its calls in a file,
so "not called" is what its worker processes did, not what the host says.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import loopai

pytestmark = pytest.mark.processes

FAILING = '[plugins.validators.failing]\nfactory = "{module}:Failing"\n'  # its startup raises
MISSPELT = "[plugins.validators.bb]\nconfiguration = { tag = 2 }\n"  # names no plugin: refused before any startup


def emit(host: loopai.Host) -> loopai.EmitReport:
    return host.emit(loopai.WebhookEvent(event_type=loopai.WebhookEventType.TASK_CREATED))


def calls(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines()) if path.exists() else 0


@pytest.mark.parametrize(
    ("failure", "how"),
    [(FAILING, "reload"), (FAILING, "areload"), (MISSPELT, "reload")],
    ids=["startup-raises", "startup-raises-async", "refused"],
)
def test_a_failed_reload_leaves_a_plugin_given_up_on_off_and_a_good_one_brings_it_back(
    reloadable: Any, tmp_path: Path, failure: str, how: str
) -> None:
    called = tmp_path / "calls.txt"
    exits = reloadable.module.Exits({"calls": str(called)})
    exits.name = "exits"
    reloadable.tagged(1, "a")
    host = loopai.Host.from_config(reloadable.path, environ={}, outbox=False, plugins=[exits])
    reloadable.hosts.append(host)
    host.start()

    def reload() -> loopai.host.ReloadResult:
        return host.reload() if how == "reload" else asyncio.run(host.areload())

    assert [[f.problem for f in emit(host).failures] for _ in range(5)] == [["crashed"]] * 5
    assert exits.enabled is False and calls(called) == 5
    assert any(p.startswith("webhook handler 'exits' was disabled after 5 calls in a row") for p in host.problems)
    assert not emit(host).failures  # given up on: not called

    reloadable.tagged(2, "a", extra=failure.replace("{module}", reloadable.name))
    failed = reload()

    assert not failed and failed.generation == 1
    assert exits.enabled is False
    after = emit(host)
    assert (after.failures, after.delivered) == ((), ())
    assert calls(called) == 5  # nothing changed: still not called

    reloadable.tagged(3, "a")
    assert reload()  # a reload that succeeds gives it another chance
    assert exits.enabled is True
    assert [f.problem for f in emit(host).failures] == ["crashed"]
    assert calls(called) == 6
