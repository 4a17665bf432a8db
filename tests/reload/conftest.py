"""Reload tests use factory plugins from a real module, named in a real configuration file.

``reloadable`` writes the module (``Tagged``: a validator that answers with its ``tag``
setting and refuses calls after its shutdown; ``Failing``: its startup raises; ``Exits``: a
handler isolated in worker processes whose every call ends its worker) and returns a helper
that writes ``loopai.toml`` and builds hosts from it.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import loopai

PLUGINS = '''
import os
import threading
import time

from pydantic import BaseModel

import loopai

EVENTS = []  # what every instance did, in order: ("start" | "stop" | "call", tag)


class Tagged(loopai.ValidatorPlugin):
    """Answers with its tag; a call after its shutdown is a bug the answer shows."""

    class Config(BaseModel):
        tag: int = 0
        delay: float = 0.0
        label: str = ""  # the name it is configured under (a factory's instance keeps its class's name)

    def __init__(self, config=None):
        super().__init__(config)
        self.stopped = False
        self.in_flight = 0
        self.lock = None

    @property
    def label(self):
        return self.config.label or self.name

    def startup(self, host):
        EVENTS.append(("start", self.label, self.config.tag))

    def shutdown(self, host):
        EVENTS.append(("stop", self.label, self.config.tag, self.in_flight))
        self.stopped = True

    def validate(self, execution, context):
        self.in_flight += 1
        try:
            if self.config.delay:
                time.sleep(self.config.delay)
            EVENTS.append(("call", self.label, self.config.tag))
            return loopai.ValidationResult(
                is_valid=not self.stopped, validator_type=self.label, metadata={"tag": self.config.tag}
            )
        finally:
            self.in_flight -= 1


class Failing(loopai.ValidatorPlugin):
    def startup(self, host):
        raise ConnectionError("cannot reach the rules service")

    def validate(self, execution, context):
        return loopai.ValidationResult(is_valid=True, validator_type=self.name)


class Exits(loopai.WebhookHandlerPlugin):
    """Isolated in worker processes: each call adds a line to its ``calls`` file, then ends its worker."""

    isolation = "process"
    max_retries = 0

    class Config(BaseModel):
        calls: str

    def handle_event(self, event, context):
        with open(self.config.calls, "a", encoding="utf-8") as calls:
            calls.write("called\\n")
        os._exit(3)
'''


class Reloadable:
    """The plugin module and a configuration file for it."""

    def __init__(self, root: Path, module: Any) -> None:
        self.root = root
        self.module = module
        self.path = root / "loopai.toml"
        self.hosts: list[loopai.Host] = []

    @property
    def name(self) -> str:
        return self.module.__name__

    def write(self, toml: str) -> Path:
        """Write the configuration (``{module}`` stands for the plugin module's name)."""
        self.path.write_text(textwrap.dedent(toml).replace("{module}", self.name), encoding="utf-8")
        return self.path

    def tagged(self, tag: int, *names: str, extra: str = "") -> Path:
        """A configuration of Tagged validators ``names`` (default a and b), all with ``tag``."""
        tables = "".join(
            f'[plugins.validators.{name}]\nfactory = "{{module}}:Tagged"\n'
            f'configuration = {{ tag = {tag}, label = "{name}" }}\n'
            for name in names or ("a", "b")
        )
        return self.write("autoload = false\n" + tables + extra)

    def host(self, **options: Any) -> loopai.Host:
        options.setdefault("outbox", False)
        host = loopai.Host.from_config(self.path, environ={}, **options)
        self.hosts.append(host)
        return host


@pytest.fixture
def reloadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Reloadable]:
    name = f"reload_plugins_{uuid.uuid4().hex[:10]}"
    (tmp_path / f"{name}.py").write_text(PLUGINS, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    made = Reloadable(tmp_path, importlib.import_module(name))
    yield made
    for host in made.hosts:
        host.close()
    sys.modules.pop(name, None)
