"""What starting loopai imports: nothing heavy until a command or a plugin needs it.

Each check runs in a fresh interpreter, as a user's command does, and names the modules it must
not find in ``sys.modules`` afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("pydantic", "packaging", "jsonschema", "httpx", "asyncio", "logging")


def _imported(code: str, cwd: Path, env_extra: dict[str, str] | None = None, *, modules: bool = False) -> set[str]:
    """The top-level packages in ``sys.modules`` (with ``modules``, every module) after running
    ``code`` (which may print)."""
    names = "sys.modules" if modules else "{m.split('.')[0] for m in sys.modules}"
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted({names})))"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "LOOPAI_CACHE_DIR": str(cwd / "cache"), **(env_extra or {})}
    done = subprocess.run([sys.executable, "-c", probe], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_import_loopai_imports_no_model_library_nor_logging(tmp_path: Path) -> None:
    found = _imported("import loopai", tmp_path)
    assert not found & set(HEAVY), found & set(HEAVY)


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["run", "--help"], ["plugins", "--help"]])
def test_the_command_line_answers_help_and_version_without_the_heavy_libraries(tmp_path: Path, argv) -> None:
    code = (
        "import contextlib, io, loopai.cli\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        f"    loopai.cli.main({argv!r})"
    )
    found = _imported(code, tmp_path)
    assert not found & {"pydantic", "packaging", "jsonschema", "httpx", "asyncio"}, found
    if len(argv) == 1:  # the root's answers build no command: nothing that logs is imported
        assert not found & {"logging", "platform"}, found
    if argv == ["--version"]:  # the versions come from the dist-info folders' names
        assert "importlib.metadata" not in found


def test_listing_plugins_loads_no_host_and_no_plugin_library(tmp_path: Path) -> None:
    code = (
        "import contextlib, io, loopai.cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    loopai.cli.main(['plugins', 'list'])"
    )
    found = _imported(code, tmp_path)
    assert not found & {"jsonschema", "httpx", "asyncio", "sqlite3"}, found


COMMAND_MODULES = {
    "plugins list": {"loopai.cli._plugins"},
    "plugins show": {"loopai.cli._plugins", "loopai.cli._show", "loopai.cli._order"},
    "run": {"loopai.cli._run"},
    "events list": {"loopai.cli._events", "loopai.cli._deliver", "loopai.cli._outboxes"},
}
"""The command modules each command line needs; every other command's module stays unimported."""
OTHER_COMMANDS = {
    "loopai.cli._config",
    "loopai.cli._plugins",
    "loopai.cli._show",
    "loopai.cli._new",
    "loopai.cli._install",
    "loopai.cli._pip",
    "loopai.cli._order",
    "loopai.cli._run",
    "loopai.cli._events",
    "loopai.cli._deliver",
    "loopai.cli._outboxes",
    "loopai.cli._serve",
    "loopai.cli._db",
    "loopai.cli._completion",
}


@pytest.mark.parametrize(
    "line", ["plugins list", "plugins show json-schema-validator", "run empty.jsonl", "events list"]
)
def test_a_command_imports_no_other_commands_module(tmp_path: Path, line: str) -> None:
    """``loopai plugins list`` builds and imports nothing of ``plugins install`` (pip, packaging's
    requirement parsing) nor of ``events``; ``loopai run`` nothing of the other commands."""
    code = (
        "import contextlib, io, pathlib, loopai.cli\n"
        "pathlib.Path('empty.jsonl').write_text('')\n"
        "said = io.StringIO()\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(said):\n"
        f"    status = loopai.cli.main({line.split()!r})\n"
        "assert status == 0, said.getvalue()"
    )
    found = _imported(code, tmp_path, modules=True)
    needed = next(modules for command, modules in COMMAND_MODULES.items() if line.startswith(command))
    assert needed <= found, needed - found
    assert not found & (OTHER_COMMANDS - needed), found & (OTHER_COMMANDS - needed)


def test_a_warm_discovery_checks_no_requirement_again(tmp_path: Path) -> None:
    """The first listing checks every plugin's requirements (with packaging) and caches the
    outcomes; the next one, with the same distributions, reads them and never imports packaging,
    even after a file was written in the working directory, which is on the path."""
    code = (
        "import contextlib, io, loopai.cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    loopai.cli.main(['plugins', 'list'])"
    )
    assert "packaging" in _imported(code, tmp_path)  # cold: the builtins' Requires-Dist checked
    (tmp_path / "results.jsonl").write_text("{}\n", encoding="utf-8")
    assert "packaging" not in _imported(code, tmp_path)


def test_the_builtins_import_only_what_the_plugins_in_use_need(tmp_path: Path) -> None:
    code = """
import uuid, loopai, loopai_builtin
from loopai_builtin import JsonSchemaValidator, PercentageSampler
record = loopai.ExecutionRecord(task_id=uuid.uuid4(), program_id=uuid.uuid4(), input={"a": 1}, output={"a": 1})
context = loopai.ValidationContext(output_schema={"type": "object", "required": ["a"]})
assert JsonSchemaValidator().validate(record, context).is_valid
PercentageSampler().should_sample(record, loopai.SamplingContext())
"""
    found = _imported(code, tmp_path)
    assert "httpx" not in found and "httpcore" not in found  # the HTTP and Slack handlers' library
    assert "jsonschema" not in found  # a record proven valid by the fast path needs no messages

    invalid = code.replace('output={"a": 1})', 'output={"b": 1})').replace(".is_valid\n", ".is_valid is False\n")
    assert "jsonschema" in _imported(invalid, tmp_path)  # its errors are jsonschema's to write


def test_a_run_with_the_http_and_slack_handlers_installed_but_not_configured_imports_no_http_library(
    tmp_path: Path,
) -> None:
    # Discovered with no URL, both handlers are loaded and stay off: they must not cost the run httpx.
    records = tmp_path / "in.jsonl"
    records.write_text(
        '{"task_id": "6f1c2a9e-0d4b-4a8e-9b8e-2f0c1d3e4a5b", "program_id": "6f1c2a9e-0d4b-4a8e-9b8e-2f0c1d3e4a5c",'
        ' "input": {}, "output": {}}\n',
        encoding="utf-8",
    )
    code = (
        "import contextlib, io, json, sys, loopai.cli\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        f"    loopai.cli.main(['run', {str(records)!r}, '-q'])\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LOOPAI_CACHE_DIR": str(tmp_path / "cache")}
    command = [sys.executable, "-c", code]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    found = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert {"loopai_builtin._http", "loopai_builtin._slack"} <= found  # loaded, and off
    assert not found & {"httpx", "httpcore"}, found & {"httpx", "httpcore"}


def test_plugins_list_builds_no_model_of_records_or_plugins(tmp_path: Path) -> None:
    """Listing reads the configuration and the discovery cache: the execution record, result and event
    models (``loopai._models``) and the plugin classes (``loopai._plugin``) are for loading and running."""
    code = (
        "import contextlib, io, loopai.cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    loopai.cli.main(['plugins', 'list'])"
    )
    found = _imported(code, tmp_path, modules=True)
    assert "loopai.config" in found
    assert not found & {"loopai._models", "loopai._plugin"}, found & {"loopai._models", "loopai._plugin"}
