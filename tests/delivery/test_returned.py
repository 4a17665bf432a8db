"""A handler that returns a value instead of raising: delivered all the same, and said once.

``handle_event`` signals a failed delivery by raising; what it returns is ignored. A handler that
returns ``response.ok`` (False on a failed POST) would have its failures counted as deliveries
without a word: the host warns once per handler, on the ``loopai.delivery`` logger, whichever
way the handler is reached (inline or by the delivery workers, sync or async).
"""

from __future__ import annotations

import asyncio
import logging

import pytest

import loopai


class Pager(loopai.WebhookHandlerPlugin):
    """Returns what a careless HTTP handler returns: ``response.ok``, here False."""

    def __init__(self, name: str = "pager"):
        super().__init__(name=name)
        self.calls = 0

    def handle_event(self, event, context):
        self.calls += 1
        return False


class AsyncPager(loopai.WebhookHandlerPlugin):
    """An async handler that returns the receiver's answer, a dict."""

    def __init__(self, name: str = "async-pager"):
        super().__init__(name=name)
        self.calls = 0

    async def handle_event(self, event, context):
        self.calls += 1
        return {"ok": False}


class Quiet(loopai.WebhookHandlerPlugin):
    """Returns nothing, as it should."""

    def handle_event(self, event, context):
        return None


def said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "loopai.delivery" and r.levelno == logging.WARNING]


def warning(name: str, what: str) -> str:
    return (
        f"webhook handler {name!r} returned {what} from handle_event: the delivery counts as made; "
        "raise an exception to have it retried"
    )


def test_inline_emit_delivers_and_says_it_once_per_handler(event, caplog) -> None:
    pager, other = Pager(), AsyncPager()
    with loopai.Host(plugins=[pager, other, Quiet(name="quiet")], environ={}, outbox=None) as host:
        reports = [host.emit(event()) for _ in range(3)]
        reports.append(asyncio.run(host.aemit(event())))

    assert all(r.ok and sorted(r.delivered) == ["async-pager", "pager", "quiet"] for r in reports)
    assert (pager.calls, other.calls) == (4, 4)  # delivered at once: never retried
    assert sorted(said(caplog)) == [warning("async-pager", "a dict"), warning("pager", "False")]


def test_aemit_alone_says_it_too(event, caplog) -> None:
    with loopai.Host(plugins=[Pager()], environ={}, outbox=None) as host:
        report = asyncio.run(host.aemit(event()))

    assert report.delivered == ("pager",)
    assert said(caplog) == [warning("pager", "False")]


def test_the_delivery_workers_deliver_and_say_it_once_per_handler(make_host, event, settle, caplog) -> None:
    pager, other = Pager(), AsyncPager()
    host = make_host(pager, other)

    for _ in range(3):
        assert host.emit(event()).ok
    settle(host)

    assert {r.handler: (r.delivered, r.retried, r.dead) for r in host.delivery_report()} == {
        "async-pager": (3, 0, 0),
        "pager": (3, 0, 0),
    }
    assert sorted(said(caplog)) == [warning("async-pager", "a dict"), warning("pager", "False")]
