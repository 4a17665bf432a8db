"""The plugin development guide's snippets, and the example packages' READMEs, run and parse.

Python blocks of a document run top to bottom in one namespace, as a reader follows them (a test
for a later block first runs the earlier ones); ``test_*`` functions a block defines are called
too, with the ``loopai_host`` and ``tmp_path`` fixtures. TOML and JSON blocks are parsed as loopai
would: configuration through :func:`loopai.parse_config`, with every plugin's settings validated
against its settings model when the plugin is known; ``pyproject.toml`` snippets must name loopai
entry points that import. A block preceded by ``<!-- notest -->`` is skipped (none is, today).

The example packages are not installed here: their ``src`` folders are put on ``sys.path``.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import loopai
from loopai._kinds import KINDS
from loopai._plugin import validate_settings
from loopai.testing._fixture import build_host as _build_host

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "PLUGIN_DEVELOPMENT_GUIDE.md"
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("loopai-*") if (p / "pyproject.toml").is_file())
READMES = [p / "README.md" for p in EXAMPLES]
SOURCES = [str(p / "src") for p in EXAMPLES]
_FENCE = re.compile(r"^```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    lang: str
    body: str
    skip: bool

    @property
    def id(self) -> str:
        return f"{self.path.parent.name}/{self.path.name}:{self.line}"


def blocks(path: Path, *langs: str) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    found = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip().rsplit("\n", 1)[-1]
        line = text.count("\n", 0, match.start()) + 1
        found.append(Block(path, line, match["lang"], match["body"], before.strip() == "<!-- notest -->"))
    return [b for b in found if b.lang in langs]


# -- an isolated place to run snippets --------------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A working directory and environment of its own, with the examples importable."""
    root = tmp_path_factory.mktemp("guide")
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("LOOPAI_"):
                patch.delenv(name)
        patch.setenv("LOOPAI_CACHE_DIR", str(root / "cache"))
        patch.setenv("XDG_STATE_HOME", str(root / "state"))
        patch.chdir(root)
        for source in SOURCES:
            patch.syspath_prepend(source)
        yield root
    packages = tuple(p.name.replace("-", "_") for p in EXAMPLES)
    for module in [m for m in sys.modules if m.split(".")[0] in packages]:
        del sys.modules[module]


class Reader:
    """Runs one document's Python blocks in order, in one namespace."""

    def __init__(self, document: list[Block]) -> None:
        self.document = document
        self.namespace: dict[str, Any] = {"__name__": "guide"}
        self.done = 0

    def run_through(self, block: Block, tmp_path: Path) -> None:
        while self.done <= self.document.index(block):
            current = self.document[self.done]
            self.done += 1
            if not current.skip:
                self._run(current, tmp_path)

    def _run(self, block: Block, tmp_path: Path) -> None:
        before = set(self.namespace)
        # Line numbers in tracebacks are the document's; the name is not a Python file (no source dump).
        code = compile("\n" * block.line + block.body, f"<{block.path.relative_to(ROOT)}>", "exec")
        exec(code, self.namespace)
        for name in sorted(set(self.namespace) - before):
            function = self.namespace[name]
            if name.startswith("test_") and inspect.isfunction(function):
                _call_test(function, tmp_path)


def _call_test(function: Any, tmp_path: Path) -> None:
    hosts: list[loopai.Host] = []
    available = {
        "loopai_host": lambda *plugins, **options: _build_host(hosts, *plugins, **options),
        "tmp_path": tmp_path,
    }
    try:
        function(**{name: available[name] for name in inspect.signature(function).parameters})
    finally:
        for host in reversed(hosts):
            host.close()


_READERS: dict[Path, Reader] = {}


def reader(path: Path) -> Reader:
    if path not in _READERS:
        _READERS[path] = Reader(blocks(path, "python"))
    return _READERS[path]


PYTHON = [b for path in (GUIDE, *READMES) for b in blocks(path, "python")]


@pytest.mark.parametrize("block", PYTHON, ids=lambda b: b.id)
def test_python_block_runs(block: Block, sandbox: Path, tmp_path: Path) -> None:
    if block.skip:
        pytest.skip("marked <!-- notest -->")
    reader(block.path).run_through(block, tmp_path)


# -- configuration and packaging snippets -----------------------------------------------------------------


