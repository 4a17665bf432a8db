"""console-webhook-handler: the box, the payload, colours (and when not), retry and dry-run lines."""

from __future__ import annotations

import io
import json
import re
import uuid

import pytest

import loopai
from loopai_builtin import ConsoleWebhookHandler

ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def printed(handler, evt, context=None):
    stream = handler._stream
    handler.handle_event(evt, context or loopai.WebhookHandlerContext())
    return stream.getvalue()


def test_the_box_holds_type_severity_ids_and_timestamp(event, make_host):
    stream = io.StringIO()
    evt = event("program.execution.failed", severity="error", program_id=uuid.uuid4())
    with make_host(ConsoleWebhookHandler(stream=stream)) as host:
        assert list(host.emit(evt).delivered) == ["console-webhook-handler"]
    text = stream.getvalue()
    assert "\x1b" not in text  # a StringIO is not a terminal
    lines = text.splitlines()
    assert lines[0].startswith("+- program.execution.failed ")
    box = lines[: lines.index("payload:")]
    assert len({len(line) for line in box}) == 1  # a closed rectangle
    for label, value in [
        ("severity", "error"),
        ("event id", evt.event_id),
        ("timestamp", evt.timestamp.isoformat()),
        ("task", evt.task_id),
        ("execution", evt.execution_id),
        ("program", evt.program_id),
    ]:
        assert any(line.startswith(f"| {label:<10} {value} ") for line in box), (label, box)
    payload = text.split("payload:\n", 1)[1]
    assert json.loads(payload) == evt.payload
    assert '\n  "error": "division by zero",' in payload  # indented


def test_absent_ids_are_left_out(event):
    handler = ConsoleWebhookHandler(stream=io.StringIO())
    text = printed(handler, event("task.created", task_id=None, execution_id=None, payload={}))
    assert "| task " not in text and "| execution " not in text and "| program " not in text
    assert "payload:\n{}\n" in text


@pytest.mark.parametrize(("severity", "code"), [("info", "36"), ("warning", "33"), ("error", "31"), ("critical", "35")])
def test_colour_follows_the_severity(event, severity, code):
    handler = ConsoleWebhookHandler({"color": "always"}, stream=io.StringIO())
    evt = event(severity=severity)
    text = printed(handler, evt)
    assert text.startswith(f"\x1b[{code}m+-")
    assert f"\x1b[{code}m\x1b[1m{severity}\x1b[0m" in text
    assert ANSI.sub("", text) == handler.render(evt, loopai.WebhookHandlerContext(), colour=False)


@pytest.mark.parametrize(
    ("stream", "environ", "setting", "coloured"),
    [
        (Terminal, {}, "auto", True),
        (io.StringIO, {}, "auto", False),
        (Terminal, {"NO_COLOR": "1"}, "auto", False),
        (Terminal, {"NO_COLOR": ""}, "auto", True),  # empty means unset
        (io.StringIO, {"FORCE_COLOR": "1"}, "auto", True),
        (Terminal, {"NO_COLOR": "1", "FORCE_COLOR": "1"}, "auto", False),
        (io.StringIO, {}, "always", True),
        (Terminal, {}, "never", False),
    ],
)
def test_colour_only_on_a_terminal_and_never_with_no_color(event, stream, environ, setting, coloured):
    handler = ConsoleWebhookHandler({"color": setting}, stream=stream(), environ=environ)
    assert ("\x1b[" in printed(handler, event(severity="warning"))) is coloured


