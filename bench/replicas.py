"""``loopai run`` with per-task state in PostgreSQL: one process against the embedded default, then
1, 2 and 4 processes sharing one database (aggregate records per second, and the scaling).

The benchmark starts its own PostgreSQL server the way the tests do (``tests/postgres/server.py``:
``initdb`` into a temporary folder, a free port of 127.0.0.1), on this machine. Every measurement
is a group of fresh processes (``python bench/replicas.py --child ...``) that import everything,
then wait for a common start time, so that the clock covers the command (configuration,
discovery, host, connecting, the records, the final flush) and not the interpreter's start.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

TITLE = "Many replicas, one PostgreSQL database"
RECORDS = 40_000
QUICK_RECORDS = 8_000
"""Records per process: a group of k processes splits a stream of k times as many, round robin."""
REPEATS = 3
QUICK_REPEATS = 1
GOAL_ONE = 0.6
"""One process with PostgreSQL state must reach this share of the embedded default's records/s."""
GOAL_TWO = 1.3
"""Two processes sharing one database must reach this multiple of one process's aggregate records/s."""
TASKS = [str(uuid.UUID(int=n + 1, version=4)) for n in range(4)]
PLUGINS = "json-schema-validator,percentage-sampler,time-based-sampler"
CONFIG = """\
[plugins.samplers.percentage-sampler]
configuration = { seed = 1 }

[plugins.samplers.time-based-sampler]
configuration = { interval = "10s" }
"""
OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["label"],
    "properties": {"label": {"enum": ["positive", "negative", "neutral"]}},
}
GROUPS = [("embedded", 1), ("postgres", 1), ("postgres", 2), ("postgres", 4), ("embedded", 2)]
"""(state, processes) measured, in report order; embedded with 2 processes shows the machine's own scaling."""
ROOT = Path(__file__).resolve().parent.parent


