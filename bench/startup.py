"""Start-up: what a command costs before it does anything, against a bare interpreter.

Each contender is a fresh process, started many times; the table keeps each one's fastest run
(wall time, which is what a user waits for) and its least CPU time. Everything runs in one
temporary directory with a warm discovery cache and the bench environment's installed plugins.
"""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _contenders import generate, write_setup

TITLE = "Start-up"
RUNS, QUICK_RUNS = 15, 5
PYTHON = sys.executable


def _cases(workdir: Path) -> dict[str, tuple[list[str], float | None, str]]:
    """Name: (command, goal in ms over its baseline or None, the baseline's name)."""
    run = [PYTHON, "-m", "loopai", "run", str(workdir / "in-10.jsonl"), "--config", str(workdir / "loopai.toml")]
    run += ["--tasks", str(workdir / "tasks.json"), "--plugins", "json-schema-validator,percentage-sampler"]
    script = [PYTHON, str(Path(__file__).with_name("_contenders.py"))]
    pytest = [PYTHON, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", str(workdir / "empty")]
    return {
        "bare interpreter (`python -c pass`)": ([PYTHON, "-c", "pass"], None, ""),
        "`import loopai`": ([PYTHON, "-c", "import loopai"], 40, "bare interpreter (`python -c pass`)"),
        "`loopai --version`": ([PYTHON, "-m", "loopai", "--version"], 40, "bare interpreter (`python -c pass`)"),
        "`loopai --help`": ([PYTHON, "-m", "loopai", "--help"], 40, "bare interpreter (`python -c pass`)"),
        "`loopai plugins list` (warm cache)": (
            [PYTHON, "-m", "loopai", "plugins", "list"],
            80,
            "bare interpreter (`python -c pass`)",
        ),
        "`import pluggy` (for scale)": ([PYTHON, "-c", "import pluggy"], None, ""),
        "`pytest --version` (for scale)": ([PYTHON, "-m", "pytest", "--version"], None, ""),
        "`pytest --collect-only` of an empty folder, with `-p no:loopai`": ([*pytest, "-p", "no:loopai"], None, ""),
        "`pytest --collect-only` of an empty folder (loopai's plugin on)": (
            pytest,
            10,
            "`pytest --collect-only` of an empty folder, with `-p no:loopai`",
        ),
        "`loopai run` on 10 valid records, in all": ([*run, "-o", str(workdir / "out.jsonl")], 100, ""),
        "`loopai run` on 10 records, one not valid, in all": (
            [
                *[str(workdir / "in-10-one-invalid.jsonl") if "in-10.jsonl" in a else a for a in run],
                "-o",
                str(workdir / "out2.jsonl"),
            ],
            None,
            "",
        ),
        "the strongest script on the same 10 records, in all": ([*script, "--run", str(workdir)], None, ""),
    }


def _time(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU milliseconds of one run of ``command``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 5):  # 5: pytest collected nothing, as asked
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.decode(errors='replace')[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall * 1e3, cpu * 1e3


def _modules(env: dict[str, str], cwd: Path, code: str) -> set[str]:
    """The modules ``code`` imports, in its second run: the first fills the discovery cache of
    ``python -c``'s path (which starts with ``""`` where ``python -m``'s has the folder)."""
    for _ in range(2):
        done = subprocess.run([PYTHON, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def run(quick: bool) -> str:
    """Measure every case side by side; return the Markdown section."""
    runs = QUICK_RUNS if quick else RUNS
    with tempfile.TemporaryDirectory(prefix="loopai-startup-") as name:
        workdir = Path(name)
        (workdir / "empty").mkdir()
        write_setup(workdir, tasks=1)
        generate(workdir / "in-10-one-invalid.jsonl", 10)  # record 7 breaks the output schema
        lines = (workdir / "in-10-one-invalid.jsonl").read_text(encoding="utf-8").splitlines()
        (workdir / "in-10.jsonl").write_text("\n".join(lines[:7] + lines[8:] + lines[:1]) + "\n", encoding="utf-8")
        # Bytecode is written and read as after any install (PYTHONDONTWRITEBYTECODE would make every
        # run compile loopai's modules anew); the untimed first run writes it.
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPAI_") and k != "PYTHONDONTWRITEBYTECODE"}
        env.update(LOOPAI_CACHE_DIR=str(workdir / "cache"), LOOPAI_OUTBOX=str(workdir / "outbox.sqlite3"))
        cases = _cases(workdir)
        for command, _, _ in cases.values():
            _time(command, workdir, env)  # warms the discovery cache and the file system's
        best = {name: (float("inf"), float("inf")) for name in cases}
        for _ in range(runs):
            for name, (command, _, _) in cases.items():
                wall, cpu = _time(command, workdir, env)
                best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
        heavy = ("httpx", "jsonschema", "pydantic", "packaging")
        run_args = cases["`loopai run` on 10 valid records, in all"][0][3:]  # after "python -m loopai"
        imported = {
            "`loopai --help`": _modules(
                env, workdir, "import sys, loopai.cli._main as m; m.build_parser(); print(*sys.modules)"
            ),
            "`loopai run` on 10 valid records": _modules(
                env, workdir, f"import sys, loopai.cli as c; c.main({run_args!r}); print(*sys.modules)"
            ),
        }
    return section(cases, best, {k: sorted(m for m in heavy if m in v) for k, v in imported.items()}, runs)


def section(
    cases: dict[str, tuple[list[str], float | None, str]],
    best: dict[str, tuple[float, float]],
    imported: dict[str, list[str]],
    runs: int,
) -> str:
    """The Markdown section for docs/PERFORMANCE.md."""
    rows = ["| command | wall ms | CPU ms | over its baseline | goal | verdict |", "|---|---:|---:|---:|---|---|"]
    missed = []
    for name, (_, goal, baseline) in cases.items():
        wall, cpu = best[name]
        over = wall - best[baseline][0] if baseline else wall
        shown = f"{max(over, 0.0):.0f} ms" if baseline else ""  # faster than its baseline: within the noise
        if goal is None:
            rows.append(f"| {name} | {wall:.0f} | {cpu:.0f} | {shown} | shown | |")
            continue
        ok = over <= goal
        verdict = "met" if ok else "**missed**"
        over_text = shown or f"{wall:.0f} ms"
        rows.append(f"| {name} | {wall:.0f} | {cpu:.0f} | {over_text} | at most {goal} ms | {verdict} |")
        if not ok:
            missed.append(name)
    verdict = "**Every goal met.**" if not missed else f"**Goals missed**: {'; '.join(missed)}."
    lines = "\n".join(f"- {what}: {', '.join(mods) or 'none of them'}" for what, mods in imported.items())
    return f"""## {TITLE}

Fresh processes, each command run {runs} times in turn with the others; the fastest wall time and the
least CPU time of each. Baselines: a bare interpreter for the commands, pytest without loopai's plugin
for the session with it. The 10-record run's records are valid ones (a record that is not proven
valid makes the validator import `jsonschema` for its messages: see below).
{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs.

{chr(10).join(rows)}

{verdict}

Which of httpx, jsonschema, pydantic and packaging are imported:

{lines}

What is left:

- `loopai --help` and `--version` build only the top of the command tree (each command is named
  with its help); argparse's messages go through gettext, a look-up per string. A command builds
  only its own arguments and imports only its own module (`loopai plugins list` nothing of
  `plugins install`, `new` or `order`; `loopai run` nothing of `events`).
- `loopai plugins list` reads the configuration, a pydantic model: importing pydantic (about
  70 ms here) and making loopai's configuration models is most of its time, and pydantic looks
  for pydantic plugins in every installed distribution's entry points when the first model is
  made (importlib.metadata: about 13 ms). It builds only the configuration's models, none of the
  execution record, result, event or plugin models (about 12 ms). The models are built at import: pydantic's
  `defer_build` would save the unused ones, but in many of the pydantic versions loopai supports
  (2.6 on) a first-use build is not safe when threads (the host's delivery workers, the
  service's) make a model's first instances at once. A warm discovery reads its cache file and nothing else:
  no metadata file, no `packaging` (its requirement outcomes are cached for this interpreter and
  platform), and a path directory whose files changed (the working directory, first on the path
  of `python -m loopai`) keeps the cache as long as its distributions are the same. The 80 ms
  goal needs a configuration read without pydantic.
- `loopai run` pays the same, then the host (asyncio, for its async drivers), the outbox it opens
  (SQLite), and the plugins it loads with their settings models. `jsonschema` and its format
  checkers are imported only when a record is not proven valid by the fast path, a schema is
  outside it, or a schema checks a format; the second 10-record row shows what that costs
  (`rfc3987-syntax`, which checks `iri`, would add about a second: it is not a dependency).
"""


if __name__ == "__main__":
    print(run("--quick" in sys.argv))
