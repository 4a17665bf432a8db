"""Durable event delivery: events per second through host.emit to a loopback HTTP receiver, against plain httpx.

Contenders, taking turns against one receiver (a small asyncio HTTP/1.1 server with keep-alive,
in its own process so that it does not share the client's interpreter lock):

* plain httpx: one reused ``httpx.Client`` POSTing each event's JSON (``event.model_dump_json()``);
* httpx's transport: the same requests built by hand and sent with ``httpx.HTTPTransport``, the
  layer under the client that the ``http-webhook-handler`` itself uses (for scale, not judged);
* ours, durable: ``host.emit(event)`` with the ``http-webhook-handler`` and a file outbox in a
  temporary directory, signed (Standard Webhooks and ``X-Loopai-Signature``) and unsigned;
* ours, no outbox: the same host with ``outbox=False``, to show what durability costs.
"""

from __future__ import annotations

import base64
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import httpx

import loopai
from loopai_builtin import HttpWebhookHandler

TITLE = "Durable delivery"
GOAL = 0.7
"""Ours, durable, must deliver at least this fraction of plain httpx's events per second."""

# (events per timed run, timed runs per contender)
FULL = (2000, 9)  # nine turns: on a shared 2-core machine a contender needs several to get one undisturbed run
QUICK = (300, 2)

SECRET = "whsec_" + base64.b64encode(b"loopai-bench-signing-key-0123456789").decode()

# The receiver: reads each request's head and body, answers 200 "ok" and keeps the connection
# open; GET /count answers how many POSTs it took. Prints its port, then serves until killed.
RECEIVER = r"""
import asyncio

count = 0
OK = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok"


async def serve(reader, writer):
    global count
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            if head.startswith(b"GET /count"):
                text = str(count).encode()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(text), text))
            else:
                count += 1
                writer.write(OK)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", 0, backlog=64)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
"""


class Receiver:
    """The receiver process; ``url`` to POST to, ``count()`` of POSTs taken so far."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL
        )
        assert self._process.stdout is not None
        port = int(self._process.stdout.readline())
        self.base = f"http://127.0.0.1:{port}"
        self.url = f"{self.base}/hooks/loopai"

    def count(self) -> int:
        return int(httpx.get(f"{self.base}/count").text)

    def close(self) -> None:
        self._process.kill()
        self._process.wait(10)
        if self._process.stdout is not None:
            self._process.stdout.close()


def make_events(n: int) -> list[loopai.WebhookEvent]:
    """``n`` events with fresh ids (an outbox delivers an event id once) and a typical payload."""
    return [
        loopai.WebhookEvent(
            event_type=loopai.WebhookEventType.PROGRAM_EXECUTION_FAILED,
            task_id=uuid.uuid4(),
            execution_id=uuid.uuid4(),
            severity="error",
            payload={"error": "ZeroDivisionError: division by zero", "attempt": i, "input": {"a": i, "b": 0}},
        )
        for i in range(n)
    ]


# -- the contenders: each delivers ``events`` and returns the seconds it took ---------------


def plain_httpx(url: str, events: list[loopai.WebhookEvent]) -> float:
    """One reused client POSTing each event's JSON (serialised the fastest way), checking every answer."""
    json_header = {"content-type": "application/json"}
    with httpx.Client() as client:
        client.post(url, json={}).raise_for_status()  # connect outside the timing, as the host does
        started = time.perf_counter()
        for event in events:
            client.post(url, content=event.model_dump_json(), headers=json_header).raise_for_status()
        return time.perf_counter() - started


def plain_transport(url: str, events: list[loopai.WebhookEvent]) -> float:
    """One reused ``httpx.HTTPTransport`` sending each event's JSON, checking every answer."""
    target = httpx.URL(url)
    json_header = [(b"content-type", b"application/json")]
    with httpx.HTTPTransport() as transport:
        _send(transport, httpx.Request("POST", target, json={}))  # connect outside the timing
        started = time.perf_counter()
        for event in events:
            _send(transport, httpx.Request("POST", target, content=event.model_dump_json(), headers=json_header))
        return time.perf_counter() - started


def _send(transport: httpx.HTTPTransport, request: httpx.Request) -> None:
    response = transport.handle_request(request)
    try:
        response.read()
    finally:
        response.close()
    assert response.status_code == 200, response.status_code