def test_no_color_from_the_process_environment(event, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    assert "\x1b" not in printed(ConsoleWebhookHandler(stream=Terminal()), event())


def test_retry_line_only_on_retries(event):
    handler = ConsoleWebhookHandler(stream=io.StringIO())
    first = printed(handler, event(), loopai.WebhookHandlerContext(retry_attempt=0, max_retries=3))
    assert "retry attempt" not in first
    again = printed(handler, event(), loopai.WebhookHandlerContext(retry_attempt=2, max_retries=3))
    assert "retry attempt 2 of 3\n" in again


def test_dry_run_line(event, make_host):
    stream = io.StringIO()
    with make_host(ConsoleWebhookHandler(stream=stream)) as host:
        host.emit(event(), dry_run=True)
        assert stream.getvalue().splitlines()[-1].startswith("[DRY-RUN]")
        host.emit(event())
    assert stream.getvalue().count("[DRY-RUN]") == 1


@pytest.mark.parametrize("where", ["stdout", "stderr"])
def test_the_stream_is_a_setting(event, capsys, where):
    ConsoleWebhookHandler({"stream": where}).handle_event(event(), loopai.WebhookHandlerContext())
    out, err = capsys.readouterr()
    assert ("+- program.execution.failed" in (out if where == "stdout" else err)) and not (
        err if where == "stdout" else out
    )


def test_identity():
    handler = ConsoleWebhookHandler()
    assert (handler.name, handler.priority) == ("console-webhook-handler", 0)
    assert frozenset(handler.supported_events) == frozenset(loopai.WebhookEventType)


# -- alerts that do not flood ---------------------------------------------------------------------------


def test_at_most_max_per_minute_boxes_per_type_and_task_then_exact_counts_at_shutdown(event, make_host):
    stream = io.StringIO()
    handler = ConsoleWebhookHandler({"max_per_minute": 10}, stream=stream)
    busy, quiet = uuid.uuid4(), uuid.uuid4()
    with make_host(handler) as host:
        for n in range(250):
            host.emit(event("program.execution.failed", task_id=busy, payload={"n": n, "task": "invoice-extraction"}))
        for _ in range(7):
            host.emit(event("program.execution.failed", task_id=quiet, payload={}))
        for _ in range(12):
            host.emit(event("program.execution.timeout", task_id=busy, payload={"task": "invoice-extraction"}))
        assert stream.getvalue().count("+- program.execution.failed ") == 17  # 10 of the busy task, 7 of the other
        assert stream.getvalue().count("+- program.execution.timeout ") == 10
        assert "more" not in stream.getvalue()
    text = stream.getvalue()
    assert text.splitlines()[-2:] == [
        "240 more program.execution.failed alerts for invoice-extraction",
        "2 more program.execution.timeout alerts for invoice-extraction",
    ]
    shown = [json.JSONDecoder().raw_decode(part)[0] for part in text.split("payload:\n")[1:]]
    assert [p["n"] for p in shown if "n" in p] == list(range(10))  # the first ten, in order


def test_the_limit_is_a_setting_and_zero_means_none(event):
    stream = io.StringIO()
    handler = ConsoleWebhookHandler({"max_per_minute": 0, "compact": True}, stream=stream)
    for _ in range(500):
        handler.handle_event(event(), loopai.WebhookHandlerContext())
    handler.report_held()
    assert len(stream.getvalue().splitlines()) == 500


def test_compact_prints_one_line_per_event(event):
    stream = io.StringIO()
    handler = ConsoleWebhookHandler({"compact": True}, stream=stream)
    evt = event("validation.failed", severity="warning", payload={"task": "sentiment", "is_valid": False})
    handler.handle_event(evt, loopai.WebhookHandlerContext(retry_attempt=1, max_retries=3, is_dry_run=True))
    (line,) = stream.getvalue().splitlines()
    assert line == (
        f"{evt.timestamp.isoformat()} [warning] validation.failed task=sentiment execution={evt.execution_id} "
        f'event={evt.event_id} retry=1/3 [DRY-RUN] {{"task":"sentiment","is_valid":false}}'
    )


def test_a_long_payload_is_clipped_on_a_compact_line(event):
    stream = io.StringIO()
    ConsoleWebhookHandler({"compact": True, "color": "always"}, stream=stream).handle_event(
        event(severity="error", payload={"text": "x" * 1000}), loopai.WebhookHandlerContext()
    )
    line = stream.getvalue()
    assert line.count("\n") == 1 and line.rstrip().endswith("xxx...") and len(line) < 500
    assert "\x1b[31m[error]\x1b[0m" in line


def test_after_a_quiet_minute_the_next_box_says_how_many_were_not_shown():
    from loopai_builtin._throttle import Throttle

    now = [0.0]
    throttle: Throttle[str] = Throttle(3, window=60, clock=lambda: now[0])
    assert [throttle.admit("a") for _ in range(5)] == [(True, 0)] * 3 + [(False, 0)] * 2
    assert throttle.admit("b") == (True, 0)  # another key has its own budget
    now[0] = 59.9
    assert throttle.admit("a") == (False, 0)
    now[0] = 60.0  # a minute after the three that went through: room for three again
    assert throttle.admit("a") == (True, 3)  # told once, with the count
    assert throttle.held() == {}
    assert [throttle.admit("a") for _ in range(3)] == [(True, 0), (True, 0), (False, 0)]
    assert throttle.held() == {"a": 1}
