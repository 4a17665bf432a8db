"""Delivery: ``loopai run`` with the http-webhook-handler against the same run without one, and durable
delivery with 8 in flight against httpx's ``AsyncClient`` posting the same payloads with the same concurrency.

The receiver is a small asyncio HTTP/1.1 server with keep-alive, in its own process (so that it does
not share the contenders' interpreter lock); it answers 200 at once and counts what it took.

* ``loopai run`` (each measurement a fresh process, as in ``throughput.py``, on its records, task,
  validator and sampler): no handler; the http-webhook-handler to the receiver; the handler to a
  port where nothing listens. Processing time is the summary's: from the first line read to the last
  result line written, every event stored in the outbox by then; the command's wall time adds the
  drain at its end (``drain_timeout`` is raised so that every delivery to the live receiver is made).
* durable delivery: ``host.emit(event)`` for each event (signed, a file outbox), then ``host.drain()``,
  timed from the first emit until the outbox says every one was delivered; against ``AsyncClient``
  with 8 tasks posting each event's JSON and checking every answer.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import throughput
from _contenders import run_child
from _receiver import Receiver

import loopai
from loopai_builtin import HttpWebhookHandler

TITLE = "Delivery"
RUN_GOAL = 0.8
"""``loopai run`` with the handler and a receiver that answers at once: this share of the no-handler records/s."""
DOWN_GOAL = 1.2
"""Receiver down: the run's processing time at most this many times the no-handler run's."""
DURABLE_GOAL = 0.7
"""Durable delivery: this share of AsyncClient's events/s, 8 in flight each."""
IN_FLIGHT = 8

FULL = {"records": 10_000, "events": 10_000, "runs": 3}
QUICK = {"records": 2_000, "events": 2_000, "runs": 1}

SECRET = "whsec_" + base64.b64encode(b"loopai-bench-signing-key-0123456789").decode()


def make_events(n: int) -> list[loopai.WebhookEvent]:
    """``n`` events with fresh ids (an outbox delivers an event id once) and a typical payload."""
    return [
        loopai.WebhookEvent(
            event_type=loopai.WebhookEventType.PROGRAM_EXECUTION_FAILED,
            task_id=throughput.TASK_ID,
            severity="error",
            payload={"error": "ZeroDivisionError: division by zero", "attempt": i, "input": {"a": i, "b": 0}},
        )
        for i in range(n)
    ]


def _port_nobody_listens_on() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/hooks/loopai"


# -- loopai run, in a child process per measurement -------------------------------------------------


RUNS = ("none", "instant", "down")
SELECTED = "json-schema-validator,percentage-sampler"


def _run_child(workdir: Path, kind: str) -> None:
    """One ``loopai run`` of ``kind``; prints processing seconds, wall seconds and the delivery table as JSON."""
    import jsonschema  # noqa: F401 - imported before the clock, for every contender

    import loopai.cli._main
    import loopai.run
    import loopai_builtin  # noqa: F401
    from loopai.cli import main

    loopai.cli._main.build_parser()
    cpu = _cpu_while_processing()
    plugins = SELECTED if kind == "none" else f"{SELECTED},http-webhook-handler"
    argv = ["run", str(workdir / "in.jsonl"), "--config", str(workdir / f"{kind}.toml")]
    argv += ["--tasks", str(workdir / "tasks.json"), "-o", str(workdir / f"out-{kind}.jsonl"), "--json"]
    summary = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(summary), contextlib.redirect_stderr(io.StringIO()):
        code = main([*argv, "--plugins", plugins])
    wall = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"loopai run ({kind}) exited with {code}")
    result = json.loads(summary.getvalue())
    measured = {"seconds": result["seconds"], "wall": wall, "cpu": cpu[0], "deliveries": result["deliveries"]}
    measured.update(_hooks(result))
    print(json.dumps(measured))


def _cpu_while_processing() -> list[float]:
    """A cell that will hold the CPU seconds the process (every thread) used while the records were
    processed: the summary's time, as CPU, which a busy shared machine does not inflate."""
    from loopai.run import Runner

    cell = [0.0]
    processing = Runner.run

    def run(self: Runner, source: Any) -> Any:
        started = time.process_time()
        try:
            return processing(self, source)
        finally:
            cell[0] = time.process_time() - started

    Runner.run = run  # type: ignore[method-assign]
    return cell


