"""A delivery that runs on and on is said, naming its handler and the event, instead of holding a slot silently."""

from __future__ import annotations

import logging
import re
import threading
import time

import pytest

import loopai


class Hangs(loopai.WebhookHandlerPlugin):
    """Takes every event but one kind at once; holds ``program.execution.failed`` until released."""

    def __init__(self, name: str = "hangs"):
        super().__init__(name=name)
        self.release = threading.Event()

    def handle_event(self, event, context):
        if event.event_type == "program.execution.failed":
            self.release.wait(30)


def said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "loopai.delivery" and r.levelno == logging.WARNING]


@pytest.mark.parametrize("timeout", [None, 20.0])
def test_a_delivery_that_runs_on_names_its_handler_and_event(make_host, caplog, timeout) -> None:
    handler = Hangs()
    handler.timeout = timeout
    config = loopai.LoopaiConfig(dispatch={"stall_notice": 0.2})
    host = make_host(handler, config=config, retry_backoff=0.001).start()
    stuck = loopai.WebhookEvent(event_type="program.execution.failed")
    host.emit(stuck)
    for _ in range(5):
        host.emit(loopai.WebhookEvent(event_type="program.execution.completed"))
    try:
        time.sleep(1.0)  # 0.2 s, then twice as long...: a few notices, never one per look
    finally:
        handler.release.set()
    assert host.drain(10)

    lines = [line for line in said(caplog) if "a delivery has run" in line]
    assert 1 <= len(lines) <= 3, lines
    assert re.match(rf"webhook handler 'hangs': a delivery has run 0\.[2-9] s \(event {stuck.event_id}, ", lines[0])
    ends = "its timeout ends it after 20 s" if timeout else "if it hangs, give it a timeout (timeout = 5 in its table"
    assert ends in lines[0]
    assert host.delivery_report()[0].delivered == 6
