"""Isolated plugins live in real modules: their worker processes import them (or unpickle them) afresh.

``plugin_module(source)`` writes ``source`` as a module with a name unique to the test, in a
directory put first on ``sys.path`` (the host hands its ``sys.path`` to its workers), imports
it and returns it; the module is forgotten after the test.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import loopai

COMMON = """
import ctypes
import os
import sys
import time

import loopai


def valid(name, **metadata):
    return loopai.ValidationResult(is_valid=True, validator_type=name, metadata=metadata)


class Inline(loopai.ValidatorPlugin):
    # An ordinary neighbour: in the host's process unless configured otherwise.

    def validate(self, execution, context):
        return valid(self.name, pid=os.getpid())
"""


@pytest.fixture
def plugin_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], ModuleType]]:
    made: list[str] = []
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(source: str) -> ModuleType:
        name = f"isolated_plugins_{uuid.uuid4().hex[:10]}"
        (tmp_path / f"{name}.py").write_text(COMMON + textwrap.dedent(source), encoding="utf-8")
        importlib.invalidate_caches()
        made.append(name)
        return importlib.import_module(name)

    yield write
    for name in made:
        sys.modules.pop(name, None)


@pytest.fixture
def hosts() -> Iterator[Callable[..., loopai.Host]]:
    """A fresh host per call (no installed plugins, no outbox), closed after the test."""
    made: list[loopai.Host] = []

    def make(*plugins: object, **options: Any) -> loopai.Host:
        options.setdefault("environ", {})
        host = loopai.Host(plugins=plugins, **options)
        made.append(host)
        return host

    yield make
    for host in made:
        host.close()


def execution(**fields: Any) -> loopai.ExecutionRecord:
    return loopai.ExecutionRecord(program_id=uuid.uuid4(), task_id=uuid.uuid4(), **fields)