def _hooks(result: dict[str, Any]) -> dict[str, float]:
    return {f"{hook}_seconds": result["hooks"][hook]["seconds"] for hook in ("validate", "should_sample", "emit")}


def _measure_run(workdir: Path, kind: str, attempt: int) -> dict[str, Any]:
    outbox = f"outbox-{kind}-{attempt}.sqlite3"
    return run_child(__file__, [str(workdir), kind], workdir, f"loopai run ({kind})", outbox=outbox)


def _write_run_files(workdir: Path, records: int, receiver: str, down: str) -> None:
    throughput.generate(workdir / "in.jsonl", records)
    tasks = {
        throughput.TASK_ID: {
            "sampling_rate": throughput.SAMPLING_RATE,
            "input_schema": throughput.INPUT_SCHEMA,
            "output_schema": throughput.OUTPUT_SCHEMA,
        }
    }
    (workdir / "tasks.json").write_text(json.dumps(tasks), encoding="utf-8")
    handler = '\n[plugins.webhook_handlers.http-webhook-handler.configuration]\nurl = "{url}"\nsecret = "{secret}"\n'
    (workdir / "none.toml").write_text(throughput.CONFIG, encoding="utf-8")
    instant = throughput.CONFIG + handler.format(url=receiver, secret=SECRET) + "\n[delivery]\ndrain_timeout = 600\n"
    (workdir / "instant.toml").write_text(instant, encoding="utf-8")
    (workdir / "down.toml").write_text(throughput.CONFIG + handler.format(url=down, secret=SECRET), encoding="utf-8")


@dataclass
class RunResults:
    records: int
    best: dict[str, dict[str, Any]]
    """Per run kind, its fastest run (processing wall time)."""
    cpu: dict[str, float]
    """Per run kind, the least CPU seconds its processing took."""
    received: int

    def rate(self, kind: str) -> float:
        return self.records / self.best[kind]["seconds"]

    def cpu_us(self, kind: str) -> float:
        """CPU microseconds a record, every thread of the process, while processing."""
        return self.cpu[kind] / self.records * 1e6

    def deliveries(self, kind: str) -> dict[str, int]:
        (row,) = self.best[kind]["deliveries"]
        return {key: row[key] for key in ("delivered", "retried", "pending", "dead")}


def measure_runs(records: int, runs: int, receiver: Receiver) -> RunResults:
    """The three runs take turns, ``runs`` times; each one's fastest processing time is kept."""
    with tempfile.TemporaryDirectory(prefix="loopai-bench-delivery-") as name:
        workdir = Path(name)
        _write_run_files(workdir, records, receiver.url, _port_nobody_listens_on())
        _measure_run(workdir, "none", -1)  # fills the discovery cache, as an earlier run would have
        before = receiver.count()
        best: dict[str, dict[str, Any]] = {}
        cpu: dict[str, float] = {}
        for attempt in range(runs):
            for kind in RUNS if attempt % 2 == 0 else reversed(RUNS):
                measured = _measure_run(workdir, kind, attempt)
                _check_accounted(kind, measured, records)
                rate = records / measured["seconds"]
                print(
                    f"  loopai run {kind:<8} {rate:>8,.0f} records/s, {measured['cpu'] / records * 1e6:,.0f} µs CPU "
                    f"a record, {measured['wall']:.1f} s in all",
                    flush=True,
                )
                if kind not in best or measured["seconds"] < best[kind]["seconds"]:
                    best[kind] = measured
                cpu[kind] = min(cpu.get(kind, float("inf")), measured["cpu"])
        received = receiver.count() - before
    assert received == 2 * records * runs, f"the receiver took {received} requests, expected {2 * records * runs}"
    return RunResults(records, best, cpu, received)


