"""What ``loopai run`` is measured against: scripts that do the same work, and the floors under them.

Every contender reads the same records file and writes one result line per record. The scripts
do ``loopai run``'s work with the built-ins it is measured with (``json-schema-validator``,
``percentage-sampler`` seeded): check the run status, the input and output against the task's
JSON Schemas (format checking on) and the expected output when a line carries one; sample at
the task's rate with the same seeded draw as the percentage-sampler (the n-th record of a task
draws ``_mix(hash((seed, task.int, n)))``), so the same records are sampled; write a result line
with the verdict, the error paths, the sampling decision and the events. :func:`verdicts`
reads the fields every contender writes alike, to check that results are identical.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import resource
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["CONTENDERS", "SCRIPTS", "generate", "peak_rss_mb", "run_child", "verdicts", "write_setup"]

SEED = 1
MASK = (1 << 64) - 1
CONFIG = f"[plugins.samplers.percentage-sampler]\nconfiguration = {{ seed = {SEED} }}\n"
INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["text"],
    "properties": {"text": {"type": "string", "minLength": 1}},
}
OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["label", "confidence"],
    "additionalProperties": False,
    "properties": {
        "label": {"enum": ["positive", "negative", "neutral"]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
}
STATUS_EVENTS = {
    "success": "program.execution.completed",
    "error": "program.execution.failed",
    "timeout": "program.execution.timeout",
}


def task_ids(count: int) -> list[str]:
    """``count`` task ids, the same in every run."""
    return [str(uuid.UUID(int=random.Random(index).getrandbits(128), version=4)) for index in range(count)]


def write_setup(workdir: Path, tasks: int, rate: float = 0.1) -> None:
    """``loopai.toml`` (the seeded sampler) and ``tasks.json`` (schemas and rate of each task)."""
    (workdir / "loopai.toml").write_text(CONFIG, encoding="utf-8")
    table = {
        task: {"sampling_rate": rate, "input_schema": INPUT_SCHEMA, "output_schema": OUTPUT_SCHEMA}
        for task in task_ids(tasks)
    }
    (workdir / "tasks.json").write_text(json.dumps(table), encoding="utf-8")


def generate(path: Path, count: int, tasks: int = 1) -> None:
    """``count`` records of ``tasks`` tasks: 3 % break the output schema, 1 % are failed runs."""
    rng = random.Random(count)
    labels = ("positive", "negative", "neutral")
    ids = task_ids(tasks)
    with path.open("w", encoding="utf-8") as out:
        for n in range(count):
            record: dict[str, Any] = {
                "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "program_id": "00000000-0000-4000-8000-000000000001",
                "task_id": ids[rng.randrange(tasks)] if tasks > 1 else ids[0],
                "input": {"text": f"review number {n}: the product was fine"},
                "output": {"label": labels[n % 3], "confidence": round(rng.random(), 3)},
                "latency_ms": round(rng.lognormvariate(3.5, 0.4), 1),
                "status": "success",
                "executed_at": "2025-03-14T09:00:00Z",
            }
            if n % 33 == 7:
                record["output"]["label"] = "positve"
            if n % 100 == 50:
                record.update(status="error", output=None, error_message="RuntimeError: boom")
            out.write(json.dumps(record) + "\n")


def run_child(script: str, args: list[str], workdir: Path, what: str, outbox: str = "outbox.sqlite3") -> dict[str, Any]:
    """Run benchmark ``script`` as ``python script --child ARGS`` in ``workdir``, in a fresh process with
    the caller's environment but no loopai settings of its own (its outbox, cache and state in
    ``workdir``); the JSON object it prints last. ``what`` names the run in an error."""
    env = {
        **os.environ,
        "LOOPAI_OUTBOX": str(workdir / outbox),
        "LOOPAI_CACHE_DIR": str(workdir / "cache"),
        "XDG_STATE_HOME": str(workdir / "state"),
    }
    for name in ("LOOPAI_CONFIG", "LOOPAI_PLUGINS", "LOOPAI_DISABLE_PLUGINS", "LOOPAI_TRACE"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, script, "--child", *args], capture_output=True, text=True, env=env, cwd=workdir, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{what}: {done.stderr.strip() or done.stdout.strip()}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def peak_rss_mb() -> float:
    """This process's peak resident set size, in MB: ``VmHWM`` where Linux keeps it (``ru_maxrss``
    would also count the parent's memory at the fork that started this process)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


