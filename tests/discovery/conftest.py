"""Real plugin distributions for discovery tests, laid out in a temporary site directory as pip would.

``site.add("loopai-good", entry_points={"loopai.validators": {"good": ":Good"}}, code=...)`` writes
``loopai_good-1.0.0.dist-info/`` (METADATA, entry_points.txt, RECORD) and the distribution's own
package. An entry point value starting with ``:`` names an attribute of that package, whose
module name is unique to the test (so nothing imported leaks into another test). Every package
module can record that it was imported: ``site.imported()`` lists those that were.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import loopai
from loopai.discovery import DiscoveredPlugin, Selection, discover

# A plugin module that says it was imported, to a file named by the test (works in-process and in
# a subprocess alike).
_RECORDER = 'with open({marks!r}, "a", encoding="utf-8") as _loopai_mark:\n    _loopai_mark.write(__name__ + "\\n")\n'

GOOD_VALIDATOR = """
import loopai

class Good(loopai.ValidatorPlugin):
    def validate(self, execution, context):
        return loopai.ValidationResult(is_valid=True, validator_type=self.name)
"""

POSTER = """
import logging

from pydantic import BaseModel

import loopai

log = logging.getLogger("loopai_tests.poster")

class Poster(loopai.WebhookHandlerPlugin):
    priority = 20

    class Config(BaseModel):
        url: str | None = None

    def __init__(self, config=None):
        super().__init__(config)
        if self.config.url is None:
            self.enabled = False  # installed but not configured: it stays off

    def validate_configuration(self, configuration):
        if not configuration.get("url"):
            log.warning("url is not set")
            return False
        return True

    def handle_event(self, event, context):
        pass
