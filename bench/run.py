"""Run loopai's benchmarks side by side and write their tables to docs/PERFORMANCE.md."""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import platform
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "PERFORMANCE.md"

BENCHMARKS = [
    "startup",
    "dispatch",
    "discovery",
    "throughput",
    "workers",
    "delivery",
    "replicas",
    "pgoutbox",
    "isolation",
    "guards",
    "serve",
]
"""Modules of bench/, in report order. Each has ``run(quick: bool) -> str`` returning a Markdown section."""

_BLOCK = re.compile(r"<!-- bench:(?P<name>[\w-]+) -->\n(?P<body>.*?)<!-- /bench:(?P=name) -->\n", re.S)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few, short runs: a smoke test, noisier numbers")
    parser.add_argument(
        "--only",
        action="append",
        choices=BENCHMARKS,
        metavar="NAME",
        help=f"run only this benchmark (repeatable; one of {', '.join(BENCHMARKS)}); the others' sections are kept",
    )
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"where to write (default: {OUTPUT})")
    return parser.parse_args(argv)


def _header() -> str:
    today = datetime.date.today().isoformat()
    python = f"{platform.python_implementation()} {platform.python_version()}"
    machine = f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs"
    return f"""# Performance

Benchmarks, not timed tests: they measure and report, nothing fails when a number is bad.
Regenerate this file with

    nox -s bench                  # or: python bench/run.py [--quick] [--only NAME]

Last run: {today}, {python}, {machine}. Absolute numbers depend on the machine; the ratios
between contenders measured in the same run are what to compare. A section run alone (`--only`)
leaves the others as they were, so sections may come from different days and loads: compare
absolute numbers within a section, not across sections.
"""


def _previous_sections(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    return {m["name"]: m["body"] for m in _BLOCK.finditer(path.read_text(encoding="utf-8"))}


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmarks and rewrite the performance document."""
    args = _arguments(argv)
    chosen = args.only or BENCHMARKS
    sections = _previous_sections(args.output)
    for name in chosen:
        print(f"bench {name}{' (quick)' if args.quick else ''}:", flush=True)
        started = time.perf_counter()
        module = importlib.import_module(name)
        sections[name] = module.run(args.quick).rstrip("\n") + "\n"
        print(f"bench {name}: {time.perf_counter() - started:.1f} s", flush=True)
        _write(args.output, sections)  # after each: a benchmark that fails later keeps what was measured
    print(f"wrote {args.output}")
    return 0


def _write(output: Path, sections: dict[str, str]) -> None:
    blocks = [
        f"<!-- bench:{name} -->\n{sections[name]}<!-- /bench:{name} -->\n" for name in BENCHMARKS if name in sections
    ]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(_header() + "\n" + "\n".join(blocks), encoding="utf-8")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