class AnyEnvironment(Mapping[str, str]):
    """Every ``${VAR}`` a snippet refers to is set (to a URL, which every URL setting accepts)."""

    def __getitem__(self, key: str) -> str:
        return "https://example.org/hooks/loopai"

    def __contains__(self, key: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def known_plugins() -> dict[tuple[str, str], type[loopai.Plugin]]:
    """Plugin classes by (kind, name): the built-ins and the examples."""
    import loopai_builtin

    classes: list[type[loopai.Plugin]] = [
        loopai_builtin.JsonSchemaValidator,
        loopai_builtin.PercentageSampler,
        loopai_builtin.TimeBasedSampler,
        loopai_builtin.ConsoleWebhookHandler,
        loopai_builtin.SlackWebhookHandler,
        loopai_builtin.HttpWebhookHandler,
    ]
    for example in EXAMPLES:
        pyproject = tomllib.loads((example / "pyproject.toml").read_text(encoding="utf-8"))
        for eps in pyproject["project"]["entry-points"].values():
            classes += [_load(value) for value in eps.values()]
    labels = {loopai.ValidatorPlugin: "validator", loopai.SamplerPlugin: "sampler"}
    return {
        (next((label for kind, label in labels.items() if issubclass(c, kind)), "webhook-handler"), c.name): c
        for c in classes
    }


def _load(value: str) -> Any:
    module, _, attribute = value.partition(":")
    return getattr(importlib.import_module(module), attribute)


def check_configuration(document: Any, label: str) -> None:
    config = loopai.parse_config(document, label=label, environ=AnyEnvironment())
    plugins = known_plugins()
    for kind in ("validator", "sampler", "webhook-handler"):
        for entry in config.plugins.for_kind(kind):
            cls = plugins.get((kind, entry.name))
            if cls is not None and not entry.factory:
                validate_settings(cls.Config, entry.configuration, f"{label}: {entry.name}")


def check_pyproject(document: dict[str, Any]) -> None:
    declared = document.get("project", {}).get("entry-points", {})
    loopai_groups = {group: eps for group, eps in declared.items() if group.startswith("loopai.")}
    assert loopai_groups, "a pyproject snippet here should declare loopai entry points"
    for group, eps in loopai_groups.items():
        assert group in {kind.group for kind in KINDS}, f"{group} is not a loopai entry point group"
        for name, value in eps.items():
            plugin = _load(value)
            assert issubclass(plugin, loopai.Plugin) and plugin.name == name, (group, name, value)
    for requirement in document.get("project", {}).get("dependencies", []):
        if requirement.startswith("loopai-core"):
            from packaging.requirements import Requirement

            assert Requirement(requirement).specifier.contains(loopai.__version__)


CONFIGS = [b for path in (GUIDE, *READMES) for b in blocks(path, "toml", "json")]


@pytest.mark.parametrize("block", CONFIGS, ids=lambda b: b.id)
def test_configuration_block_is_valid(block: Block, sandbox: Path) -> None:
    if block.skip:
        pytest.skip("marked <!-- notest -->")
    label = block.id
    if block.lang == "json":
        check_configuration(json.loads(block.body), label)
        return
    document = tomllib.loads(block.body)
    if "project" in document or "build-system" in document:
        check_pyproject(document)
    elif "loopai" in document.get("tool", {}):
        check_configuration(document["tool"]["loopai"], label)
    else:
        check_configuration(document, label)


# -- the documents themselves --------------------------------------------------------------------------------


def test_the_guide_covers_the_outline() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert headings == [
        "1. Plugin types",
        "2. Registration",
        "3. Lifecycle",
        "4. Built-in plugins",
        "5. Best practices",
        "6. Advanced topics",
        "7. The four examples",
        "8. Packaging and publishing",
        "9. Discovery and compatibility",
        "10. Troubleshooting",
    ]
    for needle in (
        "factory",
        "stop_on_failure",
        "supported_events",
        "LOOPAI_PLUGINS",
        "LOOPAI_DISABLE_PLUGINS",
        "LOOPAI_DISABLE_PLUGIN_AUTOLOAD",
        "LOOPAI_TRACE=1",
        "loopai plugins check",
        "loopai config check",
        "twine upload",
        "check_plugin",
    ):
        assert needle in text, needle
    for example in EXAMPLES:
        assert f"(../examples/{example.name})" in text, example.name


def test_every_snippet_is_tested() -> None:
    every = blocks(GUIDE, "python", "toml", "json")
    assert len(every) >= 20
    assert not [b.id for b in every if b.skip], "a skipped snippet needs a reason to exist"
    langs = {b.lang for b in blocks(GUIDE, *{m["lang"] for m in _FENCE.finditer(GUIDE.read_text())})}
    assert langs <= {"python", "toml", "json", "bash", "console"}, langs