def event_costs(count: int = 10_000) -> dict[str, float]:
    """CPU microseconds an event, in this process: building it (as ``loopai run`` does for a record's
    validation), serialising it, and storing it (``record_many``, 512 a commit)."""
    import uuid

    from loopai.delivery import SqliteOutbox

    host = loopai.Host(environ={}, outbox=False)
    valid = loopai.ValidationReport([loopai.ValidationResult(is_valid=True, validator_type="json-schema-validator")])
    records = [loopai.ExecutionRecord(program_id=uuid.uuid4(), task_id=uuid.uuid4()) for _ in range(count // 2)]
    observed = [host.observe(r, valid, loopai.SamplingReport(), payload={"line": n}) for n, r in enumerate(records)]
    started = time.process_time()
    events = [event for observation in observed for event in observation.events()]
    built = time.process_time() - started
    started = time.process_time()
    for event in events:
        event.model_dump_json()
    serialised = time.process_time() - started
    with tempfile.TemporaryDirectory(prefix="loopai-bench-") as directory:
        outbox = SqliteOutbox(os.path.join(directory, "outbox.sqlite3"))
        started = time.process_time()
        for start in range(0, len(events), 512):
            outbox.record_many([(event, ["http-webhook-handler"]) for event in events[start : start + 512]])
        stored = time.process_time() - started
        outbox.close()
    n = len(events) / 1e6
    return {"build": built / n, "serialise": serialised / n, "store": (stored - serialised) / n}


def _check_accounted(kind: str, measured: dict[str, Any], records: int) -> None:
    """Nothing lost: two events a record, each delivered, pending or dead."""
    if kind == "none":
        assert measured["deliveries"] == [], measured["deliveries"]
        return
    (row,) = measured["deliveries"]
    assert row["delivered"] + row["pending"] + row["dead"] == 2 * records, row
    if kind == "instant":
        assert row["delivered"] == 2 * records, row


# -- durable delivery against AsyncClient, in this process ---------------------------------------------


def async_client(url: str, events: list[loopai.WebhookEvent]) -> float:
    """``IN_FLIGHT`` tasks of one ``httpx.AsyncClient`` posting each event's JSON, checking every answer."""

    async def main() -> float:
        headers = {"content-type": "application/json"}
        limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
        async with httpx.AsyncClient(limits=limits) as client:
            (await client.post(url, json={})).raise_for_status()  # connect outside the timing
            queue = iter(events)

            async def worker() -> None:
                for event in queue:
                    (await client.post(url, content=event.model_dump_json(), headers=headers)).raise_for_status()

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
            return time.perf_counter() - started

    return asyncio.run(main())


def threaded_client(url: str, events: list[loopai.WebhookEvent]) -> float:
    """``IN_FLIGHT`` threads sharing one ``httpx.Client`` (thread-safe, a pool of as many connections): for scale."""
    from concurrent.futures import ThreadPoolExecutor

    headers = {"content-type": "application/json"}
    limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    with httpx.Client(limits=limits) as client, ThreadPoolExecutor(IN_FLIGHT) as pool:
        client.post(url, json={}).raise_for_status()

        def post(event: loopai.WebhookEvent) -> None:
            client.post(url, content=event.model_dump_json(), headers=headers).raise_for_status()

        started = time.perf_counter()
        list(pool.map(post, events))
        return time.perf_counter() - started


def durable(url: str, events: list[loopai.WebhookEvent]) -> float:
    """``host.emit`` for each event (signed, file outbox, ``IN_FLIGHT`` in flight), until all are delivered."""
    config = loopai.LoopaiConfig(autoload=False, delivery={"max_in_flight": IN_FLIGHT})
    handler = HttpWebhookHandler({"url": url, "secret": SECRET})
    with tempfile.TemporaryDirectory(prefix="loopai-bench-") as directory:
        outbox = os.path.join(directory, "outbox.sqlite3")
        with loopai.Host(config, plugins=[handler], outbox=outbox, environ={}) as host:
            host.emit(make_events(1)[0])  # connect outside the timing
            assert host.drain(30)
            emit = host.emit
            started = time.perf_counter()
            for event in events:
                emit(event)
            assert host.drain(600)
            took = time.perf_counter() - started
            assert host.outbox is not None
            counts = host.outbox.counts()
            assert counts["delivered"] == len(events) + 1 and counts["pending"] == counts["dead"] == 0, counts
    return took


def measure_durable(count: int, runs: int, receiver: Receiver) -> dict[str, float]:
    best = {"async": 0.0, "threads": 0.0, "ours": 0.0}
    before = receiver.count()
    for _ in range(runs):
        for who, contender in (("async", async_client), ("threads", threaded_client), ("ours", durable)):
            rate = count / contender(receiver.url, make_events(count))
            print(f"  durable {who:<6} {rate:>8,.0f} events/s", flush=True)
            best[who] = max(best[who], rate)
    taken = receiver.count() - before
    assert taken == (count + 1) * 3 * runs, f"the receiver took {taken}, expected {(count + 1) * 3 * runs}"
    return best


# -- the report ---------------------------------------------------------------------------------------


def _verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def section(
    runs: RunResults, costs: dict[str, float], durable_rates: dict[str, float], settings: dict[str, int], quick: bool
) -> str:
    """The Markdown section for docs/PERFORMANCE.md."""
    none, down = runs.best["none"], runs.best["down"]
    instant_ratio = runs.rate("instant") / runs.rate("none")
    down_ratio = down["seconds"] / none["seconds"]
    durable_ratio = durable_rates["ours"] / durable_rates["async"]
    cpu = {k: runs.cpu_us(k) for k in RUNS}
    lines = [
        f"| `loopai run`, {runs.records:,} records | records/s | / no handler | CPU µs a record | / no handler | "
        "wall time, drain included | delivered / retried / pending / dead | goal |",
        "|---|---:|---:|---:|---:|---:|---|---|",
        f"| no handler | {runs.rate('none'):,.0f} | 1.00x | {cpu['none']:,.0f} | 1.00x | {none['wall']:.1f} s | - | |",
    ]
    for kind, label, verdict in (
        ("instant", "http-webhook-handler, receiver answers at once", f"{instant_ratio:.2f}x, >= {RUN_GOAL}x"),
        ("down", "http-webhook-handler, receiver down", f"time {down_ratio:.2f}x, <= {DOWN_GOAL}x"),
    ):
        met = instant_ratio >= RUN_GOAL if kind == "instant" else down_ratio <= DOWN_GOAL
        counts = " / ".join(f"{v:,}" for v in runs.deliveries(kind).values())
        lines.append(
            f"| {label} | {runs.rate(kind):,.0f} | {runs.rate(kind) / runs.rate('none'):.2f}x | {cpu[kind]:,.0f} | "
            f"{cpu[kind] / cpu['none']:.2f}x | {runs.best[kind]['wall']:.1f} s | {counts} | "
            f"{_verdict(met)} ({verdict}) |"
        )
    durable_table = [
        f"| {settings['events']:,} events, {IN_FLIGHT} in flight | events/s | / AsyncClient | goal |",
        "|---|---:|---:|---|",
        f"| httpx `AsyncClient`, {IN_FLIGHT} tasks, no outbox, unsigned | {durable_rates['async']:,.0f} | 1.00x | |",
        f"| httpx `Client` shared by {IN_FLIGHT} threads, no outbox, unsigned | {durable_rates['threads']:,.0f} | "
        f"{durable_rates['threads'] / durable_rates['async']:.2f}x | for scale, not judged |",
        f"| ours: `host.emit` + workers, durable, signed | {durable_rates['ours']:,.0f} | {durable_ratio:.2f}x | "
        f"{_verdict(durable_ratio >= DURABLE_GOAL)} (>= {DURABLE_GOAL}x) |",
    ]
    missed = [
        name
        for name, ok in (
            ("run with an instant receiver", instant_ratio >= RUN_GOAL),
            ("run with the receiver down", down_ratio <= DOWN_GOAL),
            ("durable delivery", durable_ratio >= DURABLE_GOAL),
        )
        if not ok
    ]
    verdict = "**Goals met.**" if not missed else f"**Goals missed**: {', '.join(missed)}."
    per_event = costs["build"] + costs["serialise"] + costs["store"]
    return f"""## {TITLE}

`loopai run` with the `http-webhook-handler` against the same run without a handler, and durable
delivery against httpx's `AsyncClient`; one receiver for all, a small asyncio HTTP/1.1 server with
keep-alive in its own process that answers 200 at once and counts what it took. httpx
{httpx.__version__}, SQLite {sqlite3.sqlite_version}, {platform.python_implementation()} {platform.python_version()}.

- `loopai run`: the records of the throughput benchmark (its task, `json-schema-validator`,
  `percentage-sampler`), two events a record (its run status and its validation), each run a fresh
  process; the three take turns, {settings["runs"]} time(s){" (quick mode)" if quick else ""}. Records/s
  is the summary's: from the first line read to the last result line written, every event stored
  in the outbox by then (a result line is written only once its events are); the fastest run of
  each is shown. CPU µs a record is the CPU time of the whole process (every thread) over the same
  span, the least of the runs: a busy shared machine inflates wall times, much less CPU time. The
  wall time adds start-up and the drain at the end: for the live receiver `drain_timeout` is raised
  so that every delivery is made before the command exits; for the dead one the defaults apply
  (3 retries, a circuit that opens after 5 failures in a row). Checked every time: delivered +
  pending + dead = 2 x records, all delivered to the live receiver, which took exactly
  {runs.received:,} requests in all.
- Durable delivery: `host.emit(event)` for each event, then `host.drain()`, timed from the first
  emit until the outbox says every one was delivered (file outbox, signed: Standard Webhooks and
  `X-Loopai-Signature`), against {IN_FLIGHT} tasks of one `httpx.AsyncClient` posting each event's JSON
  and checking each answer; best of {settings["runs"]}. httpx's async stack costs about twice its sync
  one per request here, so {IN_FLIGHT} threads sharing one sync `httpx.Client` are shown too, for scale:
  the stronger of the two plain clients.

{chr(10).join(lines)}

{chr(10).join(durable_table)}

{verdict}

Where the CPU goes. Without a handler nothing is emitted (no handler takes the events), so the
no-handler run builds no event. With one, each record's two events are built, serialised and
stored before its line is written: {per_event:,.0f} µs of CPU an event, measured alone in one
process ({costs["build"]:,.1f} µs building it: a time-ordered UUID and the pydantic model;
{costs["serialise"]:,.1f} µs serialising it; {costs["store"]:,.1f} µs storing it and its pending delivery, 512
events a commit: four B-tree inserts an event, each at the end of its index as event ids are
time-ordered), so about {2 * per_event:,.0f} µs a record against the {cpu["none"]:,.0f} µs a record takes
without events: that is the receiver-down run, where the circuit opened after a few attempts and nothing else was
sent. With the live receiver, the delivery workers share the interpreter with the records: each
delivery (claim, decode, sign, a POST through httpcore on a keep-alive connection of its own, the
delivered mark) costs more CPU than a
record's processing, and {2 * runs.records:,} of them run alongside the {runs.records:,} records.
{_explained(missed, runs.deliveries("down"))}
"""


def _explained(missed: list[str], down: dict[str, int]) -> str:
    """What the numbers mean for the goals that were missed, and what the change buys anyway."""
    gains = (
        "What the change buys shows in the wall times and the delivery columns: the old inline delivery "
        "made one POST at a time on the record's path (about 500 records/s with the handler, 5 s a record "
        f"with the receiver down); now the records never wait for a receiver, {IN_FLIGHT} POSTs are in flight "
        f"per handler, a dead endpoint costs {down['retried']} attempts before its circuit opens, and nothing "
        "is lost: the dead receiver's deliveries wait in the outbox for `loopai events deliver`."
    )
    if not any(name.startswith("run") for name in missed):
        return "\n" + gains
    return (
        "\nThe processing goals assumed that storing and delivering events costs little next to "
        "processing a record; measured here it does not, and the gap is not closed by cutting corners: "
        "every event is on disk before its record's result line is written, and delivery starts at once, "
        "alongside the work, not after it. " + gains
    )


def run(quick: bool) -> str:
    """Measure and return the Markdown section."""
    settings = QUICK if quick else FULL
    receiver = Receiver()
    try:
        runs = measure_runs(settings["records"], settings["runs"], receiver)
        rates = measure_durable(settings["events"], settings["runs"], receiver)
    finally:
        receiver.close()
    return section(runs, event_costs(), rates, settings, quick)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _run_child(Path(sys.argv[2]), sys.argv[3])
    else:
        sys.stdout.write(run("--quick" in sys.argv))
