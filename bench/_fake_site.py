"""A temporary site directory of real ``*.dist-info`` distributions, for the discovery benchmark.

Each plugin distribution ``loopai-fake-plugin-NNNN`` declares one ``loopai.validators`` entry
point, ``fake-NNNN = loopai_fake_plugin_NNNN``: a one-file module with a
``@loopai.hookimpl def validate(execution, context)``, which loopai, pluggy and stevedore can
all load. With ``style="class"`` the entry point names a class instead, in the style the README
teaches (``fake-NNNN = loopai_fake_plugin_NNNN:FakeValidator``: a ``loopai.ValidatorPlugin``
subclass whose ``validate`` method is also marked ``@loopai.hookimpl``, so that pluggy, which
registers the class, finds it too). With ``installer=False`` no dist-info has an ``INSTALLER``
file, as when a tool other than an installer wrote them. Unrelated distributions
``unrelated-dist-NNNN`` look like ordinary libraries: some
declare console scripts or other entry point groups, none a loopai group. Modules are
byte-compiled, as pip does, so that no contender pays for compiling them.

The benchmark's processes run with ``python -S`` (no site-packages) and this site plus a
directory of links to what they import (:func:`link_dependencies`) on ``PYTHONPATH``: the
fake plugins are then the only loopai plugins installed, whatever the bench environment holds.
"""

from __future__ import annotations

import compileall
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["PLUGIN_GROUP", "PLUGIN_MODULE_PREFIX", "build", "link_dependencies", "plugin_names"]

PLUGIN_GROUP = "loopai.validators"
PLUGIN_MODULE_PREFIX = "loopai_fake_plugin_"

_PLUGIN_MODULE = '''"""Fake loopai plugin {i}: a module of pluggy-style hook implementations."""

import loopai

__version__ = "1.0.{i}"


@loopai.hookimpl
def validate(execution, context):
    return None
'''

_PLUGIN_CLASS = '''"""Fake loopai plugin {i}: a plugin class, as the README teaches."""

import loopai

__version__ = "1.0.{i}"


class FakeValidator(loopai.ValidatorPlugin):
    name = "fake-{i:04d}"
    version = __version__
    description = "Fake validator number {i}"

    @loopai.hookimpl
    def validate(self, execution, context):
        return None
'''

_METADATA = """Metadata-Version: 2.1
Name: {name}
Version: {version}
Summary: {summary}
Author-email: Bench <bench@example.invalid>
License: MIT
Classifier: Programming Language :: Python :: 3
Requires-Python: >=3.10
{requires}
{description}
"""

_WHEEL = "Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n"

# What every plugin distribution requires, all of it satisfied in the bench environment:
# loopai-core (spelt four ways), one of five installed libraries at one of five lower bounds
# (with a marker, every other one), a requirement whose marker is false here, an extra's.
_CORE_REQUIRES = ("loopai-core>=0.1", "loopai-core<2,>=0.1", "loopai-core<1,>=0.1.0", "loopai-core~=0.1")
_LIBRARIES = (("pluggy", 1), ("packaging", 23), ("pydantic", 2), ("typing-extensions", 4), ("annotated-types", 0))


def _plugin_requires(i: int) -> tuple[str, ...]:
    library, major = _LIBRARIES[i % len(_LIBRARIES)]
    marker = '; python_version >= "3.8"' if i % 2 else ""
    return (
        _CORE_REQUIRES[i % len(_CORE_REQUIRES)],
        f"{library}>={major}.{i // len(_LIBRARIES) % 5}{marker}",
        'tomli>=2.0; python_version < "3.10"',
        'pytest>=8; extra == "test"',
    )


_UNRELATED_REQUIRES = ('requests>=2; python_version >= "3.8"', "idna", 'pytest; extra == "test"')


def plugin_names(n: int) -> list[str]:
    """The entry point names of the first ``n`` fake plugins."""
    return [f"fake-{i:04d}" for i in range(n)]