# -- loopai run ------------------------------------------------------------------------------


def _loopai_run(workdir: Path, source: Path, target: Path, *flags: str) -> None:
    from loopai.cli import main

    argv = ["run", str(source), "--config", str(workdir / "loopai.toml"), "--tasks", str(workdir / "tasks.json")]
    with contextlib.redirect_stderr(io.StringIO()):
        code = main([*argv, "--output", str(target), *flags])
    if code != 0:
        raise SystemExit(f"loopai run failed with exit status {code}")


def ours(workdir: Path, source: Path, target: Path) -> None:
    """The real command with the built-in validator and sampler, no webhook handler."""
    _loopai_run(workdir, source, target, "--plugins", "json-schema-validator,percentage-sampler")


def defaults(workdir: Path, source: Path, target: Path) -> None:
    """The command on every built-in: the time-based sampler too, and the console handler
    printing the alerts (into a buffer), whose events go through the outbox."""
    _loopai_run(workdir, source, target)


# -- the scripts -----------------------------------------------------------------------------


def _mix(value: int) -> float:
    """The percentage-sampler's seeded draw (SplitMix64's finaliser)."""
    value = (value + 0x9E3779B97F4A7C15) & MASK
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & MASK
    return ((value ^ (value >> 31)) >> 11) * (1.0 / (1 << 53))


Check = Callable[[Any], list[tuple[str, str]]]
"""Errors of an instance against one schema: (JSON path, message) pairs."""


def _script(workdir: Path, source: Path, target: Path, loads: Any, dumps: Any, compile_schema: Any) -> None:
    """The loop every script shares; they differ by their JSON library and schema engine."""
    tasks = json.loads((workdir / "tasks.json").read_text(encoding="utf-8"))
    compiled: dict[str, tuple[Check, Check, float, int]] = {}
    seen: dict[str, int] = {}
    with source.open("rb") as lines, target.open("wb") as out:
        for number, raw in enumerate(lines, 1):
            document = loads(raw)
            record, expected = (
                (document["execution"], document.get("expected_output"))
                if "execution" in document
                else (document, None)
            )
            task = record["task_id"]
            known = compiled.get(task)
            if known is None:
                settings = tasks[task]
                known = compiled[task] = (
                    compile_schema(settings["input_schema"], "$.input"),
                    compile_schema(settings["output_schema"], "$.output"),
                    settings["sampling_rate"],
                    uuid.UUID(task).int,
                )
            inputs, outputs, rate, task_int = known
            errors: dict[str, list[str]] = {}
            status = record.get("status", "success")
            if status != "success":
                errors["$.status"] = [f"the run failed (status {status}): {record.get('error_message')}"]
            elif record.get("output") is None:
                errors["$.output"] = ["output is null, but the run reported success"]
            else:
                for path, message in inputs(record.get("input")) + outputs(record["output"]):
                    errors.setdefault(path, []).append(message)
                if expected is not None and expected != record["output"]:
                    errors.setdefault("$.output", []).append("output differs from expected_output")
            position = seen.get(task, 0)
            seen[task] = position + 1
            value = _mix(hash((SEED, task_int, position)) & MASK)
            sampled = value < rate
            valid = not errors
            result = {
                "line": number,
                "execution_id": record["id"],
                "task_id": task,
                "validation": {
                    "is_valid": valid,
                    "results": [{"validator_type": "json-schema-validator", "is_valid": valid, "errors": errors}],
                },
                "sampling": {
                    "should_sample": sampled,
                    "reason": f"random value {value:.4f}",
                    "sampler_type": "percentage-sampler" if sampled else "",
                },
                "events": [STATUS_EVENTS[status], "validation.completed" if valid else "validation.failed"],
                "error": None,
            }
            out.write(dumps(result) + b"\n")