def _server_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("loopai_bench_pg", ROOT / "tests" / "postgres" / "server.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the data -----------------------------------------------------------------------------


def generate(workdir: Path, processes: int, count: int) -> list[Path]:
    """One stream of ``processes * count`` records (4 tasks, 1 ms apart), dealt round robin to ``processes`` files."""
    rng = random.Random(processes)
    start = 1_741_942_800_000  # 2025-03-14T09:00:00Z in ms
    files = [workdir / f"in-{processes}-{n}.jsonl" for n in range(processes)]
    outs = [path.open("w", encoding="utf-8") for path in files]
    try:
        for n in range(processes * count):
            at = start + n
            record = {
                "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "program_id": "00000000-0000-4000-8000-000000000001",
                "task_id": rng.choice(TASKS),  # every process gets records of every task
                "input": {"text": f"record {n}"},
                "output": {"label": "positve" if n % 33 == 7 else ("positive", "negative", "neutral")[n % 3]},
                "latency_ms": round(rng.lognormvariate(3.5, 0.4), 1),
                "status": "success",
                "executed_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at // 1000)) + f".{at % 1000:03d}Z",
            }
            outs[n % processes].write(json.dumps(record) + "\n")
    finally:
        for out in outs:
            out.close()
    return files


def _tasks() -> dict[str, Any]:
    watch = {"window": 50, "accuracy_threshold": 0.9, "latency_threshold_ms": 150, "sampling_rate": 0.05}
    return {task: {"output_schema": OUTPUT_SCHEMA, **watch} for task in TASKS}


# -- one process --------------------------------------------------------------------------


def _child(workdir: Path, start_at: float, source: Path) -> None:
    """Import everything, wait for ``start_at``, run ``loopai run`` on ``source``; print start and end as JSON."""
    import jsonschema  # noqa: F401

    import loopai.cli._main
    import loopai.cli._run
    import loopai.run
    import loopai.state
    import loopai_builtin  # noqa: F401
    from loopai.cli import main

    loopai.cli._main.build_parser()
    if os.environ.get("LOOPAI_STATE_URL"):
        import psycopg_pool  # noqa: F401  the extra's import is interpreter start-up too
    time.sleep(max(start_at - time.time(), 0.0))
    started = time.time()
    before = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before = before.ru_utime + before.ru_stime
    argv = ["run", str(source), "--config", str(workdir / "loopai.toml"), "--tasks", str(workdir / "tasks.json")]
    with contextlib.redirect_stderr(io.StringIO()):
        code = main([*argv, "--output", str(source.with_suffix(".out")), "--plugins", PLUGINS])
    if code != 0:
        raise SystemExit(f"loopai run failed with exit status {code}")
    ended = time.time()
    usage = resource.getrusage(resource.RUSAGE_SELF)  # threads included: the flusher's work counts
    print(json.dumps({"start": started, "end": ended, "cpu": usage.ru_utime + usage.ru_stime - cpu_before}))


def _measure(workdir: Path, files: list[Path], url: str | None) -> tuple[float, float]:
    """Run one process per file at once; the aggregate records per second, and the processes' CPU
    microseconds per record (user and system, every thread: a figure the machine's load does not bend)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPAI_")}
    env.update(LOOPAI_CACHE_DIR=str(workdir / "cache"), XDG_STATE_HOME=str(workdir / "state"))
    if url is not None:
        env["LOOPAI_STATE_URL"] = url
    start_at = time.time() + 2.0 + 0.5 * len(files)  # after every process has imported
    command = [sys.executable, __file__, "--child", str(workdir), repr(start_at)]
    children = [
        subprocess.Popen([*command, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for path in files
    ]
    ends, cpu = [], 0.0
    for child in children:
        out, err = child.communicate(timeout=600)
        if child.returncode != 0:
            raise RuntimeError(f"a child failed: {err.strip() or out.strip()}")
        timing = json.loads(out.strip().splitlines()[-1])
        ends.append(timing["end"])  # a child that started late (a busy machine) counts against its group
        cpu += timing["cpu"]
    total = sum(sum(1 for _ in path.open("rb")) for path in files)
    return total / (max(ends) - start_at), cpu / total * 1e6


def _fresh_database(server: Any) -> str:
    from loopai.database import Database, upgrade

    url = str(server.create_database(f"bench_{uuid.uuid4().hex[:10]}"))
    database = Database(url)
    with database.connect() as conn:
        upgrade(conn, database.url.shown)
    return url


def _counted(url: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT coalesce(sum(total_executions), 0) FROM loopai_task_statistics").fetchone()
    return int(row[0]) if row else 0


# -- the report ---------------------------------------------------------------------------


def run(quick: bool) -> str:
    """Measure every group and return the Markdown section."""
    count, repeats = (QUICK_RECORDS, QUICK_REPEATS) if quick else (RECORDS, REPEATS)
    module = _server_module()
    bindir = module.find_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries not found (pg_config --bindir, /usr/lib/postgresql/*/bin)")
    best: dict[tuple[str, int], float] = {}
    cpu: dict[tuple[str, int], float] = {}
    with tempfile.TemporaryDirectory(prefix="loopai-replicas-") as name:
        workdir = Path(name)
        (workdir / "loopai.toml").write_text(CONFIG, encoding="utf-8")
        (workdir / "tasks.json").write_text(json.dumps(_tasks()), encoding="utf-8")
        inputs = {k: generate(workdir, k, count) for k in sorted({k for _, k in GROUPS})}
        server = module.PostgresServer(bindir).start()
        try:
            _measure(workdir, inputs[1][:1], None)  # fills the discovery cache, as any earlier run would have
            for attempt in range(repeats):
                for state, processes in GROUPS if attempt % 2 == 0 else reversed(GROUPS):
                    url = _fresh_database(server) if state == "postgres" else None
                    rate, micros = _measure(workdir, inputs[processes], url)
                    if url is not None and _counted(url) != processes * count:
                        raise RuntimeError(f"{processes} process(es): the database counted {_counted(url)} executions")
                    best[(state, processes)] = max(rate, best.get((state, processes), 0.0))
                    cpu[(state, processes)] = min(micros, cpu.get((state, processes), float("inf")))
                    print(f"  {state} x{processes}: {rate:,.0f} records/s, {micros:.1f} CPU µs/record", flush=True)
        finally:
            server.remove()
    version = bindir.parent.name
    return section(best, cpu, count, repeats, quick, version, os.getloadavg()[0])


def section(
    best: dict[tuple[str, int], float],
    cpu: dict[tuple[str, int], float],
    count: int,
    repeats: int,
    quick: bool,
    version: str,
    load: float,
) -> str:
    """The Markdown section for docs/PERFORMANCE.md."""
    embedded, one = best[("embedded", 1)], best[("postgres", 1)]
    rows = []
    for state, processes in GROUPS:
        rate = best[(state, processes)]
        base = embedded if state == "embedded" else one
        label = "embedded (in-process state, not shared)" if state == "embedded" else "PostgreSQL, one database"
        rows.append(
            f"| {label} | {processes} | {rate:,.0f} | {rate / processes:,.0f} | {rate / embedded:.2f}x "
            f"| {rate / base:.2f}x | {cpu[(state, processes)]:.1f} |"
        )
    ratio_one, ratio_two = one / embedded, best[("postgres", 2)] / one
    machine = best[("embedded", 2)] / embedded
    two = "met" if ratio_two >= GOAL_TWO else "**missed**"
    if machine < GOAL_TWO:  # the machine itself did not give the second process a core
        two = "**not judged**: the machine itself did not scale"
    verdicts = [
        f"one process with PostgreSQL state at {ratio_one:.2f}x the embedded default "
        f"({'met' if ratio_one >= GOAL_ONE else '**missed**'}: goal {GOAL_ONE}x)",
        f"two processes at {ratio_two:.2f}x one process ({two}: goal {GOAL_TWO}x; two embedded processes, "
        f"which share nothing, {machine:.2f}x)",
    ]
    return f"""## {TITLE}

`loopai run` with `[state] url` (here `LOOPAI_STATE_URL`) against the embedded default, then 1, 2
and 4 processes sharing one PostgreSQL {version} database, started by the benchmark on this
machine (`tests/postgres/server.py`; `fsync` off, as in the tests). {platform.python_implementation()}
{platform.python_version()}, {os.cpu_count()} CPUs shared by the processes and the server.

- One stream of records of 4 tasks, 1 ms apart, 3 % breaking the output schema, is dealt round
  robin to the processes, {count:,} records each (a load balancer in front of replicas). Every
  task is watched (window 50, accuracy 0.9, p95 latency 150 ms) and sampled by the
  `percentage-sampler` (5 %) and the `time-based-sampler` (10 s): every record reads the task's
  counts, is counted, and goes into its rolling window; time-based claims race across processes.
  The records' times run 1 ms apart, so a group of k processes goes through k times
  {count / 1000:g} s of records in a few seconds: each claim (a round trip, one or two per task,
  interval and process) comes many times more often than it would in real time.
- `--plugins {PLUGINS}`: no webhook handler, so no event is emitted (the output lines list them).
- Each group's processes import everything, then start together; the aggregate is all their
  records over the time from that start to the last one's end (its final flush included). A
  fresh database per PostgreSQL group; after each, the database's `total_executions` is checked
  to equal the records processed. Best of {repeats} run(s){" (quick mode)" if quick else ""}.
- *vs embedded x1*: against one embedded process; *scaling*: against one process of the same
  kind. Embedded processes share nothing (each samples and alerts on its own): their scaling
  is the machine's, shown for scale. *CPU µs per record*: the loopai processes' own CPU time
  (user and system, all threads, lowest of the runs) over the records, the server's not
  included: other work on the machine bends it far less than records/s. Load average (1 min)
  when the run ended: {load:.1f} on {os.cpu_count()} CPUs.

| state | processes | aggregate records/s | per process | vs embedded x1 | scaling | CPU µs per record |
|---|---:|---:|---:|---:|---:|---:|
{chr(10).join(rows)}

Goals: {"; ".join(verdicts)}.
"""


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        _child(Path(sys.argv[2]), float(sys.argv[3]), Path(sys.argv[4]))
    else:
        print(run("--quick" in sys.argv))