def ours(url: str, events: list[loopai.WebhookEvent], *, durable: bool, signed: bool) -> float:
    """``host.emit`` in a loop; with ``durable``, checks that the outbox says all were delivered."""
    settings = {"url": url, "secret": SECRET} if signed else {"url": url}
    with tempfile.TemporaryDirectory(prefix="loopai-bench-") as directory:
        outbox: str | bool = os.path.join(directory, "outbox.sqlite3") if durable else False
        config = loopai.LoopaiConfig(autoload=False)
        with loopai.Host(config, plugins=[HttpWebhookHandler(settings)], outbox=outbox, environ={}) as host:
            assert host.emit(make_events(1)[0]).ok  # connect outside the timing
            emit = host.emit
            started = time.perf_counter()
            for event in events:
                emit(event)
            took = time.perf_counter() - started
            if host.outbox is not None:
                counts = host.outbox.counts()
                assert counts == {"pending": 0, "delivered": len(events) + 1, "dead": 0}, counts
    return took


CONTENDERS: dict[str, tuple[str, Callable[[str, list[loopai.WebhookEvent]], float]]] = {
    "plain": ("plain httpx, one `Client`, no outbox, unsigned", plain_httpx),
    "transport": ("httpx's transport alone (`HTTPTransport`, no `Client`), no outbox, unsigned", plain_transport),
    "durable-signed": ("ours, durable, signed", lambda url, events: ours(url, events, durable=True, signed=True)),
    "durable": ("ours, durable, unsigned", lambda url, events: ours(url, events, durable=True, signed=False)),
    "direct-signed": ("ours, no outbox, signed", lambda url, events: ours(url, events, durable=False, signed=True)),
}
JUDGED = ("durable-signed", "durable")


@dataclass(frozen=True)
class Result:
    """Each contender's best events per second."""

    per_second: dict[str, float]
    events: int
    runs: int

    def ratio(self, who: str) -> float:
        return self.per_second[who] / self.per_second["plain"]

    def met(self, who: str) -> bool:
        return self.ratio(who) >= GOAL


def measure(quick: bool = False, progress: Callable[[str, float], None] | None = None) -> Result:
    """The contenders take turns, run after run, each on fresh events; keep each one's fastest run."""
    n, runs = QUICK if quick else FULL
    receiver = Receiver()
    try:
        best = dict.fromkeys(CONTENDERS, 0.0)
        expected = receiver.count()
        for _ in range(runs):
            for who, (_, contender) in CONTENDERS.items():
                events = make_events(n)
                rate = n / contender(receiver.url, events)
                expected += n + 1  # the untimed first request of each run
                best[who] = max(best[who], rate)
                if progress is not None:
                    progress(who, rate)
        taken = receiver.count()
        assert taken == expected, f"the receiver took {taken} requests, expected {expected}"
    finally:
        receiver.close()
    return Result(best, n, runs)


# -- the report -------------------------------------------------------------------------------


def table(result: Result) -> str:
    lines = ["| contender | events/s | / plain httpx | goal |", "|---|---:|---:|---|"]
    for who, (label, _) in CONTENDERS.items():
        if who == "plain":
            verdict = ""
        elif who == "transport":
            verdict = "for scale, not judged"
        elif who in JUDGED:
            verdict = "met" if result.met(who) else "**missed**"
        else:
            verdict = "not judged"
        lines.append(f"| {label} | {result.per_second[who]:,.0f} | {result.ratio(who):.2f}x | {verdict} |")
    return "\n".join(lines)


def summary(result: Result) -> str:
    missed = [who for who in JUDGED if not result.met(who)]
    ratios = ", ".join(f"{CONTENDERS[who][0]} {result.ratio(who):.2f}x" for who in JUDGED)
    if not missed:
        return f"**Goal met**: ours, durable, delivers at least {GOAL}x plain httpx's events per second ({ratios})."
    return f"**Goal missed**: ours, durable, must deliver at least {GOAL}x plain httpx's events per second ({ratios})."


