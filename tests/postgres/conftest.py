"""Fixtures of the PostgreSQL state tests: ``pg`` (the helpers of kit.py) and ``loopai`` (the command, on a
fresh upgraded database). The server comes from ``tests/conftest.py``."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


@pytest.fixture(scope="session")
def pg() -> ModuleType:
    """The helpers of ``tests/postgres/kit.py``: records, result-line readers, the ``Loopai`` runner."""
    name = "loopai_tests_postgres_kit"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).parent / "kit.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture
def loopai(pg: ModuleType, tmp_path: Path, postgres_url: str) -> Any:
    """``loopai`` with ``LOOPAI_STATE_URL`` set to a fresh, upgraded database; outbox and caches in tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPAI_")}
    env.update(
        LOOPAI_STATE_URL=postgres_url,
        LOOPAI_CACHE_DIR=str(tmp_path / "cache"),
        XDG_STATE_HOME=str(tmp_path / "state"),
    )
    command = pg.Loopai(tmp_path, env)
    command.configure()
    upgraded = command.run("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    return command