def _path(base: str, parts: Any) -> str:
    return base + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def script_rs(workdir: Path, source: Path, target: Path) -> None:
    """A performance-minded user's script: orjson, and jsonschema-rs (``is_valid`` first)."""
    import jsonschema_rs
    import orjson

    def compile_schema(schema: Any, base: str) -> Check:
        validator = jsonschema_rs.validator_for(schema, validate_formats=True)
        is_valid, iter_errors = validator.is_valid, validator.iter_errors

        def check(instance: Any) -> list[tuple[str, str]]:
            if is_valid(instance):
                return []
            return [(_path(base, e.instance_path), e.message) for e in iter_errors(instance)]

        return check

    _script(workdir, source, target, orjson.loads, orjson.dumps, compile_schema)


def script_fastjsonschema(workdir: Path, source: Path, target: Path) -> None:
    """The same with fastjsonschema (it stops at the first error)."""
    import fastjsonschema
    import orjson

    def compile_schema(schema: Any, base: str) -> Check:
        validate = fastjsonschema.compile(schema)

        def check(instance: Any) -> list[tuple[str, str]]:
            try:
                validate(instance)
            except fastjsonschema.JsonSchemaValueException as error:
                return [(_path(base, error.path[1:]), error.message)]
            return []

        return check

    _script(workdir, source, target, orjson.loads, orjson.dumps, compile_schema)


def script_jsonschema(workdir: Path, source: Path, target: Path) -> None:
    """The script most people write first: the standard library's json and ``jsonschema``."""
    from jsonschema import Draft202012Validator

    def compile_schema(schema: Any, base: str) -> Check:
        validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)

        def check(instance: Any) -> list[tuple[str, str]]:
            return [(f"{base}{e.json_path[1:]}", e.message) for e in validator.iter_errors(instance)]

        return check

    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    _script(workdir, source, target, json.loads, lambda value: encode(value).encode(), compile_schema)


def floor_parse(workdir: Path, source: Path, target: Path) -> None:
    """The floor of any script: read, parse with orjson, write a line naming the record."""
    import orjson

    with source.open("rb") as lines, target.open("wb") as out:
        for number, raw in enumerate(lines, 1):
            out.write(orjson.dumps({"line": number, "execution_id": orjson.loads(raw)["id"]}) + b"\n")


def floor_io(workdir: Path, source: Path, target: Path) -> None:
    """The floor of any run: read the lines, write them back."""
    with source.open("rb") as lines, target.open("wb") as out:
        for raw in lines:
            out.write(raw)


SCRIPTS: dict[str, Callable[[Path, Path, Path], None]] = {
    "script_rs": script_rs,
    "script_fastjsonschema": script_fastjsonschema,
    "script_jsonschema": script_jsonschema,
    "floor_parse": floor_parse,
    "floor_io": floor_io,
}
CONTENDERS: dict[str, Callable[[Path, Path, Path], None]] = {"ours": ours, "defaults": defaults, **SCRIPTS}


def verdicts(path: Path) -> list[tuple[Any, ...]]:
    """What every contender's result lines say alike: line, ids, verdict, error paths, sampled, events."""
    found = []
    with path.open("rb") as lines:
        for raw in lines:
            line = json.loads(raw)
            paths = sorted({p for result in line["validation"]["results"] for p in result["errors"]})
            found.append(
                (
                    line["line"],
                    line["execution_id"],
                    line["task_id"],
                    line["validation"]["is_valid"],
                    tuple(paths),
                    line["sampling"]["should_sample"],
                    tuple(line["events"]),
                )
            )
    return found


if __name__ == "__main__":  # ``python _contenders.py --run DIR``: the strongest script on DIR/in-10.jsonl, in all
    import sys

    folder = Path(sys.argv[2])
    script_rs(folder, folder / "in-10.jsonl", folder / "out-script.jsonl")
