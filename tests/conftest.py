"""Fixtures every test folder may use: a PostgreSQL server started by the tests themselves.

``postgres_server`` (one per session, started on first use) is a :class:`PostgresServer` from
``tests/postgres/server.py``; ``postgres_url`` is a fresh database on it for one test. Without
PostgreSQL binaries the tests that use them are skipped, except in CI (``CI`` set), where
``.ci/run`` installs them and a missing server is a failure.

The session's discovery cache is a temporary folder (``LOOPAI_CACHE_DIR``, inherited by the
commands tests start), so that running the tests writes nothing into the user's cache; a test
that needs its own sets its own.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


def pytest_configure(config: pytest.Config) -> None:
    if "LOOPAI_CACHE_DIR" not in os.environ:
        folder = tempfile.mkdtemp(prefix="loopai-tests-cache-")
        os.environ["LOOPAI_CACHE_DIR"] = folder
        config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))


def _server_module() -> ModuleType:
    name = "loopai_tests_postgres_server"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).parent / "postgres" / "server.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """A PostgreSQL server on a free port of 127.0.0.1, for the whole session."""
    module = _server_module()
    bindir = module.find_bindir()
    if bindir is None:
        message = "PostgreSQL server binaries not found (pg_config --bindir, /usr/lib/postgresql/*/bin)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}: .ci/run installs the postgresql package; CI never skips these tests")
        pytest.skip(message)
    server = module.PostgresServer(bindir)
    try:
        yield server.start()
    finally:
        server.remove()


@pytest.fixture
def postgres_url(postgres_server: Any) -> str:
    """A fresh, empty database for this test: its URL, password included."""
    return str(postgres_server.create_database(f"t_{uuid.uuid4().hex[:12]}"))