def _dist(
    site: Path,
    name: str,
    version: str,
    *,
    summary: str,
    requires: tuple[str, ...],
    entry_points: str | None,
    files: dict[str, str],
    installer: bool = True,
) -> None:
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    requires_text = "".join(f"Requires-Dist: {r}\n" for r in requires)
    description = f"{summary}\n\n" + "A long description follows the headers, as in real wheels.\n" * 20
    (info / "METADATA").write_text(
        _METADATA.format(name=name, version=version, summary=summary, requires=requires_text, description=description),
        encoding="utf-8",
    )
    (info / "WHEEL").write_text(_WHEEL, encoding="utf-8")
    if installer:
        (info / "INSTALLER").write_text("pip\n", encoding="utf-8")
    if entry_points is not None:
        (info / "entry_points.txt").write_text(entry_points, encoding="utf-8")
    record = []
    for relative, text in files.items():
        target = site / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        record.append(f"{relative},,")
    top = sorted({relative.split("/")[0].removesuffix(".py") for relative in files})
    (info / "top_level.txt").write_text("".join(f"{t}\n" for t in top), encoding="utf-8")
    for member in ("METADATA", "WHEEL", "INSTALLER", "top_level.txt", "entry_points.txt", "RECORD"):
        record.append(f"{info.name}/{member},,")
    (info / "RECORD").write_text("\n".join(record) + "\n", encoding="utf-8")


def build(site: Path, plugins: int, unrelated: int = 200, *, style: str = "module", installer: bool = True) -> Path:
    """Fill the empty or missing directory ``site`` and return it (``style``: ``module`` or ``class``)."""
    site.mkdir(parents=True, exist_ok=True)
    for i in range(plugins):
        module = f"{PLUGIN_MODULE_PREFIX}{i:04d}"
        target = f"{module}:FakeValidator" if style == "class" else module
        _dist(
            site,
            f"loopai-fake-plugin-{i:04d}",
            f"1.0.{i}",
            summary=f"Fake loopai validator number {i}",
            requires=_plugin_requires(i),
            entry_points=f"[{PLUGIN_GROUP}]\nfake-{i:04d} = {target}\n",
            files={f"{module}.py": (_PLUGIN_CLASS if style == "class" else _PLUGIN_MODULE).format(i=i)},
            installer=installer,
        )
    for i in range(unrelated):
        package = f"unrelated_dist_{i:04d}"
        if i % 4 == 0:
            entry_points: str | None = f"[console_scripts]\nunrelated-{i:04d} = {package}:main\n"
        elif i % 4 == 1:
            entry_points = f"[other.plugins]\nthing-{i:04d} = {package}:Thing\n\n[pytest11]\nu{i} = {package}\n"
        else:
            entry_points = None
        _dist(
            site,
            f"unrelated-dist-{i:04d}",
            f"2.{i}.0",
            summary=f"An unrelated library number {i}",
            requires=_UNRELATED_REQUIRES,
            entry_points=entry_points,
            files={f"{package}/__init__.py": f'"""Unrelated {i}."""\n\n\ndef main():\n    return 0\n'},
            installer=installer,
        )
    compileall.compile_dir(str(site), quiet=1, workers=1)
    return site


# Run in the bench environment: which third-party top-level modules importing ``imports``
# loads, and the *.dist-info directories of their distributions (and loopai-core's, which is
# installed editable: its RECORD does not name the package).
_PROBE = r"""
import importlib, importlib.metadata, json, os, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
stdlib = os.path.realpath(os.path.dirname(os.__file__)) + os.sep  # lib-dynload is inside
modules = {}
for name, module in list(sys.modules.items()):
    file = getattr(module, "__file__", None)
    if "." in name or not file or os.path.realpath(file).startswith(stdlib):
        continue
    modules[name] = os.path.dirname(file) if os.path.basename(file).startswith("__init__.") else file
owners = importlib.metadata.packages_distributions()
wanted = {dist for name in modules for dist in owners.get(name, ())} | {"loopai-core"}
infos = []
for name in sorted(wanted):
    dist = importlib.metadata.distribution(name)
    info = next((f.parts[0] for f in dist.files or () if f.parts[0].endswith(".dist-info")), None)
    if info is not None:
        infos.append(str(dist.locate_file(info)))
print(json.dumps({"modules": sorted(modules.values()), "infos": infos}))
"""


def link_dependencies(target: Path, imports: Sequence[str]) -> Path:
    """Fill ``target`` with symbolic links to the packages ``imports`` need and their dist-infos."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *imports], capture_output=True, text=True, check=True, cwd=target.parent
    )
    found = json.loads(done.stdout)
    target.mkdir(parents=True, exist_ok=True)
    for source in [*found["modules"], *found["infos"]]:
        link = target / os.path.basename(source)
        if not link.exists():
            link.symlink_to(source, target_is_directory=os.path.isdir(source))
    return target