"""


def _underscored(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


@dataclass
class Dist:
    """One distribution written into a site directory."""

    name: str
    version: str
    info: Path
    module: str


class Site:
    """A temporary site directory and helpers to discover, load and list what is in it."""

    GOOD_VALIDATOR = GOOD_VALIDATOR

    def __init__(self, root: Path, token: str) -> None:
        self.root = root
        self.token = token
        self.path = root / "site"
        self.path.mkdir(parents=True, exist_ok=True)
        self.cache = root / "cache"
        # The shadow below is on purpose: LOOPAI_ALLOW_SHADOWED keeps it from being a warning.
        self.environ: dict[str, str] = {"LOOPAI_CACHE_DIR": str(self.cache), "LOOPAI_ALLOW_SHADOWED": "loopai-builtin"}
        self.added: set[str] = set()
        self.hosts: list[loopai.Host] = []
        # The command line runs here: sys.path[0] of ``python -m``, so nothing else is written here.
        self.workdir = root / "work"
        self.workdir.mkdir(exist_ok=True)
        self.marks = root / "imported.txt"
        # Next on the path: an empty loopai-builtin, which hides the real one (the first found wins),
        # so that what these tests see does not change with the built-ins' own state. Hiding it is
        # what loopai warns about (two distributions of one name): allowed above, for these tests.
        self.shadow = root / "shadow"
        self.add("loopai-builtin", "0.0.0", directory=self.shadow, track=False)

    # -- building distributions ---------------------------------------------------------

    def module_for(self, dist: str) -> str:
        """The unique top-level package name of distribution ``dist`` in this test."""
        return f"{_underscored(dist)}_{self.token}"

    def add(
        self,
        name: str,
        version: str = "1.0.0",
        *,
        entry_points: Mapping[str, Mapping[str, str]] | None = None,
        requires: Sequence[str] = (),
        code: str = "",
        files: Mapping[str, str] | None = None,
        summary: str = "",
        record: bool = True,
        directory: Path | None = None,
        track: bool = True,
    ) -> Dist:
        """Install a distribution: its dist-info directory and its package (``code`` is ``__init__``).

        ``{module}`` in entry point values, in the names of ``files`` (extra files, relative to
        the site) and in their text is the distribution's package name; a value starting with
        ``:`` is an attribute of that package. ``record`` makes every module note its import;
        ``track`` counts the distribution among this test's own (see :meth:`mine`).
        """
        where = directory if directory is not None else self.path
        module = self.module_for(name)
        written: dict[str, str] = {}
        if code or entry_points:
            written[f"{module}/__init__.py"] = textwrap.dedent(code)
        for relative, text in (files or {}).items():
            written[relative.format(module=module)] = textwrap.dedent(text).replace("{module}", module)
        for relative, text in written.items():
            target = where / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            prefix = _RECORDER.format(marks=str(self.marks)) if record and relative.endswith(".py") else ""
            target.write_text(prefix + text, encoding="utf-8")

        info = where / f"{_underscored(name)}-{version}.dist-info"
        info.mkdir(parents=True)
        headers = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
        if summary:
            headers.append(f"Summary: {summary}")
        headers += [f"Requires-Dist: {line}" for line in requires]
        (info / "METADATA").write_text("\n".join(headers) + "\n\nA test plugin.\n", encoding="utf-8")
        sections = []
        entry_points = {
            group: {ep: value.replace("{module}", module) for ep, value in declared.items()}
            for group, declared in (entry_points or {}).items()
        }
        for group, declared in entry_points.items():
            lines = [f"{ep} = {module if value.startswith(':') else ''}{value}" for ep, value in declared.items()]
            sections.append(f"[{group}]\n" + "\n".join(lines) + "\n")
        if sections:
            (info / "entry_points.txt").write_text("\n".join(sections), encoding="utf-8")
        (info / "INSTALLER").write_text("pip\n", encoding="utf-8")
        record_lines = [f"{relative},," for relative in written]
        record_lines += [f"{info.name}/{f},," for f in ("METADATA", "entry_points.txt", "INSTALLER", "RECORD")]
        (info / "RECORD").write_text("\n".join(record_lines) + "\n", encoding="utf-8")
        if track:
            self.added.add(name)
        importlib.invalidate_caches()
        return Dist(name, version, info, module)

    def add_good(self, name: str, plugin: str, version: str = "1.0.0", **options: Any) -> Dist:
        """A distribution declaring one working validator named ``plugin``."""
        entry_points = {"loopai.validators": {plugin: ":Good"}}
        return self.add(name, version, entry_points=entry_points, code=GOOD_VALIDATOR, **options)

    def add_poster(self, *names: str) -> Dist:
        """``loopai-poster``: webhook handlers (``poster`` unless ``names`` says) that stay off
        without a ``url`` setting and refuse settings without one."""
        handlers = {name: ":Poster" for name in names or ("poster",)}
        return self.add("loopai-poster", entry_points={"loopai.webhook_handlers": handlers}, code=POSTER)

    def remove(self, dist: Dist) -> None:
        """Uninstall ``dist`` (its dist-info directory and its package)."""
        shutil.rmtree(dist.info)
        shutil.rmtree(dist.info.parent / dist.module, ignore_errors=True)

    def imported(self) -> list[str]:
        """Modules of this site that were imported so far, in order."""
        if not self.marks.exists():
            return []
        return self.marks.read_text(encoding="utf-8").split()

    # -- discovering in-process ---------------------------------------------------------

    @property
    def paths(self) -> list[str]:
        return [str(self.path), str(self.shadow), *sys.path]

    def mine(self, records: Sequence[DiscoveredPlugin]) -> list[DiscoveredPlugin]:
        """Only the records of distributions this test installed (not the real environment's)."""
        return [r for r in records if r.distribution in self.added]

    def own_problems(self, problems: Sequence[str]) -> list[str]:
        """The problems that name a distribution this test installed (each names its distribution)."""
        return [p for p in problems if any(f"({name} " in p for name in self.added)]

    def discover(
        self,
        config: loopai.LoopaiConfig | None = None,
        *,
        env: Mapping[str, str] | None = None,
        paths: Sequence[str] | None = None,
        **selection: Any,
    ) -> dict[str, DiscoveredPlugin]:
        """Discovered plugins of this site by name (names are unique unless a test says otherwise)."""
        environ = {**self.environ, **(env or {})}
        chosen = Selection.resolve(config, environ, **selection) if selection else None
        records = discover(config, environ=environ, selection=chosen, paths=paths or self.paths)
        return {r.name: r for r in self.mine(records)}

    def host(
        self,
        config: loopai.LoopaiConfig | None = None,
        *,
        env: Mapping[str, str] | None = None,
        paths: Sequence[str] | None = None,
        **options: Any,
    ) -> loopai.Host:
        """A host that discovers this site's plugins (importable: the site is on sys.path)."""
        environ = {**self.environ, **(env or {})}
        host = loopai.Host(config, discover=True, environ=environ, paths=paths or self.paths, **options)
        self.hosts.append(host)
        return host

    def config(self, toml: str, name: str = "loopai.toml") -> Path:
        """Write a configuration file in the command line's working directory and return its path."""
        path = self.workdir / name
        path.write_text(textwrap.dedent(toml), encoding="utf-8")
        return path

    # -- the command line, in a fresh process -------------------------------------------

    def cli(self, *args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """``python -m loopai plugins ARGS`` with this site first on the path, run in ``workdir``."""
        return self.loopai("plugins", *args, env=env)

    def loopai(self, *args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """``python -m loopai ARGS`` (any command) with this site first on the path, run in ``workdir``."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("LOOPAI_")}
        environ = {**base, **self.environ, "PYTHONPATH": os.pathsep.join(self.paths[:2]), **(env or {})}
        return subprocess.run(
            [sys.executable, "-m", "loopai", *args],
            env=environ,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def cli_json(self, *args: str, env: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
        """``plugins list --json ARGS``: this site's objects by name (the command must succeed)."""
        done = self.cli("list", "--json", *args, env=env)
        assert done.returncode == 0, done.stderr
        return {o["name"]: o for o in json.loads(done.stdout) if o["distribution"] in self.added}


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    """An empty site directory on sys.path, with a per-test discovery cache; imports are undone after."""
    token = uuid.uuid4().hex[:8]
    made = Site(tmp_path, token)
    monkeypatch.syspath_prepend(str(made.path))
    yield made
    for host in made.hosts:
        host.close()
    for name in [m for m in sys.modules if token in m]:
        del sys.modules[name]