def section(result: Result, quick: bool) -> str:
    """The Markdown section for docs/PERFORMANCE.md."""
    per_event = {who: 1e6 / rate for who, rate in result.per_second.items()}
    durability = per_event["durable-signed"] - per_event["direct-signed"]
    return f"""## {TITLE}

Events per second from `host.emit(event)` with the `http-webhook-handler` to a receiver on
127.0.0.1, against plain httpx posting the same JSON payloads with one reused `httpx.Client`, in
the same run and to the same receiver; httpx's transport alone, without its client, is shown for
scale. httpx {httpx.__version__}, SQLite {sqlite3.sqlite_version},
{platform.python_implementation()} {platform.python_version()}.

- The receiver is a small asyncio HTTP/1.1 server with keep-alive in its own process; it answers
  200 at once. Both sides keep one connection open; every answer is checked (ours: the outbox
  must say every delivery is `delivered`, and the receiver must have taken every request).
- Durable: the event and its pending delivery are committed to a SQLite outbox (WAL, a file in a
  temporary directory) before the POST, one commit per event; the delivered marks after the
  answers are committed in groups (up to 64, or after 50 ms). Signed: Standard Webhooks and
  `X-Loopai-Signature` headers (two HMAC-SHA256s) and the `X-Loopai-*` headers; plain httpx
  sends only the JSON.
- Timing: the contenders take turns, {result.runs} runs of {result.events:,} events each, every run
  on fresh events (an outbox delivers an event id once); the table shows each one's fastest
  run{" (quick mode: few, short runs)" if quick else ""}.
- Goal: ours, durable, at least {GOAL}x plain httpx's events per second.

{table(result)}

{summary(result)}

Per event, durability costs {durability:,.0f} µs here ({per_event["durable-signed"]:,.0f} µs against
{per_event["direct-signed"]:,.0f} µs without the outbox); plain httpx takes {per_event["plain"]:,.0f} µs, most of it the
loopback round trip, and httpx's transport alone {per_event["transport"]:,.0f} µs. Where ours gains
and loses, measured with `perf`, `strace` and `cProfile`:

- the handler sends through httpx's transport (`httpx.HTTPTransport`: httpx's connection pool and
  TLS setup), not `httpx.Client`: the client layer (auth and redirect machinery, cookie extraction
  that copies every request header, response bookkeeping) costs about 70 µs a request here and
  does nothing a webhook needs. When the environment names an HTTP proxy, the handler uses
  `httpx.Client` for the URLs concerned, so that proxies work exactly as in httpx;
- the commit that records each event costs about 30 µs alone and more between network round
  trips: SQLite in WAL mode makes about fourteen system calls per commit (a frame header and a
  page per changed page, four pages here, and six `fcntl` locks), slow on this virtual disk;
- a signed request carries seven headers more than plain httpx's; they are encoded once, by the
  handler, instead of one by one by httpx, and two HMAC-SHA256s sign each request.

What keeps the outbox this cheap:

- recording is one statement (an `INSERT` into a view whose trigger stores the event and the pending
  delivery, one implicit transaction) instead of `BEGIN`, two `INSERT`s and `COMMIT`;
- deliveries are a `WITHOUT ROWID` table, and the only status index is partial (deliveries not yet
  delivered): a delivered mark rewrites two pages;
- checkpoints (where `synchronous=NORMAL` fsyncs) run on a background thread, not in the commit of
  whichever emit crosses SQLite's threshold;
- delivered marks are written in groups: a killed process may send its last few events again
  on the next start (at least once, as promised), but never loses one, since the pending row was
  committed before the POST;
- the handler serialises the body once, with `model_dump_json`, derives its signing key once per
  secret, and parses the URL and timeout once.

What would go further changes guarantees, so it is not done: an exclusive lock on the outbox file
(`loopai events` could not read it while a host runs), `synchronous=OFF` (a power cut could
corrupt the file), or recording several events in one commit (an emit would return before its
event is stored).
"""


def run(quick: bool) -> str:
    """Measure and return the Markdown section."""
    result = measure(quick, progress=_print_run)
    for who in CONTENDERS:
        print(f"  best {who:<15} {result.per_second[who]:>8,.0f} events/s  {result.ratio(who):.2f}x", flush=True)
    return section(result, quick)


def _print_run(who: str, rate: float) -> None:
    print(f"  {who:<15} {rate:>8,.0f} events/s", flush=True)


if __name__ == "__main__":
    sys.stdout.write(run("--quick" in sys.argv))
