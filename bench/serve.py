"""``loopai serve``'s goals, measured against the strongest alternatives in the same run.

1. ``POST /api/v1/validate`` at 64 concurrent connections, requests/s and p50/p99, against the least
   FastAPI app that validates the same record against the same schema with ``jsonschema``
   (``bench/_serve_baseline.py``), both under uvicorn with the same settings (one worker, its
   defaults: uvloop, httptools, access log). The load comes from another process: ``wrk`` when it
   is installed (Debian: ``apt-get install wrk``), else an httpx client in a child process.
2. ``batch/run`` over SSE with 1K, 10K and 100K items sent as NDJSON by ``loopai.client``, items/s
   against ``loopai run`` on the same records (its engine's own time, startup excluded), and the
   server's peak memory (VmHWM of a fresh server per size) at 10K and 100K.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import throughput

TITLE = "loopai serve"
HERE = Path(__file__).resolve().parent
CONNECTIONS = 64
VALIDATE_GOAL = 0.8
BATCH_GOAL = 0.7
KEY = "bench-key"
SIZES, QUICK_SIZES = (1_000, 10_000, 100_000), (1_000, 10_000)
RECORD: dict[str, Any] = {
    "id": "0f1c2a9e-0d4b-4a8e-9b8e-2f0c1d3e4a5b",
    "program_id": "00000000-0000-4000-8000-000000000001",
    "task_id": throughput.TASK_ID,
    "input": {"text": "review number 7: the product was fine"},
    "output": {"label": "positive", "confidence": 0.93},
    "latency_ms": 31.5,
    "status": "success",
    "executed_at": "2025-03-14T09:00:00Z",
}


# -- processes ------------------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _environ(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPAI_", "PROMETHEUS_"))}
    env.update(
        LOOPAI_OUTBOX=str(workdir / "outbox.sqlite3"),
        LOOPAI_CACHE_DIR=str(workdir / "cache"),
        XDG_STATE_HOME=str(workdir / "state"),
        LOOPAI_API_KEYS=KEY,
        PYTHONPATH=os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]),
    )
    return env


def _start(command: list[str], workdir: Path, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        command, cwd=workdir, env=_environ(workdir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{command} exited with {process.returncode}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
            return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{command} did not start")


def _ours(workdir: Path, port: int, plugins: str, tasks: str = "tasks.json") -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "loopai", "serve", "--port", str(port), "--config", "loopai.toml"]
    return _start([*command, "--tasks", tasks, "--plugins", plugins], workdir, port)


def _baseline(workdir: Path, port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "uvicorn", "_serve_baseline:create_app", "--factory", "--port", str(port)]
    return _start(command, workdir, port)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


def _peak_rss_mb(process: subprocess.Popen[bytes]) -> float:
    status = Path(f"/proc/{process.pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]


# -- load -----------------------------------------------------------------------------------


def _load(url: str, body: bytes, seconds: float) -> dict[str, float]:
    """Requests/s and p50/p99 in ms, from another process: wrk, else an httpx client."""
    if shutil.which("wrk"):
        return _wrk(url, body, seconds)
    done = subprocess.run(
        [sys.executable, __file__, "--load", url, str(seconds)], input=body, capture_output=True, check=True
    )
    return json.loads(done.stdout)


def _wrk(url: str, body: bytes, seconds: float) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.headers["Authorization"] = "Bearer {KEY}"\nwrk.body = {json.dumps(body.decode())}\n'
        )
    try:
        command = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--latency", "-s", script.name, url]
        text = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script.name)
    if "Non-2xx" in text:
        raise RuntimeError(f"wrk saw errors from {url}:\n{text}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    return {"rps": rps, "p50": _wrk_ms(text, "50%"), "p99": _wrk_ms(text, "99%")}


def _wrk_ms(text: str, percentile: str) -> float:
    value, unit = re.search(rf"^\s+{percentile}\s+([\d.]+)(us|ms|s)\s*$", text, re.M).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _python_load(url: str, seconds: float, body: bytes) -> dict[str, float]:
    """The fallback load generator (a child process): CONNECTIONS clients posting ``body`` in a loop."""
    import asyncio

    async def run() -> list[float]:
        latencies: list[float] = []
        limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
        async with httpx.AsyncClient(limits=limits, headers=headers) as client:
            deadline = time.perf_counter() + seconds

            async def worker() -> None:
                while time.perf_counter() < deadline:
                    started = time.perf_counter()
                    answer = await client.post(url, content=body)
                    answer.raise_for_status()
                    latencies.append(time.perf_counter() - started)

            await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
        return latencies

    latencies = sorted(asyncio.run(run()))
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    return {"rps": len(latencies) / seconds, "p50": pick(0.5), "p99": pick(0.99)}


# -- the two goals --------------------------------------------------------------------------


def _validate_goal(workdir: Path, quick: bool) -> dict[str, dict[str, float]]:
    seconds, rounds = (3.0, 1) if quick else (4.0, 5)
    ours_port, base_port = _free_port(), _free_port()
    # The same schema as the baseline's: the task's output schema only (the batch goal checks the input too).
    (workdir / "tasks-output.json").write_text(
        json.dumps({throughput.TASK_ID: {"output_schema": throughput.OUTPUT_SCHEMA}}), encoding="utf-8"
    )
    ours = _ours(workdir, ours_port, "json-schema-validator", "tasks-output.json")
    base = _baseline(workdir, base_port)
    targets = {
        "ours": f"http://127.0.0.1:{ours_port}/api/v1/validate",
        "baseline": f"http://127.0.0.1:{base_port}/validate",
    }
    body = json.dumps({"execution": RECORD}).encode()
    best: dict[str, dict[str, float]] = {}
    try:
        for url in targets.values():
            _load(url, body, 1.0)  # warm-up
        for attempt in range(rounds):
            for name in targets if attempt % 2 == 0 else reversed(list(targets)):
                measured = _load(targets[name], body, seconds)
                if name not in best or measured["rps"] > best[name]["rps"]:
                    best[name] = measured
                print(f"  validate {name}: {measured['rps']:,.0f}/s p50 {measured['p50']:.1f} ms", flush=True)
    finally:
        _stop(ours)
        _stop(base)
    return best


def _stream(port: int, source: Path, concurrency: int) -> float:
    from loopai.client import Client

    with Client(f"http://127.0.0.1:{port}", api_key=KEY) as client, source.open("rb") as lines:
        started = time.perf_counter()
        stream = client.stream_batch_run(lines, max_concurrency=concurrency)
        count = sum(1 for _ in stream)
        seconds = time.perf_counter() - started
    assert stream.summary is not None and stream.summary.completed == count
    return seconds


def _loopai_run(workdir: Path, source: Path) -> float:
    command = [sys.executable, "-m", "loopai", "run", str(source), "--config", "loopai.toml", "--tasks", "tasks.json"]
    command += ["--plugins", "json-schema-validator,percentage-sampler", "--json", "-o", str(workdir / "out.jsonl")]
    done = subprocess.run(command, cwd=workdir, env=_environ(workdir), capture_output=True, text=True, check=True)
    return float(json.loads(done.stdout)["seconds"])


def _batch_goal(workdir: Path, quick: bool) -> tuple[list[tuple[int, dict[str, float]]], dict[int, float]]:
    sizes, rounds = (QUICK_SIZES, 1) if quick else (SIZES, 3)
    # A shared machine is noisy: each contender's best of the rounds, the rounds taking turns.
    plugins = "json-schema-validator,percentage-sampler"
    rows = []
    port = _free_port()
    server = _ours(workdir, port, plugins)
    try:
        for count in sizes:
            source = workdir / f"in-{count}.jsonl"
            throughput.generate(source, count)
            best: dict[str, float] = {}
            for _ in range(rounds):
                for name, seconds in (
                    ("loopai run", _loopai_run(workdir, source)),
                    ("ours", _stream(port, source, 10)),
                ):
                    best[name] = min(best.get(name, float("inf")), seconds)
            rates = {name: count / seconds for name, seconds in best.items()}
            print("  batch " + ", ".join(f"{n}: {r:,.0f}/s" for n, r in rates.items()), flush=True)
            rows.append((count, rates))
    finally:
        _stop(server)
    memory = {}
    for count in (10_000, 100_000) if not quick else (1_000, 10_000):
        port = _free_port()
        fresh = _ours(workdir, port, plugins)
        try:
            _stream(port, workdir / f"in-{count}.jsonl", 10)
            memory[count] = _peak_rss_mb(fresh)
        finally:
            _stop(fresh)
    return rows, memory


def run(quick: bool) -> str:
    """Measure both goals and return the Markdown section."""
    with tempfile.TemporaryDirectory(prefix="loopai-serve-bench-") as name:
        workdir = Path(name)
        (workdir / "loopai.toml").write_text(throughput.CONFIG, encoding="utf-8")
        tasks = {
            throughput.TASK_ID: {
                "sampling_rate": throughput.SAMPLING_RATE,
                "input_schema": throughput.INPUT_SCHEMA,
                "output_schema": throughput.OUTPUT_SCHEMA,
            }
        }
        (workdir / "tasks.json").write_text(json.dumps(tasks), encoding="utf-8")
        validate = _validate_goal(workdir, quick)
        batch, memory = _batch_goal(workdir, quick)
    return section(validate, batch, memory, quick)


def section(
    validate: dict[str, dict[str, float]],
    batch: list[tuple[int, dict[str, float]]],
    memory: dict[int, float],
    quick: bool,
) -> str:
    """The Markdown section for docs/PERFORMANCE.md."""
    import fastapi
    import uvicorn

    load = "wrk 1 thread" if shutil.which("wrk") else "an httpx client in a child process"
    ours, base = validate["ours"], validate["baseline"]
    ratio = ours["rps"] / base["rps"]
    lines = [
        f"## {TITLE}",
        "",
        f"`loopai serve` against the strongest simple alternatives, in the same run (FastAPI {fastapi.__version__},",
        f"uvicorn {uvicorn.__version__}, load from {load}{'; quick run: noisy' if quick else ''}).",
        "",
        f"**`POST /api/v1/validate`**, {CONNECTIONS} connections: ours (API key on, the built-in",
        "`json-schema-validator`, the task's schemas from a tasks file, metrics on) against the least FastAPI app",
        "validating the same record's output against the same schema with `jsonschema`",
        "(`bench/_serve_baseline.py`). Same server settings: one uvicorn worker, its defaults. Best of the runs.",
        "",
        "| contender | requests/s | p50 ms | p99 ms | / baseline | goal |",
        "|---|---:|---:|---:|---:|---|",
        f"| baseline: FastAPI + jsonschema | {base['rps']:,.0f} | {base['p50']:.1f} | {base['p99']:.1f} | 1.00x | |",
        f"| ours | {ours['rps']:,.0f} | {ours['p50']:.1f} | {ours['p99']:.1f} | {ratio:.2f}x "
        f"| {'met' if ratio >= VALIDATE_GOAL else '**missed**'} (>= {VALIDATE_GOAL}x) |",
        "",
        "**`batch/run` over SSE**: the records of the throughput benchmark (3 % invalid, 1 % failed runs) sent",
        "as NDJSON by `loopai.client` (`stream_batch_run`, results parsed as they arrive), against `loopai run`",
        "on the same file with the same plugins (its engine's own time, startup excluded). Best of the runs.",
        "",
        "| items | loopai run items/s | ours items/s | ours / loopai run | goal |",
        "|---:|---:|---:|---:|---|",
    ]
    for count, rates in batch:
        theirs, ours_rate = rates["loopai run"], rates["ours"]
        ratio = ours_rate / theirs
        goal = "met" if ratio >= BATCH_GOAL else "**missed**"
        lines.append(f"| {count:,} | {theirs:,.0f} | {ours_rate:,.0f} | {ratio:.2f}x | {goal} (>= {BATCH_GOAL}x) |")
    lines += [
        "",
        "Where ours spends its time, per request or item, beyond the baseline's work: `validate` answers the",
        "whole report (every validator's result, failures) where the baseline answers one boolean, and",
        "passes three middlewares (metrics, the key gate, the body limit; about 3 µs each) and a route that",
        "reads its own body (FastAPI's dependency injection and body parameter would cost about 40 µs more).",
        "`batch/run` runs these items as `loopai run` runs records (nothing in this pipeline can wait: plain",
        "validators and samplers, no handler): on the event loop, one at a time, each task's contexts kept",
        "from item to item (`loopai.run.Lanes`, which `loopai run`'s engine uses too); it takes the items a",
        "list at a time (those of each piece of the upload read) and hands the results on to the stream a",
        "list at a time, and tells the metrics' verdict counters once per list. Per item it then pays what",
        "`loopai run` pays (parsing, the plugin calls, the result line) and a little more: the item's id in",
        "its result, each plugin call's time into the `loopai_plugin_call_seconds` histogram (about 0.8 µs a",
        "call) and the event's framing. What `loopai run` never pays: the upload and the stream, on the same",
        "two CPUs: the client encoding and sending the items and parsing the results, the service reading the",
        "upload ahead into its spool (so that the answer streams as soon as the client has sent everything,",
        "while the items are processed) and sending the events.",
        "This machine is shared (2 CPUs, other work running): each contender's best run is shown, and runs",
        "of the same contender differ by up to 2x from one minute to the next.",
    ]
    sizes = sorted(memory)
    lines += [
        "",
        "Peak memory of the server (VmHWM of a fresh `loopai serve` per size, after one streamed batch): "
        + ", ".join(f"{count:,} items: {mb:.1f} MB" for count, mb in sorted(memory.items()))
        + (f" ({memory[sizes[-1]] / memory[sizes[0]]:.2f}x for {sizes[-1] // sizes[0]}x the items)." if sizes else "."),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--load":
        print(json.dumps(_python_load(sys.argv[2], float(sys.argv[3]), sys.stdin.buffer.read())))
    else:
        print(run("--quick" in sys.argv))
